"""DuckDB engine: the embedded default.

Reads each CSV once, as text checked by the contract SQL from validation.py in the same
statement, and runs the KPI SQL from kpis.py. Only the reading of files and the mapping of
rows back to their physical lines and original text live here.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from ecompipe import kpis, validation
from ecompipe.config import Settings
from ecompipe.contracts import DATASETS, Dataset, FileReason, Reason
from ecompipe.dialect import sql_string
from ecompipe.engines import framing
from ecompipe.engines.base import (
    BATCH_SEQ_SQL_PATTERN,
    CURATED_SCHEMA,
    CuratedLog,
    InputFile,
    KpiFlow,
    TransformResult,
    fresh_staging,
    resource_error_in,
    short_name,
    staged_path,
    version_views,
)
from ecompipe.engines.header import locate_columns
from ecompipe.errors import EngineError, ResourceError
from ecompipe.faults import fault_point
from ecompipe.validation import FileReport, ValidationReport

CSV_OPTIONS = "header = true, delim = ',', quote = '\"', escape = '\"'"
# DuckDB rejects-table error types that make the whole file unreadable: not UTF-8 text (named
# INVALID ENCODING since DuckDB 1.5, INVALID UNICODE before), or broken quoting (after an
# unterminated quote nobody can say where the next row starts).
UNREADABLE_ERRORS = {
    "INVALID ENCODING": framing.NOT_UTF8,
    "INVALID UNICODE": framing.NOT_UTF8,
    "UNQUOTED VALUE": framing.BROKEN_QUOTING,
}
# DuckDB's out-of-memory error when a spill found no room: its spill folder may hold at most
# max_temp_directory_size, by default the free space of the disk the folder is on.
SPILL_FULL = "max_temp_directory_size"
# The file an IO Error names: 'IO Error: Could not write file "<path>": No space left on device'.
_QUOTED_PATH = re.compile(r'"([^"]+)"')


class DuckDBDialect:
    """DuckDB's spelling of the dialect-specific SQL."""

    big_int = "HUGEINT"
    # A bitstring per thread of up to 16 MiB.
    max_bit_span = 1 << 27

    def count_distinct_in_span(self, expr: str, source: str, low: int, high: int) -> str:
        """bitstring_agg sets one bit per value between ``low`` and ``high``."""
        return f"SELECT bit_count(bitstring_agg({expr}, {low}, {high})) FROM {source}"

    def regex_full_match(self, expr: str, pattern: str) -> str:
        """Anchored match via regexp_full_match."""
        return f"regexp_full_match({expr}, {sql_string(pattern)})"

    def strip(self, expr: str) -> str:
        """trim() with the whitespace set, only for values whose first or last character is
        not printable ASCII: trim() with a set costs ten times plain trim() per value."""
        return (
            f"CASE WHEN regexp_matches({expr}, '^[^!-~]|[^!-~]$') "
            f"THEN trim({expr}, {sql_string(validation.WHITESPACE)}) ELSE {expr} END"
        )

    def try_cast(self, expr: str, sql_type: str) -> str:
        """TRY_CAST (DuckDB is pinned below 2.0, whose optimizer turns it into a hard cast)."""
        return f"TRY_CAST({expr} AS {sql_type})"

    def parse_money(self, expr: str) -> str:
        """DuckDB's text-to-DECIMAL cast rounds half away from zero on the exact digits."""
        return f"TRY_CAST({expr} AS DECIMAL(18, 6))"

    def parse_timestamp_utc(self, expr: str) -> str:
        """Without an offset (UTC, Z or nothing), the TIMESTAMP cast reads the text itself;
        digits past microseconds are truncated, a missing ':SS' is added first.

        With an offset, TIMESTAMPTZ applies it (session time zone is UTC), once '+0200' has
        its colon. The pattern puts a sign after 'YYYY-MM-DD HH:MM' only in an offset, and
        ' UTC' never reaches TIMESTAMPTZ: DuckDB resolves a zone *name* through ICU, 20x
        slower per row. The offset-free path is three times faster on TheLook's timestamps.
        """
        with_seconds = validation.with_seconds(expr)
        after_minutes = f"substr({expr}, 17)"
        offset = f"regexp_replace({with_seconds}, '([+-][0-9]{{2}})([0-9]{{2}})$', '\\1:\\2')"
        return (
            f"CASE WHEN contains({after_minutes}, '+') OR contains({after_minutes}, '-') "
            f"THEN CAST(TRY_CAST({offset} AS TIMESTAMPTZ) AS TIMESTAMP) "
            f"ELSE TRY_CAST({with_seconds} AS TIMESTAMP) END"
        )

    def add_minutes(self, ts: str, minutes: str) -> str:
        """Timestamp plus an integer number of minutes."""
        return f"({ts} + to_minutes(CAST({minutes} AS BIGINT)))"

    def int_div(self, a: str, b: str) -> str:
        """Integer division."""
        return f"(({a}) // ({b}))"

    def quote(self, identifier: str) -> str:
        """Double-quoted identifier."""
        return '"' + identifier.replace('"', '""') + '"'

    def string_literal(self, value: str) -> str:
        """Standard string literal."""
        return sql_string(value)


