"""The in-memory backend: every port in dicts, for tests and the console's demo mode.

One :class:`MemoryState` holds what a bucket, the lock table, the metrics tables, the
execution log and a topic would hold; each adapter is a handle on it. Several handles share
it at once (the runner's heartbeat renews the lease on a thread of its own, through a second
lock handle), so every read and write takes the state's one guard. Nothing outlives the
process.

Objects behave as on S3: an upload replaces an object whole, and a claim records the
version it takes (nothing moves). Unlike S3, the claimed version stays readable after a newer
upload under the same key: the claim keeps its bytes. The engines read local files, so the
object store writes the bytes it hands them (claimed objects, staged data, the curated log)
into a working folder: one given to it, else one in a temporary folder the state owns and
removes when it goes. Landing, archive, quarantine, staged data and the curated log
themselves live in the state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Generic

from ecompipe import trigger
from ecompipe.config import Settings
from ecompipe.contracts import DATASET_NAMES
from ecompipe.engines.base import CuratedLog, staged_path
from ecompipe.engines.current import MANIFEST, STATE_DIR, CurrentState, StateUpdate, batch_file
from ecompipe.errors import PermanentStoreError, StoreError
from ecompipe.kpis import CATEGORY_TABLE, ORDER_TABLE, CategoryMetrics, MetricTable, OrderMetrics, R
from ecompipe.revisions import Revision, RevisionSummary, history_order, revise, summarize
from ecompipe.stores.base import (
    ExecutionRecord,
    LockHolder,
    ManifestEntry,
    ObjectInfo,
    RaisedCondition,
    metrics_read,
)
from ecompipe.stores.host import HOST, lease_over
from ecompipe.workflow import Status

#: What ``location`` and report addresses start with: where an object is in the state.
SCHEME = "memory://"


def plain(value: Any) -> Any:
    """``value`` as a JSON document would give it back (text for what JSON cannot hold):
    what the other backends store and return, and a copy the caller cannot change."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True)
class Blob:
    """One object's bytes and its version tag (their MD5, as S3 gives a single-part upload)."""

    data: bytes
    etag: str
    #: When it was put (seconds since the epoch): ObjectInfo.landed_at.
    landed_at: float = field(default=0.0, compare=False)

    @classmethod
    def of(cls, data: bytes, landed_at: float | None = None) -> Blob:
        """The object holding ``data``, put now (or at ``landed_at``)."""
        digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return cls(data, digest, time.time() if landed_at is None else landed_at)


