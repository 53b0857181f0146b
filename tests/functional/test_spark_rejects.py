"""The Spark engine's rejected rows never pass through the driver: the executors write them as
Parquet into the engine's scratch folder, and one set-based routine (engines/records.py, DuckDB
over local files) maps them to lines and writes rejects.csv. The driver only fetches results
that grow with the number of files, never with the number of rows.

The files here are written by one rule (``_line``), so every rejected row's line, reason and
text is known without the code under test: row ``i`` is on line ``i + 1``; rows with
``i % 10 == 3`` have a bad price, rows with ``i % 10 == 7`` one field too many (20 % bad).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ecompipe, ecompipe_proc
from tests.spark_cluster import SparkCluster
from tests.support import clean_batch, write_batch

pytestmark = [
    pytest.mark.spark,
    pytest.mark.local,
    pytest.mark.slow,
    pytest.mark.xdist_group("spark"),
]

HEADER = "id,order_id,product_id,sale_price"
ITEMS = "order_items/items.csv"


def _line(i: int) -> tuple[str, str | None, str | None]:
    """Row ``i``'s text, and the column and reason it is rejected for (None: good)."""
    if i % 10 == 3:
        return f"{i},{i},1,abc", "sale_price", "bad_decimal"
    if i % 10 == 7:
        return f"{i},{i},1,2.50,x", "", "bad_row_shape"
    return f"{i},{i},1,{i % 1000}.50", None, None


def _write_items(path: Path, rows: int) -> None:
    """The items file of ``rows`` rows by :func:`_line`'s rule, written by DuckDB (seconds for
    a million rows: a Python loop would take longer than the check)."""
    import duckdb

    text = (
        "CASE i % 10 WHEN 3 THEN i || ',' || i || ',1,abc' "
        "WHEN 7 THEN i || ',' || i || ',1,2.50,x' "
        "ELSE i || ',' || i || ',1,' || (i % 1000) || '.50' END"
    )
    lines = (
        f"SELECT 0 AS i, '{HEADER}' AS line UNION ALL "
        f"SELECT i, {text} FROM range(1, {rows + 1}) AS t(i)"
    )
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        # One text column, tab-separated and unquoted: each value is written as it is.
        con.execute(
            f"COPY (SELECT line FROM ({lines}) AS l ORDER BY i) TO '{path}' "
            "(FORMAT csv, HEADER false, QUOTE '', DELIMITER '\t')"
        )
    finally:
        con.close()


def _landed(workspace: Path, rows: int) -> None:
    """A batch: the items file, and small clean orders and products files."""
    small = clean_batch({}, n=50)
    write_batch(workspace, {"orders": small["orders"], "products": small["products"]})
    _write_items(workspace / "landing" / ITEMS, rows)


def _assert_rejects(workspace: Path, rows: int) -> dict[str, Any]:
    """The run's report and rejects.csv are what the rule says; returns the items report."""
    (folder,) = (p for p in (workspace / "quarantine").iterdir() if p.is_dir())
    report = json.loads((folder / "validation_report.json").read_text(encoding="utf-8"))
    (items,) = (f for f in report["files"] if f["key"] == ITEMS)
    bad = [i for i in range(1, rows + 1) if _line(i)[2] is not None]
    assert (items["accepted"], items["rows"], items["bad_rows"]) == (True, rows, len(bad))
    assert items["rejected_rows"] == len(bad)
    with (folder / "rejects.csv").open(newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert len(got) == len(bad)
    for row, i in zip(got, bad, strict=True):  # rejects.csv is sorted by file and line
        text, column, reason = _line(i)
        assert (row["file"], row["line"], row["column"], row["reason"], row["text"]) == (
            ITEMS,
            str(i + 1),
            column,
            reason,
            text,
        )
    return dict(items)


@pytest.fixture
def local_session() -> Iterator[None]:
    """The process's SparkSession in local mode, stopped after."""
    from ecompipe.config import Settings
    from ecompipe.engines.spark import spark_session, stop_session

    spark_session(Settings(spark_master="local[2]"))
    yield
    stop_session()


def test_no_collect_grows_with_the_rows(
    workspace: Path, local_session: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file with 2,000 rejected rows: every result the driver fetches has a few rows per
    file at most (verdict counts, duplicates per file), none is streamed to it, and the
    rejects reach rejects.csv all the same."""
    # The class a local session's DataFrames are (pyspark.sql.DataFrame is its parent).
    from pyspark.sql.classic.dataframe import DataFrame  # noqa: TID251 (lazy: in the test)

    rows = 10_000
    _landed(workspace, rows)
    fetched: list[int] = []
    collect = DataFrame.collect

    def counted(self: DataFrame) -> Any:
        got = collect(self)
        fetched.append(len(got))
        return got

    def refused(self: DataFrame, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("rows streamed to the driver")

    monkeypatch.setattr(DataFrame, "collect", counted)  # take, head, first: collect too
    for streamed in ("toLocalIterator", "tail", "toArrow", "toPandas"):
        monkeypatch.setattr(DataFrame, streamed, refused)
    result = ecompipe(
        "run", "--engine", "spark", workspace=workspace, ECOMPIPE_MAX_ERROR_RATE="0.25"
    )
    assert result.exit_code == 0, result.output
    _assert_rejects(workspace, rows)
    # Validation fetches figures per file and kind of record (rows, rows of the wrong shape,
    # blank records: one file per dataset here), the KPI step its metric rows (one order
    # date, one category here): nothing near the 2,000 rejects.
    assert fetched and max(fetched) <= 3, fetched


def test_a_million_rows_with_a_fifth_rejected_under_a_1g_driver(
    workspace: Path, spark_cluster: SparkCluster
) -> None:
    """`ecompipe run --engine spark` on the standalone cluster with a 1 GB driver heap, on
    a 1M-row items file with 200,000 bad rows (price or shape) read in several partitions
    across both executors: it succeeds, and every reject names the right line, column,
    reason and text."""
    rows = 1_000_000
    _landed(workspace, rows)
    env = {
        **spark_cluster.env,
        "SPARK_DRIVER_MEMORY": "1g",
        "ECOMPIPE_MAX_ERROR_RATE": "0.25",
        # 22 MB of CSV in 4 MB splits: rows of one file on both executors.
        "ECOMPIPE_SPARK_CONF": "spark.sql.files.maxPartitionBytes=4m",
    }
    done = ecompipe_proc("run", "--engine", "spark", workspace=workspace, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_rejects(workspace, rows)
