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
    column_list,
    resource_error_in,
)
from ecompipe.engines.current import BATCH_COLUMN
from ecompipe.engines.flow import EngineFlow, FileRead, Loading
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

#: How the curated log and state are written: zstd at level 1. At its default level (3) the
#: state of 10M items took 0.6-0.8 s longer to write (orders 1.28-1.33 s against 0.87-0.95 s,
#: items 2.64-2.72 s against 2.27-2.52 s), and the files were not smaller overall (the same
#: rows, one thread, only the level changed: orders 45.4 MiB at level 3, 45.6 at level 1;
#: items 54.1 and 48.1).
PARQUET = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1"

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
        # A table of several files' rows (_load_all) -> the table of its readable files.
        self._shared: dict[str, str] = {}
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
        self._shared.clear()

    def _write_parquet(self, sql: str, target: Path) -> None:
        self.con.execute(f"COPY ({sql}) TO {sql_string(str(target))} ({PARQUET})")

    def _keep_rejects(self, name: str, sql: str, checked: str) -> str:
        # A row's rowid is its position already; the table outlives the dataset's relations.
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
        return name

    # ----------------------------------------------------------------- validation

    def _frame(self, path: Path) -> Framing:
        # Only a file with a quote, a CR or a non-ASCII byte can be badly framed or not UTF-8
        # (framing.py): DuckDB's reader would stop on some such files with an opaque message,
        # read others its own way, and check the UTF-8 of only the columns it reads.
        if framing.needs_scan(path):
            return framing.scan(path)
        return framing.Framing(None, True, trailing_comma=True)  # not looked for: no matter

    def _load(self, read: FileRead, located: Located, fr: FileReport) -> str | None:
        """Read one file and check its rows into a table (the file is read as text and
        checked in the same statement: a text copy of it would cost more to write than the
        checks themselves)."""
        table = f"checked_{read.name}"
        loading = [Loading(read, located, fr)]
        if not read.one_line and not read.trailing_comma:
            # Records that span lines: DuckDB's parallel reader cannot pad them. Read unpadded
            # in parallel first; if DuckDB rejected no record, every one has the header's width
            # (a trailing comma, whose empty values it would drop unseen, framing looked for).
            try:
                self._read_checked(table, loading, parallel=True, padded=False)
                if not self._scalar(f"SELECT count(*) FROM rej_{table}"):
                    return table
            except duckdb.Error as exc:
                self._raise_resource(exc, f"reading {read.file.key}")
            self._drop(table)  # then padded, by one thread: the rows of the wrong width show
        try:
            self._read_checked(table, loading)
        except duckdb.Error as exc:
            self._raise_resource(exc, f"reading {read.file.key}")
            fr.reason = FileReason.UNREADABLE
            fr.detail = f"cannot read as CSV: {_first_line(exc)}"
            return None
        problem = self._unreadable(table, [located.lines_before]).get(0)
        if problem:
            self._drop(table)
            fr.reason, fr.detail = FileReason.UNREADABLE, problem
            return None
        return table

    def _load_all(self, ds: Dataset, loads: list[Loading]) -> dict[int, str]:
        """Files whose contract columns sit at the same places are read by one read_csv into
        one table (a statement a file costs 10-15 ms: an export split into 500 files would
        cost more than its rows), ``_in_group`` the file's place in the read; a file alone in
        its layout, or every file of a read DuckDB fails on as a whole, is read by itself
        (``_load``), so that each file's verdict is what a read of it alone gives."""
        layouts: dict[tuple[int, tuple[int, ...], bool], list[Loading]] = {}
        for loading in loads:
            located = loading.located
            layout = tuple(located.positions[c] for c in ds.column_names)
            layouts.setdefault((located.width, layout, loading.read.one_line), []).append(loading)
        parts: dict[int, str] = {}
        for number, group in enumerate(layouts.values()):
            table = f"checked_{ds.name}_files{number}"
            if len(group) > 1:
                try:
                    self._read_checked(table, group)
                except duckdb.Error as exc:
                    self._raise_resource(exc, f"reading {len(group)} {ds.name} files")
                    self._drop(table)
                else:
                    parts.update(self._readable(table, group))
                    continue
            parts.update(super()._load_all(ds, group))
        return parts

    def _read_checked(
        self,
        table: str,
        group: list[Loading],
        *,
        parallel: bool | None = None,
        padded: bool = True,
    ) -> None:
        """The table ``table`` of the checked rows of the files of ``group``, which share a
        layout, read by one read_csv (with ``_in_group``, a file's place in it, for more
        than one file); ``parallel`` and ``padded`` as _read_sql's (``parallel`` by default
        when every record is one line)."""
        first = group[0]
        ds, located = first.read.dataset, first.located
        select = ", ".join(
            f"c{located.positions[c]} AS {DIALECT.quote(c)}" for c in ds.column_names
        )
        carried: tuple[str, ...] = ("_shape_ok",)
        if len(group) > 1:
            select, carried = f"file_index AS _in_group, {select}", (*carried, "_in_group")
        paths = [sql_string(str(g.located.path)) for g in group]
        listed = paths[0] if len(paths) == 1 else "[" + ", ".join(paths) + "]"
        self._fresh_rejects(table)
        in_parallel = first.read.one_line if parallel is None else parallel
        raw = _read_sql(listed, located.width, table, select, parallel=in_parallel, padded=padded)
        self._register(table, validation.checked_sql(ds, raw, DIALECT, carried), keep=True)

    def _readable(self, table: str, group: list[Loading]) -> dict[int, str]:
        """Of the files read together into ``table``, those DuckDB could read (the others get
        their verdict), by file index; recorded in ``files_<table>`` with the rowid of each
        one's first row (its rows are consecutive in file order: insertion order is kept
        while validating), so that a row's place in its file is its rowid less that."""
        problems = self._unreadable(table, [g.located.lines_before for g in group])
        readable: dict[int, str] = {}
        for place, loading in enumerate(group):
            if place in problems:
                loading.fr.reason, loading.fr.detail = FileReason.UNREADABLE, problems[place]
            else:
                readable[loading.read.idx] = table
        if readable:
            places = ", ".join(
                f"({place}, {g.read.idx})"
                for place, g in enumerate(group)
                if g.read.idx in readable
            )
            files = f"files_{table}"
            self._register(
                files,
                # Every readable file, though no row of it is in the table: the records of
                # one may all be in the rejects table (too wide to split into values).
                f"SELECT _in_group, _file_idx, _first FROM (VALUES {places}) AS f(_in_group, "
                f"_file_idx) LEFT JOIN (SELECT _in_group, min(rowid) AS _first FROM {table} "
                "GROUP BY _in_group) AS r USING (_in_group)",
                keep=True,
            )
            self._shared[table] = files
        else:
            self._drop(table)
        return readable

    def _fresh_rejects(self, table: str) -> None:
        """Drop the rejects tables of an earlier read of ``table`` in this session (a file
        read again: a retried or resumed validation, a second reading): DuckDB appends to them."""
        self.con.execute(f"DROP TABLE IF EXISTS rej_{table}")
        self.con.execute(f"DROP TABLE IF EXISTS scan_{table}")

    def _checked(self, ds: Dataset, parts: dict[int, str]) -> tuple[str, str]:
        # A row's index among its file's records is its rowid in the file's table; blank
        # records (_shape_ok NULL) are no rows. Records DuckDB could not split (values past
        # the extra column) are in its rejects table, by record number (records.py).
        # A table of several files (_load_all) gives each row's file index and place by a
        # join with its table of readable files (a file DuckDB could not read is not there).
        checked, shape = f"checked_{ds.name}", f"shape_{ds.name}"
        rows: list[str] = []
        shapes: list[str] = []
        shared: set[str] = set()
        for idx, part in parts.items():
            files = self._shared.get(part)
            if files is None:
                rows.append(
                    f"SELECT {idx} AS _file_idx, rowid AS _row, * EXCLUDE (_shape_ok) "
                    f"FROM {part} WHERE _shape_ok"
                )
                shapes.append(
                    f"SELECT {idx} AS _file_idx, rowid AS _row FROM {part} WHERE NOT _shape_ok "
                    f"UNION ALL SELECT {idx}, -CAST(line AS BIGINT) FROM "
                    f"(SELECT DISTINCT line FROM rej_{part}) AS s"
                )
            elif part not in shared:
                shared.add(part)
                joined = f"{part} AS t JOIN {files} AS f USING (_in_group)"
                rows.append(
                    f"SELECT f._file_idx, t.rowid - f._first AS _row, "
                    f"t.* EXCLUDE (_shape_ok, _in_group) FROM {joined} WHERE _shape_ok"
                )
                # A rejects table's file_id is the file's place in the read, as file_index.
                shapes.append(
                    f"SELECT f._file_idx, t.rowid - f._first AS _row FROM {joined} "
                    f"WHERE NOT _shape_ok UNION ALL SELECT f._file_idx, -CAST(s.line AS BIGINT) "
                    f"FROM (SELECT DISTINCT file_id, line FROM rej_{part}) AS s "
                    f"JOIN {files} AS f ON f._in_group = s.file_id"
                )
        self._register(checked, " UNION ALL ".join(rows))
        self._register(shape, " UNION ALL ".join(shapes))
        return checked, shape

    def _unreadable(self, table: str, lines_before: list[int]) -> dict[int, str]:
        """Why DuckDB could not read files read into ``table`` (its rejects table says), by
        the file's place in the read, with the line in the original file: ``lines_before[i]``
        lines of file ``i`` are not in the file read (header.Located)."""
        found = self.con.execute(
            f"SELECT file_id, min(error_type), min(line) FROM rej_{table} WHERE error_type IN "
            f"({', '.join(sql_string(e) for e in UNREADABLE_ERRORS)}) GROUP BY file_id"
        ).fetchall()
        return {
            int(place): f"{UNREADABLE_ERRORS[str(error)]} "
            f"(near line {int(line) + lines_before[int(place)]})"
            for place, error, line in found
        }

    def _count_records(self, read: FileRead, path: Path, width: int, lines_before: int) -> int:
        """Records of a file whose values are not checked, as DuckDB reads them: every
        non-blank one, whatever its width. ValueError if DuckDB cannot read the file (an
        unreadable verdict comes first), ResourceError if it ran short."""
        table = f"n_checked_{read.name}"
        try:
            # fetchall: DuckDB writes the rejects table only once the scan is consumed.
            self._fresh_rejects(table)
            n = self.con.execute(
                f"SELECT count(_shape_ok) FROM "
                f"{_read_sql(sql_string(str(path)), width, table, parallel=read.one_line)}"
            ).fetchall()[0][0]
        except duckdb.Error as exc:
            self._raise_resource(exc, f"reading {read.file.key}")
            raise ValueError(f"cannot read as CSV: {_first_line(exc)}") from exc
        problem = self._unreadable(table, [lines_before]).get(0)
        if problem:
            raise ValueError(problem)
        return int(n) + self._scalar(f"SELECT count(DISTINCT line) FROM rej_{table}")

    # ----------------------------------------------------------------- transform, recompute

    def _check_reads(self, curated: CuratedLog) -> None:
        if curated.is_uri:
            raise EngineError(f"the DuckDB engine reads a local curated log, not {curated.root}")

    def _parquet(self, relation: str, dataset: str, files: list[str], log: bool = True) -> None:
        cols = column_list(dataset)
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
            f"COPY ({sql}) TO {sql_string(str(folder))} ({PARQUET}, PARTITION_BY ({column}))"
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


def _read_sql(
    path: str, width: int, table: str, select: str = "", *, parallel: bool, padded: bool = True
) -> str:
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
    that spans lines: such a file is read ``parallel`` only if its records are one line each.

    Not ``padded``: exactly ``width`` columns, read in parallel whatever the records; DuckDB
    rejects a record of another width (but a trailing comma's), so with no rejects every
    record is a row of the header's width.
    """
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width + padded)) + "}"
    shape = (
        f"CASE WHEN c1 IS NULL AND {DIALECT.strip('c0')} = '' THEN NULL "
        f"ELSE c{width - 1} IS NOT NULL AND c{width} IS NULL END"
        if padded
        else "TRUE"
    )
    return (
        f"(SELECT {shape} AS _shape_ok{', ' if select else ''}{select} FROM read_csv({path}, "
        f"{CSV_OPTIONS}, auto_detect = false, columns = {columns}, "
        f"null_padding = {str(padded).lower()}, nullstr = {sql_string(chr(10))}, "
        f"allow_quoted_nulls = false, parallel = {str(parallel).lower()}, "
        f"store_rejects = true, rejects_table = 'rej_{table}', rejects_scan = 'scan_{table}'))"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
