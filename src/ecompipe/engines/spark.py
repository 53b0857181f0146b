"""Spark engine: the same contract checks and KPI SQL as DuckDB, for data beyond one machine.

Only Spark's primitives live here (engines/flow.py runs the one validation and KPI flow):
starting the session, reading each CSV as text rows with ``(_file_idx, _row)``, recognising
rows of the wrong shape, relations, SQL, Parquet, and Spark's resource errors. The checks are
validation.py's SQL and the KPIs kpis.py's, spelled through :class:`SparkDialect`; results
equal the DuckDB engine's.

pyspark is an optional extra and is imported inside functions only.

How rows are numbered (it must match the DuckDB engine): a file whose every record is one
physical line (no line break inside quotes; ``framing.scan`` tells) is read line by line, which
Spark splits into partitions in file order, so large files are parsed on every core; any other
file is read in ``multiLine`` mode, which never splits it. ``_row`` is
``monotonically_increasing_id()``: partition number in the high bits, position inside the
partition in the low 33, so it orders records as the file does. Rows of the wrong shape
(PERMISSIVE mode fills the corrupt-record column) ride along under the file index ``-1 - idx``,
blank records (no row, as in DuckDB) under ``_BLANK - idx``: every shared query
filters on accepted (non-negative) indices, so one cached relation answers all, and counting
every record per partition gives each rejected row its position in the file. records.py maps
positions to lines, knowing that the line reader skips lines of only blanks
(``drops_blank_lines``).
"""

from __future__ import annotations

import atexit
import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ecompipe import validation
from ecompipe.config import Settings, spark_conf_pairs
from ecompipe.contracts import Dataset
from ecompipe.dialect import sql_string
from ecompipe.engines import framing
from ecompipe.engines.base import (
    BATCH_SEQ_SQL_PATTERN,
    CURATED_SCHEMA,
    resource_errno,
    resource_error_in,
)
from ecompipe.engines.current import BATCH_COLUMN
from ecompipe.engines.duckdb import connect
from ecompipe.engines.duckdb import resource_error as duckdb_resource_error
from ecompipe.engines.flow import EngineFlow, FileRead
from ecompipe.engines.framing import Framing
from ecompipe.engines.header import Located
from ecompipe.errors import EcompipeError, EngineError, ResourceError
from ecompipe.validation import FileReport

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession  # noqa: TID251 (types only)

# Java's \s also matches \x0B; RE2 (DuckDB) does not. Spell RE2's set so both engines agree.
_RE2_SPACE = r"[\t\n\f\r ]"
# monotonically_increasing_id() is (partition << 33) + position inside the partition.
_PART_SHIFT = 33
_ROW_MASK = (1 << _PART_SHIFT) - 1
# Spark's bitmap functions: values per bitmap; at most this many bitmaps (4 KiB each) are
# built to count distinct keys exactly (validation.may_repeat_keys).
_BITMAP_BITS = 32768
_MAX_BITMAPS = 1 << 16
# Row groups of the batch files Spark writes. A Parquet file is split across tasks by row
# groups, and Spark's default (128 MB) made a whole 10M-item batch one row group: one task
# read it, on one core, however large the cluster. DuckDB writes groups of 122,880 rows.
_ROW_GROUP_BYTES = 8 << 20
# _file_idx of blank records: _BLANK - idx (see the module docstring).
_BLANK = -(1 << 30)
_LOG4J = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


