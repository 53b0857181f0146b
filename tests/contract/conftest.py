"""The adapters every contract test runs on: in-memory, local (folder + SQLite) and AWS on
moto, each built through ecompipe.wiring as the entry points build them.

A test takes the ``adapter`` fixture: the backend's ports (a new handle on the same data at
each ``ports()``), and the few ways to look behind them that a test needs (land an object,
read one back, plant a lease, read what was notified). Where adapters differ by design, the
difference is a documented flag here, and the test states what each one does.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from tests.moto_server import Aws

#: Markers of each adapter's tests (pyproject.toml: --strict-markers).
ADAPTERS = [
    pytest.param("memory", marks=[pytest.mark.fast], id="memory"),
    pytest.param("local", marks=[pytest.mark.fast, pytest.mark.local], id="local"),
    pytest.param(
        "aws",
        marks=[
            pytest.mark.aws,
            pytest.mark.slow,
            pytest.mark.xdist_group("moto"),
            pytest.mark.timeout(60),
        ],
        id="aws",
    ),
]


@dataclass
class Adapter:
    """One backend as the contract tests see it."""

    name: str
    settings: Any
    #: Ports on this backend's data for ``settings`` (a new handle each call).
    open: Callable[[Any], Any]
    #: Put bytes at ``name`` of an area ("landing", "archive", "quarantine"): a landing key,
    #: or ``<execution>/<key>``.
    place: Callable[[str, str, bytes], None]
    #: The bytes at ``name`` of an area, or None.
    read: Callable[[str, str], bytes | None]
    #: Remove a landing object (an upload that vanished).
    unland: Callable[[str], None]
    #: Put a lease on lock ``lock_id`` behind the adapter's back.
    plant: Callable[[str, Any], None]
    #: Every notification delivered so far, as its target received it.
    delivered: Callable[[], list[dict[str, Any]]]
    #: Local: a claim moves the file out of landing; on S3 and in memory a claim only
    #: records the version, and the object stays listed (owned_keys hides it from a run).
    claim_moves: bool = False
    #: Local: a claimed file can still change in place (a writer holding it open writes on);
    #: objects on S3 and in memory appear whole, and the engine's file is only a copy.
    writes_in_place: bool = False
    #: Local and memory keep the claimed version readable after a newer upload under its key
    #: (moved away / kept by the claim); S3 keeps only the latest version, so the claimed one
    #: cannot be read any more (StoreError) and the move finds it ``gone``.
    keeps_claimed_version: bool = True
    #: Local: a folder under a dataset folder is listed, as an irregular entry to quarantine
    #: as it is; on S3 and in memory a sub-prefix is no object.
    lists_folders: bool = False
    #: S3: ``curated_log(uri=True)`` is the log in place (s3a://); stores on local disk and
    #: in memory give their local folder.
    curated_uri: bool = False
    _handles: itertools.count[int] = field(default_factory=itertools.count)

    def ports(self, **changes: Any) -> Any:
        """A new handle on the backend's ports, with ``changes`` to the settings."""
        return self.open(replace(self.settings, **changes) if changes else self.settings)

    def land(self, key: str, data: bytes) -> None:
        """Upload ``data`` to landing as ``key``."""
        self.place("landing", key, data)


def _memory(tmp_path: Path) -> Adapter:
    from ecompipe.config import load_settings
    from ecompipe.stores.memory import Blob, MemoryState
    from ecompipe.wiring import open_ports

    state = MemoryState()

    def area(name: str) -> dict[str, Any]:
        return {"landing": state.landing, "archive": state.archive, "quarantine": state.quarantine}[
            name
        ]

    def place(where: str, name: str, data: bytes) -> None:
        with state.guard:
            area(where)[name] = Blob.of(data)

    def read(where: str, name: str) -> bytes | None:
        with state.guard:
            blob = area(where).get(name)
        return None if blob is None else bytes(blob.data)

    def plant(lock_id: str, lease: Any) -> None:
        with state.guard:
            state.leases.setdefault(lock_id, {})[lease.holder] = lease

    return Adapter(
        "memory",
        load_settings(),
        lambda settings: open_ports("memory", settings, memory=state),
        place,
        read,
        state.delete,
        plant,
        lambda: list(state.notifications),
    )