DIALECT = DuckDBDialect()


class DuckDBEngine(KpiFlow):
    """Validation and KPIs in an in-memory DuckDB that spills to ``temp_dir``."""

    name = "duckdb"
    reads_uris = False

    def __init__(self, settings: Settings, temp_dir: str | None = None) -> None:
        self._settings = settings
        base = Path(temp_dir) if temp_dir else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        # A spill folder of its own, removed on close: concurrent runs share the workspace's
        # tmp/, and no run may see, fill or clean up another run's spill files.
        self._temp = tempfile.mkdtemp(prefix="ecompipe-duckdb-", dir=base)
        # (dataset, file index) -> the file read for its rows, and the lines before it
        # (header.Located): rejects are mapped back to the original's lines with them.
        self._sources: dict[tuple[str, int], tuple[Path, int]] = {}
        self._copies = Path(self._temp) / "copies"
        self.con = self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        con.execute(f"SET memory_limit = {sql_string(self._settings.duckdb_memory_limit)}")
        con.execute(f"SET temp_directory = {sql_string(self._temp)}")
        con.execute("SET TimeZone = 'UTC'")
        if self._settings.duckdb_threads > 0:
            con.execute(f"SET threads = {self._settings.duckdb_threads}")
        return con

    def close(self) -> None:
        """Close the connection and remove the spill folder."""
        self.con.close()
        shutil.rmtree(self._temp, ignore_errors=True)

    def _raise_resource(self, exc: duckdb.Error, doing: str) -> None:
        """Raise ``exc`` as a ResourceError if it is one (:func:`resource_error`): where an
        error would otherwise become a file's verdict or a terminal EngineError."""
        found = resource_error(exc, doing, self._settings, Path(self._temp).parent)
        if found is not None:
            raise found from exc

    @contextmanager
    def _resources(self, doing: str) -> Iterator[None]:
        """Raise a DuckDB error of the block as a ResourceError if it is one; any other
        passes unchanged."""
        try:
            yield
        except duckdb.Error as exc:
            self._raise_resource(exc, doing)
            raise

    # ----------------------------------------------------------------- validation

    def validate(
        self,
        execution_id: str,
        files: list[InputFile],
        staging: Path,
        max_error_rate: Decimal,
    ) -> ValidationReport:
        """Check every file; stage accepted rows as Parquet and rejected rows as CSV.

        Raises ResourceError, and gives no verdict, when DuckDB runs out of memory or disk.
        """
        fresh_staging(staging)
        report = ValidationReport(execution_id, max_error_rate=str(max_error_rate))
        con = self.con
        # A row's position in its file is its rowid in the table it is read into.
        con.execute("SET preserve_insertion_order = true")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE rejects (dataset VARCHAR, file_idx INT, "
            "row_idx BIGINT, logical_line BIGINT, column_name VARCHAR, reason VARCHAR)"
        )
        keys: dict[tuple[str, int], InputFile] = {}
        self._sources.clear()
        self._copies.mkdir(exist_ok=True)
        try:
            for ds in DATASETS:
                ds_files = sorted((f for f in files if f.dataset == ds.name), key=lambda f: f.key)
                for idx, f in enumerate(ds_files):
                    keys[(ds.name, idx)] = f
                with self._resources(f"validating {ds.name}"):
                    self._validate_dataset(ds, ds_files, staging, max_error_rate, report)
            with self._resources("writing the rejected rows"):
                n_rejects = con.execute("SELECT count(*) FROM rejects").fetchone()
                if n_rejects and n_rejects[0]:
                    self._write_rejects(keys, staging / "rejects.csv")
                    report.rejects_file = "rejects.csv"
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
    ) -> None:
        con = self.con
        parts: dict[int, str] = {}
        file_reports: dict[int, FileReport] = {}
        shape_bad: dict[int, int] = {}
        for idx, f in enumerate(files):
            fr = FileReport(key=f.key, dataset=ds.name, accepted=False)
            file_reports[idx] = fr
            part = self._load_checked(ds, idx, f, fr)
            if part is None:
                continue
            parts[idx] = part
            shape_bad[idx] = self._collect_shape_rejects(ds, idx, part)
        report.files.extend(file_reports.values())
        checked = f"checked_{ds.name}"
        if parts:
            # A row's index among its file's records is its rowid in the file's table.
            union = " UNION ALL ".join(
                f"SELECT {idx} AS _file_idx, rowid AS _row, * EXCLUDE (_shape_ok) FROM {part} "
                "WHERE _shape_ok"
                for idx, part in parts.items()
            )
            con.execute(f"CREATE OR REPLACE TEMP VIEW {checked} AS {union}")
            stats = validation.file_stats(
                con.execute(validation.file_stats_sql(ds, checked)).fetchall()
            )
        else:
            stats = {}
        accepted: list[int] = []
        for idx, fr in file_reports.items():
            if fr.reason is not None:
                continue
            st = stats.get(idx, validation.NO_STATS)
            fr.rows = st.rows + shape_bad.get(idx, 0)
            fr.bad_rows = st.bad + shape_bad.get(idx, 0)
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
        # Shape rejects of quarantined files go with the whole file.
        in_accepted = "(" + ", ".join(str(i) for i in [*accepted, -1]) + ")"
        con.execute(
            f"DELETE FROM rejects WHERE dataset = '{ds.name}' AND file_idx NOT IN {in_accepted}"
        )
        if not accepted:
            self._drop_checked(checked, parts.values())
            return
        if any(stats.get(i, validation.NO_STATS).bad for i in accepted):
            con.execute(
                f"INSERT INTO rejects SELECT '{ds.name}', _file_idx, _row, NULL, column_name, "
                f"reason FROM ({validation.rejects_sql(ds, checked)}) AS r "
                f"WHERE _file_idx IN {in_accepted}"
            )
        good = f"good_{ds.name}"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {good} AS SELECT * FROM {checked} "
            f"WHERE NOT _bad AND _file_idx IN {in_accepted}"
        )
        dups_table = f"dups_{ds.name}"
        dups: str | None = None
        in_good = [stats.get(i, validation.NO_STATS) for i in accepted]
        if validation.may_repeat_keys(ds, good, in_good, DIALECT, lambda q: _scalar(con, q)):
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {dups_table} AS "
                f"{validation.duplicates_sql(ds, good)}"
            )
            if _scalar(con, f"SELECT count(*) FROM {dups_table}"):
                dups = dups_table
        if dups is not None:
            con.execute(
                f"INSERT INTO rejects SELECT '{ds.name}', _file_idx, _row, NULL, column_name, "
                f"reason FROM ({validation.conflicts_sql(ds, dups)}) AS c"
            )
            repeats = con.execute(validation.repeats_sql(dups)).fetchall()
            for idx, n in repeats:
                file_reports[int(idx)].duplicates_dropped = int(n)
        report.duplicates_dropped[ds.name] = sum(
            file_reports[i].duplicates_dropped for i in accepted
        )
        target = staged_path(staging, ds.name)
        fault_point("staging", target)
        written = con.execute(
            f"COPY ({validation.accepted_sql(ds, good, dups)}) TO {sql_string(str(target))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        ).fetchone()
        report.accepted_rows[ds.name] = int(written[0]) if written else 0
        per_file = con.execute(
            f"SELECT file_idx, count(DISTINCT coalesce(row_idx, -logical_line)) FROM rejects "
            f"WHERE dataset = '{ds.name}' GROUP BY file_idx"
        ).fetchall()
        for idx, n in per_file:
            file_reports[int(idx)].rejected_rows = int(n)
        for idx, st in stats.items():
            file_reports[idx].unknown_status = st.unknown_status
        con.execute(f"DROP VIEW {good}")
        con.execute(f"DROP TABLE IF EXISTS {dups_table}")
        self._drop_checked(checked, parts.values())

    def _drop_checked(self, checked: str, parts: Iterable[str]) -> None:
        """Give back the memory of a dataset's checked rows."""
        self.con.execute(f"DROP VIEW IF EXISTS {checked}")
        for part in parts:
            self.con.execute(f"DROP TABLE {part}")

    def _load_checked(self, ds: Dataset, idx: int, f: InputFile, fr: FileReport) -> str | None:
        """Read one file and check its rows into a table; on a file-level problem set ``fr``
        and return None.

        The file is read as text and checked in the same statement: a text copy of it would
        cost more to write than the checks themselves.
        """
        con = self.con
        table = f"checked_{ds.name}_{idx}"
        # Only a file with a quote, a CR or a non-ASCII byte can be badly framed or not UTF-8
        # (framing.py): DuckDB's reader would stop on some such files with an opaque message,
        # read others its own way, and check the UTF-8 of only the columns it reads.
        one_line = True
        if framing.needs_scan(f.path):
            scanned = framing.scan(f.path)
            if scanned.problem:
                fr.reason, fr.detail = FileReason.UNREADABLE, scanned.problem
                return None
            one_line = scanned.one_line
        located = locate_columns(
            ds,
            f.path,
            fr,
            self._copies,
            lambda source, width, before: self._count_rows(
                sql_string(str(source)), width, one_line, f"n_{table}", before, f.key
            ),
        )
        if located is None:
            return None
        self._sources[(ds.name, idx)] = (located.path, located.lines_before)
        select = ", ".join(
            f"c{located.positions[c]} AS {DIALECT.quote(c)}" for c in ds.column_names
        )
        raw = _read_sql(sql_string(str(located.path)), located.width, one_line, table, select)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS "
                f"{validation.checked_sql(ds, raw, DIALECT, carried=('_shape_ok',))}"
            )
        except duckdb.Error as exc:
            self._raise_resource(exc, f"reading {f.key}")
            fr.reason = FileReason.UNREADABLE
            fr.detail = f"cannot read as CSV: {_first_line(exc)}"
            return None
        problem = self._unreadable(table, located.lines_before)
        if problem:
            con.execute(f"DROP TABLE {table}")
            fr.reason, fr.detail = FileReason.UNREADABLE, problem
            return None
        return table

    def _unreadable(self, table: str, lines_before: int) -> str | None:
        """Why DuckDB could not read the file read as ``table`` (its rejects table says), with
        the line in the original file: ``lines_before`` its lines are not in the file read
        (header.Located)."""
        found = self.con.execute(
            f"SELECT min(error_type), min(line) FROM rej_{table} WHERE error_type IN "
            f"({', '.join(sql_string(e) for e in UNREADABLE_ERRORS)})"
        ).fetchone()
        if found and found[0]:
            line = int(found[1]) + lines_before
            return f"{UNREADABLE_ERRORS[str(found[0])]} (near line {line})"
        return None

    def _count_rows(
        self, path: str, width: int, one_line: bool, table: str, lines_before: int, key: str
    ) -> int:
        """Records of a file whose values are not checked (its verdict still says how many
        rows it held): every non-blank one, whatever its width. ValueError if unreadable,
        ResourceError if DuckDB ran short while reading landed file ``key``."""
        try:
            # fetchall: DuckDB writes the rejects table only once the scan is consumed.
            n = self.con.execute(
                f"SELECT count(_shape_ok) FROM {_read_sql(path, width, one_line, table)}"
            ).fetchall()[0][0]
        except duckdb.Error as exc:
            self._raise_resource(exc, f"reading {key}")
            raise ValueError(f"cannot read as CSV: {_first_line(exc)}") from exc
        problem = self._unreadable(table, lines_before)
        if problem:
            raise ValueError(problem)
        return int(n) + _scalar(self.con, f"SELECT count(DISTINCT line) FROM rej_{table}")

    def _collect_shape_rejects(self, ds: Dataset, idx: int, table: str) -> int:
        """Rows of the wrong width, one reject each: those DuckDB could not split (values
        past the extra column) by their line, those flagged in ``table`` by their rowid."""
        shape = f"'{ds.name}', {idx}, %s, '', '{Reason.BAD_ROW_SHAPE}'"
        self.con.execute(
            f"INSERT INTO rejects SELECT {shape % 'NULL, line'} "
            f"FROM (SELECT DISTINCT line FROM rej_{table}) AS s"
        )
        self.con.execute(
            f"INSERT INTO rejects SELECT {shape % 'rowid, NULL'} FROM {table} WHERE NOT _shape_ok"
        )
        return _scalar(
            self.con,
            f"SELECT count(*) FROM rejects WHERE dataset = '{ds.name}' AND file_idx = {idx} "
            f"AND reason = '{Reason.BAD_ROW_SHAPE}'",
        )

    def _write_rejects(self, keys: dict[tuple[str, int], InputFile], target: Path) -> None:
        """Map rejects to physical line numbers and original text, then write the CSV."""
        con = self.con
        con.execute(
            "CREATE OR REPLACE TEMP TABLE reject_lines (dataset VARCHAR, file_idx INT, "
            "logical BIGINT, record_idx BIGINT, line BIGINT, text VARCHAR)"
        )
        pairs = con.execute("SELECT DISTINCT dataset, file_idx FROM rejects").fetchall()
        for dataset, file_idx in pairs:
            source, before = self._sources[(str(dataset), int(file_idx))]
            con.execute(
                f"INSERT INTO reject_lines SELECT '{dataset}', {file_idx}, logical, record_idx, "
                f"line + {before}, text FROM ({_records_sql(source, str(dataset), int(file_idx))}) "
                "AS r"
            )
        key_values = ", ".join(f"('{ds}', {i}, {sql_string(f.key)})" for (ds, i), f in keys.items())
        con.execute(
            f'COPY (SELECT k.key AS file, l.line, r.column_name AS "column", r.reason, '
            f"l.text FROM rejects r JOIN (VALUES {key_values}) AS k(dataset, file_idx, key) "
            "ON r.dataset = k.dataset AND r.file_idx = k.file_idx "
            "JOIN reject_lines l ON l.dataset = r.dataset AND l.file_idx = r.file_idx AND "
            "(l.record_idx = r.row_idx OR l.logical = r.logical_line) "
            f'ORDER BY file, l.line, "column") TO {sql_string(str(target))} '
            "(FORMAT csv, HEADER true)"
        )

    # ----------------------------------------------------------------- transform, recompute

    def _kpis(self, curated: CuratedLog, seq: int | None, affected: str) -> TransformResult:
        """Views over the curated log (base.version_views for batch ``seq``), then the KPIs
        of the dates the query ``affected`` lists.

        Raises ResourceError when DuckDB runs out of memory or disk, EngineError on any
        other failure of the KPI SQL.
        """
        with self._resources("computing KPIs"):
            return self._compute(curated, seq, affected)

    def _compute(self, curated: CuratedLog, seq: int | None, affected: str) -> TransformResult:
        if curated.is_uri:
            raise EngineError(f"the DuckDB engine reads a local curated log, not {curated.root}")
        con = self.con
        # No result here depends on row order: keeping it costs 10-15% on the KPI tables.
        con.execute("SET preserve_insertion_order = false")
        rows: dict[str, int] = {}
        for ds in DATASETS:
            short = short_name(ds.name)
            schema = ", ".join(f"{c} {t}" for c, t in CURATED_SCHEMA[ds.name])
            files = curated.files(ds.name)
            if not files:
                con.execute(f"CREATE OR REPLACE TEMP TABLE all_{short} ({schema}, _seq BIGINT)")
            else:
                listed = "[" + ", ".join(sql_string(f) for f in files) + "]"
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW all_{short} AS SELECT * EXCLUDE (filename), "
                    f"CAST(regexp_extract(filename, {sql_string(BATCH_SEQ_SQL_PATTERN)}, 1) "
                    f"AS BIGINT) AS _seq FROM read_parquet({listed}, filename = true)"
                )
            for name, sql in version_views(ds.name, len(files), seq).items():
                con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
            rows[ds.name] = _scalar(con, f"SELECT count(*) FROM cur_{short}")
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE affected_dates AS {affected}")
            for name, sql in kpis.kpi_relations():
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
            dates = [r[0] for r in con.execute("SELECT order_date FROM affected_dates").fetchall()]
            order_rows = con.execute(kpis.order_metrics_sql(DIALECT)).fetchall()
            cat_rows = con.execute(kpis.category_metrics_sql(DIALECT)).fetchall()
            waiting = con.execute(kpis.waiting_sql()).fetchone()
        except duckdb.Error as exc:
            self._raise_resource(exc, "computing KPIs")
            raise EngineError(f"KPI computation failed: {_first_line(exc)}") from exc
        finally:
            for name, _sql in kpis.kpi_relations():
                con.execute(f"DROP TABLE IF EXISTS {name}")
        assert waiting is not None
        return TransformResult(
            affected_dates=sorted(dates),
            order_metrics=kpis.order_metrics_from_rows(order_rows),
            category_metrics=kpis.category_metrics_from_rows(cat_rows),
            waiting_for_order=int(waiting[0]),
            waiting_for_product=int(waiting[1]),
            curated_rows=rows,
        )