class SparkDialect:
    """Spark SQL's spelling of the dialect-specific SQL."""

    big_int = "DECIMAL(38, 0)"
    max_bit_span = _BITMAP_BITS * _MAX_BITMAPS

    def count_distinct_in_span(self, expr: str, source: str, low: int, high: int) -> str:
        """Spark's bitmaps hold 32768 bits each: one per bucket of keys, counted and summed."""
        return (
            f"SELECT sum(bitmap_count(b)) FROM (SELECT bitmap_construct_agg("
            f"bitmap_bit_position({expr})) AS b FROM {source} "
            f"GROUP BY bitmap_bucket_number({expr})) AS buckets"
        )

    def regex_full_match(self, expr: str, pattern: str) -> str:
        """RLIKE finds a match anywhere: anchor the whole pattern (\\z: no final newline)."""
        anchored = "^(?:" + pattern.replace(r"\s", _RE2_SPACE) + r")\z"
        return f"({expr} RLIKE {self.string_literal(anchored)})"

    def strip(self, expr: str) -> str:
        """trim(BOTH chars FROM ...) with the characters as \\u escapes (plain trim: spaces)."""
        chars = "".join(f"\\u{ord(c):04x}" for c in validation.WHITESPACE)
        return f"trim(BOTH '{chars}' FROM {expr})"

    def try_cast(self, expr: str, sql_type: str) -> str:
        """try_cast: NULL instead of an error under ANSI mode."""
        return f"try_cast({expr} AS {sql_type})"

    def parse_money(self, expr: str) -> str:
        """Spark's text-to-DECIMAL cast rounds half-up on the exact digits (as DuckDB's)."""
        return f"try_cast({expr} AS DECIMAL(18, 6))"

    def parse_timestamp_utc(self, expr: str) -> str:
        """Spark's cast to TIMESTAMP_LTZ reads T or space, fractions (truncated past
        microseconds), Z and +HH:MM / +HHMM offsets; it needs seconds and no ' UTC', so those
        are added and respelled first. Read as an instant, then taken as UTC wall time (NTZ).

        One cast instead of validation.portable_timestamp_utc's eight regex extractions.
        """
        with_seconds = validation.with_seconds(expr)
        text = f"replace({with_seconds}, ' UTC', 'Z')"
        return f"CAST(try_cast({text} AS TIMESTAMP_LTZ) AS TIMESTAMP_NTZ)"

    def add_minutes(self, ts: str, minutes: str) -> str:
        """timestampadd keeps TIMESTAMP_NTZ (no time zone is involved)."""
        return f"timestampadd(MINUTE, CAST({minutes} AS BIGINT), {ts})"

    def int_div(self, a: str, b: str) -> str:
        """``div``: integral division, BIGINT result."""
        return f"(({a}) div ({b}))"

    def quote(self, identifier: str) -> str:
        """Backquoted identifier."""
        return "`" + identifier.replace("`", "``") + "`"

    def string_literal(self, value: str) -> str:
        """Spark string literals treat backslash as an escape: escape it and the quote."""
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


DIALECT = SparkDialect()

_SESSION_LOCK = threading.Lock()
_SESSION: SparkSession | None = None


def spark_session(settings: Settings) -> SparkSession:
    """The process's one SparkSession, created on first use with the engine's settings.

    Later calls reuse it (a JVM start costs seconds); master and app name come from the first.
    """
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is not None:
            return _SESSION
        from pyspark.sql import SparkSession  # noqa: TID251 (lazy: inside the function)

        local = settings.spark_master.startswith("local")
        conf_dir = Path(tempfile.mkdtemp(prefix="ecompipe-spark-conf-"))
        (conf_dir / "log4j2.properties").write_text(_LOG4J, encoding="utf-8")
        atexit.register(shutil.rmtree, conf_dir, True)  # read once, when the JVM starts
        builder = (
            SparkSession.builder.master(settings.spark_master)
            .appName(settings.spark_app_name)
            # Dates are UTC calendar dates; TIMESTAMP means a zone-less UTC instant, as in DuckDB
            # and in the curated Parquet files (either engine can read the other's batches).
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
            .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
            # ANSI on (Spark 4's default, stated): every risky cast in the shared SQL is guarded
            # by the contract pattern or try_cast, so an overflow here is a bug and must fail.
            .config("spark.sql.ansi.enabled", "true")
            # Row-shape detection needs every token parsed, not only the selected columns.
            .config("spark.sql.csv.parser.columnPruning.enabled", "false")
            .config("spark.sql.parquet.compression.codec", "zstd")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config(
                "spark.driver.extraJavaOptions",
                f"-Dlog4j2.configurationFile=file:{conf_dir / 'log4j2.properties'}",
            )
        )
        if local:
            # One machine: a few shuffle partitions (AQE merges them further); loopback only.
            builder = (
                builder.config("spark.sql.shuffle.partitions", "8")
                # Splits of 32 MB spread a few hundred MB of CSV over every core; Spark's
                # 128 MB leaves a core idle for the last split of a 360 MB file.
                .config("spark.sql.files.maxPartitionBytes", "32m")
                .config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1")
            )
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        memory = settings.spark_driver_memory or (local_driver_memory() if local else "")
        if memory:
            # In local mode the driver is every executor too: with Spark's 1g default, a
            # quarter of a 10M-item KPI step was garbage collection pauses.
            builder = builder.config("spark.driver.memory", memory)
        for key, value in spark_conf_pairs(settings.spark_conf):
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        _SESSION = session
        return session