def _local(tmp_path: Path) -> Adapter:
    from ecompipe.config import load_settings
    from ecompipe.wiring import init_workspace, open_ports

    settings = load_settings()
    ws = init_workspace(tmp_path / "ws", settings)

    def place(where: str, name: str, data: bytes) -> None:
        path = ws.root / where / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def read(where: str, name: str) -> bytes | None:
        path = ws.root / where / name
        return path.read_bytes() if path.is_file() else None

    def plant(lock_id: str, lease: Any) -> None:
        con = sqlite3.connect(ws.db)
        with con:
            con.execute(
                "INSERT INTO lock_holders VALUES (?, ?, ?, ?, ?, ?, ?)",
                (lock_id, *astuple(lease)),
            )
        con.close()

    def delivered() -> list[dict[str, Any]]:
        if not ws.notifications.exists():
            return []
        lines = ws.notifications.read_text("utf-8").splitlines()
        return [json.loads(line) for line in lines]

    return Adapter(
        "local",
        settings,
        lambda s: open_ports("local", s, ws),
        place,
        read,
        lambda key: (ws.landing / key).unlink(),
        plant,
        delivered,
        claim_moves=True,
        writes_in_place=True,
        lists_folders=True,
    )


def _aws(tmp_path: Path, aws: Aws) -> Adapter:
    from ecompipe.wiring import open_ports

    settings = aws.settings()
    clients = aws.clients()
    s3, ddb = aws.client("s3"), aws.client("dynamodb")
    queue = aws.subscribe_queue()
    received: list[dict[str, Any]] = []
    works = itertools.count()

    def where_in_s3(where: str, name: str) -> tuple[str, str]:
        if where == "archive":
            return settings.archive_bucket or settings.bucket_name, f"archive/{name}"
        if where == "quarantine":
            return settings.bucket_name, f"quarantine/{name}"
        return settings.bucket_name, name

    def place(where: str, name: str, data: bytes) -> None:
        bucket, key = where_in_s3(where, name)
        s3.put_object(Bucket=bucket, Key=key, Body=data)

    def read(where: str, name: str) -> bytes | None:
        bucket, key = where_in_s3(where, name)
        try:
            body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return body

    def plant(lock_id: str, lease: Any) -> None:
        ddb.update_item(
            TableName=settings.lock_table,
            Key={"LockId": {"S": lock_id}},
            UpdateExpression="SET holders = if_not_exists(holders, :empty)",
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
        item = {
            "host": {"S": lease.host},
            "pid": {"N": str(lease.pid)},
            "acquired_at": {"N": str(lease.acquired_at)},
            "expires_at": {"N": str(lease.expires_at)},
        }
        if lease.execution_id:
            item["execution_id"] = {"S": lease.execution_id}
        ddb.update_item(
            TableName=settings.lock_table,
            Key={"LockId": {"S": lock_id}},
            UpdateExpression="SET holders.#h = :lease",
            ExpressionAttributeNames={"#h": lease.holder},
            ExpressionAttributeValues={":lease": {"M": item}},
        )

    def delivered() -> list[dict[str, Any]]:
        # SNS wraps the message: the SQS body is its envelope, the message its "Message".
        received.extend(json.loads(m["Message"]) for m in aws.messages(queue))
        return list(received)

    def open_aws(s: Any) -> Any:
        # Each handle its own working folder, as each ECS task has.
        return open_ports("aws", s, clients=clients, work_dir=tmp_path / f"work-{next(works)}")

    return Adapter(
        "aws",
        settings,
        open_aws,
        place,
        read,
        lambda key: s3.delete_object(Bucket=settings.bucket_name, Key=key),
        plant,
        delivered,
        keeps_claimed_version=False,
        curated_uri=True,
    )


@pytest.fixture(params=ADAPTERS)
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Adapter]:
    """Each backend in turn, empty."""
    if request.param == "memory":
        yield _memory(tmp_path)
    elif request.param == "local":
        yield _local(tmp_path)
    else:
        yield _aws(tmp_path, request.getfixturevalue("aws"))
