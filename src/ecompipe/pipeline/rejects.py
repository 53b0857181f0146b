"""Every rejected row and file of every execution, as one table DuckDB queries.

The store is what validation already writes through the ObjectStore port, once, with the
verdict: each execution's ``quarantine/<execution>/rejects.csv`` (one line per rejected value:
file, line, column, reason, original text) and its file verdicts (kept in the execution log's
summary, the same as ``validation_report.json``). No second copy is kept in sync, so the store
is complete and crash-safe by construction, on every backend (a folder, S3, memory).

A query reads the rejects of the executions it selects into DuckDB (each file handed over
whole, never row by row) and filters, counts and writes its output there: the JSON and CSV
outputs are written by DuckDB to a file and streamed out in blocks.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import duckdb

from ecompipe.dialect import sql_string
from ecompipe.engines.base import REJECTS_COLUMNS
from ecompipe.stores.base import ExecutionLog, ExecutionRecord, ObjectStore

#: Columns a rejects query lists, in order (``line`` and ``column`` are empty for a file
#: rejected whole: its ``reason`` is the file's, its ``text`` the verdict's detail).
COLUMNS = ("execution", "day", "dataset", "file", "line", "column", "reason", "text")

#: Columns of ``rejects summary``: per execution day (UTC), dataset and reason.
SUMMARY_COLUMNS = ("day", "dataset", "reason", "rejects", "files", "executions")


@dataclass(frozen=True)
class RejectsQuery:
    """Which rejects to list: each filter None means all. ``file`` is a key or a glob
    (``orders/*.csv``); ``limit`` 0 means no limit; ``whole_files`` False leaves out the files
    rejected whole (rejected rows only)."""

    execution: str | None = None
    dataset: str | None = None
    reason: str | None = None
    file: str | None = None
    limit: int = 1000
    whole_files: bool = True


def _with_rejects(record: ExecutionRecord) -> bool:
    validation = record.summary.get("validation") or {}
    return bool(validation.get("rejected_rows") or validation.get("files_rejected"))


class Rejects:
    """The rejects of the executions in ``log``, read through ``store``."""

    def __init__(self, store: ObjectStore, log: ExecutionLog) -> None:
        self.store, self.log = store, log

    def executions(self, prefix: str | None = None) -> list[ExecutionRecord]:
        """Executions (id or prefix ``prefix``) whose validation rejected a row or a file,
        oldest first."""
        return [r for r in self.log.find(prefix or "") if _with_rejects(r)]

    @contextmanager
    def _table(self, records: Iterable[ExecutionRecord]) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection with the table ``rejects`` (COLUMNS, plus ``seq``) of
        ``records`` (those without rejects add nothing)."""
        with tempfile.TemporaryDirectory(prefix="ecompipe-rejects-") as folder:
            con = duckdb.connect()
            try:
                _fill(con, Path(folder), self.store, [r for r in records if _with_rejects(r)])
                yield con
            finally:
                con.close()

    def write(self, query: RejectsQuery, fmt: str, out: IO[bytes]) -> int:
        """Write the rejects ``query`` selects to ``out`` as ``csv`` or ``json`` (one array);
        returns how many matched in all (the output holds at most ``query.limit``)."""
        with self._table(self.executions(query.execution)) as con:
            listed, params, total = _listing(con, query)
            with tempfile.TemporaryDirectory(prefix="ecompipe-rejects-out-") as folder:
                target = Path(folder) / f"rejects.{fmt}"
                options = "FORMAT csv, HEADER true" if fmt == "csv" else "FORMAT json, ARRAY true"
                con.execute(f"COPY ({listed}) TO {sql_string(str(target))} ({options})", params)
                with target.open("rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)
        return total

    def rows(self, query: RejectsQuery) -> tuple[list[dict[str, Any]], int]:
        """The first ``query.limit`` rejects it selects as dicts (for a table on a terminal),
        and how many matched in all."""
        with self._table(self.executions(query.execution)) as con:
            listed, params, total = _listing(con, query)
            cursor = con.execute(listed, params)
            return [dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()], total

    def execution_rows(
        self, record: ExecutionRecord, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """The first ``limit`` rejected rows of one execution (REJECTS_COLUMNS, in the order
        ``rows`` lists them; a file rejected whole is no row), and how many it has in all."""
        if not _with_rejects(record):
            return [], 0  # no DuckDB session for an execution that rejected nothing
        with self._table([record]) as con:
            query = RejectsQuery(limit=limit, whole_files=False)
            listed, params, total = _listing(con, query, REJECTS_COLUMNS)
            # limit 0 asks for the count only (a query's 0 would list them all).
            found = con.execute(listed, params).fetchall() if limit else []
            return [dict(zip(REJECTS_COLUMNS, row, strict=True)) for row in found], total

    def problems(self, records: Iterable[ExecutionRecord]) -> dict[str, int]:
        """The rejected rows' problems of ``records`` counted per reason, most first (a row
        with several problems counts under each; the files rejected whole are not rows)."""
        with self._table(records) as con:
            where, params = _where(RejectsQuery(whole_files=False))
            cursor = con.execute(
                f"SELECT reason, count(*) AS n FROM rejects WHERE {where} "
                "GROUP BY reason ORDER BY n DESC, reason",
                params,
            )
            return {str(reason): int(n) for reason, n in cursor.fetchall()}

    def summary(self, query: RejectsQuery) -> list[dict[str, Any]]:
        """Rejects counted per execution day, dataset and reason (SUMMARY_COLUMNS): ``rejects``
        counts rejected values and files, ``files`` the files they are in."""
        with self._table(self.executions(query.execution)) as con:
            where, params = _where(query)
            cursor = con.execute(
                "SELECT day, dataset, reason, count(*), count(DISTINCT execution || '/' || file), "
                f"count(DISTINCT execution) FROM rejects WHERE {where} "
                "GROUP BY ALL ORDER BY day, dataset, reason",
                params,
            )
            return [dict(zip(SUMMARY_COLUMNS, row, strict=True)) for row in cursor.fetchall()]


def _quoted(column: str) -> str:
    return f'"{column}"'


def _where(query: RejectsQuery) -> tuple[str, list[str]]:
    """The WHERE clause of ``query``'s filters (the execution's is applied by reading)."""
    clauses, params = ["true"], []
    for column, value in (("dataset", query.dataset), ("reason", query.reason)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.file is not None:
        clauses.append("(file = ? OR file GLOB ?)")
        params += [query.file, query.file]
    if not query.whole_files:
        clauses.append("line IS NOT NULL")
    return " AND ".join(clauses), params


def _listing(
    con: duckdb.DuckDBPyConnection, query: RejectsQuery, columns: Iterable[str] = COLUMNS
) -> tuple[str, list[str], int]:
    """The SELECT listing ``columns`` of ``query``'s rejects in order (at most its limit), its
    parameters, and how many match in all."""
    where, params = _where(query)
    found = con.execute(f"SELECT count(*) FROM rejects WHERE {where}", params).fetchone()
    listed = (
        f"SELECT {', '.join(_quoted(c) for c in columns)} FROM rejects WHERE {where} "
        f"ORDER BY seq, file, line NULLS FIRST, {_quoted('column')}"
        + (f" LIMIT {int(query.limit)}" if query.limit else "")
    )
    return listed, params, int(found[0]) if found else 0


def _fill(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    store: ObjectStore,
    records: list[ExecutionRecord],
) -> None:
    """Create ``rejects`` from the records' rejects CSVs (read by one DuckDB scan) and their
    rejected files (few: one row each)."""
    con.execute(
        "CREATE TEMP TABLE executions (execution VARCHAR, seq BIGINT, day DATE, csv VARCHAR)"
    )
    con.execute(
        "CREATE TEMP TABLE verdicts (execution VARCHAR, file VARCHAR, dataset VARCHAR, "
        "accepted BOOLEAN, reason VARCHAR, detail VARCHAR)"
    )
    csvs = []
    for record in records:
        day = datetime.fromtimestamp(record.started_at, UTC).date()
        csv = None
        path = folder / f"{record.seq:012d}.csv"
        if store.fetch_report(record.execution_id, "rejects.csv", path) and path.stat().st_size:
            csv = str(path)
            csvs.append(csv)
        con.execute(
            "INSERT INTO executions VALUES (?, ?, ?, ?)",
            [record.execution_id, record.seq, day, csv],
        )
        files = record.summary["validation"].get("files", [])
        if files:
            con.executemany(
                "INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                [
                    [
                        record.execution_id,
                        f["key"],
                        f["dataset"],
                        f["accepted"],
                        f["reason"],
                        f["detail"],
                    ]
                    for f in files
                ],
            )
    types = {
        "file": "VARCHAR",
        "line": "BIGINT",
        "column": "VARCHAR",
        "reason": "VARCHAR",
        "text": "VARCHAR",
    }
    assert tuple(types) == REJECTS_COLUMNS
    rows = (
        "SELECT NULL::VARCHAR AS filename, NULL::VARCHAR AS file, NULL::BIGINT AS line, "
        'NULL::VARCHAR AS "column", NULL::VARCHAR AS reason, NULL::VARCHAR AS text LIMIT 0'
    )
    if csvs:
        listed = ", ".join(sql_string(c) for c in csvs)
        spec = ", ".join(f"{sql_string(k)}: {sql_string(v)}" for k, v in types.items())
        rows = (
            f"SELECT * FROM read_csv([{listed}], header = true, columns = {{{spec}}}, "
            "filename = true, quote = '\"', escape = '\"')"
        )
    con.execute(
        "CREATE TEMP VIEW rejects AS "
        'SELECT e.execution, e.seq, e.day, v.dataset, r.file, r.line, r."column", r.reason, '
        f"r.text FROM ({rows}) AS r JOIN executions e ON e.csv = r.filename "
        "LEFT JOIN verdicts v ON v.execution = e.execution AND v.file = r.file "
        "UNION ALL "
        "SELECT e.execution, e.seq, e.day, v.dataset, v.file, NULL, NULL, v.reason, v.detail "
        "FROM verdicts v JOIN executions e USING (execution) WHERE NOT v.accepted"
    )