def local_driver_memory() -> str:
    """A quarter of this machine's (or container's) memory, from 1g to 8g."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:  # a container's limit (cgroup v2) can be far below the host's memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text(encoding="ascii").strip()
        total = min(total, int(limit))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit ("max") or not Linux
    return f"{max(1, min(8, total // 4 // 2**30))}g"


def stop_session() -> None:
    """Stop the process's SparkSession (the next :func:`spark_session` starts a new one)."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is not None:
            _SESSION.stop()
            _SESSION = None


class SparkEngine(EngineFlow):
    """Validation and KPIs on Spark (``local[*]`` by default, or any ``SPARK_MASTER``)."""

    name = "spark"
    dialect = DIALECT
    # Spark reads lazily: a file's read errors surface in a later query, not at its load.
    validation_failed = "validation failed on Spark"
    log_failed = "KPI computation failed"
    drops_blank_lines = True

    def __init__(self, settings: Settings, temp_dir: str | None = None) -> None:
        self._settings = settings
        # On a cluster the executors cannot see this machine's disk: read the log in place.
        self.reads_uris = not settings.spark_master.startswith("local")
        base = Path(temp_dir) if temp_dir else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        # Inputs are linked here under plain names: Hadoop paths choke on ':' and treat
        # '[', '{', '*' and '?' as glob characters.
        self._scratch = Path(tempfile.mkdtemp(prefix="ecompipe-spark-", dir=base))
        self.spark = spark_session(settings)
        self._views: list[str] = []
        self._lock = threading.Lock()  # views may be made from several threads
        self._duckdb: duckdb.DuckDBPyConnection | None = None

    def close(self) -> None:
        """Drop this engine's views and caches; the session stays for the next engine."""
        catalog = self.spark.catalog
        for view in self._views:
            catalog.dropTempView(view)
        self._views.clear()
        if self._duckdb is not None:
            self._duckdb.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _failure(self, exc: Exception, doing: str, failed: str | None) -> EcompipeError | None:
        """What an exception while ``doing`` is: a ResourceError (the machine ran short:
        :func:`resource_error`, or the DuckDB session's own classifier), an EngineError
        (``failed``, then Spark's words) for any other Spark error, or None (the caller lets
        it through)."""
        if isinstance(exc, EcompipeError):
            return None
        if isinstance(exc, duckdb.Error):  # the local session of records.py
            return duckdb_resource_error(exc, doing, self._settings, self._scratch.parent)
        found = resource_error(exc, doing, self._settings, self._scratch.parent)
        if found is not None:
            return found
        if failed is not None and _is_spark_error(exc):
            return EngineError(f"{failed}: {_first_line(exc)}")
        return None

    @contextmanager
    def _guard(self, doing: str, failed: str | None) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            failure = self._failure(exc, doing, failed)
            if failure is None:
                raise
            raise failure from exc

    def _prepare(self, validating: bool) -> None:
        pass  # row positions come from the ids the load gives (see the module docstring)

    def _local(self) -> duckdb.DuckDBPyConnection:
        if self._duckdb is None:
            self._duckdb = connect(self._settings, str(self._scratch / "duckdb"))
        return self._duckdb

    def _view(self, name: str, df: DataFrame, cache: bool = False, fill: bool = True) -> None:
        if cache:
            df = df.persist()
            if fill:  # else the caller's next query reads every row, and so fills it
                df.count()  # materialise now: later queries read the cached copy
        df.createOrReplaceTempView(name)
        with self._lock:
            self._views.append(name)

    def _drop(self, *names: str) -> None:
        for name in names:
            with self._lock:
                if name not in self._views:
                    continue
                self._views.remove(name)
            self.spark.catalog.dropTempView(name)  # also unpersists a cached view

    def _drop_all(self) -> None:
        self._drop(*list(self._views))

    def _register(self, name: str, sql: str, keep: bool = False) -> None:
        self._view(name, self.spark.sql(sql), cache=keep)

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def _write_parquet(self, sql: str, target: Path) -> None:
        """Spark writes a folder of parts: one part, moved to ``target``."""
        out = self._scratch / f"out_{target.stem}"
        writer = self.spark.sql(sql).coalesce(1).write.mode("overwrite")
        writer.option("parquet.block.size", _ROW_GROUP_BYTES).parquet(str(out))
        parts = sorted(out.glob("part-*.parquet"))
        if len(parts) != 1:
            raise EngineError(f"expected one Parquet part in {out}, found {len(parts)}")
        shutil.move(str(parts[0]), str(target))
        shutil.rmtree(out, ignore_errors=True)

    def _keep_rejects(self, name: str, sql: str, checked: str) -> str:
        """Written as Parquet by the executors, a part per core, into the scratch folder
        (which a cluster's executors and the driver share), for the local DuckDB session:
        no rejected row passes through the driver. Each row id is turned into the record's
        position in its file: the number of the file's records in earlier partitions plus
        its place inside its own. The records of a partition are counted in ``checked``,
        which keeps every record (rows, rows of the wrong shape, blank records).
        """
        source = (
            f"CASE WHEN _file_idx >= 0 THEN _file_idx WHEN _file_idx > {_BLANK} "
            f"THEN -1 - _file_idx ELSE {_BLANK} - _file_idx END"
        )
        counts = (
            f"SELECT {source} AS f, shiftright(_row, {_PART_SHIFT}) AS part, count(*) AS n "
            f"FROM {checked} GROUP BY 1, 2"
        )
        before = "SELECT f, part, sum(n) OVER (PARTITION BY f ORDER BY part) - n AS before"
        positioned = (
            f"SELECT r._file_idx, o.before + (r._row & {_ROW_MASK}) AS _row, r.column_name, "
            f"r.reason FROM ({sql}) AS r JOIN ({before} FROM ({counts}) AS c) AS o "
            f"ON o.f = r._file_idx AND o.part = shiftright(r._row, {_PART_SHIFT})"
        )
        # A part per core: one would make one task compute and write every reject, one per
        # input split can be thousands of tiny files.
        cores = self.spark.sparkContext.defaultParallelism
        folder = self._scratch / name
        self.spark.sql(positioned).coalesce(cores).write.mode("overwrite").parquet(str(folder))
        # Spark writes a part even for no rows, so the list is never empty; listed rather
        # than globbed by DuckDB, whose glob would read '[' or '*' in the folder's path.
        parts = ", ".join(sql_string(str(p)) for p in sorted(folder.glob("part-*.parquet")))
        return f"read_parquet([{parts}])"

    def _linked(self, relation: str, files: list[str]) -> list[str]:
        """Local Parquet files under plain names in the scratch folder (see ``__init__``);
        the names of one relation's files are unique (batch numbers, state file names)."""
        folder = self._scratch / "curated" / relation
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        linked = []
        for f in map(Path, files):
            (folder / f.name).symlink_to(f.resolve())
            linked.append(str(folder / f.name))
        return linked

    # ----------------------------------------------------------------- validation

    def _frame(self, path: Path) -> Framing:
        # Every file: whether its records are single lines decides how Spark reads it.
        return framing.scan(path)

    def _load(self, read: FileRead, located: Located, fr: FileReport) -> str | None:
        """One file as text columns, with ``_file_idx`` and ``_row`` (module docstring)."""
        from pyspark.sql import functions as F  # noqa: TID251 (lazy)
        from pyspark.sql.types import StringType, StructField, StructType  # noqa: TID251

        ds, idx = read.dataset, read.idx
        link = self._scratch / f"{read.name}.csv"
        link.unlink(missing_ok=True)
        link.symlink_to(located.path.resolve())
        schema = StructType(
            [StructField(f"c{i}", StringType()) for i in range(located.width)]
            + [StructField("_corrupt", StringType())]
        )
        df = (
            self.spark.read.schema(schema)
            .options(
                header=True,
                multiLine=not read.one_line,
                sep=",",
                quote='"',
                escape='"',
                mode="PERMISSIVE",
                columnNameOfCorruptRecord="_corrupt",
                encoding="UTF-8",
            )
            .csv(str(link))
        )
        # A blank record is no row (validation.BLANK_RECORD_PATTERN). Spark reads it as a row
        # too short, whose corrupt-record text is the record's text.
        corrupt = "_corrupt"
        blank = F.expr(
            f"{corrupt} IS NOT NULL AND "
            f"{DIALECT.regex_full_match(corrupt, validation.BLANK_RECORD_PATTERN)}"
        )
        file_idx = (
            F.when(F.col(corrupt).isNull(), F.lit(idx))
            .when(blank, F.lit(_BLANK - idx))
            .otherwise(F.lit(-1 - idx))
        )
        name = f"raw_{read.name}"
        self._view(
            name,
            df.select(
                file_idx.alias("_file_idx"),
                F.monotonically_increasing_id().alias("_row"),
                *[F.col(f"c{located.positions[c]}").alias(c) for c in ds.column_names],
            ),
        )
        return name

    def _checked(self, ds: Dataset, parts: dict[int, str]) -> tuple[str, str]:
        # Rows of the wrong shape and blank records ride along in the one cached relation
        # (module docstring): every shared query filters on accepted file indices.
        raw, checked, shape = f"raw_{ds.name}", f"checked_{ds.name}", f"shape_{ds.name}"
        self._register(raw, " UNION ALL ".join(f"SELECT * FROM {p}" for p in parts.values()))
        # The statistics query reads every row, so it fills the cache: no separate count.
        self._view(
            checked,
            self.spark.sql(validation.checked_sql(ds, raw, DIALECT)),
            cache=True,
            fill=False,
        )
        self._drop(raw, *parts.values())
        self._register(
            shape,
            f"SELECT -1 - _file_idx AS _file_idx, _row FROM {checked} "
            f"WHERE _file_idx < 0 AND _file_idx > {_BLANK}",
        )
        return checked, shape

    # ----------------------------------------------------------------- transform, recompute

    def _parquet(self, relation: str, dataset: str, files: list[str], log: bool = True) -> None:
        from pyspark.sql import functions as F  # noqa: TID251 (lazy)

        cols = [c for c, _ in CURATED_SCHEMA[dataset]]
        if not files:
            schema = ", ".join(
                f"{c} {'STRING' if t == 'VARCHAR' else t}" for c, t in CURATED_SCHEMA[dataset]
            )
            self._view(relation, self.spark.createDataFrame([], f"{schema}, _seq BIGINT"))
            return
        if not any("://" in f for f in files):
            files = self._linked(relation, files)
        seq = (
            F.regexp_extract(F.col("_metadata.file_name"), BATCH_SEQ_SQL_PATTERN, 1)
            if log
            else F.col(BATCH_COLUMN)
        )
        self._view(
            relation,
            self.spark.read.parquet(*files).select(*cols, seq.cast("bigint").alias("_seq")),
        )

    def _write_partitioned(self, sql: str, column: str, folder: Path) -> None:
        """One file per partition (rows shuffled by ``column`` first), in row groups."""
        df = self.spark.sql(sql)
        writer = df.repartition(column).write.mode("overwrite").partitionBy(column)
        writer.option("parquet.block.size", _ROW_GROUP_BYTES).parquet(str(folder))


