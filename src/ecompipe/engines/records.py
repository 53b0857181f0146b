"""Where a CSV file's records start, and rejected rows mapped back to their physical lines.

The rule, for every engine and every reader of ecompipe: **a line starts a record when the
quotes before it balance** (a quoted value may hold line breaks; framing.py has checked that
every quote opens or closes a value). The header is record 1; an empty line is a record of its
own. It is applied in two places only:

- :func:`record_spans`, in Python, to the few bytes a probe reads (header.py's first MiB,
  framing.py's error message);
- :func:`lines_sql`, in DuckDB, to whole files: the row count of a file that misses a column,
  and the physical line and original text of every rejected row, for either engine (the
  files are local: DuckDB is a core dependency, so Spark's rejects are mapped here too).

Engines number the records they read as rows; :class:`Source` says how, so that a rejected
row's position finds its record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ecompipe.dialect import sql_string
from ecompipe.validation import BLANK_RECORD_PATTERN


def record_spans(lines: Iterable[bytes]) -> Iterator[tuple[int, int]]:
    """(physical lines, bytes) of each record of ``lines`` (as a binary file yields them, line
    ends kept), in order. An unterminated quote makes the rest one record."""
    quotes = count = size = 0
    for line in lines:
        quotes += line.count(b'"')
        count += 1
        size += len(line)
        if quotes % 2 == 0:
            yield count, size
            quotes = count = size = 0
    if count:
        yield count, size


def physical_lines_sql(path: Path) -> str:
    """One row per physical line of the file at ``path``: ``line`` (from 1) and its text
    ``l``, line end removed. The whole file is read as one text value: only asked for files
    with rejected rows or a missing column."""
    # unnest() the table function, numbered WITH ORDINALITY: unnest() in the select list
    # costs time that grows with the square of the list's length here (40 s for a million
    # lines, DuckDB 1.5), and indexing the list from a lateral range() copies it.
    text = f"SELECT string_split(content, chr(10)) FROM read_text({sql_string(str(path))})"
    return (
        f"SELECT line, rtrim(l, chr(13)) AS l FROM unnest(({text})) WITH ORDINALITY AS u(l, line)"
    )


def lines_sql(path: Path) -> str:
    """:func:`physical_lines_sql` with ``logical``, the number of the record each line
    belongs to (the header is record 1), and two flags of the line: ``empty``, and ``blank``
    (only characters up to a space, all of which Java's trim removes)."""
    flagged = (
        "SELECT line, l, length(l) - length(replace(l, '\"', '')) AS nq, l = '' AS empty, "
        f"regexp_full_match(l, '[\\x00-\\x20]*') AS blank FROM ({physical_lines_sql(path)}) AS p"
    )
    parity = (
        "SELECT *, coalesce(sum(nq) OVER (ORDER BY line ROWS BETWEEN UNBOUNDED PRECEDING AND "
        f"1 PRECEDING), 0) % 2 AS par FROM ({flagged}) AS f"
    )
    return (
        "SELECT line, l, empty, blank, sum(CASE WHEN par = 0 THEN 1 ELSE 0 END) "
        f"OVER (ORDER BY line) AS logical FROM ({parity}) AS q"
    )


def count_records(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """The non-blank records after the header of the file at ``path`` (the rows a file that
    misses a column held: validation.is_blank_record's records are no rows)."""
    found = con.execute(
        f"SELECT count(*) FROM (SELECT string_agg(l, chr(10) ORDER BY line) AS text "
        f"FROM ({lines_sql(path)}) AS l GROUP BY logical HAVING logical > 1) AS r "
        f"WHERE NOT regexp_full_match(text, {sql_string(BLANK_RECORD_PATTERN)})"
    ).fetchone()
    return int(found[0]) if found else 0


@dataclass(frozen=True)
class Source:
    """The file an engine read for a landed file's rows, and how it numbered them.

    ``path`` is the landed file ``key`` or header.Located's copy of it: physical line n of
    ``path`` is line n + ``lines_before`` of ``key``. An engine's rows are the records after
    the header in order, but those whose first line is empty (no reader makes a row of one)
    and, with ``drops_blank_lines``, those whose first line holds only bytes up to a space
    (Spark's line reader trims them away); a rejected row is named by its position among
    them, from 0.
    """

    key: str
    path: Path
    lines_before: int
    drops_blank_lines: bool


def write_rejects(
    con: duckdb.DuckDBPyConnection,
    rejects: Mapping[str, str],
    sources: Mapping[tuple[str, int], Source],
    target: Path,
) -> None:
    """The rejects CSV at ``target`` (base.REJECTS_COLUMNS): file, physical line, column,
    reason, original text, sorted by file, line and column.

    ``rejects`` maps a dataset to a relation ``con`` reads, one row per rejected value or row:
    ``_file_idx`` (its key in ``sources``), ``_row`` (the row's position, :class:`Source`;
    or minus the record number of a record the engine could not split into values: it is no
    row, and positions skip it), ``column_name`` and ``reason``.
    """
    tables = {
        "_reject_keys": "_row BIGINT, column_name VARCHAR, reason VARCHAR",
        "_reject_spans": "_row BIGINT, line BIGINT, last BIGINT",
        "_reject_lines": "_row BIGINT, line BIGINT, text VARCHAR",
    }
    for name, columns in tables.items():
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} (dataset VARCHAR, _file_idx INT, {columns})"
        )
    try:
        for dataset, relation in rejects.items():
            con.execute(
                f"INSERT INTO _reject_keys SELECT {sql_string(dataset)}, _file_idx, _row, "
                f"column_name, reason FROM {relation}"
            )
        files = con.execute("SELECT DISTINCT dataset, _file_idx FROM _reject_keys").fetchall()
        for dataset, idx in files:
            source = sources[(str(dataset), int(idx))]
            of_file = f"dataset = {sql_string(str(dataset))} AND _file_idx = {int(idx)}"
            # Two statements, so that DuckDB holds the file in memory once at a time.
            con.execute(
                f"INSERT INTO _reject_spans SELECT {sql_string(str(dataset))}, {int(idx)}, "
                f"_row, line, last FROM ({_spans_sql(source, of_file)}) AS s"
            )
            con.execute(
                "INSERT INTO _reject_lines SELECT dataset, _file_idx, _row, "
                f"s.line + {source.lines_before}, string_agg(p.l, chr(10) ORDER BY p.line) "
                # A join on line ranges is planned as a nested loop: join on each line.
                f"FROM (SELECT * FROM _reject_spans WHERE {of_file}) AS s, "
                "range(s.line, s.last + 1) AS r(n) "
                f"JOIN ({physical_lines_sql(source.path)}) AS p ON p.line = r.n "
                "GROUP BY dataset, _file_idx, _row, s.line"
            )
        keys = ", ".join(
            f"({sql_string(ds)}, {idx}, {sql_string(s.key)})" for (ds, idx), s in sources.items()
        )
        con.execute(
            f'COPY (SELECT k.key AS file, l.line, r.column_name AS "column", r.reason, l.text '
            "FROM _reject_keys r JOIN _reject_lines l USING (dataset, _file_idx, _row) "
            f"JOIN (VALUES {keys}) AS k(dataset, _file_idx, key) USING (dataset, _file_idx) "
            f'ORDER BY file, l.line, "column") TO {sql_string(str(target))} '
            "(FORMAT csv, HEADER true)"
        )
    finally:
        for name in tables:
            con.execute(f"DROP TABLE IF EXISTS {name}")


