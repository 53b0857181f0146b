"""DuckDB engine: the embedded default.

Reads each CSV once, as text checked by the contract SQL from validation.py in the same
statement. Only DuckDB's primitives live here (reading a file, relations, SQL, Parquet, its
resource errors); the validation and KPI flow is engines/flow.py's, and rejected rows are
mapped back to their lines by engines/records.py in this engine's session.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from ecompipe import validation
from ecompipe.config import Settings
from ecompipe.contracts import Dataset, FileReason
from ecompipe.dialect import sql_string
from ecompipe.engines import framing
from ecompipe.engines.base import (
    BATCH_SEQ_SQL_PATTERN,
    CURATED_SCHEMA,
    CuratedLog,
    resource_error_in,
)
from ecompipe.engines.current import BATCH_COLUMN
from ecompipe.engines.flow import EngineFlow, FileRead
from ecompipe.engines.framing import Framing
from ecompipe.engines.header import Located
from ecompipe.errors import EngineError, ResourceError
from ecompipe.validation import FileReport

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


class DuckDBEngine(EngineFlow):
    """Validation and KPIs in an in-memory DuckDB that spills to ``temp_dir``."""

    name = "duckdb"
    reads_uris = False
    dialect = DIALECT

    def __init__(self, settings: Settings, temp_dir: str | None = None) -> None:
        self._settings = settings
        base = Path(temp_dir) if temp_dir else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        # A spill folder of its own, removed on close: concurrent runs share the workspace's
        # tmp/, and no run may see, fill or clean up another run's spill files.
        self._temp = tempfile.mkdtemp(prefix="ecompipe-duckdb-", dir=base)
        self._scratch = Path(self._temp)
        # Registered relations and their kind (VIEW or TABLE): DuckDB drops each by its kind.
        self._relations: dict[str, str] = {}
        self.con = connect(settings, self._temp)

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
    def _guard(self, doing: str, failed: str | None) -> Iterator[None]:
        """A DuckDB error of the block: a ResourceError if it is one; else an EngineError
        with ``failed``, or unchanged without."""
        try:
            yield
        except duckdb.Error as exc:
            self._raise_resource(exc, doing)
            if failed is None:
                raise
            raise EngineError(f"{failed}: {_first_line(exc)}") from exc

    def _prepare(self, validating: bool) -> None:
        # A row's position in its file is its rowid in the table it is read into; no KPI
        # depends on row order, and keeping it costs 10-15% on the KPI tables.
        self.con.execute(f"SET preserve_insertion_order = {str(validating).lower()}")

    def _local(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def _register(self, name: str, sql: str, keep: bool = False) -> None:
        kind = "TABLE" if keep else "VIEW"
        self._drop(name)
        self.con.execute(f"CREATE OR REPLACE TEMP {kind} {name} AS {sql}")
        self._relations[name] = kind

    def _drop(self, name: str) -> None:
        kind = self._relations.pop(name, None)
        if kind is not None:
            self.con.execute(f"DROP {kind} IF EXISTS {name}")

    def _drop_all(self) -> None:
        for name in list(self._relations):
            self._drop(name)

    def _write_parquet(self, sql: str, target: Path) -> None:
        self.con.execute(
            f"COPY ({sql}) TO {sql_string(str(target))} (FORMAT parquet, COMPRESSION zstd)"
        )

    def _keep_rejects(self, name: str, sql: str, checked: str) -> str:
        # A row's rowid is its position already; the table outlives the dataset's relations.
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        return name

    # ----------------------------------------------------------------- validation

    def _frame(self, path: Path) -> Framing:
        # Only a file with a quote, a CR or a non-ASCII byte can be badly framed or not UTF-8
        # (framing.py): DuckDB's reader would stop on some such files with an opaque message,
        # read others its own way, and check the UTF-8 of only the columns it reads.
        return framing.scan(path) if framing.needs_scan(path) else framing.Framing(None, True)

    def _load(self, read: FileRead, located: Located, fr: FileReport) -> str | None:
        """Read one file and check its rows into a table (the file is read as text and
        checked in the same statement: a text copy of it would cost more to write than the
        checks themselves)."""
        ds = read.dataset
        table = f"checked_{read.name}"
        select = ", ".join(
            f"c{located.positions[c]} AS {DIALECT.quote(c)}" for c in ds.column_names
        )
        raw = _read_sql(sql_string(str(located.path)), located.width, read.one_line, table, select)
        try:
            self._register(
                table,
                validation.checked_sql(ds, raw, DIALECT, carried=("_shape_ok",)),
                keep=True,
            )
        except duckdb.Error as exc:
            self._raise_resource(exc, f"reading {read.file.key}")
            fr.reason = FileReason.UNREADABLE
            fr.detail = f"cannot read as CSV: {_first_line(exc)}"
            return None
        problem = self._unreadable(table, located.lines_before)
        if problem:
            self._drop(table)
            fr.reason, fr.detail = FileReason.UNREADABLE, problem
            return None
        return table

    def _checked(self, ds: Dataset, parts: dict[int, str]) -> tuple[str, str]:
        # A row's index among its file's records is its rowid in the file's table; blank
        # records (_shape_ok NULL) are no rows. Records DuckDB could not split (values past
        # the extra column) are in its rejects table, by record number (records.py).
        checked, shape = f"checked_{ds.name}", f"shape_{ds.name}"
        self._register(
            checked,
            " UNION ALL ".join(
                f"SELECT {idx} AS _file_idx, rowid AS _row, * EXCLUDE (_shape_ok) FROM {part} "
                "WHERE _shape_ok"
                for idx, part in parts.items()
            ),
        )
        self._register(
            shape,
            " UNION ALL ".join(
                f"SELECT {idx} AS _file_idx, rowid AS _row FROM {part} WHERE NOT _shape_ok "
                f"UNION ALL SELECT {idx}, -CAST(line AS BIGINT) FROM "
                f"(SELECT DISTINCT line FROM rej_{part}) AS s"
                for idx, part in parts.items()
            ),
        )
        return checked, shape

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

    def _count_records(self, read: FileRead, path: Path, width: int, lines_before: int) -> int:
        """Records of a file whose values are not checked, as DuckDB reads them: every
        non-blank one, whatever its width. ValueError if DuckDB cannot read the file (an
        unreadable verdict comes first), ResourceError if it ran short."""
        table = f"n_checked_{read.name}"
        try:
            # fetchall: DuckDB writes the rejects table only once the scan is consumed.
            n = self.con.execute(
                f"SELECT count(_shape_ok) FROM "
                f"{_read_sql(sql_string(str(path)), width, read.one_line, table)}"
            ).fetchall()[0][0]
        except duckdb.Error as exc:
            self._raise_resource(exc, f"reading {read.file.key}")
            raise ValueError(f"cannot read as CSV: {_first_line(exc)}") from exc
        problem = self._unreadable(table, lines_before)
        if problem:
            raise ValueError(problem)
        return int(n) + self._scalar(f"SELECT count(DISTINCT line) FROM rej_{table}")

    # ----------------------------------------------------------------- transform, recompute

    def _check_reads(self, curated: CuratedLog) -> None:
        if curated.is_uri:
            raise EngineError(f"the DuckDB engine reads a local curated log, not {curated.root}")

    def _parquet(self, relation: str, dataset: str, files: list[str], log: bool = True) -> None:
        cols = ", ".join(c for c, _ in CURATED_SCHEMA[dataset])
        if not files:
            schema = ", ".join(f"{c} {t}" for c, t in CURATED_SCHEMA[dataset])
            self._drop(relation)
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {relation} ({schema}, _seq BIGINT)")
            self._relations[relation] = "TABLE"
            return
        listed = "[" + ", ".join(sql_string(f) for f in files) + "]"
        seq = (
            f"CAST(regexp_extract(filename, {sql_string(BATCH_SEQ_SQL_PATTERN)}, 1) AS BIGINT)"
            if log
            else BATCH_COLUMN
        )
        self._register(
            relation,
            f"SELECT {cols}, {seq} AS _seq FROM read_parquet({listed}, filename = true, "
            "hive_partitioning = false)",
        )

    def _write_partitioned(self, sql: str, column: str, folder: Path) -> None:
        self.con.execute(
            f"COPY ({sql}) TO {sql_string(str(folder))} "
            f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({column}))"
        )


def connect(settings: Settings, spill: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB session with the settings' memory limit and threads, spilling
    into the folder ``spill``, its dates in UTC."""
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {sql_string(settings.duckdb_memory_limit)}")
    con.execute(f"SET temp_directory = {sql_string(spill)}")
    con.execute("SET TimeZone = 'UTC'")
    if settings.duckdb_threads > 0:
        con.execute(f"SET threads = {settings.duckdb_threads}")
    return con


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
