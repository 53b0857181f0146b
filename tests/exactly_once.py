"""Helpers for the exactly-once tests: split sample data into batches, land them, check
that every landed file settled exactly once, and compute the reference KPIs.

The reference side uses tests/reference.py only; ecompipe is used to generate data (its
sample generator) and to run, never to compute what is expected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import reference
from tests.functional.test_pipeline_vs_reference import expected_json

DATASETS = ("orders", "order_items", "products")
#: Report files an execution writes next to quarantined data (not landed objects).
REPORT_NAMES = {"validation_report.json", "rejects.csv"}


@dataclass
class Table:
    """One dataset's CSV: its header line and its data records, as text."""

    header: list[str]
    rows: list[list[str]]


def sample_tables(folder: Path, n_orders: int, seed: int, dirty: bool = False) -> dict[str, Table]:
    """Generate a sample with ecompipe's generator and read it back as records."""
    from ecompipe.sample import generate_sample

    summary = generate_sample(folder, n_orders, seed=seed, dirty=dirty)
    tables: dict[str, Table] = {}
    for dataset in DATASETS:
        with summary.files[dataset].open(newline="", encoding="utf-8-sig") as handle:
            records = list(csv.reader(handle))
        tables[dataset] = Table(records[0], records[1:])
    return tables


def csv_text(header: list[str], rows: list[list[str]]) -> str:
    """A CSV file's text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """Write a CSV atomically (temp name, then rename), as a careful uploader would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(csv_text(header, rows), encoding="utf-8")
    os.replace(tmp, path)
    return path


def chunked(tables: dict[str, Table], n: int) -> list[dict[str, Table]]:
    """Split every dataset's rows into ``n`` consecutive chunks (disjoint keys)."""
    chunks: list[dict[str, Table]] = [{} for _ in range(n)]
    for dataset, table in tables.items():
        size = -(-len(table.rows) // n)
        for i in range(n):
            chunks[i][dataset] = Table(table.header, table.rows[i * size : (i + 1) * size])
    return chunks


@dataclass
class Landed:
    """Everything landed so far: batches of paths (for the reference) and (key, sha) pairs."""

    batches: list[dict[str, list[Path]]] = field(default_factory=list)
    objects: Counter[tuple[str, str]] = field(default_factory=Counter)

    def land(self, workspace: Path, batch: dict[str, Table], name: str, keep: Path) -> None:
        """Land one CSV per dataset of ``batch`` as ``<dataset>/<name>.csv``.

        A copy is kept under ``keep`` for the reference (landing files move away).
        """
        paths: dict[str, list[Path]] = {}
        for dataset, table in batch.items():
            copy = write_csv(keep / f"{len(self.batches)}" / dataset / f"{name}.csv", *_t(table))
            target = workspace / "landing" / dataset / f"{name}.csv"
            write_csv(target, *_t(table))
            paths[dataset] = [copy]
            self.objects[(f"{dataset}/{name}.csv", sha(copy))] += 1
        self.batches.append(paths)

    def landed_now(self, workspace: Path, keep: Path) -> None:
        """Record every CSV in landing now (``ecompipe generate`` wrote them) as one batch;
        copies are kept under ``keep`` for the reference (landing files move away)."""
        paths: dict[str, list[Path]] = {}
        for dataset in DATASETS:
            for path in sorted((workspace / "landing" / dataset).glob("*.csv")):
                copy = keep / dataset / path.name
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, copy)
                paths.setdefault(dataset, []).append(copy)
                self.objects[(f"{dataset}/{path.name}", sha(copy))] += 1
        self.batches.append(paths)

    def expected(self) -> dict[str, Any]:
        """Reference KPIs over the union of the batches, merged in landing order."""
        state = None
        for batch in self.batches:
            state = reference.merge(state, reference.validate_batch(batch))
        assert state is not None
        orders, categories = reference.kpis(state.orders, state.items, state.products)
        return dict(expected_json(orders, categories))


def _t(table: Table) -> tuple[list[str], list[list[str]]]:
    return table.header, table.rows


def sha(path: Path) -> str:
    """SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def settled(workspace: Path) -> Counter[tuple[str, str]]:
    """(key, sha) of every data object in archive/ and quarantine/ (reports left out)."""
    found: Counter[tuple[str, str]] = Counter()
    for area in ("archive", "quarantine"):
        for path in (workspace / area).rglob("*"):
            if path.is_file() and path.name not in REPORT_NAMES:
                key = "/".join(path.relative_to(workspace / area).parts[1:])
                found[(key, sha(path))] += 1
    return found


def files_under(folder: Path) -> list[Path]:
    """Regular files (and symlinks) anywhere under ``folder``."""
    return [p for p in folder.rglob("*") if p.is_file() or p.is_symlink()]


def assert_settled(workspace: Path, landed: Landed) -> None:
    """Every landed object is in archive/ or quarantine/ exactly once; nothing half-moved."""
    assert settled(workspace) == landed.objects
    assert files_under(workspace / "inflight") == []
    assert files_under(workspace / "landing") == []
    assert files_under(workspace / "staging") == []


def lock_holders(workspace: Path) -> list[tuple[Any, ...]]:
    """Rows of the lock table (every lock id)."""
    con = sqlite3.connect(workspace / "ecompipe.db")
    try:
        return con.execute("SELECT lock_id, holder, pid FROM lock_holders").fetchall()
    finally:
        con.close()


def unfinished(workspace: Path) -> list[str]:
    """Ids of RUNNING executions."""
    con = sqlite3.connect(workspace / "ecompipe.db")
    try:
        rows = con.execute("SELECT execution_id FROM executions WHERE status = 'RUNNING'")
        return [r[0] for r in rows.fetchall()]
    finally:
        con.close()


def events(workspace: Path, event: str) -> list[tuple[str, str, str | None]]:
    """(execution_id, state, detail JSON) of every execution event named ``event``."""
    con = sqlite3.connect(workspace / "ecompipe.db")
    try:
        rows = con.execute(
            "SELECT execution_id, state, detail FROM execution_events WHERE event = ? ORDER BY id",
            (event,),
        )
        return list(rows.fetchall())
    finally:
        con.close()


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end before a start at ties)."""
    points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    depth = best = 0
    for _, step in points:
        depth += step
        best = max(best, depth)
    return best