def _spans_sql(source: Source, of_file: str) -> str:
    """(_row, first line, last line) of each record of ``source`` that a row of
    ``_reject_keys`` (``of_file`` selects the file's) names (:func:`write_rejects`)."""
    wanted = f"SELECT _row FROM _reject_keys WHERE {of_file}"
    # Records the engine could not split are no rows: the rejects name them by record number.
    unsplit = f"SELECT -_row FROM ({wanted}) AS w WHERE _row < 0"
    dropped = "empty OR blank" if source.drops_blank_lines else "empty"
    records = (
        f"SELECT logical, min(line) AS line, max(line) AS last, arg_min({dropped}, line) "
        f"AS dropped FROM ({lines_sql(source.path)}) AS l GROUP BY logical HAVING logical > 1"
    )
    counted = (
        f"SELECT *, logical IN ({unsplit}) AS unsplit, NOT (dropped OR logical IN ({unsplit})) "
        f"AS is_row FROM ({records}) AS r"
    )
    numbered = (
        "SELECT line, last, CASE WHEN is_row THEN row_number() OVER (PARTITION BY is_row "
        f"ORDER BY logical) - 1 WHEN unsplit THEN -logical END AS _row FROM ({counted}) AS c"
    )
    return f"SELECT _row, line, last FROM ({numbered}) AS n WHERE _row IN ({wanted})"
