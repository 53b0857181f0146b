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


def lines_sql(path: Path) -> str:
    """One row per physical line of the file at ``path``: ``line`` (from 1), its text ``l``
    (line end removed) and ``logical``, the number of the record it belongs to.

    The whole file is read as one text value: only asked for files with rejected rows or a
    missing column.
    """
    split = "string_split(content, chr(10))"
    raw = (
        f"SELECT unnest({split}) AS l, generate_subscripts({split}, 1) AS line "
        f"FROM read_text({sql_string(str(path))})"
    )
    quotes = (
        "SELECT line, rtrim(l, chr(13)) AS l, length(l) - length(replace(l, '\"', '')) AS nq "
        f"FROM ({raw}) AS raw"
    )
    parity = (
        "SELECT line, l, coalesce(sum(nq) OVER (ORDER BY line ROWS BETWEEN UNBOUNDED "
        f"PRECEDING AND 1 PRECEDING), 0) % 2 AS par FROM ({quotes}) AS q"
    )
    return (
        "SELECT line, l, sum(CASE WHEN par = 0 THEN 1 ELSE 0 END) OVER (ORDER BY line) "
        f"AS logical FROM ({parity}) AS p"
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
    """The rejects CSV at ``target`` (base.REJECTS_COLUMNS): file, physical line, column, reason,
    original text, sorted by file, line and column.

    ``rejects`` maps a dataset to a relation ``con`` reads, one row per rejected value or row:
    ``_file_idx`` (its key in ``sources``), ``_row`` (the row's position, :class:`Source`;
    or minus the record number of a record the engine could not split into values: it is no
    row, and positions skip it), ``column_name`` and ``reason``.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _reject_keys (dataset VARCHAR, _file_idx INT, "
        "_row BIGINT, column_name VARCHAR, reason VARCHAR)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _reject_lines (dataset VARCHAR, _file_idx INT, "
        "_row BIGINT, line BIGINT, text VARCHAR)"
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
            con.execute(
                f"INSERT INTO _reject_lines SELECT {sql_string(str(dataset))}, {int(idx)}, "
                f"_row, line, text FROM ({_rejected_records_sql(source, str(dataset), int(idx))})"
                " AS r"
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
        con.execute("DROP TABLE IF EXISTS _reject_keys")
        con.execute("DROP TABLE IF EXISTS _reject_lines")


def _rejected_records_sql(source: Source, dataset: str, idx: int) -> str:
    """(_row, physical line in the landed file, original text) of each record of ``source``
    that a row of ``_reject_keys`` names (:func:`write_rejects`)."""
    wanted = (
        f"SELECT _row FROM _reject_keys WHERE dataset = {sql_string(dataset)} AND _file_idx = {idx}"
    )
    # Records the engine could not split are no rows: the rejects name them by record number.
    unsplit = f"SELECT -_row FROM ({wanted}) AS w WHERE _row < 0"
    # Java's trim drops every byte up to a space; framing.py sends a file holding control
    # bytes other than whitespace to Spark's multiLine reader, so no NUL is ever met here.
    blank = " OR regexp_full_match(first, '[\\x00-\\x20]*')" if source.drops_blank_lines else ""
    records = (
        "SELECT logical, min(line) AS line, arg_min(l, line) AS first FROM lines "
        "GROUP BY logical HAVING logical > 1"
    )
    counted = (
        f"SELECT logical, line, logical IN ({unsplit}) AS unsplit, "
        f"NOT (first = ''{blank} OR logical IN ({unsplit})) AS is_row FROM ({records}) AS r"
    )
    numbered = (
        "SELECT logical, line, CASE WHEN is_row THEN row_number() OVER (PARTITION BY is_row "
        "ORDER BY logical) - 1 WHEN unsplit THEN -logical END AS _row FROM c"
    )
    return (
        f"WITH lines AS ({lines_sql(source.path)}), c AS ({counted}), n AS ({numbered}), "
        f"hit AS (SELECT * FROM n WHERE _row IN ({wanted})) "
        f"SELECT hit._row, hit.line + {source.lines_before} AS line, "
        "string_agg(lines.l, chr(10) ORDER BY lines.line) AS text "
        "FROM hit JOIN lines USING (logical) GROUP BY hit._row, hit.line"
    )
