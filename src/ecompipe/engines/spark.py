"""Spark engine: the same contract checks and KPI SQL as DuckDB, for data beyond one machine.

Only what must differ per engine lives here: starting the session, reading each CSV as text
rows with ``(_file_idx, _row)``, recognising rows of the wrong shape, and mapping rejected rows
back to their physical line and original text. The checks are validation.py's SQL and the KPIs
kpis.py's, spelled through :class:`SparkDialect`; results equal the DuckDB engine's.

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
every record per partition gives each rejected row its position in the file. Positions are
mapped to lines by a sequential scan of the few files that have rejects, with DuckDB's rule: a
line starts a record when the quotes before it are balanced.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import shutil
import tempfile
import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecompipe import kpis, validation
from ecompipe.config import Settings, spark_conf_pairs
from ecompipe.contracts import (
    DATASETS,
    Dataset,
    FileReason,
    Reason,
)
from ecompipe.engines import framing
from ecompipe.engines.base import (
    BATCH_SEQ_SQL_PATTERN,
    CURATED_SCHEMA,
    REJECTS_COLUMNS,
    CuratedLog,
    InputFile,
    KpiFlow,
    TransformResult,
    fresh_staging,
    resource_errno,
    resource_error_in,
    short_name,
    staged_path,
    version_views,
)
from ecompipe.engines.header import locate_columns
from ecompipe.errors import EcompipeError, EngineError, ResourceError
from ecompipe.faults import fault_point
from ecompipe.validation import NO_STATS, FileReport, FileStats, ValidationReport

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
# Spark's line reader drops a line that is empty after Java's trim (every byte <= ' ').
_JAVA_TRIM = bytes(range(0x21))
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


@dataclass(frozen=True)
class _Source:
    """The file read for a file's rows (header.Located: the file itself or a copy without
    the blank lines before its header), those lines, and whether it was read line by line
    (else in multiLine mode): record positions depend on it."""

    path: Path
    lines_before: int
    one_line: bool


@dataclass
class _Reject:
    """One rejected value (or row): dataset, file index, record position, column, reason."""

    dataset: str
    file_idx: int
    row: int
    column: str
    reason: str


class SparkEngine(KpiFlow):
    """Validation and KPIs on Spark (``local[*]`` by default, or any ``SPARK_MASTER``)."""

    name = "spark"

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
        # (dataset, file index) -> the file read for its rows, and how (_Source).
        self._sources: dict[tuple[str, int], _Source] = {}
        self._copies = self._scratch / "copies"
        self._lock = threading.Lock()  # views may be made from several threads

    def close(self) -> None:
        """Drop this engine's views and caches; the session stays for the next engine."""
        catalog = self.spark.catalog
        for view in self._views:
            catalog.dropTempView(view)
        self._views.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _failure(self, exc: Exception, doing: str, failed: str) -> EcompipeError | None:
        """What an exception from Spark while ``doing`` is: a ResourceError (the machine ran
        short: :func:`resource_error`), an EngineError (``failed``, then Spark's words) for
        any other Spark error, or None (not Spark's: the caller lets it through)."""
        if isinstance(exc, EcompipeError):
            return None
        found = resource_error(exc, doing, self._settings, self._scratch.parent)
        if found is not None:
            return found
        if _is_spark_error(exc):
            return EngineError(f"{failed}: {_first_line(exc)}")
        return None

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

    def _sql(self, sql: str) -> list[Any]:
        return self.spark.sql(sql).collect()

    def _scalar(self, sql: str) -> int:
        value = self._sql(sql)[0][0]
        return int(value) if value is not None else 0

    # ----------------------------------------------------------------- validation

    def validate(
        self,
        execution_id: str,
        files: list[InputFile],
        staging: Path,
        max_error_rate: Decimal,
    ) -> ValidationReport:
        """Check every file; stage accepted rows as Parquet and rejected rows as CSV.

        Raises ResourceError, and gives no verdict, when Spark runs out of memory or disk or
        loses an executor (:func:`resource_error`).
        """
        fresh_staging(staging)
        report = ValidationReport(execution_id, max_error_rate=str(max_error_rate))
        keys: dict[tuple[str, int], InputFile] = {}
        by_dataset: dict[str, list[InputFile]] = {}
        for ds in DATASETS:
            by_dataset[ds.name] = sorted(
                (f for f in files if f.dataset == ds.name), key=lambda f: f.key
            )
            for idx, f in enumerate(by_dataset[ds.name]):
                keys[(ds.name, idx)] = f
        # One dataset at a time: checking them side by side was slower in local mode (three
        # cached relations compete for the driver's heap). Each gets its own report part.
        parts = {ds.name: ValidationReport(execution_id) for ds in DATASETS}
        rejects: list[_Reject] = []
        self._sources.clear()
        self._copies.mkdir(exist_ok=True)
        doing = "validating"
        try:
            for ds in DATASETS:
                doing = f"validating {ds.name}"
                rejects += self._validate_dataset(
                    ds, by_dataset[ds.name], staging, max_error_rate, parts[ds.name]
                )
            for ds in DATASETS:
                part = parts[ds.name]
                report.files.extend(part.files)
                report.accepted_rows.update(part.accepted_rows)
                report.duplicates_dropped.update(part.duplicates_dropped)
            if rejects:
                doing = "writing the rejected rows"
                _write_rejects(rejects, keys, self._sources, staging / "rejects.csv")
                report.rejects_file = "rejects.csv"
        except Exception as exc:
            failure = self._failure(exc, doing, "validation failed on Spark")
            if failure is None:
                raise
            raise failure from exc
        finally:
            shutil.rmtree(self._copies, ignore_errors=True)
        return report

    def _validate_dataset(
        self,
        ds: Dataset,
        files: list[InputFile],
        staging: Path,
        max_error_rate: Decimal,
        report: ValidationReport,
    ) -> list[_Reject]:
        file_reports: dict[int, FileReport] = {}
        raws: list[DataFrame] = []
        for idx, f in enumerate(files):
            fr = FileReport(key=f.key, dataset=ds.name, accepted=False)
            file_reports[idx] = fr
            raw = self._load_raw(ds, idx, f, fr)
            if raw is not None:
                raws.append(raw)
        report.files.extend(file_reports.values())
        checked = f"checked_{ds.name}"
        stats: dict[int, FileStats] = {}
        if raws:
            union = raws[0]
            for raw in raws[1:]:
                union = union.union(raw)
            self._view(f"raw_{ds.name}", union)
            # The statistics query reads every row, so it fills the cache: no separate count.
            self._view(
                checked,
                self.spark.sql(validation.checked_sql(ds, f"raw_{ds.name}", DIALECT)),
                cache=True,
                fill=False,
            )
            self._drop(f"raw_{ds.name}")
            stats = validation.file_stats(self._sql(validation.file_stats_sql(ds, checked)))
        accepted: list[int] = []
        for idx, fr in file_reports.items():
            if fr.reason is not None:
                continue
            st = stats.get(idx, NO_STATS)
            shape = stats.get(-1 - idx, NO_STATS).rows
            fr.rows, fr.bad_rows = st.rows + shape, st.bad + shape
            if fr.rows == 0:
                fr.reason, fr.detail = FileReason.NO_ROWS, "the file has a header but no rows"
            elif validation.too_many_errors(fr.rows, fr.bad_rows, max_error_rate):
                fr.reason = FileReason.ERROR_RATE
                fr.detail = (
                    f"{fr.bad_rows} of {fr.rows} rows have bad values "
                    f"(more than {max_error_rate:%} allowed)"
                )
            else:
                fr.accepted = True
                accepted.append(idx)
        if not accepted:
            self._drop(checked)
            return []
        for idx, st in stats.items():
            if idx >= 0:  # rows of the wrong shape carry no status worth a warning
                file_reports[idx].unknown_status = st.unknown_status
        rejects = self._row_rejects(ds, checked, accepted, stats)
        in_accepted = "(" + ", ".join(str(i) for i in accepted) + ")"
        good = f"good_{ds.name}"
        self._view(
            good,
            self.spark.sql(
                f"SELECT * FROM {checked} WHERE NOT _bad AND _file_idx IN {in_accepted}"
            ),
        )
        dups_name = f"dups_{ds.name}"
        dups: str | None = None
        removed = 0
        in_good = [stats.get(i, NO_STATS) for i in accepted]
        good_rows = sum(st.rows - st.bad for st in in_good)
        if validation.may_repeat_keys(ds, good, in_good, DIALECT, self._scalar):
            self._view(dups_name, self.spark.sql(validation.duplicates_sql(ds, good)), cache=True)
            if self._sql(f"SELECT 1 FROM {dups_name} LIMIT 1"):
                dups = dups_name
                for idx, row, column, reason in self._sql(validation.conflicts_sql(ds, dups)):
                    rejects.append(_Reject(ds.name, int(idx), int(row), str(column), str(reason)))
                    removed += 1
                for idx, n in self._sql(validation.repeats_sql(dups)):
                    file_reports[int(idx)].duplicates_dropped = int(n)
                    removed += int(n)
            else:
                self._drop(dups_name)
        report.duplicates_dropped[ds.name] = sum(
            file_reports[i].duplicates_dropped for i in accepted
        )
        self._write_staged(validation.accepted_sql(ds, good, dups), staged_path(staging, ds.name))
        # accepted_sql keeps the good rows minus every non-first row of a repeated key.
        report.accepted_rows[ds.name] = good_rows - removed
        per_file: dict[int, set[int]] = defaultdict(set)
        for r in rejects:
            per_file[r.file_idx].add(r.row)
        for idx, rows in per_file.items():
            file_reports[idx].rejected_rows = len(rows)
        self._to_positions(checked, rejects)
        self._drop(good, dups_name, checked)
        return rejects

    def _to_positions(self, checked: str, rejects: list[_Reject]) -> None:
        """Replace each reject's row id by the record's position in its file.

        A record's position is the number of the file's records in earlier partitions plus
        its position inside its own; the records of a partition are counted in ``checked``,
        which keeps every record (rows, rows of the wrong shape, blank records).
        """
        if all(r.row >> _PART_SHIFT == 0 for r in rejects):
            return  # all in a first partition: the id is the position
        source = (
            f"CASE WHEN _file_idx >= 0 THEN _file_idx WHEN _file_idx > {_BLANK} "
            f"THEN -1 - _file_idx ELSE {_BLANK} - _file_idx END"
        )
        counts = self._sql(
            f"SELECT {source} AS f, shiftright(_row, {_PART_SHIFT}) AS part, count(*) "
            f"FROM {checked} GROUP BY 1, 2"
        )
        offsets: dict[tuple[int, int], int] = {}
        before: dict[int, int] = defaultdict(int)
        for f, part, n in sorted((int(f), int(part), int(n)) for f, part, n in counts):
            offsets[(f, part)] = before[f]
            before[f] += n
        for r in rejects:
            r.row = offsets[(r.file_idx, r.row >> _PART_SHIFT)] + (r.row & _ROW_MASK)

    def _row_rejects(
        self, ds: Dataset, checked: str, accepted: list[int], stats: dict[int, FileStats]
    ) -> list[_Reject]:
        """Rows of the wrong shape and bad values, in accepted files only."""
        rejects: list[_Reject] = []
        shaped = [-1 - i for i in accepted if -1 - i in stats]
        if shaped:
            in_shaped = "(" + ", ".join(str(i) for i in shaped) + ")"
            for idx, row in self._sql(
                f"SELECT _file_idx, _row FROM {checked} WHERE _file_idx IN {in_shaped}"
            ):
                rejects.append(_Reject(ds.name, -1 - int(idx), int(row), "", Reason.BAD_ROW_SHAPE))
        if any(stats.get(i, NO_STATS).bad for i in accepted):
            in_accepted = "(" + ", ".join(str(i) for i in accepted) + ")"
            sql = (
                f"SELECT _file_idx, _row, column_name, reason FROM "
                f"({validation.rejects_sql(ds, checked)}) AS r WHERE _file_idx IN {in_accepted}"
            )
            for idx, row, column, reason in self.spark.sql(sql).toLocalIterator():
                rejects.append(_Reject(ds.name, int(idx), int(row), str(column), str(reason)))
        return rejects

    def _linked(self, dataset: str, files: list[str]) -> list[str]:
        """Local batch files under plain names in the scratch folder (see ``__init__``)."""
        folder = self._scratch / "curated" / dataset
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        linked = []
        for f in map(Path, files):
            (folder / f.name).symlink_to(f.resolve())
            linked.append(str(folder / f.name))
        return linked

    def _write_staged(self, sql: str, target: Path) -> None:
        """Write a query's rows to the single Parquet file ``target`` (Spark writes folders)."""
        out = self._scratch / f"out_{target.stem}"
        fault_point("staging", target)
        writer = self.spark.sql(sql).coalesce(1).write.mode("overwrite")
        writer.option("parquet.block.size", _ROW_GROUP_BYTES).parquet(str(out))
        parts = sorted(out.glob("part-*.parquet"))
        if len(parts) != 1:
            raise EngineError(f"expected one Parquet part in {out}, found {len(parts)}")
        shutil.move(str(parts[0]), str(target))
        shutil.rmtree(out, ignore_errors=True)

    def _load_raw(self, ds: Dataset, idx: int, f: InputFile, fr: FileReport) -> DataFrame | None:
        """One file as text columns; on a file-level problem set ``fr`` and return None."""
        from pyspark.sql import functions as F  # noqa: TID251 (lazy)
        from pyspark.sql.types import StringType, StructField, StructType  # noqa: TID251

        framed = framing.scan(f.path)
        if framed.problem:
            fr.reason, fr.detail = FileReason.UNREADABLE, framed.problem
            return None
        one_line = framed.one_line
        located = locate_columns(
            ds,
            f.path,
            fr,
            self._copies,
            lambda source, _width, _before: _count_rows(source, one_line),
        )
        if located is None:
            return None
        self._sources[(ds.name, idx)] = _Source(located.path, located.lines_before, one_line)
        link = self._scratch / f"{ds.name}_{idx}.csv"
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
                multiLine=not one_line,
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
        return df.select(
            file_idx.alias("_file_idx"),
            F.monotonically_increasing_id().alias("_row"),
            *[F.col(f"c{located.positions[c]}").alias(c) for c in ds.column_names],
        )

    # ----------------------------------------------------------------- transform, recompute

    def _kpis(self, curated: CuratedLog, seq: int | None, affected: str) -> TransformResult:
        """The KPIs of the dates the query ``affected`` lists (``_compute``); a Spark failure
        becomes an EngineError, and every view is dropped after."""
        try:
            return self._compute(curated, seq, affected)
        except Exception as exc:
            failure = self._failure(exc, "computing KPIs", "KPI computation failed")
            if failure is None:
                raise
            raise failure from exc
        finally:
            self._drop(*list(self._views))

    def _compute(self, curated: CuratedLog, seq: int | None, affected: str) -> TransformResult:
        from pyspark.sql import functions as F  # noqa: TID251 (lazy)

        rows: dict[str, int] = {}
        for ds in DATASETS:
            short = short_name(ds.name)
            files = curated.files(ds.name)
            if not files:
                schema = ", ".join(
                    f"{c} {'STRING' if t == 'VARCHAR' else t}" for c, t in CURATED_SCHEMA[ds.name]
                )
                all_df = self.spark.createDataFrame([], f"{schema}, _seq BIGINT")
            else:
                if not curated.is_uri:
                    files = self._linked(ds.name, files)
                all_df = self.spark.read.parquet(*files).select(
                    *[c for c, _ in CURATED_SCHEMA[ds.name]],
                    F.regexp_extract(F.col("_metadata.file_name"), BATCH_SEQ_SQL_PATTERN, 1)
                    .cast("bigint")
                    .alias("_seq"),
                )
            self._view(f"all_{short}", all_df)
            for name, sql in version_views(ds.name, len(files), seq).items():
                # Ranking versions is worth keeping; a single Parquet file is as fast to re-read.
                cache = name == f"cur_{short}" and len(files) > 1
                self._view(name, self.spark.sql(sql), cache=cache)
            rows[ds.name] = self._scalar(f"SELECT count(*) FROM cur_{short}")
        self._view("affected_dates", self.spark.sql(affected), cache=True)
        for name, sql in kpis.kpi_relations():
            self._view(name, self.spark.sql(sql), cache=True)
        dates = [r[0] for r in self._sql("SELECT order_date FROM affected_dates")]
        order_rows = [tuple(r) for r in self._sql(kpis.order_metrics_sql(DIALECT))]
        cat_rows = [tuple(r) for r in self._sql(kpis.category_metrics_sql(DIALECT))]
        waiting = self._sql(kpis.waiting_sql())[0]
        return TransformResult(
            affected_dates=sorted(dates),
            order_metrics=kpis.order_metrics_from_rows(order_rows),
            category_metrics=kpis.category_metrics_from_rows(cat_rows),
            waiting_for_order=int(waiting[0]),
            waiting_for_product=int(waiting[1]),
            curated_rows=rows,
        )


