"""The rejects store (pipeline/rejects.py) against its floor: DuckDB reading the same
rejects CSV in place.

    PYTHONPATH=src nice -n 5 .venv/bin/python bench/rejects_query.py --rejects 1000000 --repeat 3

Builds a memory backend with ``--executions`` finished executions, each holding a rejects CSV
of ``--rejects / --executions`` rows (in the shape validation writes), then times, per
repeat: ``rejects summary`` (Rejects.summary), the whole listing as CSV (Rejects.write) and
a filtered listing (``--reason negative --limit 5``), and the floor: one DuckDB query
counting the same CSV files by reason straight from disk. Prints medians and the ratio of
each to the floor measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from ecompipe.pipeline.rejects import Rejects, RejectsQuery
from ecompipe.stores.memory import MemoryExecutionLog, MemoryObjectStore, MemoryState

#: The original text of each synthetic reject (a quoted value with a comma, as real ones have).
TEXT = "'1,2,3,\"x, y\",4,Returned,2025-07-26 20:31:57 UTC,,,,-'"
COLUMNS = (
    "{'file': 'VARCHAR', 'line': 'BIGINT', 'column': 'VARCHAR', 'reason': 'VARCHAR', "
    "'text': 'VARCHAR'}"
)
REASONS = "CASE i % 3 WHEN 0 THEN 'bad_int' WHEN 1 THEN 'negative' ELSE 'missing_value' END"


class _Null:
    """A binary sink (the listing's bytes are counted, not kept)."""

    size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def build(folder: Path, executions: int, rows: int) -> tuple[Rejects, list[Path]]:
    """A memory backend whose executions each put a rejects CSV of ``rows`` rows."""
    from ecompipe.config import load_settings

    state = MemoryState()
    store, log = (
        MemoryObjectStore(state, load_settings(), folder / "work"),
        MemoryExecutionLog(state),
    )
    paths = []
    for n in range(executions):
        eid = f"exec-bench-{n:04d}"
        log.create(eid, None)
        path = folder / f"{eid}.csv"
        duckdb.sql(
            f"COPY (SELECT 'order_items/items_{n}.csv' AS file, i AS line, 'sale_price' AS "
            f'"column", {REASONS} AS reason, {TEXT} || i AS text'
            f" FROM range(2, {rows + 2}) t(i)) TO '{path}' (FORMAT csv, HEADER true)"
        )
        store.put_report(eid, "rejects.csv", path)
        validation = {
            "rejected_rows": rows,
            "files_rejected": 0,
            "files": [
                {
                    "key": f"order_items/items_{n}.csv",
                    "dataset": "order_items",
                    "accepted": True,
                    "reason": None,
                    "detail": None,
                }
            ],
        }
        log.save_summary(eid, {"validation": validation})
        log.finish(eid, "SUCCEEDED", {})
        paths.append(path)
    return Rejects(store, log), paths


def timed(work: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` runs of ``work``."""
    work()  # warm: the first call pays for loading DuckDB's CSV reader and the page cache
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rejects", type=int, default=1_000_000)
    parser.add_argument("--executions", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rejects-") as tmp:
        rejects, paths = build(Path(tmp), args.executions, args.rejects // args.executions)
        listed = ", ".join(f"'{p}'" for p in paths)

        def floor() -> object:
            return duckdb.sql(
                f"SELECT reason, count(*) FROM read_csv([{listed}], header = true, "
                f"columns = {COLUMNS}) GROUP BY 1"
            ).fetchall()

        results = {
            "floor: DuckDB counts the CSVs in place": timed(floor, args.repeat),
            "rejects summary": timed(lambda: rejects.summary(RejectsQuery()), args.repeat),
            "rejects --csv --limit 0 (all rows)": timed(
                lambda: rejects.write(RejectsQuery(limit=0), "csv", _Null()), args.repeat
            ),
            "rejects --reason negative --limit 5": timed(
                lambda: rejects.rows(RejectsQuery(reason="negative", limit=5)), args.repeat
            ),
        }
    base = next(iter(results.values()))
    print(f"{args.rejects:,} rejects in {args.executions} executions, median of {args.repeat}")
    for name, seconds in results.items():
        print(f"  {name:<42} {seconds:7.2f} s  {seconds / base:5.1f}x floor")


if __name__ == "__main__":
    main()
