"""What recording KPI revisions adds to a metrics write (SQLite, in-process).

A recompute-sized write: DAYS dates with CATEGORIES category rows each, replaced over rows
already there. Three writes of the same rows, alternated and repeated, medians printed:
``plain`` (no revision_of: the floor, the write as before revisions existed), ``same``
(revision_of, nothing changed: the diff reads and compares, records nothing) and ``changed``
(revision_of, every row's values changed: every row recorded). Ratios are over the floor
measured in the same run.

    PYTHONPATH=src .venv/bin/python bench/revisions.py [--days 2557] [--categories 25]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from ecompipe.kpis import CategoryMetrics, OrderMetrics
from ecompipe.stores.local.sqlite import SQLiteMetricsStore, create_schema


def rows(
    days: list[date], n: int, categories: int
) -> tuple[list[OrderMetrics], list[CategoryMetrics]]:
    """One order row a day and ``categories`` category rows, their values set by ``n``."""
    orders = [OrderMetrics(d, n, Decimal(n).scaleb(-2), n, Decimal("0.2500"), n) for d in days]
    cats = [
        CategoryMetrics(f"cat{c:02d}", d, Decimal(n).scaleb(-2), Decimal("0.75"), Decimal("0.0000"))
        for d in days
        for c in range(categories)
    ]
    return orders, cats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=2557)
    parser.add_argument("--categories", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    days = [date(2018, 1, 1) + timedelta(days=i) for i in range(args.days)]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        create_schema(db, "order_metrics_table", "category_metrics_table")
        store = SQLiteMetricsStore(db, "order_metrics_table", "category_metrics_table")
        store.replace_dates(days, *rows(days, 100, args.categories))
        times: dict[str, list[float]] = {"plain": [], "same": [], "changed": []}
        n = 100
        for i in range(args.repeat):
            for kind in times:
                if kind == "changed":
                    n += 1
                written = rows(days, n, args.categories)
                revision_of = None if kind == "plain" else f"{kind}-{i}"
                started = time.perf_counter()
                store.replace_dates(days, *written, revision_of=revision_of)
                times[kind].append(time.perf_counter() - started)
        store.close()
    rows_written = args.days * (1 + args.categories)
    floor = statistics.median(times["plain"])
    print(f"{rows_written:,} rows over {args.days:,} dates, median of {args.repeat}:")
    for kind, seconds in times.items():
        median = statistics.median(seconds)
        print(f"  {kind:<8} {median:7.3f} s  x{median / floor:.2f} of plain")


if __name__ == "__main__":
    main()