# --------------------------------------------------------------------- files, lines, rejects


def _count_rows(path: Path, one_line: bool) -> int:
    """Records of a file whose values are not checked (its verdict still says how many rows
    it held): every non-blank one, whatever its width, as the DuckDB engine counts them."""
    return sum(1 for *_at, text in _records(path, one_line) if not validation.is_blank_record(text))


def _records(path: Path, one_line: bool = False) -> Iterator[tuple[int, int, str]]:
    """(position, first physical line, original text) of every record after the header.

    A line starts a record when the quotes before it are balanced (as the DuckDB engine maps
    lines). Positions count records as Spark's reader yields them: empty lines are skipped,
    and read line by line (``one_line``) so are lines of only spaces and tabs; read in
    multiLine mode those are records (of the wrong shape).
    """
    parity = 0
    logical = 0
    pos = -1
    start = 0
    text: list[str] = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip(b"\n").rstrip(b"\r")
            if parity == 0:
                if text:
                    yield pos, start, "\n".join(text)
                    text = []
                logical += 1
                if logical > 1 and (line.strip(_JAVA_TRIM) if one_line else line):
                    pos += 1
                    start = number
                    text = [line.decode("utf-8")]
            elif text:
                text.append(line.decode("utf-8"))
            parity = (parity + line.count(b'"')) % 2
    if text:
        yield pos, start, "\n".join(text)


