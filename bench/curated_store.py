"""Curated store: the Parquet log (one file per batch, latest seq wins) vs a DuckDB file
(tables with primary keys, merged with INSERT OR REPLACE), same KPI SQL (kpis.py) on both.

    .venv/bin/python bench/curated_store.py --items 1000000 --batches 5 --batches 50

For each batch count: rows split by key into that many batches (items often before their
orders), then per batch the seconds to (parquet) publish + ``DuckDBEngine.transform``, and
(duckdb) merge + affected dates + the same KPI queries. Prints one table for both stores.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from ecompipe import kpis
from ecompipe.config import Settings
from ecompipe.engines.base import CURATED_SCHEMA, CuratedLog, curated_path
from ecompipe.engines.duckdb import DIALECT, DuckDBEngine

SHORT = {"orders": "orders", "order_items": "items", "products": "products"}
KEYS = {"orders": "order_id", "order_items": "id", "products": "id"}


def source_sql(dataset: str, n_items: int) -> str:
    """Synthetic typed rows (about 2.5 items an order, 30k products)."""
    n_orders, n_products = n_items * 2 // 5, 30_000
    if dataset == "orders":
        return (
            f"SELECT i AS order_id, i % {max(1, n_orders // 2)} + 1 AS user_id, "
            "TIMESTAMP '2023-01-01' + to_minutes((i * 7919) % (730 * 1440)) AS created_at, "
            "CASE WHEN i % 10 = 0 THEN 'returned' ELSE 'complete' END AS status "
            f"FROM range(1, {n_orders + 1}) t(i)"
        )
    if dataset == "order_items":
        return (
            f"SELECT j AS id, (j * 7919) % {n_orders} + 1 AS order_id, "
            f"j % {n_products} + 1 AS product_id, "
            "CAST((j % 10000) / 100 AS DECIMAL(18, 6)) AS sale_price FROM range(1, "
            f"{n_items + 1}) t(j)"
        )
    return (
        "SELECT k AS id, 'SKU' || k AS sku, CAST(k % 50 AS DECIMAL(18, 6)) AS cost, "
        "'Cat' || (k % 26) AS category, CAST(k % 90 AS DECIMAL(18, 6)) AS retail_price "
        f"FROM range(1, {n_products + 1}) t(k)"
    )


def make_batches(root: Path, n_items: int, n_batches: int) -> list[dict[str, Path]]:
    """Write each batch's rows of each dataset as one Parquet file."""
    con = duckdb.connect()
    out: list[dict[str, Path]] = []
    for b in range(n_batches):
        files = {}
        for dataset in CURATED_SCHEMA:
            path = root / "batches" / str(b) / f"{dataset}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"COPY (SELECT * FROM ({source_sql(dataset, n_items)}) s "
                f"WHERE {KEYS[dataset]} % {n_batches} = {b}) TO '{path}' "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            files[dataset] = path
        out.append(files)
    con.close()
    return out


def run_parquet(root: Path, batches: list[dict[str, Path]]) -> list[float]:
    """Seconds per batch: publish (rename) + the engine's transform over the log."""
    engine = DuckDBEngine(Settings(), temp_dir=str(root))
    curated, times = root / "curated", []
    for seq, files in enumerate(batches, start=1):
        started = time.perf_counter()
        for dataset, path in files.items():
            target = curated_path(curated, dataset, seq)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        engine.transform(CuratedLog.in_folder(curated), seq)
        times.append(time.perf_counter() - started)
    engine.close()
    return times


def run_duckdb_file(root: Path, batches: list[dict[str, Path]]) -> list[float]:
    """Seconds per batch: affected dates, INSERT OR REPLACE merge, the same KPI queries."""
    con = duckdb.connect(str(root / "curated.duckdb"))
    con.execute("SET TimeZone = 'UTC'")
    for dataset, columns in CURATED_SCHEMA.items():
        cols = ", ".join(f"{c} {t}" for c, t in columns)
        con.execute(f"CREATE TABLE {SHORT[dataset]} ({cols}, PRIMARY KEY ({KEYS[dataset]}))")
    times = []
    for n, files in enumerate(batches):
        started = time.perf_counter()
        for dataset, path in files.items():
            s = SHORT[dataset]
            con.execute(f"CREATE OR REPLACE TEMP TABLE b_{s} AS SELECT * FROM '{path}'")
            con.execute(f"CREATE OR REPLACE TEMP VIEW prev_{s} AS SELECT * FROM {s}")
        con.execute(
            "CREATE OR REPLACE TEMP VIEW all_orders AS SELECT * FROM orders "
            "UNION ALL SELECT * FROM b_orders"
        )
        con.execute(
            "CREATE OR REPLACE TEMP VIEW cur_items AS SELECT * FROM items "
            "UNION ALL SELECT * FROM b_items"
        )
        con.execute("CREATE OR REPLACE TEMP VIEW cur_orders AS SELECT * FROM all_orders")
        affected = kpis.all_dates_sql() if n == 0 else kpis.affected_dates_sql()
        con.execute(f"CREATE OR REPLACE TEMP TABLE affected_dates AS {affected}")
        for s in SHORT.values():
            con.execute(f"INSERT OR REPLACE INTO {s} SELECT * FROM b_{s}")
            con.execute(f"CREATE OR REPLACE TEMP VIEW cur_{s} AS SELECT * FROM {s}")
        for name, sql in kpis.kpi_relations():
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        con.execute(kpis.order_metrics_sql(DIALECT)).fetchall()
        con.execute(kpis.category_metrics_sql(DIALECT)).fetchall()
        con.execute(kpis.waiting_sql()).fetchall()
        con.execute("CHECKPOINT")
        times.append(time.perf_counter() - started)
    con.close()
    return times


def main() -> None:
    """Run both stores for each batch count and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, action="append")
    args = parser.parse_args()
    print(f"{'batches':>8} {'store':<12} {'first s':>8} {'last s':>8} {'total s':>8}")
    for n_batches in args.batches or [5]:
        root = Path(tempfile.mkdtemp(prefix="ecompipe-bench-curated-"))
        try:
            batches = make_batches(root, args.items, n_batches)
            for name, fn in (("parquet-log", run_parquet), ("duckdb-file", run_duckdb_file)):
                t = fn(root, batches)
                print(f"{n_batches:>8} {name:<12} {t[0]:>8.2f} {t[-1]:>8.2f} {sum(t):>8.2f}")
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
