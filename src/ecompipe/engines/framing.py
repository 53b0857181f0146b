"""How a CSV file is framed into records, checked the same way before either engine reads it.

The two readers part ways on badly framed files. DuckDB's reader stops with "The CSV Parser
state machine reached an invalid state" on a carriage return that ends no line or on a file
mixing LF and CRLF endings, and reads a quote inside an unquoted value as a character; Spark's
reader ends a line at a lone CR and reads the rest of such a file after an unbalanced quote as
one value. So the rules are this module's, one verdict and one message for both engines:

- the bytes are UTF-8;
- a quote opens a value only at its start (after a comma, a line end or the file's start), and
  closes it only before a comma, a line end or the file's end; inside a quoted value a quote
  is written twice;
- outside quoted values a CR only ever comes before an LF, and every line ends the same way,
  LF or CRLF (quoted values may hold any line breaks).

The scan is one C-speed pass over the bytes, a chunk at a time: only chunks holding quotes or
CRs are looked at closely, with numpy's vector operations (a file may quote every value): the
quotes' positions, each one opening or closing a value by the parity of its index in the file,
the bytes next to them, and the CRs and LFs outside quoted values (an even number of quotes
before them). No byte, line or quote is looked at one by one in Python.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

#: Bytes read at a time. Small enough that a chunk's arrays (a fully quoted file has a
#: quote every few bytes: positions 8 bytes each) stay in the CPU's caches: the items of
#: bench/pipeline_vs_floor.py's quoted 10M (1,393 MiB) scan in 2.2 s, against 3.7 s at 8 MiB.
CHUNK = 2 << 20
_BOM = b"\xef\xbb\xbf"
_QUOTE, _CR, _LF, _COMMA = ord('"'), ord("\r"), ord("\n"), ord(",")


def _bytes_in(allowed: bytes) -> NDArray[np.bool_]:
    """A lookup table: whether each byte value is one of ``allowed``."""
    table = np.zeros(256, np.bool_)
    table[list(allowed)] = True
    return table


_OPENS_AFTER = _bytes_in(b',\n"')  # the byte before an opening quote ('"': a doubled quote)
_CLOSES_BEFORE = _bytes_in(b',\n\r"')  # the byte after a closing quote

BROKEN_QUOTING = "broken CSV quoting (an unterminated quote or text after a closing quote)"
STRAY_QUOTE = "a quote inside an unquoted value: quote the whole value and double any quote in it"
STRAY_CR = "a carriage return (CR) that ends no line: save the file with LF or CRLF line endings"
MIXED_ENDINGS = "lines end with both LF and CRLF: save the file with one kind of line ending"
NOT_UTF8 = "the file is not valid UTF-8 text"


@dataclass(frozen=True)
class Framing:
    """What a scan found: why the file cannot be read as CSV (or None), whether every record
    is one physical line (Spark may then split the file by lines), and whether a record ends
    with a comma outside quoted values ('1,2,' or '1,2,,': DuckDB's reader drops empty values
    past the last column unseen, and only its null-padding reader shows them)."""

    problem: str | None
    one_line: bool
    trailing_comma: bool = False


def needs_scan(path: Path) -> bool:
    """Whether the file holds a quote, a CR or a non-ASCII byte (one pass at memory speed);
    without any, it is well framed UTF-8 by construction and :func:`scan` would find nothing.

    DuckDB's reader checks the UTF-8 of only the columns a query reads, so a reader of some
    columns cannot stand in for the check.
    """
    with path.open("rb", buffering=0) as handle:
        # No larger than the file (and one byte to see its end): zeroing a chunk costs more
        # than reading a file of a few hundred KiB.
        buffer = bytearray(min(CHUNK, os.fstat(handle.fileno()).st_size + 1))
        while size := handle.readinto(buffer):
            chunk = buffer if size == len(buffer) else buffer[:size]
            if b'"' in chunk or b"\r" in chunk or not chunk.isascii():
                return True
    return False


def scan(path: Path) -> Framing:
    """Check the file against the module's rules in one pass (see the module docstring)."""
    return _Scan(path).run()


