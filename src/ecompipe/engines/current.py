"""The curated store's current state: the latest version of each key, laid out by order month.

The batch log (``curated/<dataset>/<seq>.parquet``) stays the exactly-once source of truth;
the current state is derived from it and kept next to it, so that a run reads and rewrites
only what its batch touches instead of ranking every version of every key:

    curated/current/orders/order_month=2024-01/<file>.parquet       orders of that month
    curated/current/order_items/order_month=2024-01/<file>.parquet  items of those orders
    curated/current/order_items/order_month=waiting/<file>.parquet  items whose order is missing
    curated/current/products/<file>.parquet                         every product
    curated/current/_manifest.json                                  which files are current

Each row is the latest version of its key (the contract's columns) and ``_batch``, the batch
that brought that version. Invariant: an item is in the partition of its order's month, or in
``waiting`` when its order has not arrived. A run folds the batches the state lacks into the
partitions they touch (the months of their orders, old and new, and ``waiting``), writes
those partitions as new files, and only then - after the metrics of the dates it changed are
written - commits: the manifest is replaced in one atomic step, and files no manifest names
are deleted. Files are never rewritten in place (each new file has a new name), so a state a
kill interrupted is simply the previous manifest, and a reader holding a manifest reads a
consistent version. The manifest also keeps the dates its last fold changed: a transform
resumed after the commit recomputes those from the state, without the log.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ecompipe.contracts import DATASET_NAMES
from ecompipe.faults import crash_point

#: The state's folder inside the curated store's root, and its manifest there.
STATE_DIR = "current"
MANIFEST = "_manifest.json"
#: Where a run's new files wait until the store commits them (inside STATE_DIR: same disk).
INCOMING = "_incoming"
#: The partition column of orders and items (a folder name, not a column of the files).
PARTITION = "order_month"
#: The items partition of items whose order has not arrived.
WAITING = "waiting"
#: The column of every state file saying which batch brought the row's version.
BATCH_COLUMN = "_batch"
#: Datasets laid out by order month; the others are one partition, named "".
PARTITIONED = ("orders", "order_items")
_FORMAT = 1


def batch_file(dataset: str, seq: int) -> str:
    """A batch's file in the curated log, relative to its root; the name carries the number."""
    return f"{dataset}/{seq:012d}.parquet"


def month_sql(ts: str) -> str:
    """'YYYY-MM' of a timestamp, spelled the same in DuckDB and Spark SQL."""
    return f"CAST(year({ts}) AS STRING) || '-' || lpad(CAST(month({ts}) AS STRING), 2, '0')"


@dataclass(frozen=True)
class Part:
    """One partition of a dataset's state: its files (relative to the state folder) and rows."""

    files: tuple[str, ...]
    rows: int


