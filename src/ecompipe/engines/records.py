"""Where a CSV file's records start, and rejected rows mapped back to their physical lines.

The rule, for every engine and every reader of ecompipe: **a line starts a record when the
quotes before it balance** (a quoted value may hold line breaks; framing.py has checked that
every quote opens or closes a value). The header is record 1; an empty line is a record of its
own. It is applied in two places only:

- :func:`record_spans`, in Python, to the few bytes a probe reads (header.py's first MiB,
  framing.py's error message);
- :func:`_record_starts`, with numpy, to whole files, a chunk at a time (memory does not grow
  with the file): the row count of a file that misses a column, and the physical line and
  original text of every rejected row, for either engine (the files are local, so Spark's
  rejects are mapped here too); only the rejected records' bytes are read again.

Engines number the records they read as rows; :class:`Source` says how, so that a rejected
row's position finds its record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import duckdb
import numpy as np
from numpy.typing import NDArray

from ecompipe.dialect import sql_string
from ecompipe.engines.framing import CHUNK
from ecompipe.validation import is_blank_record


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


def count_records(path: Path) -> int:
    """The non-blank records after the header of the file at ``path`` (the rows a file that
    misses a column held: validation.is_blank_record's records are no rows).

    One scan (:func:`_record_starts`); a record is blank for sure when all its bytes are ASCII
    whitespace, and not blank when it holds another ASCII byte but a quote. Only the rest,
    records of whitespace, quotes and non-ASCII bytes alone, are read again and matched.
    """
    counted = records = 0
    doubtful: list[tuple[int, int]] = []
    open_kind = open_start = -1  # the last record so far, its end not yet seen
    for chunk in _record_starts(path):
        kinds = _KIND[chunk.data]
        if not chunk.first.size:  # inside one quoted value
            if open_kind >= 0:
                open_kind = max(open_kind, int(kinds.max()))
            continue
        kind = np.maximum.reduceat(kinds, chunk.first)
        ends = np.append(chunk.offsets[1:] - 1, -1)
        if open_kind >= 0:  # the rest of the previous chunk's last record
            kind = np.insert(kind, 0, max(open_kind, int(kinds[: chunk.first[0]].max(initial=0))))
            ends = np.insert(ends, 0, chunk.offsets[0] - 1)
            starts = np.insert(chunk.offsets, 0, open_start)
        else:
            starts = chunk.offsets
        if records == 0:  # the header
            kind, ends, starts = kind[1:], ends[1:], starts[1:]
        records += chunk.first.size
        if not kind.size:  # the header alone
            open_kind = -1
            continue
        open_kind, open_start = int(kind[-1]), int(starts[-1])
        kind, ends, starts = kind[:-1], ends[:-1], starts[:-1]
        counted += int((kind == _NOT_BLANK).sum())
        maybe = np.flatnonzero(kind == _MAYBE_BLANK)
        doubtful.extend(zip(starts[maybe].tolist(), ends[maybe].tolist(), strict=True))
    if open_kind >= 0:
        counted += open_kind == _NOT_BLANK
        if open_kind == _MAYBE_BLANK:
            doubtful.append((open_start, path.stat().st_size))
    return counted + sum(not is_blank_record(t) for t in _read(path, doubtful))


# What a byte says of the record holding it: ASCII whitespace (validation.WS), a quote or a
# non-ASCII byte (a record of one pair of quotes or of Unicode spaces is blank), another byte.
_BLANK_ONLY, _MAYBE_BLANK, _NOT_BLANK = 0, 1, 2
_KIND = np.full(256, _NOT_BLANK, np.uint8)
_KIND[[*range(0x09, 0x0E), *range(0x1C, 0x21)]] = _BLANK_ONLY
_KIND[[ord('"'), *range(0x80, 0x100)]] = _MAYBE_BLANK


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

    Each file with rejects is scanned once, a chunk at a time (:func:`_record_starts`), and
    only the rejected records' bytes are read again: memory does not grow with the file.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _reject_keys (dataset VARCHAR, _file_idx INT, "
        "_row BIGINT, column_name VARCHAR, reason VARCHAR)"
    )
    try:
        for dataset, relation in rejects.items():
            con.execute(
                f"INSERT INTO _reject_keys SELECT {sql_string(dataset)}, _file_idx, _row, "
                f"column_name, reason FROM {relation}"
            )
        found: list[_Spans] = []
        files = con.execute(
            "SELECT dataset, _file_idx, list(DISTINCT _row) FROM _reject_keys "
            "GROUP BY dataset, _file_idx"
        ).fetchall()
        for dataset, idx, rows in files:
            source = sources[(str(dataset), int(idx))]
            spans = _spans(source, np.array(rows, np.int64))
            found.append(_Spans(str(dataset), int(idx), source, *spans))
        lines = {
            "dataset": np.array([d for s in found for d in [s.dataset] * len(s.rows)], object),
            "_file_idx": np.concatenate([np.full(len(s.rows), s.idx) for s in found] + [_NONE]),
            "_row": np.concatenate([s.rows for s in found] + [_NONE]),
            "line": np.concatenate([s.lines + s.source.lines_before for s in found] + [_NONE]),
            "text": np.array(
                [
                    t
                    for s in found
                    for t in _read(
                        s.source.path, zip(s.starts.tolist(), s.ends.tolist(), strict=True)
                    )
                ],
                object,
            ),
        }
        con.register("_reject_lines", lines)
        keys = ", ".join(
            f"({sql_string(ds)}, {idx}, {sql_string(s.key)})" for (ds, idx), s in sources.items()
        )
        con.execute(
            f'COPY (SELECT k.key AS file, l.line, r.column_name AS "column", r.reason, '
            "l.text FROM _reject_keys r JOIN _reject_lines l "
            "USING (dataset, _file_idx, _row) "
            f"JOIN (VALUES {keys}) AS k(dataset, _file_idx, key) USING (dataset, _file_idx) "
            f'ORDER BY file, l.line, "column") TO {sql_string(str(target))} '
            "(FORMAT csv, HEADER true)"
        )
    finally:
        con.execute("DROP TABLE IF EXISTS _reject_keys")
        con.unregister("_reject_lines")


_NONE = np.empty(0, np.int64)
_LF, _CR, _QUOTE, _BLANK = ord("\n"), ord("\r"), ord('"'), ord(" ")


@dataclass(frozen=True)
class _Spans:
    """The rejected records of one file: row keys, first physical lines, byte ranges."""

    dataset: str
    idx: int
    source: Source
    rows: NDArray[np.int64]
    lines: NDArray[np.int64]
    starts: NDArray[np.int64]
    ends: NDArray[np.int64]


def _read(path: Path, spans: Iterable[tuple[int, int]]) -> Iterator[str]:
    """The text of each record (start, end: a byte range) of the file at ``path``, its
    lines' CRLF ends read as LFs: only records named for a reason are read, one read each."""
    with path.open("rb") as handle:
        for start, end in spans:
            handle.seek(start)
            yield _CR_AT_LINE_END.sub("", handle.read(end - start).decode("utf-8", "replace"))


# Every CR before a line end goes (as DuckDB's rtrim), a CR inside a line stays.
_CR_AT_LINE_END = re.compile(r"\r+(?=\n|\Z)")


def _spans(
    source: Source, wanted: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """(row key, first line, first byte, end byte) of each record of ``source`` that a key
    of ``wanted`` names (:func:`write_rejects`' ``_row``): the end is the LF after the
    record's last line, or the file's end."""
    unsplit = -wanted[wanted < -1]  # (record 1 is the header, never a row)
    positive = wanted[wanted >= 0]
    keys: list[NDArray[np.int64]] = []
    lines: list[NDArray[np.int64]] = []
    starts: list[NDArray[np.int64]] = []
    ends: list[NDArray[np.int64]] = []
    records = rows = 0
    pending = False  # the last record found so far is wanted and its end is unknown
    for chunk in _record_starts(source.path):
        first, offset = chunk.lines, chunk.offsets
        if pending and first.size:
            ends.append(offset[:1] - 1)
            pending = False
        numbers = records + 1 + np.arange(first.size, dtype=np.int64)
        dropped = chunk.empty | chunk.blank if source.drops_blank_lines else chunk.empty
        is_unsplit = np.isin(numbers, unsplit)
        is_row = ~dropped & ~is_unsplit & (numbers > 1)
        position = rows + np.cumsum(is_row, dtype=np.int64) - 1
        found = np.flatnonzero((is_row & np.isin(position, positive)) | is_unsplit)
        keys.append(np.where(is_row, position, -numbers)[found])
        lines.append(first[found])
        starts.append(offset[found])
        inside = found[found < first.size - 1]
        ends.append(offset[inside + 1] - 1)
        # (a chunk inside one quoted value starts no record and leaves pending as it is)
        pending = pending or (bool(found.size) and found[-1] == first.size - 1)
        records += first.size
        rows += int(is_row.sum())
    if pending:
        ends.append(np.array([source.path.stat().st_size], np.int64))
    return tuple(np.concatenate([*part, _NONE]) for part in (keys, lines, starts, ends))  # type: ignore[return-value]


@dataclass(frozen=True)
class _Starts:
    """The records starting in a chunk: their first physical line (from 1), its offset in
    the file and in the chunk's bytes ``data``, and whether that line is empty, and blank
    (only bytes up to a space)."""

    data: NDArray[np.uint8]
    lines: NDArray[np.int64]
    offsets: NDArray[np.int64]
    first: NDArray[np.intp]
    empty: NDArray[np.bool_]
    blank: NDArray[np.bool_]


def _record_starts(path: Path) -> Iterator[_Starts]:
    """Per chunk of the file at ``path`` (:func:`_line_chunks`), the records starting in it.
    numpy finds the LFs and quotes of a chunk; a line starts a record
    when the quotes before it balance.

    The file's last line is the text after its last LF, empty when the file ends with one (it
    is then a record of its own, no row). An empty line is one with no byte but a CR before
    its LF: framing.py lets no other CR stand outside quoted values.
    """
    lines = quotes = offset = 0
    with path.open("rb") as handle:
        for raw in _line_chunks(handle):
            data = np.frombuffer(raw, np.uint8)
            lfs = np.flatnonzero(data == _LF)
            starts = np.concatenate(([0], lfs[:-1] + 1))
            at = np.flatnonzero(data == _QUOTE) if b'"' in raw else _NONE
            opens = (quotes + np.searchsorted(at, starts)) % 2 == 0
            first, end = starts[opens], lfs[opens]
            # The largest byte of each first line: reduceat's segments alternate between a
            # first line (the LF alone when it is empty) and the rest of its record.
            largest = np.maximum.reduceat(data, np.column_stack((first, end)).ravel())[::2]
            size = end - first
            empty = (size == 0) | ((size == 1) & (data[first] == _CR))
            lines_of = lines + 1 + np.flatnonzero(opens).astype(np.int64)
            offsets = offset + first.astype(np.int64)
            yield _Starts(data, lines_of, offsets, first, empty, largest <= _BLANK)
            quotes += at.size
            lines += lfs.size
            offset += len(raw)


def _line_chunks(handle: BinaryIO) -> Iterator[bytes]:
    """The file in chunks of about framing.CHUNK bytes, each ending with an LF: the last one
    is the text after the file's last LF with an LF added (a line longer than a chunk makes
    a larger chunk)."""
    rest = b""
    while block := handle.read(CHUNK):
        data = rest + block
        cut = data.rfind(b"\n") + 1
        if cut:
            yield data[:cut]
        rest = data[cut:]
    yield rest + b"\n"