def resource_error(
    exc: BaseException, doing: str, settings: Settings, spill: Path
) -> ResourceError | None:
    """``exc`` as a ResourceError when DuckDB ran short of memory, disk or open files, with
    the setting to change; None for any other error. The one rule for this engine:

    - ``duckdb.OutOfMemoryException`` ("Out of Memory Error: could not allocate block of size
      30.5 MiB (32.0 MiB/38.1 MiB used)"): ECOMPIPE_DUCKDB_MEMORY_LIMIT, and the threads;
      when its text names max_temp_directory_size ("failed to offload data block ..."), the
      spill folder ``spill`` (``<workspace>/tmp``) has no room left on its disk;
    - ``duckdb.IOException`` whose text holds a resource errno's own words
      (engines.base.resource_errno: 'IO Error: Could not write file "<path>": No space left
      on device', 'Cannot open file "<path>": Too many open files'): that errno's advice and
      the path DuckDB names.
    """
    detail = _first_line(exc)
    limit = f"ECOMPIPE_DUCKDB_MEMORY_LIMIT (now {settings.duckdb_memory_limit})"
    if isinstance(exc, duckdb.OutOfMemoryException):
        if SPILL_FULL in str(exc):
            return ResourceError(
                f"{doing}: DuckDB's spill folder in {spill} is full: free disk space there, "
                f"or raise {limit} so that less is spilled (DuckDB: {detail})"
            )
        threads = ""
        if settings.duckdb_threads != 1:  # each thread holds buffers of its own
            now = settings.duckdb_threads or "one per core"
            threads = f", or lower ECOMPIPE_DUCKDB_THREADS (now {now})"
        return ResourceError(
            f"{doing}: DuckDB ran out of memory: raise {limit}{threads} ({detail})"
        )
    if isinstance(exc, duckdb.IOException):
        path = _QUOTED_PATH.search(detail)
        return resource_error_in(detail, doing, path.group(1) if path else None)
    return None


