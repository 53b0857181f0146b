"""Benchmark: ecompipe on DuckDB and on Spark, against the engine floor and a plain PySpark job.

    python bench/engines.py [--items 1M,10M]

For each size (default both), on the same generated TheLook-shaped files (cached under
bench/out/data_<size>, shared with bench/pipeline_vs_floor.py), one after the other:

1. the bare DuckDB script (bench/floor_duckdb.py): reads the three CSVs, computes both KPI
   tables, nothing else -- the engine floor every ratio is taken against;
2. ``ecompipe run`` on the DuckDB engine, in a fresh workspace (hard links, no copy);
3. ``ecompipe run --engine spark`` (Spark local, ``SPARK_MASTER`` or local[*]);
4. a plain PySpark job written the way the original system's transformation does it:
   ``inferSchema`` CSV reads, joins, ``groupBy`` with ``countDistinct``, money as float --
   once with Spark's default 1g driver heap, and once ("plain-mem") with the heap ecompipe
   gives itself in local mode, so the memory default is not what wins.

Each is a subprocess; wall time and the peak RSS of its whole process tree (the JVM included)
come from bench/measure.py. Prints a markdown table per size and writes bench/out/engines.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from measure import Measurement, measure, table
from pipeline_vs_floor import OUT, dataset, fresh_workspace

from ecompipe.engines.spark import local_driver_memory

HERE = Path(__file__).resolve().parent


def plain_pyspark(landing: str) -> None:
    """The original system's transformation, done its way (the baseline to beat)."""
    from pyspark.sql import SparkSession  # noqa: TID251 (a benchmark job, not library code)
    from pyspark.sql import functions as F  # noqa: TID251

    spark = (
        SparkSession.builder.master(os.environ.get("SPARK_MASTER", "local[*]"))
        .appName("plain-pyspark-bench")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")

    def read(dataset: str) -> object:
        return spark.read.csv(f"{landing}/{dataset}/*.csv", header=True, inferSchema=True)

    orders = read("orders").select(
        "order_id",
        "user_id",
        F.to_date(F.to_timestamp("created_at")).alias("order_date"),
        (F.lower("status") == "returned").cast("int").alias("is_returned"),
    )
    items = read("order_items").select(
        F.col("id").alias("item_id"),
        "order_id",
        "product_id",
        F.col("sale_price").cast("float").alias("sale_price"),
    )
    products = read("products").select(F.col("id").alias("product_id"), "category")
    joined = items.join(orders, "order_id").join(products, "product_id", "left")
    order_metrics = joined.groupBy("order_date").agg(
        F.countDistinct("order_id").alias("total_orders"),
        F.sum("sale_price").alias("total_revenue"),
        F.count("item_id").alias("total_items_sold"),
        F.countDistinct(F.when(F.col("is_returned") == 1, F.col("order_id"))).alias("returned"),
        F.countDistinct("user_id").alias("unique_customers"),
    )
    category_metrics = (
        joined.where(F.col("category").isNotNull())
        .groupBy("category", "order_date")
        .agg(
            F.sum("sale_price").alias("daily_revenue"),
            F.countDistinct("order_id").alias("orders"),
            F.countDistinct(F.when(F.col("is_returned") == 1, F.col("order_id"))).alias("ret"),
        )
        .withColumn("avg_order_value", F.col("daily_revenue") / F.col("orders"))
        .withColumn("avg_return_rate", F.col("ret") / F.col("orders"))
    )
    n_orders = len(order_metrics.collect())
    n_cats = len(category_metrics.collect())
    print(f"order_metrics rows: {n_orders}, category_metrics rows: {n_cats}")
    spark.stop()


RUNS = ("floor", "duckdb", "spark", "plain", "plain-mem")


def run_size(label: str, runs: tuple[str, ...] = RUNS) -> str:
    """Measure the selected runs (the floor always) on one size; return its markdown table."""
    landing = dataset(label)
    size = sum(p.stat().st_size for p in landing.rglob("*.csv")) / 2**20
    exe = str(Path(sys.executable).with_name("ecompipe"))
    floor = measure(
        "bare DuckDB script (floor)",
        [sys.executable, str(HERE / "floor_duckdb.py"), str(landing), "2GB"],
        log=OUT / f"engines_floor_{label}.log",
    )
    measured: dict[str, Measurement] = {"floor": floor}
    for engine in ("duckdb", "spark"):
        if engine in runs:
            ws = fresh_workspace(landing, f"{label}_{engine}")
            measured[engine] = measure(
                f"ecompipe run --engine {engine} (whole pipeline)",
                [exe, "run", "--engine", engine, "--workspace", str(ws), "--quiet"],
                log=OUT / f"engines_{engine}_{label}.log",
            )
    plain_argv = [sys.executable, __file__, "--plain-pyspark", str(landing)]
    if "plain" in runs:
        measured["plain"] = measure(
            "plain PySpark job (the original's way, Spark's default 1g driver)",
            plain_argv,
            env={k: v for k, v in os.environ.items() if k != "SPARK_DRIVER_MEMORY"},
            log=OUT / f"engines_plain_{label}.log",
        )
    if "plain-mem" in runs:
        # The same job given the driver heap ecompipe gives itself in local mode (a fair
        # second baseline: the memory default is one of ecompipe's choices, not Spark's).
        memory = os.environ.get("SPARK_DRIVER_MEMORY") or local_driver_memory()
        measured["plain-mem"] = measure(
            f"plain PySpark job, driver memory {memory} (as ecompipe's)",
            plain_argv,
            env={**os.environ, "SPARK_DRIVER_MEMORY": memory},
            log=OUT / f"engines_plain_mem_{label}.log",
        )
    cores = os.cpu_count()
    text = table(
        list(measured.values()), floor, f"{label} order items ({size:,.0f} MiB, {cores} cores)"
    )
    for baseline in ("plain", "plain-mem"):
        for engine in ("duckdb", "spark"):
            if baseline in measured and engine in measured:
                ratio = measured[baseline].seconds / measured[engine].seconds
                text += (
                    f"\n\nwall({measured[baseline].label}) / wall(ecompipe {engine}) = "
                    f"{ratio:.2f} (above 1: ecompipe is faster)"
                )
    return text


def main() -> None:
    """Run the comparison for each requested size and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", default="1M,10M", help="sizes: 1M, 10M (comma-separated)")
    parser.add_argument(
        "--runs",
        default=",".join(RUNS),
        help="runs besides the floor: duckdb,spark,plain,plain-mem",
    )
    parser.add_argument("--plain-pyspark", metavar="LANDING", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_pyspark:
        plain_pyspark(args.plain_pyspark)
        return
    OUT.mkdir(exist_ok=True)
    report = []
    for label in args.items.split(","):
        text = run_size(label, tuple(args.runs.split(",")))
        print(text, flush=True)
        report.append(text)
    (OUT / f"engines_{'_'.join(args.items.split(','))}.md").write_text("\n\n".join(report) + "\n")


if __name__ == "__main__":
    main()