def _write_rejects(
    rejects: list[_Reject],
    keys: dict[tuple[str, int], InputFile],
    sources: dict[tuple[str, int], _Source],
    target: Path,
) -> None:
    """The rejects CSV: file, physical line, column, reason, original text.

    Sorted and quoted exactly like the DuckDB engine's COPY output. A whitespace-only record
    has no line there (its mapping skips blank records), so it is counted but not listed.
    """
    wanted: dict[tuple[str, int], set[int]] = defaultdict(set)
    for r in rejects:
        wanted[(r.dataset, r.file_idx)].add(r.row)
    located: dict[tuple[str, int, int], tuple[int, str]] = {}
    for (dataset, idx), rows in wanted.items():
        source = sources[(dataset, idx)]
        for pos, line, text in _records(source.path, source.one_line):
            if pos in rows:
                if text.strip(" "):
                    located[(dataset, idx, pos)] = (source.lines_before + line, text)
                rows.discard(pos)
                if not rows:
                    break
    out: list[tuple[str, int, str, str, str]] = []
    for r in rejects:
        hit = located.get((r.dataset, r.file_idx, r.row))
        if hit:
            out.append((keys[(r.dataset, r.file_idx)].key, hit[0], r.column, r.reason, hit[1]))
    out.sort(key=lambda t: (t[0], t[1], t[2]))
    with target.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(REJECTS_COLUMNS) + "\n")
        for file, line, column, reason, text in out:
            fields = (file, str(line), column, reason, text)
            handle.write(",".join(_csv_field(v) for v in fields) + "\n")


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _csv_field(value: str) -> str:
    # DuckDB's COPY quotes only where needed, and writes an empty string as "".
    if value == "":
        return '""'
    if _NEEDS_QUOTES.search(value):
        return '"' + value.replace('"', '""') + '"'
    return value


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