class _Scan:
    """The state carried from one chunk to the next."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.offset = 0  # of the current chunk in the file
        self.quotes = 0  # quotes before the current chunk; odd: inside a quoted value
        self.last = b"\n"  # the byte before the current chunk (the file's start opens)
        self.closing_at = -1  # a closing quote that ended the previous chunk
        self.first_crlf = -1
        self.first_bare_lf = -1
        self.last_break = -1  # the last LF outside quoted values: a record starts after it
        self.one_line = True
        self.trailing_comma = False

    def run(self) -> Framing:
        with self.path.open("rb") as handle:
            head = handle.read(len(_BOM))
            if head == _BOM:  # a quote may open the header right after it
                head, self.offset = b"", len(_BOM)
            for raw in _chunks(handle, head):
                problem = self._chunk(_locate(raw))
                if problem:
                    return Framing(problem, False)
                self.offset += len(raw)
                self.last = raw[-1:]
        try:
            self.decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return self._at(NOT_UTF8, self.offset)
        if self.quotes % 2:  # named by the line where the record holding the quote starts
            return self._at(BROKEN_QUOTING, self.last_break + 1)
        if self.first_crlf >= 0 and self.first_bare_lf >= 0:
            return self._at(MIXED_ENDINGS, max(self.first_crlf, self.first_bare_lf))
        return Framing(None, self.one_line, self.trailing_comma or self.last == b",")

    def _at(self, problem: str, offset: int) -> Framing:
        text, _, advice = problem.partition(": ")
        near = f"{text} (near line {line_at(self.path, offset)})"
        return Framing(f"{near}: {advice}" if advice else near, False)

    def _chunk(self, chunk: _Chunk) -> str | None:
        if not chunk.raw.isascii() or self.decoder.getstate()[0]:
            try:
                self.decoder.decode(chunk.raw)
            except UnicodeDecodeError as exc:
                near = self.offset + max(exc.start, 0)
                return self._at(NOT_UTF8, near).problem
        if self.closing_at >= 0 and not _CLOSES_BEFORE[chunk.data[0]]:
            return self._at(BROKEN_QUOTING, self.closing_at).problem
        self.closing_at = -1
        if self.one_line and _has_control(chunk.data):
            self.one_line = False
        if chunk.quotes.size or chunk.crs.size:
            problem = self._quote_problem(chunk) or self._cr_problem(chunk)
            if problem:
                return problem
            self._line_ends(chunk)
        elif self.quotes % 2:  # the whole chunk is inside one quoted value
            self.one_line = self.one_line and not chunk.lfs.size
        elif chunk.lfs.size:  # no CR, no quote: every line end is bare
            if self.first_bare_lf < 0:
                self.first_bare_lf = self.offset + int(chunk.lfs[0])
            self.last_break = self.offset + int(chunk.lfs[-1])
        self._trailing_comma(chunk)
        self.quotes += len(chunk.quotes)
        return None

    def _inside(self, quotes: NDArray[np.intp], at: NDArray[np.intp]) -> NDArray[np.bool_]:
        """Whether each position ``at`` (of no quote) is inside a quoted value: an odd number
        of quotes comes before it."""
        inside: NDArray[np.bool_] = (np.searchsorted(quotes, at) + self.quotes) % 2 == 1
        return inside

    def _quote_problem(self, chunk: _Chunk) -> str | None:
        """The first quote that neither opens nor closes a value where it stands."""
        data, quotes = chunk.data, chunk.quotes
        odd = self.quotes % 2  # the first quote of the chunk closes a value
        opening, closing = quotes[odd::2], quotes[1 - odd :: 2]
        before = data[np.maximum(opening - 1, 0)]
        if opening.size and opening[0] == 0:
            before[0] = self.last[0]
        stray = opening[~_OPENS_AFTER[before]]
        if closing.size and closing[-1] == len(data) - 1:
            self.closing_at = self.offset + int(closing[-1])  # decided by the next chunk
            closing = closing[:-1]
        broken = closing[~_CLOSES_BEFORE[data[closing + 1]]]
        if stray.size and not (broken.size and broken[0] < stray[0]):
            return self._at(STRAY_QUOTE, self.offset + int(stray[0])).problem
        if broken.size:
            return self._at(BROKEN_QUOTING, self.offset + int(broken[0])).problem
        return None

    def _cr_problem(self, chunk: _Chunk) -> str | None:
        """The first CR outside quoted values that ends no line; notes the first CRLF."""
        data, crs = chunk.data, chunk.crs
        inside = self._inside(chunk.quotes, crs)
        self.one_line = self.one_line and not inside.any()
        crs = crs[~inside]
        # A CR that ends the chunk (only the file's last byte: see run) reads itself as next.
        lone = crs[data[np.minimum(crs + 1, len(data) - 1)] != _LF]
        if lone.size:
            return self._at(STRAY_CR, self.offset + int(lone[0])).problem
        if self.first_crlf < 0 and crs.size:
            self.first_crlf = self.offset + int(crs[0])
        return None

    def _line_ends(self, chunk: _Chunk) -> None:
        """Of the chunk's LFs: the first bare one outside quoted values, one inside (records
        then span lines), and the last one outside. Once the first two are known, only the
        last LF is looked at, unless it is inside a quoted value."""
        data, quotes, lfs = chunk.data, chunk.quotes, chunk.lfs
        settled = not self.one_line and self.first_bare_lf >= 0
        if settled and not (lfs.size and self._inside(quotes, lfs[-1:])[0]):
            if lfs.size:
                self.last_break = self.offset + int(lfs[-1])
            return
        inside = self._inside(quotes, lfs)
        self.one_line = self.one_line and not inside.any()
        lfs = lfs[~inside]
        if self.first_bare_lf < 0:
            # (the byte before the chunk is no CR: a CRLF is kept in one chunk)
            bare = lfs[data[np.maximum(lfs - 1, 0)] != _CR]
            if bare.size:
                self.first_bare_lf = self.offset + int(bare[0])
        if lfs.size:
            self.last_break = self.offset + int(lfs[-1])

    def _trailing_comma(self, chunk: _Chunk) -> None:
        """Note a line end outside quoted values right after a comma."""
        if self.trailing_comma:
            return
        data, lfs = chunk.data, chunk.lfs
        if self.last == b"," and chunk.raw.startswith((b"\n", b"\r\n")) and not self.quotes % 2:
            self.trailing_comma = True  # the comma ended the previous chunk
            return
        # The byte before each line end (CRLF or LF); one before the chunk is no comma.
        # (Not bytes.find: a two-byte search runs at a tenth of numpy's speed among commas.)
        before = data[np.maximum(lfs - 1 - (data[np.maximum(lfs - 1, 0)] == _CR), 0)]
        commas = lfs[before == _COMMA]
        self.trailing_comma = bool(commas.size) and not self._inside(chunk.quotes, commas).all()


@dataclass(frozen=True)
class _Chunk:
    """A chunk's bytes and the positions of its quotes, CRs and LFs."""

    raw: bytes
    data: NDArray[np.uint8]
    quotes: NDArray[np.intp]
    crs: NDArray[np.intp]
    lfs: NDArray[np.intp]