def _read_sql(path: str, width: int, one_line: bool, table: str, select: str = "") -> str:
    """A subquery giving ``_shape_ok`` and ``select`` for every record of the CSV at ``path``
    (an SQL string), its header ``width`` wide, but those DuckDB cannot split (values past
    the extra column below), which go to ``rej_<table>``.

    The header is parsed by ecompipe, so DuckDB's sniffer (which samples rows and gives up on
    ragged files) is off; every column is read as text under a positional name ``c<i>``.
    Every record is a row, so a row's place is its record's place in the file (empty lines
    aside: DuckDB skips them). ``_shape_ok`` is true for a row the header's width, false for
    another, NULL for a blank record (validation.BLANK_RECORD_PATTERN), which is no row: a
    flag, since a filter here costs 0.7 s per 10M rows. One column more than the header,
    padded with NULL: DuckDB quietly drops empty values past the last column ('1,2,3,4,'
    reads as four values), and the extra column ``c<width>`` shows them. With a line feed as
    the null string (no unquoted value holds one) an empty value reads as '' and only
    padding is NULL, which shows a short row. DuckDB's parallel reader cannot pad a record
    that spans lines: such a file (few are) is read by one thread.
    """
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width + 1)) + "}"
    shape = (
        f"CASE WHEN c1 IS NULL AND {DIALECT.strip('c0')} = '' THEN NULL "
        f"ELSE c{width - 1} IS NOT NULL AND c{width} IS NULL END"
    )
    return (
        f"(SELECT {shape} AS _shape_ok{', ' if select else ''}{select} FROM read_csv({path}, "
        f"{CSV_OPTIONS}, auto_detect = false, columns = {columns}, null_padding = true, "
        f"nullstr = {sql_string(chr(10))}, allow_quoted_nulls = false, "
        f"parallel = {str(one_line).lower()}, store_rejects = true, "
        f"rejects_table = 'rej_{table}', rejects_scan = 'scan_{table}'))"
    )