@dataclass
class MemoryState:
    """Everything the in-memory backend holds; its adapters are handles on one of these.

    Object areas map a key to its :class:`Blob`: ``landing`` by landing key,
    ``archive`` and ``quarantine`` by ``<execution>/<key>``, ``staging`` by
    ``<execution>/<file>``, ``curated`` by batch file (``orders/000000000007.parquet``).
    ``claims`` keeps each claimed version by (execution, key). Tests and the demo mode
    land objects with :meth:`put` and read the areas directly (under ``guard``).
    """

    landing: dict[str, Blob] = field(default_factory=dict)
    archive: dict[str, Blob] = field(default_factory=dict)
    quarantine: dict[str, Blob] = field(default_factory=dict)
    staging: dict[str, Blob] = field(default_factory=dict)
    curated: dict[str, Blob] = field(default_factory=dict)
    #: The curated store's current state: file -> blob, relative to its folder
    #: (engines/current.py), the manifest included.
    current: dict[str, Blob] = field(default_factory=dict)
    claims: dict[tuple[str, str], Blob] = field(default_factory=dict)
    #: lock id -> holder -> lease
    leases: dict[str, dict[str, LockHolder]] = field(default_factory=dict)
    #: metrics table name -> row key -> the row as the KPI definitions store it
    tables: dict[str, dict[tuple[str, ...], dict[str, int | str]]] = field(default_factory=dict)
    executions: dict[str, ExecutionRecord] = field(default_factory=dict)
    manifests: dict[str, dict[str, ManifestEntry]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    conditions: dict[str, RaisedCondition] = field(default_factory=dict)
    #: KPI revisions by (date, category or None, execution id)
    revisions: dict[tuple[date, str | None, str], Revision] = field(default_factory=dict)
    last_seq: int = 0
    guard: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _work: Path | None = field(default=None, init=False, repr=False)
    _stores: int = field(default=0, init=False, repr=False)

    def work_folder(self) -> Path:
        """A new local folder for one object store's working files, in a temporary folder
        the state owns: it goes when the state does (files handed to an engine outlive the
        store handle that wrote them, as long as the state lives)."""
        with self.guard:
            if self._work is None:
                self._work = Path(tempfile.mkdtemp(prefix="ecompipe-memory-"))
                weakref.finalize(self, shutil.rmtree, self._work, ignore_errors=True)
            self._stores += 1
            return self._work / f"store-{self._stores}"

    def put(self, key: str, data: bytes) -> None:
        """Upload ``data`` to landing as ``key`` (replacing whatever was there, whole)."""
        with self.guard:
            self.landing[key] = Blob.of(data)

    def delete(self, key: str) -> None:
        """Remove the landing object ``key``, if there is one."""
        with self.guard:
            self.landing.pop(key, None)


# ---------------------------------------------------------------------- object store


def _write(path: Path, data: bytes) -> None:
    """Write ``path`` whole: a reader never sees a part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    tmp.replace(path)


def _holds(path: Path, blob: Blob) -> bool:
    # Size is enough to tell a file we wrote from a missing or half-written one; a reader
    # that changed it in place gets it written again only when its size changed too.
    return path.is_file() and path.stat().st_size == len(blob.data)


class MemoryObjectStore:
    """ObjectStore on a :class:`MemoryState`; local copies for the engine live under
    ``root`` (default: a folder of the state's own, one per store, as each ECS task has
    one)."""

    def __init__(self, state: MemoryState, settings: Settings, root: Path | None = None) -> None:
        self.state, self.settings = state, settings
        self.root = root if root is not None else state.work_folder()

    def list_landing(self) -> list[ObjectInfo]:
        """Objects directly under each dataset prefix, hidden names left out; they appear
        whole, so none has a change time or a writer."""
        prefixes = {self.settings.prefix_of(d) for d in DATASET_NAMES}
        with self.state.guard:
            objects = list(self.state.landing.items())
        found = []
        for key, blob in objects:
            prefix, _, name = key.rpartition("/")
            if prefix in prefixes and name and not name.startswith("."):
                found.append(ObjectInfo(key, len(blob.data), blob.etag, landed_at=blob.landed_at))
        return sorted(found, key=lambda o: o.key)

    def claim(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Keep the version of each entry's object there now (a claim made before, after a
        crash, keeps its own); an object no longer in landing is ``gone``."""
        with self.state.guard:
            for entry in entries:
                if entry.status != "claimed":
                    continue
                blob = self.state.claims.get((execution_id, entry.key))
                if blob is None:
                    blob = self.state.landing.get(entry.key)
                    if blob is None:
                        entry.status, entry.location = "gone", None
                        continue
                    self.state.claims[(execution_id, entry.key)] = blob
                entry.etag, entry.size = blob.etag, len(blob.data)
                entry.location = f"{SCHEME}landing/{entry.key}"

    def still_being_written(self, execution_id: str, entry: ManifestEntry) -> bool:
        """Never: objects appear whole, and the claim keeps the version it took."""
        return False

    def unclaim(self, execution_id: str, entry: ManifestEntry) -> None:
        """Drop the claim: the object never left landing (a newer upload under its key
        replaced it there, as on S3). A replay's copy goes to landing, as on the other
        stores: beside a newer upload of its key (trigger.returned_key), never over it."""
        with self.state.guard:
            blob = self.state.claims.pop((execution_id, entry.key), None)
            if blob is not None and (entry.location or "").startswith(f"{SCHEME}quarantine/"):
                current = self.state.landing.get(entry.key)
                key = entry.key
                if current is not None and current.etag != blob.etag:
                    key = trigger.returned_key(entry.key, execution_id)
                self.state.landing[key] = blob
        entry.status, entry.location = "returned", None

    def local_path(self, execution_id: str, entry: ManifestEntry) -> Path:
        """The claimed bytes in a file named after a digest of the key, so that no key
        becomes a path of its own."""
        with self.state.guard:
            blob = self.state.claims.get((execution_id, entry.key))
        if blob is None:
            raise StoreError(f"{entry.key} is not claimed by {execution_id}: nothing to read")
        digest = hashlib.sha256(entry.key.encode("utf-8", "surrogateescape")).hexdigest()
        path = self.root / execution_id / "inflight" / digest[:32]
        if not _holds(path, blob):
            _write(path, blob.data)
        return path

    def archive(self, execution_id: str, entry: ManifestEntry) -> None:
        """Move the claimed version to ``archive/<execution>/<key>`` (trigger.settled_key)."""
        self._settle(execution_id, entry, "archive", self.state.archive, "archived")

    def quarantine(self, execution_id: str, entry: ManifestEntry) -> None:
        """Move the claimed version to ``quarantine/<execution>/<key>`` (trigger.settled_key)."""
        self._settle(execution_id, entry, "quarantine", self.state.quarantine, "quarantined")

    def _settle(
        self,
        execution_id: str,
        entry: ManifestEntry,
        area_name: str,
        area: dict[str, Blob],
        status: str,
    ) -> None:
        dst = f"{execution_id}/{trigger.settled_key(entry.key)}"
        where = f"{SCHEME}{area_name}/{dst}"
        with self.state.guard:
            there = area.get(dst)
            if there is None:
                blob = self.state.claims.get((execution_id, entry.key))
                current = self.state.landing.get(entry.key)
                if blob is None and current is not None and current.etag == entry.etag:
                    blob = current  # a version recorded without a claim (as S3 moves it)
                if blob is None:
                    entry.status, entry.location = "gone", None
                    return
                area[dst] = blob
            elif there.etag != entry.etag:
                # Other bytes already there: no retry changes that; an operator must look.
                raise PermanentStoreError(
                    f"refusing to overwrite {where} (moving {entry.key}): it holds other "
                    "bytes; move it aside, then run again"
                )
            current = self.state.landing.get(entry.key)
            if current is not None and current.etag == entry.etag:
                # Only the version moved: a newer upload under the key stays for the next run.
                del self.state.landing[entry.key]
        entry.status, entry.location = status, where

    def restore(self, source: str, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Claim the bytes kept as ``quarantine/<source>/<key>`` (they stay there)."""
        with self.state.guard:
            for entry in entries:
                where = f"{source}/{trigger.settled_key(entry.key)}"
                blob = self.state.claims.get((execution_id, entry.key))
                if blob is None:
                    blob = self.state.quarantine.get(where)
                    if blob is None:
                        raise PermanentStoreError(
                            f"cannot replay {entry.key}: {SCHEME}quarantine/{where} is gone"
                        )
                    self.state.claims[(execution_id, entry.key)] = blob
                entry.etag, entry.size = blob.etag, len(blob.data)
                entry.location = f"{SCHEME}quarantine/{where}"

    def put_report(self, execution_id: str, name: str, source: Path) -> str:
        """Keep a report as ``quarantine/<execution>/<name>`` (a redo replaces it)."""
        blob = Blob.of(source.read_bytes())
        with self.state.guard:
            self.state.quarantine[f"{execution_id}/{name}"] = blob
        return f"{SCHEME}quarantine/{execution_id}/{name}"

    def fetch_report(self, execution_id: str, name: str, target: Path) -> bool:
        """Write the report kept as ``quarantine/<execution>/<name>`` to ``target``; False
        when there is none."""
        with self.state.guard:
            blob = self.state.quarantine.get(f"{execution_id}/{name}")
        if blob is None:
            return False
        _write(target, blob.data)
        return True

    def staging_dir(self, execution_id: str) -> Path:
        """A local folder, filled from the state when another handle staged data before."""
        path = self.root / execution_id / "staging"
        if not path.exists():
            path.mkdir(parents=True)
            for name, blob in self._staged(execution_id).items():
                _write(path / name, blob.data)
        return path

    def _staged(self, execution_id: str) -> dict[str, Blob]:
        """The execution's staged files, by name relative to its staging folder."""
        prefix = f"{execution_id}/"
        with self.state.guard:
            return {
                k[len(prefix) :]: b for k, b in self.state.staging.items() if k.startswith(prefix)
            }

    def save_staging(self, execution_id: str) -> None:
        """Keep the staging folder's files in the state, exactly (a redo that staged less
        leaves nothing of the attempt before)."""
        folder = self.root / execution_id / "staging"
        files = {
            p.relative_to(folder).as_posix(): Blob.of(p.read_bytes())
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        with self.state.guard:
            for name in self._staged(execution_id):
                del self.state.staging[f"{execution_id}/{name}"]
            for name, blob in files.items():
                self.state.staging[f"{execution_id}/{name}"] = blob

    def curated_log(self, uri: bool = False) -> CuratedLog:
        """A local mirror holding exactly the log and the current state (no engine reads
        the state in place, so ``uri`` gives the mirror too)."""
        with self.state.guard:
            files = {
                **self.state.curated,
                **{f"{STATE_DIR}/{k}": b for k, b in self.state.current.items()},
            }
        folder = self.root / "curated"
        folder.mkdir(parents=True, exist_ok=True)
        for path in [*folder.rglob("*.parquet"), folder / STATE_DIR / MANIFEST]:
            if path.exists() and path.relative_to(folder).as_posix() not in files:
                path.unlink()  # a withdrawn batch, a replaced state file
        for name, blob in files.items():
            if not _holds(folder / name, blob):
                _write(folder / name, blob.data)
        return CuratedLog.in_folder(folder)

    def commit_state(self, update: StateUpdate) -> None:
        """Keep the new state files, then the manifest; drop the files it does not name."""
        blobs = {n: Blob.of((update.outbox / n).read_bytes()) for n in update.new_files}
        keep = update.state.all_files()
        with self.state.guard:
            self.state.current.update(blobs)
            self.state.current[MANIFEST] = Blob.of(update.state.to_json().encode())
            for name in [n for n in self.state.current if n != MANIFEST and n not in keep]:
                del self.state.current[name]

    def publish_batch(self, execution_id: str, seq: int) -> None:
        """Put the saved staged files into the curated log as batch ``seq`` (a batch file
        already there is kept)."""
        with self.state.guard:
            for dataset in DATASET_NAMES:
                staged = self.state.staging.get(staged_path(Path(execution_id), dataset).as_posix())
                name = batch_file(dataset, seq)
                if staged is not None and name not in self.state.curated:
                    self.state.curated[name] = staged

    def withdraw_batch(self, execution_id: str, seq: int) -> None:
        """Remove batch ``seq``'s files from the curated log (a missing one is no error)."""
        with self.state.guard:
            for dataset in DATASET_NAMES:
                self.state.curated.pop(batch_file(dataset, seq), None)
            manifest = self.state.current.get(MANIFEST)
            state = CurrentState.from_json(manifest.data.decode()) if manifest else None
            if state is not None and seq in state.batches:
                self.state.current.clear()  # derived: the next run rebuilds it from the log

    def cleanup(self, execution_id: str) -> None:
        """Drop the execution's staged data, its claims and its local working files."""
        with self.state.guard:
            for name in self._staged(execution_id):
                del self.state.staging[f"{execution_id}/{name}"]
            for claim in [c for c in self.state.claims if c[0] == execution_id]:
                del self.state.claims[claim]
        shutil.rmtree(self.root / execution_id, ignore_errors=True)


# ---------------------------------------------------------------------- lock


class MemoryLock:
    """A semaphore of leases in the state, with the lease rule of every lock
    (stores.host.lease_over): leases belong to this process."""

    def __init__(self, state: MemoryState, lock_id: str, limit: int) -> None:
        self.state, self.lock_id, self.limit = state, lock_id, limit

    def _leases(self) -> dict[str, LockHolder]:
        return self.state.leases.setdefault(self.lock_id, {})

    def try_acquire(self, holder: str, execution_id: str | None, lease_seconds: float) -> bool:
        """Take a slot if one is free; a holder that already has one keeps it (renewed)."""
        now = time.time()
        with self.state.guard:
            leases = self._leases()
            for name, lease in list(leases.items()):
                if lease_over(lease.host, lease.pid, lease.expires_at, now):
                    del leases[name]
            mine = leases.get(holder)
            if mine is not None:
                leases[holder] = replace(mine, expires_at=now + lease_seconds)
                return True
            if len(leases) >= self.limit:
                return False
            leases[holder] = LockHolder(
                holder, execution_id, HOST, os.getpid(), now, now + lease_seconds
            )
            return True

    def renew(self, holder: str, lease_seconds: float) -> bool:
        """Extend the lease; False when the holder has none, or it has expired."""
        now = time.time()
        with self.state.guard:
            leases = self._leases()
            mine = leases.get(holder)
            if mine is None or mine.expires_at <= now:
                return False
            leases[holder] = replace(mine, expires_at=now + lease_seconds)
            return True

    def release(self, holder: str) -> None:
        """Give the slot back (nothing happens when it is not held)."""
        with self.state.guard:
            self._leases().pop(holder, None)

    def holders(self) -> list[LockHolder]:
        """Current holders (expired ones included until someone reaps them)."""
        with self.state.guard:
            return sorted(self._leases().values(), key=lambda h: h.acquired_at)

    def force_release(self, holder: str | None = None) -> int:
        """Operators only: drop one holder, or all of them."""
        with self.state.guard:
            leases = self._leases()
            if holder is not None:
                return int(leases.pop(holder, None) is not None)
            count = len(leases)
            leases.clear()
            return count


# ---------------------------------------------------------------------- metrics


class _Rows(Generic[R]):
    """One metrics table in the state: each row as the KPI definitions store it (exact
    decimal text), by its key columns."""

    def __init__(self, state: MemoryState, name: str, table: MetricTable[R]) -> None:
        self._table: MetricTable[R] = table
        with state.guard:
            self._rows = state.tables.setdefault(name, {})

    def drop_dates(self, days: set[str]) -> None:
        for key in [k for k, v in self._rows.items() if v["order_date"] in days]:
            del self._rows[key]

    def of_dates(self, days: set[str]) -> list[tuple[int | str, ...]]:
        """The rows of ``days`` as stored, in column order (``stored`` keeps that order)."""
        return [tuple(v.values()) for v in self._rows.values() if v["order_date"] in days]

    def put(self, rows: Sequence[R]) -> None:
        for row in rows:
            values = self._table.stored(row)
            self._rows[tuple(str(values[c]) for c, _kind in self._table.keys)] = values

    def read(self) -> list[R]:
        return [self._table.from_stored(v) for v in self._rows.values()]


class MemoryMetricsStore:
    """order_metrics_table and category_metrics_table (named by the settings) in the state."""

    def __init__(self, state: MemoryState, order_table: str, category_table: str) -> None:
        self.state = state
        self._orders = _Rows(state, order_table, ORDER_TABLE)
        self._categories = _Rows(state, category_table, CATEGORY_TABLE)

    def replace_dates(
        self,
        dates: Sequence[date],
        order_rows: Sequence[OrderMetrics],
        category_rows: Sequence[CategoryMetrics],
        revision_of: str | None = None,
    ) -> RevisionSummary:
        """Drop every row of ``dates`` and put the new ones, with the revisions of
        ``revision_of``, under the guard (atomic)."""
        days = {d.isoformat() for d in dates}
        summary = RevisionSummary()
        with self.state.guard:
            if revision_of is not None:
                before = (self._orders.of_dates(days), self._categories.of_dates(days))
                found = revise(revision_of, time.time(), before, (order_rows, category_rows))
                for r in found:
                    self.state.revisions[(r.order_date, r.category, revision_of)] = r
                # Atomic: an earlier attempt under the id recorded all, and left none to find.
                summary = summarize(
                    found
                    or (r for r in self.state.revisions.values() if r.execution_id == revision_of)
                )
            self._orders.drop_dates(days)
            self._categories.drop_dates(days)
            self._orders.put(order_rows)
            self._categories.put(category_rows)
        return summary

    def revisions(self, order_date: date, category: str | None = None) -> list[Revision]:
        """The revisions of ``order_date`` (of ``category``'s row only), oldest first."""
        with self.state.guard:
            found = [
                r
                for (day, of, _eid), r in self.state.revisions.items()
                if day == order_date and (category is None or of == category)
            ]
        return history_order(found)

    def order_metrics(
        self, date_from: date | None = None, date_to: date | None = None
    ) -> list[OrderMetrics]:
        """Order metrics in date order."""
        with self.state.guard:
            rows = self._orders.read()
        return metrics_read(rows, date_from, date_to)

    def category_metrics(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        category: str | None = None,
    ) -> list[CategoryMetrics]:
        """Category metrics by date then category."""
        with self.state.guard:
            rows = self._categories.read()
        return metrics_read(rows, date_from, date_to, category)


# ---------------------------------------------------------------------- execution log


class MemoryExecutionLog:
    """Executions, manifests and state events in the state; every answer is a copy."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

    @staticmethod
    def _copy(record: ExecutionRecord) -> ExecutionRecord:
        return replace(record, summary=plain(record.summary))

    def create(self, execution_id: str, holder: str | None) -> ExecutionRecord:
        """Record a RUNNING execution with the next batch number; an id already recorded
        keeps its record (as a retried create on DynamoDB does)."""
        with self.state.guard:
            record = self.state.executions.get(execution_id)
            if record is None:
                self.state.last_seq += 1
                record = ExecutionRecord(
                    execution_id,
                    self.state.last_seq,
                    str(Status.RUNNING),
                    None,
                    time.time(),
                    holder=holder,
                )
                self.state.executions[execution_id] = record
            return self._copy(record)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """One execution, or None."""
        with self.state.guard:
            record = self.state.executions.get(execution_id)
            return self._copy(record) if record else None

    def _records(self, keep: Callable[[ExecutionRecord], bool]) -> list[ExecutionRecord]:
        """The executions ``keep`` selects, oldest first."""
        with self.state.guard:
            records = [self._copy(r) for r in self.state.executions.values() if keep(r)]
        return sorted(records, key=lambda r: r.seq)

    def recent(self, limit: int = 50) -> list[ExecutionRecord]:
        """Latest executions first."""
        return self._records(lambda r: True)[::-1][:limit]

    def find(self, prefix: str) -> list[ExecutionRecord]:
        """Executions whose id starts with ``prefix``, oldest first (a whole id: only its own)."""
        exact = self._records(lambda r: r.execution_id == prefix)
        return exact or self._records(lambda r: r.execution_id.startswith(prefix))

    def last_started_at(self) -> float | None:
        """When the newest execution started."""
        latest = self.recent(1)
        return latest[0].started_at if latest else None

    def unfinished(self) -> list[ExecutionRecord]:
        """RUNNING executions, oldest first."""
        return self._records(lambda r: r.status == Status.RUNNING)

    def set_holder(self, execution_id: str, holder: str) -> None:
        """Record which lock holder runs the execution now."""
        with self.state.guard:
            if execution_id in self.state.executions:
                self.state.executions[execution_id].holder = holder

    def record_event(
        self, execution_id: str, state: str, event: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append a state event; the record's ``state`` follows it."""
        item = plain({"state": state, "event": event, "at": time.time(), "detail": detail or None})
        with self.state.guard:
            self.state.events.setdefault(execution_id, []).append(item)
            if execution_id in self.state.executions:
                self.state.executions[execution_id].state = item["state"]

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        """State history in order."""
        with self.state.guard:
            return list(plain(self.state.events.get(execution_id, [])))

    def completed_states(self, execution_id: str) -> set[str]:
        """States that have a 'succeeded' event."""
        return {e["state"] for e in self.events(execution_id) if e["event"] == "succeeded"}

    def save_manifest(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Record each entry once (a resumed execution keeps its first manifest)."""
        with self.state.guard:
            manifest = self.state.manifests.setdefault(execution_id, {})
            for entry in entries:
                manifest.setdefault(entry.key, replace(entry))

    def manifest(self, execution_id: str) -> list[ManifestEntry]:
        """The manifest in key order."""
        with self.state.guard:
            entries = [replace(e) for e in self.state.manifests.get(execution_id, {}).values()]
        return sorted(entries, key=lambda e: e.key)

    def update_entries(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Persist entries' status, location and claimed version (size, etag) at once."""
        with self.state.guard:
            for entry in entries:
                kept = self.state.manifests.get(execution_id, {}).get(entry.key)
                if kept is not None:
                    kept.status, kept.location = entry.status, entry.location
                    kept.size, kept.etag = entry.size, entry.etag

    def owned_keys(self) -> set[str]:
        """Keys claimed by RUNNING executions and still in their hands."""
        with self.state.guard:
            return {
                e.key
                for r in self.state.executions.values()
                if r.status == Status.RUNNING
                for e in self.state.manifests.get(r.execution_id, {}).values()
                if e.status == "claimed"
            }

    def finish(self, execution_id: str, status: str, summary: dict[str, Any]) -> None:
        """Close the execution with its status and summary."""
        with self.state.guard:
            self.save_summary(execution_id, summary)
            record = self.state.executions.get(execution_id)
            if record is not None:
                record.status, record.finished_at = str(status), time.time()

    def save_summary(self, execution_id: str, summary: dict[str, Any]) -> None:
        """Merge keys into the summary."""
        with self.state.guard:
            record = self.state.executions.get(execution_id)
            if record is not None:
                record.summary = {**record.summary, **plain(summary)}


# ---------------------------------------------------------------------- notifier


class CollectingNotifier:
    """Keeps messages instead of sending them: the memory backend's notifier (into its
    state's ``notifications``), and the ECS tasks' (the state machine sends theirs)."""

    def __init__(self, messages: list[dict[str, Any]] | None = None) -> None:
        self.messages: list[dict[str, Any]] = [] if messages is None else messages

    def notify(self, message: dict[str, Any]) -> None:
        """Keep the message, as JSON would carry it."""
        self.messages.append(plain(message))


# ---------------------------------------------------------------------- conditions


class MemoryConditions:
    """The raised conditions, in the state's ``conditions`` (the Conditions port)."""

    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def raise_once(self, condition_id: str, detail: dict[str, Any]) -> bool:
        """Keep the condition unless it is there; True when this call kept it."""
        with self.state.guard:
            if condition_id in self.state.conditions:
                return False
            self.state.conditions[condition_id] = RaisedCondition(
                condition_id, time.time(), plain(detail)
            )
            return True

    def raised(self) -> list[RaisedCondition]:
        """Every raised condition, oldest first."""
        with self.state.guard:
            return sorted(self.state.conditions.values(), key=lambda c: c.raised_at)

    def clear(self, condition_id: str) -> None:
        """Forget the condition, if raised."""
        with self.state.guard:
            self.state.conditions.pop(condition_id, None)