def _is_spark_error(exc: BaseException) -> bool:
    module = type(exc).__module__
    return module.startswith(("pyspark", "py4j"))


def _first_line(exc: BaseException) -> str:
    text = _text(exc)
    if text is None:
        text = f"{type(exc).__name__}: {getattr(exc, 'errmsg', '')}"
    text = text.strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _text(exc: BaseException) -> str | None:
    """``str(exc)``, which for a Py4JJavaError asks the JVM for the Java stack trace (every
    "Caused by" included); None when the JVM cannot be reached to answer."""
    try:
        return str(exc)
    except Exception as failed:
        if _jvm_gone(failed):
            return None
        return f"{type(exc).__name__}: {getattr(exc, 'errmsg', '')}"


def _jvm_gone(exc: BaseException) -> bool:
    """A call to the JVM found no JVM: a socket error, or py4j's own network error."""
    return isinstance(exc, ConnectionError) or type(exc).__name__ == "Py4JNetworkError"


# What Spark says when the machine ran short, in the text of a PySpark or Py4J error (for a
# Py4JJavaError, the Java stack trace). Checked against Spark 4.3 (spark-core's classes):
# a JVM heap exhausted anywhere ("java.lang.OutOfMemoryError: Java heap space", "... GC
# overhead limit exceeded"), an executor lost (TaskEndReason's "ExecutorLostFailure
# (executor 1 exited caused by one of the running tasks) Reason: ..." : on a cluster, mostly
# one killed for its memory), and a context stopped under a running job (DAGScheduler's "Job
# 3 cancelled because SparkContext was shut down", SparkContext's "Cannot call methods on a
# stopped SparkContext.").
_OUT_OF_MEMORY = "java.lang.OutOfMemoryError"
_LOST = (
    "ExecutorLostFailure",
    "SparkContext was shut down",
    "Cannot call methods on a stopped SparkContext",
)
_MEMORY_MARKS = (_OUT_OF_MEMORY, *_LOST)