def _records_sql(path: Path, dataset: str, file_idx: int) -> str:
    """Physical line, original text and record index of every record of a CSV file.

    A line starts a record when the quotes before it are balanced; DuckDB numbers such
    "logical" lines (empty ones included) in its rejects table, and numbers the other
    non-empty records in order as rowid. Both are mapped back to the physical line and its
    text here.
    """
    p = sql_string(str(path))
    lines = (
        f"SELECT unnest(string_split(content, chr(10))) AS l, "
        f"generate_subscripts(string_split(content, chr(10)), 1) AS line FROM read_text({p})"
    )
    shaped = (
        f"SELECT DISTINCT logical_line FROM rejects WHERE dataset = '{dataset}' AND "
        f"file_idx = {file_idx} AND logical_line IS NOT NULL"
    )
    return (
        f"WITH raw AS ({lines}), "
        "q AS (SELECT line, rtrim(l, chr(13)) AS l, "
        "length(l) - length(replace(l, '\"', '')) AS nq FROM raw), "
        "p AS (SELECT *, coalesce(sum(nq) OVER (ORDER BY line ROWS BETWEEN UNBOUNDED PRECEDING "
        "AND 1 PRECEDING), 0) % 2 AS par FROM q), "
        "u AS (SELECT *, sum(CASE WHEN par = 0 THEN 1 ELSE 0 END) OVER (ORDER BY line) AS logical "
        "FROM p), "
        "rec AS (SELECT logical, min(line) AS line, string_agg(l, chr(10) ORDER BY line) AS text "
        # DuckDB skips empty lines: no rows (blank records are, flagged: _read_sql).
        "FROM u GROUP BY logical HAVING logical > 1 AND arg_min(l, line) <> '') "
        "SELECT logical, line, text, CASE WHEN logical IN (SELECT logical_line FROM shaped) "
        "THEN NULL ELSE row_number() OVER (PARTITION BY logical IN (SELECT logical_line FROM "
        "shaped) ORDER BY logical) - 1 END AS record_idx FROM rec"
    ).replace("FROM shaped", f"FROM ({shaped}) AS s")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row: Any = con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