def _locate(raw: bytes) -> _Chunk:
    """The chunk ``raw`` with its positions (memchr first: most chunks hold no CR)."""
    data = np.frombuffer(raw, np.uint8)
    none = np.empty(0, np.intp)
    quotes = np.flatnonzero(data == _QUOTE) if b'"' in raw else none
    crs = np.flatnonzero(data == _CR) if b"\r" in raw else none
    return _Chunk(raw, data, quotes, crs, np.flatnonzero(data == _LF))


def _chunks(handle: BinaryIO, head: bytes) -> Iterator[bytes]:
    """The rest of the file after ``head`` (its first bytes), in chunks of about CHUNK."""
    chunk = head + handle.read(CHUNK)
    while chunk:
        if chunk.endswith(b"\r"):
            chunk += handle.read(1)  # keep a CRLF in one chunk
        yield chunk
        chunk = handle.read(CHUNK)


def _has_control(data: NDArray[np.uint8]) -> bool:
    """Whether ``data`` holds a control byte 0x00-0x08 or 0x0E-0x1B.

    Spark's line reader drops a line that is empty after Java's trim (every byte <= ' ');
    DuckDB drops a line of only whitespace. They differ only on lines holding these bytes, so
    a file that has any is read in Spark's multiLine mode (it is no one-line file).
    """
    return bool((data < 0x09).any() or ((data - np.uint8(0x0E)) < 0x0E).any())


def line_at(path: Path, offset: int) -> int:
    """The physical line holding byte ``offset`` (only asked on the error path)."""
    lines = 1
    with path.open("rb") as handle:
        while offset > 0 and (chunk := handle.read(min(CHUNK, offset))):
            lines += chunk.count(b"\n")
            offset -= len(chunk)
    return lines