def resource_error(
    exc: BaseException, doing: str, settings: Settings, scratch: Path
) -> ResourceError | None:
    """``exc`` as a ResourceError when Spark ran short of memory, disk or open files, or
    lost its JVM or an executor, with the setting to change; None for any other error. The
    one rule for this engine:

    - the JVM is gone: a ``ConnectionError`` or py4j's ``Py4JNetworkError`` out of a call
      to it, or out of asking it for a Java error's text. In local mode a task's
      java.lang.OutOfMemoryError makes Spark exit the JVM (SparkUncaughtExceptionHandler);
      the next call finds "[Errno 111] Connection refused";
    - a PySpark or Py4J error whose text holds ``java.lang.OutOfMemoryError``, one of
      ``_LOST``, or the OS's words for ENOMEM: memory (SPARK_DRIVER_MEMORY, and
      spark.executor.memory on a cluster);
    - one whose text holds the OS's words for another resource errno
      (engines.base.resource_errno: "java.io.IOException: No space left on device"): that
      errno's advice; a full disk names spark.local.dir and ``scratch`` (``<workspace>/tmp``).
    """
    gone = _jvm_gone(exc)
    if not gone and not _is_spark_error(exc):
        return None
    text = None if gone else _text(exc)
    if text is None:
        return ResourceError(
            f"{doing}: the Spark JVM is gone (in local mode it exits on "
            f"java.lang.OutOfMemoryError): {_memory_advice(settings)} ({_first_line(exc)})"
        )
    code = resource_errno(text)
    if code == errno.ENOMEM or any(m in text for m in _MEMORY_MARKS):
        said = next(
            # Py4J puts ": " before the Java exception's line.
            (x.strip(": ") for x in text.splitlines() if any(m in x for m in _MEMORY_MARKS)),
            _first_line(exc),
        )
        return ResourceError(
            f"{doing}: Spark ran out of memory: {_memory_advice(settings)} ({said})"
        )
    if code in (errno.ENOSPC, errno.EDQUOT):
        local_dir = _conf(settings, "spark.local.dir") or "/tmp"
        return ResourceError(
            f"{doing}: {os.strerror(code)} on a disk Spark writes to: free disk space in "
            f"spark.local.dir ({local_dir}) and in {scratch}, or set spark.local.dir to a "
            "larger disk in ECOMPIPE_SPARK_CONF"
        )
    return resource_error_in(text, doing)


def _memory_advice(settings: Settings) -> str:
    """Which memory setting to raise, with its value now."""
    local = settings.spark_master.startswith("local")
    driver = settings.spark_driver_memory or (local_driver_memory() if local else "default")
    if local:
        return f"raise SPARK_DRIVER_MEMORY (now {driver}; in local mode the driver runs the tasks)"
    executor = _conf(settings, "spark.executor.memory") or "default"
    return (
        f"raise spark.executor.memory in ECOMPIPE_SPARK_CONF (now {executor}), or "
        f"SPARK_DRIVER_MEMORY (now {driver}) for what the driver collects"
    )


def _conf(settings: Settings, key: str) -> str | None:
    """A setting given in ECOMPIPE_SPARK_CONF, if any."""
    return dict(spark_conf_pairs(settings.spark_conf)).get(key)
