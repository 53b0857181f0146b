"""Resources are not data: each engine's classifier turns the machine running short into a
ResourceError naming the setting to change, and lets every other error through.

DuckDB's errors are real ones, from real connections (an out-of-memory, a spill folder with
no room left, a write to /dev/full). Spark's are built without a JVM from the real Py4J and
Python classes, with messages captured from Spark 4.3 on OpenJDK 17 (see each constant).
"""

from __future__ import annotations

import errno
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ecompipe.config import Settings
from ecompipe.contracts import DATASET_BY_NAME
from ecompipe.engines import header
from ecompipe.engines.base import (
    CuratedLog,
    InputFile,
    curated_path,
    resource_errno,
    staged_path,
)
from ecompipe.engines.duckdb import DuckDBEngine
from ecompipe.engines.duckdb import resource_error as duckdb_resource_error
from ecompipe.engines.spark import resource_error as spark_resource_error
from ecompipe.errors import ResourceError
from ecompipe.sample import generate_sample
from ecompipe.validation import FileReport

pytestmark = [pytest.mark.fast]

SPILL = Path("/ws/tmp")


def _raised(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Error:
    with pytest.raises(duckdb.Error) as caught:
        con.execute(sql).fetchall()
    return caught.value


# ----------------------------------------------------------------------------- shared rule


def test_resource_errno_reads_the_operating_systems_words() -> None:
    assert resource_errno('Could not write file "/x": No space left on device') == errno.ENOSPC
    assert resource_errno("Cannot open file: Too many open files") == errno.EMFILE
    # ENFILE's words hold EMFILE's: the longer one wins.
    assert resource_errno("Too many open files in system") == errno.ENFILE
    assert resource_errno("Cannot allocate memory") == errno.ENOMEM
    assert resource_errno("Permission denied") is None
    assert resource_errno("cannot read as CSV: invalid unicode") is None


# ----------------------------------------------------------------------------- DuckDB


@pytest.mark.duckdb
def test_duckdb_out_of_memory_names_the_memory_limit() -> None:
    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = '10MB'")
    con.execute("SET threads = 1")
    con.execute("SET temp_directory = ''")  # nowhere to spill: the aggregate cannot fit
    exc = _raised(
        con, "SELECT string_agg(i::VARCHAR, ',') FROM range(3000000) t(i) GROUP BY i % 300000"
    )
    assert isinstance(exc, duckdb.OutOfMemoryException)
    settings = Settings(duckdb_memory_limit="10MB", duckdb_threads=1)
    found = duckdb_resource_error(exc, "reading orders/a.csv", settings, SPILL)
    assert isinstance(found, ResourceError)
    message = str(found)
    assert message.startswith("reading orders/a.csv: DuckDB ran out of memory")
    assert "ECOMPIPE_DUCKDB_MEMORY_LIMIT (now 10MB)" in message
    assert "Out of Memory Error" in message and "\n" not in message
    # With more than one thread, fewer threads is the other way out.
    more = duckdb_resource_error(exc, "x", Settings(duckdb_threads=0), SPILL)
    assert more is not None and "ECOMPIPE_DUCKDB_THREADS (now one per core)" in str(more)


@pytest.mark.duckdb
def test_duckdb_spill_folder_without_room_names_the_folder(tmp_path: Path) -> None:
    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = '20MB'")
    con.execute("SET threads = 1")
    con.execute(f"SET temp_directory = '{tmp_path}'")
    # DuckDB's default for this is the free space of the folder's disk: a full disk.
    con.execute("SET max_temp_directory_size = '2MB'")
    # 200 MB of rows under a 20 MB limit: they must spill, and 2 MB cannot hold them.
    exc = _raised(con, "CREATE TABLE t AS SELECT i, repeat('x', 100) AS s FROM range(2000000) t(i)")
    assert isinstance(exc, duckdb.OutOfMemoryException)
    found = duckdb_resource_error(exc, "validating orders", Settings(), SPILL)
    assert found is not None
    assert "DuckDB's spill folder in /ws/tmp is full: free disk space there" in str(found)
    assert "ECOMPIPE_DUCKDB_MEMORY_LIMIT" in str(found)


@pytest.mark.duckdb
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_duckdb_full_disk_names_the_path() -> None:
    con = duckdb.connect(":memory:")
    exc = _raised(con, "COPY (SELECT i FROM range(1000000) t(i)) TO '/dev/full' (FORMAT parquet)")
    assert isinstance(exc, duckdb.IOException)  # 'Could not write file "/dev/full": No space...'
    found = duckdb_resource_error(exc, "validating orders", Settings(), SPILL)
    assert found is not None
    assert str(found).startswith("validating orders: No space left on device (/dev/full): free")


@pytest.mark.duckdb
def test_duckdb_too_many_open_files() -> None:
    # Captured from DuckDB 1.5 with every file descriptor of the process in use.
    exc = duckdb.IOException(
        'IO Error: Cannot open file "/ws/inflight/e/orders/a.csv": Too many open files\n\n'
        "LINE 1: SELECT * FROM read_csv('/ws/inflight/e/orders/a.csv')"
    )
    found = duckdb_resource_error(exc, "reading orders/a.csv", Settings(), SPILL)
    assert found is not None
    assert str(found) == (
        "reading orders/a.csv: Too many open files (/ws/inflight/e/orders/a.csv): "
        "raise the open-files limit (`ulimit -n`)"
    )


@pytest.mark.duckdb
def test_duckdb_errors_of_the_data_or_the_code_are_not_resources() -> None:
    con = duckdb.connect(":memory:")
    missing = _raised(con, "SELECT * FROM read_csv('/nonexistent/x.csv')")
    assert isinstance(missing, duckdb.IOException)
    cast = _raised(con, "SELECT CAST('abc' AS INTEGER)")
    syntax = _raised(con, "SELEC 1")
    for exc in (missing, cast, syntax, ValueError("Out of Memory Error")):
        assert duckdb_resource_error(exc, "x", Settings(), SPILL) is None


def _sample_files(root: Path) -> list[InputFile]:
    summary = generate_sample(root / "landing", 300, seed=3)
    return [InputFile(f"{d}/{p.name}", d, p) for d, p in summary.files.items()]


@pytest.mark.duckdb
def test_duckdb_validate_out_of_memory_gives_no_verdict(tmp_path: Path) -> None:
    """Below one CSV read buffer (DuckDB asks 30.5 MiB for it) no file can be read: before,
    each was quarantined as "cannot read as CSV: Out of Memory Error"."""
    settings = Settings(duckdb_memory_limit="16MB", duckdb_threads=1)
    engine = DuckDBEngine(settings, temp_dir=str(tmp_path / "tmp"))
    staging = tmp_path / "staging"
    try:
        with pytest.raises(ResourceError, match=r"ECOMPIPE_DUCKDB_MEMORY_LIMIT \(now 16MB\)"):
            engine.validate("e1", _sample_files(tmp_path), staging, Decimal("0.05"))
    finally:
        engine.close()
    assert list(staging.iterdir()) == []


@pytest.mark.duckdb
def test_duckdb_transform_out_of_memory_is_no_engine_error(tmp_path: Path) -> None:
    """Out of memory in the KPI SQL: a ResourceError (kept for the next run), not the
    terminal EngineError whose failure ending moves the execution's files to quarantine."""
    validator = DuckDBEngine(Settings(), temp_dir=str(tmp_path / "tmp"))
    staging = tmp_path / "staging"
    try:
        report = validator.validate("e1", _sample_files(tmp_path), staging, Decimal("0.05"))
    finally:
        validator.close()
    assert all(f.accepted for f in report.files)
    curated = tmp_path / "curated"
    for dataset in report.accepted_rows:
        target = curated_path(curated, dataset, 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(staged_path(staging, dataset), target)
    engine = DuckDBEngine(Settings(duckdb_memory_limit="1MB"), temp_dir=str(tmp_path / "tmp"))
    try:
        with pytest.raises(ResourceError, match=r"^computing KPIs: DuckDB ran out of memory"):
            engine.transform(CuratedLog.in_folder(curated), 1)
    finally:
        engine.close()


# ----------------------------------------------------------------------------- Spark

# Captured: a driver-side allocation beyond spark.driver.memory=512m (Py4J's message, then
# the JVM's stack trace as str() of the Py4JJavaError gives it).
DRIVER_OOM = (
    "An error occurred while calling None.java.lang.StringBuilder.\n",
    "java.lang.OutOfMemoryError: Java heap space\n"
    "\tat java.base/java.lang.AbstractStringBuilder.<init>(AbstractStringBuilder.java:88)\n"
    "\tat java.base/java.lang.StringBuilder.<init>(StringBuilder.java:119)",
)
# Captured: a write to /dev/full through the JVM.
JAVA_ENOSPC = (
    "An error occurred while calling o32.write.\n",
    "java.io.IOException: No space left on device\n"
    "\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)",
)
# Spark's own format (TaskEndReason's ExecutorLostFailure, checked in spark-core 4.3), as a
# job on a cluster fails when an executor is killed for its memory.
EXECUTOR_LOST = (
    "An error occurred while calling o81.collectToPython.\n",
    "org.apache.spark.SparkException: Job aborted due to stage failure: Task 3 in stage 2.0 "
    "failed 4 times, most recent failure: Lost task 3.3 in stage 2.0 (TID 17) (10.0.0.7 "
    "executor 2): ExecutorLostFailure (executor 2 exited caused by one of the running tasks) "
    "Reason: Container killed on request. Exit code is 137",
)
# Captured: an analysis error (a query the engine got wrong, not the machine).
ANALYSIS = (
    "An error occurred while calling o33.sql.\n",
    "org.apache.spark.sql.AnalysisException: [DATATYPE_MISMATCH.UNEXPECTED_STATIC_METHOD] "
    'Cannot resolve "java_method(java.nio.file.Files, createDirectory, /proc/x)"',
)


def _java_error(errmsg: str, java_text: str) -> Exception:
    """A real Py4JJavaError whose str() asks a (fake) gateway for the Java text, as PySpark's
    does over the socket."""
    protocol: Any = pytest.importorskip("py4j.protocol")

    class Gateway:
        def send_command(self, command: str) -> str:
            # What the client reads back for the JVM's toString(): success, a string.
            return protocol.SUCCESS + protocol.STRING_TYPE + protocol.escape_new_line(java_text)

    class JavaException:
        _target_id = "o1"
        _gateway_client = Gateway()

    error: Exception = protocol.Py4JJavaError(errmsg, JavaException())
    return error


LOCAL = Settings(spark_driver_memory="2g")
CLUSTER = Settings(
    spark_master="spark://10.0.0.2:7077",
    spark_driver_memory="2g",
    spark_conf="spark.executor.memory=4g",
)


@pytest.mark.spark
def test_spark_out_of_memory_names_the_memory_settings() -> None:
    exc = _java_error(*DRIVER_OOM)
    assert "java.lang.OutOfMemoryError" in str(exc)  # str() goes through Py4J's protocol
    found = spark_resource_error(exc, "computing KPIs", LOCAL, SPILL)
    assert found is not None
    assert str(found) == (
        "computing KPIs: Spark ran out of memory: raise SPARK_DRIVER_MEMORY (now 2g; in local "
        "mode the driver runs the tasks) (java.lang.OutOfMemoryError: Java heap space)"
    )
    on_cluster = spark_resource_error(exc, "computing KPIs", CLUSTER, SPILL)
    assert on_cluster is not None
    assert "raise spark.executor.memory in ECOMPIPE_SPARK_CONF (now 4g)" in str(on_cluster)
    assert "SPARK_DRIVER_MEMORY (now 2g)" in str(on_cluster)


@pytest.mark.spark
def test_spark_lost_executor_is_a_resource() -> None:
    found = spark_resource_error(_java_error(*EXECUTOR_LOST), "validating orders", CLUSTER, SPILL)
    assert found is not None
    assert "ExecutorLostFailure (executor 2 exited" in str(found)
    assert "spark.executor.memory" in str(found)


@pytest.mark.spark
def test_spark_jvm_gone_is_a_resource() -> None:
    protocol: Any = pytest.importorskip("py4j.protocol")
    # Captured: in local mode a task's OutOfMemoryError makes Spark exit the JVM; PySpark's
    # next call to it raises this.
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    empty = protocol.Py4JNetworkError("Answer from Java side is empty")
    for exc in (refused, empty):
        found = spark_resource_error(exc, "validating orders", LOCAL, SPILL)
        assert found is not None
        assert "the Spark JVM is gone" in str(found) and "SPARK_DRIVER_MEMORY" in str(found)


@pytest.mark.spark
def test_spark_full_disk_names_the_local_dir_and_the_workspace() -> None:
    found = spark_resource_error(_java_error(*JAVA_ENOSPC), "validating orders", LOCAL, SPILL)
    assert found is not None
    assert str(found) == (
        "validating orders: No space left on device on a disk Spark writes to: free disk "
        "space in spark.local.dir (/tmp) and in /ws/tmp, or set spark.local.dir to a larger "
        "disk in ECOMPIPE_SPARK_CONF"
    )


@pytest.mark.spark
def test_spark_errors_of_the_query_are_not_resources() -> None:
    for exc in (_java_error(*ANALYSIS), ValueError("java.lang.OutOfMemoryError"), OSError(5)):
        assert spark_resource_error(exc, "x", LOCAL, SPILL) is None


@pytest.mark.spark
def test_spark_error_whose_text_the_dead_jvm_cannot_give() -> None:
    """str() of a Py4JJavaError asks the JVM for the Java text: when that finds no JVM, the
    JVM is gone (a resource), and the classifier does not fail itself."""
    protocol: Any = pytest.importorskip("py4j.protocol")

    class DeadGateway:
        def send_command(self, command: str) -> str:
            raise protocol.Py4JNetworkError("Answer from Java side is empty")

    class JavaException:
        _target_id = "o1"
        _gateway_client = DeadGateway()

    exc = protocol.Py4JJavaError("An error occurred while calling o9.sql", JavaException())
    found = spark_resource_error(exc, "computing KPIs", LOCAL, SPILL)
    assert found is not None and "the Spark JVM is gone" in str(found)
    assert "(Py4JJavaError: An error occurred while calling o9.sql)" in str(found)


@pytest.mark.spark
def test_spark_engine_classes_the_errors_of_its_duckdb_session(tmp_path: Path) -> None:
    """The Spark engine maps its rejects to lines in a local DuckDB session (records.py): a
    DuckDB out-of-memory there is a resource with DuckDB's setting; another DuckDB error is
    no verdict and no EngineError, it goes through. Built without a JVM."""
    from ecompipe.engines.spark import SparkEngine

    engine = SparkEngine.__new__(SparkEngine)  # no session: only the classifier is asked
    engine._settings = Settings(duckdb_memory_limit="10MB", duckdb_threads=1)
    engine._scratch = tmp_path / "ecompipe-spark-x"
    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = '10MB'")
    con.execute("SET threads = 1")
    con.execute("SET temp_directory = ''")
    exc = _raised(
        con, "SELECT string_agg(i::VARCHAR, ',') FROM range(3000000) t(i) GROUP BY i % 300000"
    )
    found = engine._failure(exc, "writing the rejected rows", "validation failed on Spark")
    assert isinstance(found, ResourceError)
    assert str(found).startswith("writing the rejected rows: DuckDB ran out of memory: raise")
    assert "ECOMPIPE_DUCKDB_MEMORY_LIMIT (now 10MB)" in str(found)
    syntax = _raised(con, "SELEC 1")
    assert engine._failure(syntax, "writing the rejected rows", "validation failed") is None


# ----------------------------------------------------------------------------- header


@pytest.mark.local
def test_header_lets_an_os_error_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Too many open files is the machine: no 'unreadable' verdict, the error goes up."""
    path = tmp_path / "orders.csv"
    path.write_text("order_id,user_id,created_at,status\n1,2,2024-01-01 10:00:00,complete\n")

    def too_many(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(self))

    monkeypatch.setattr(Path, "open", too_many)
    fr = FileReport(key="orders/orders.csv", dataset="orders", accepted=False)
    with pytest.raises(OSError) as caught:
        header.locate_columns(
            DATASET_BY_NAME["orders"], path, fr, tmp_path, lambda *_a: pytest.fail("no count")
        )
    assert caught.value.errno == errno.EMFILE
    assert fr.reason is None and fr.detail is None


# ----------------------------------------------------------------------------- local store


@pytest.mark.local
def test_copy_across_disks_onto_a_full_one_leaves_no_part_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verified move across file systems copies; when the target disk fills mid-copy the
    error goes up (the pipeline classes it) and no part copy is left to keep the disk full."""
    from ecompipe.stores.local import folder

    src = tmp_path / "staging" / "orders.parquet"
    src.parent.mkdir()
    src.write_bytes(b"x" * 4096)
    dst = tmp_path / "curated" / "orders" / "000000000001.parquet"

    def other_disk(*_a: object, **_k: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    def fills(_source: object, target: Any, _size: int = 0) -> None:
        target.write(b"x" * 1024)  # part of the bytes made it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(folder.os, "link", other_disk)
    monkeypatch.setattr(folder.shutil, "copyfileobj", fills)
    with pytest.raises(OSError) as caught:
        folder.verified_move(src, dst)
    assert caught.value.errno == errno.ENOSPC
    assert src.read_bytes() == b"x" * 4096
    assert list(dst.parent.iterdir()) == []