@dataclass(frozen=True)
class CurrentState:
    """A committed version of the current state (the manifest).

    ``batches``: the log batches folded in; ``parts``: per dataset, partition -> Part;
    ``last_batches``/``last_dates``: what the last fold folded, and the order dates it changed.
    """

    batches: tuple[int, ...]
    parts: Mapping[str, Mapping[str, Part]]
    last_batches: tuple[int, ...] = ()
    last_dates: tuple[date, ...] = ()

    def rows(self, dataset: str) -> int:
        """Rows of ``dataset`` in this version (one per key)."""
        return sum(p.rows for p in self.parts.get(dataset, {}).values())

    def files(self, dataset: str, partitions: Iterable[str] | None = None) -> list[str]:
        """Files of ``dataset`` (of ``partitions`` only, when given), relative to the folder."""
        parts = self.parts.get(dataset, {})
        wanted = sorted(parts) if partitions is None else sorted(set(partitions) & set(parts))
        return [f for p in wanted for f in parts[p].files]

    def all_files(self) -> set[str]:
        """Every file this version names."""
        return {f for parts in self.parts.values() for p in parts.values() for f in p.files}

    def to_json(self) -> str:
        """The manifest's text."""
        return json.dumps(
            {
                "format": _FORMAT,
                "batches": list(self.batches),
                "datasets": {
                    ds: {k: {"files": list(p.files), "rows": p.rows} for k, p in parts.items()}
                    for ds, parts in self.parts.items()
                },
                "last": {
                    "batches": list(self.last_batches),
                    "dates": [d.isoformat() for d in self.last_dates],
                },
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> CurrentState | None:
        """The version a manifest's text describes; None for a format this code does not know
        (the state is then rebuilt from the log)."""
        data: Any = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return None
        return cls(
            batches=tuple(int(b) for b in data["batches"]),
            parts={
                ds: {k: Part(tuple(p["files"]), int(p["rows"])) for k, p in parts.items()}
                for ds, parts in data["datasets"].items()
            },
            last_batches=tuple(int(b) for b in data["last"]["batches"]),
            last_dates=tuple(date.fromisoformat(d) for d in data["last"]["dates"]),
        )


@dataclass(frozen=True)
class StateUpdate:
    """A new version computed by a transform, not committed yet: ``state`` names its files;
    those that are new wait in the local folder ``outbox`` at their relative paths."""

    state: CurrentState
    outbox: Path
    new_files: tuple[str, ...] = field(default=())


def new_file_name(dataset: str, partition: str, seq: int, index: int) -> str:
    """A state file's path relative to the state folder: never reused (a random part), so a
    file once written never changes and any copy of it (a mirror) stays valid."""
    folder = f"{dataset}/{PARTITION}={partition}" if partition else dataset
    return f"{folder}/{seq:012d}-{secrets.token_hex(4)}-{index}.parquet"


def read_manifest(folder: Path) -> CurrentState | None:
    """The state committed in a local state folder, or None (none yet, or unreadable)."""
    try:
        return CurrentState.from_json((folder / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def usable(state: CurrentState | None, log_batches: Iterable[int]) -> CurrentState | None:
    """``state`` if every batch it folded is still in the log (a withdrawn batch makes it
    stale: then the state is rebuilt from the log)."""
    if state is None or not set(state.batches) <= set(log_batches):
        return None
    return state


def commit_in_folder(folder: Path, update: StateUpdate) -> None:
    """Commit ``update`` into a local state folder: its new files renamed into place, then the
    manifest replaced atomically (the commit), then every file no manifest names deleted
    (the previous version's, and any a killed run left). Idempotent."""
    for name in update.new_files:
        src, dst = update.outbox / name, folder / name
        if src.exists():  # else: moved before a kill
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    crash_point("state:before-manifest")
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(update.state.to_json(), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    collect_garbage(folder, update.state)


def collect_garbage(folder: Path, state: CurrentState) -> None:
    """Delete the Parquet files of a local state folder that ``state`` does not name, and
    partition folders left empty (derived data: the log can rebuild any of it)."""
    keep = state.all_files()
    for path in sorted(folder.rglob("*.parquet"), reverse=True):
        rel = path.relative_to(folder).as_posix()
        if rel not in keep:
            path.unlink(missing_ok=True)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()


def dataset_parts(
    before: Mapping[str, Part], replaced: Iterable[str], written: Mapping[str, Part]
) -> dict[str, Part]:
    """A dataset's partitions after a fold: ``before`` without the ``replaced`` partitions,
    plus the ``written`` ones (a replaced partition left empty is gone)."""
    gone = set(replaced)
    return {**{k: p for k, p in before.items() if k not in gone}, **written}


def withdraw_in_folder(folder: Path, seq: int) -> None:
    """Withdraw what batch ``seq`` gave a local state folder: a run's uncommitted files, and
    the whole state when a committed version folded ``seq`` (derived data: the next run
    rebuilds it from the log, so no reader sees a state holding a withdrawn batch)."""
    shutil.rmtree(folder / INCOMING, ignore_errors=True)
    state = read_manifest(folder)
    if state is not None and seq in state.batches:
        (folder / MANIFEST).unlink()  # first: a kill halfway leaves no manifest to trust
        shutil.rmtree(folder, ignore_errors=True)


def mirrored_names(names: Iterable[str], state: CurrentState | None) -> set[str]:
    """Of a curated store's ``names`` (relative to its root), those a transform reads: the
    state's files and the log batches it lacks, or, without a usable state, every batch."""
    if state is None:
        return {n for n in names if not n.startswith(f"{STATE_DIR}/")}
    folded = {batch_file(ds, seq) for ds in DATASET_NAMES for seq in state.batches}
    files = {f"{STATE_DIR}/{n}" for n in state.all_files()}
    return {n for n in names if n in files or not (n.startswith(f"{STATE_DIR}/") or n in folded)}
