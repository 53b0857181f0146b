"""framing.py's vectorised scan against a byte-by-byte reference of its rules.

The reference below reads the whole file one byte at a time, as the module docstring states
the rules; the scan must give the same verdict, message and line for random byte strings and
for well-formed CSV with a few bytes inserted, whatever its chunk size. With chunks smaller
than the file, a file with several faults may be named by any of them (the scan stops at the
first chunk holding one), but never by a fault the reference does not see.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecompipe.engines import framing
from ecompipe.engines.framing import Framing

pytestmark = [pytest.mark.fast, pytest.mark.local]

BOM = b"\xef\xbb\xbf"
QUOTE, CR, LF = ord('"'), ord("\r"), ord("\n")
CONTROL = {*range(0x00, 0x09), *range(0x0E, 0x1C)}


@dataclass
class Reference:
    """What the byte-by-byte walk found: the faults met along the way, in the order a single
    pass meets them (a UTF-8 fault first, then quotes, then CRs: the scan's order within
    one chunk), and what is decided at the file's end."""

    faults: list[tuple[str, int]] = field(default_factory=list)
    at_end: list[tuple[str, int]] = field(default_factory=list)
    one_line: bool = True
    trailing_comma: bool = False


def reference(data: bytes) -> Reference:
    """The module docstring's rules, one byte at a time over the whole file."""
    found = Reference()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        truncated = exc.reason == "unexpected end of data"  # only known at the end
        (found.at_end if truncated else found.faults).append((framing.NOT_UTF8, exc.start))
    quotes: list[tuple[str, int]] = []
    crs: list[tuple[str, int]] = []
    inside, previous = False, LF  # the file's start (after a BOM) opens a value
    first_crlf = first_bare_lf = last_break = -1
    for at in range(len(BOM) if data.startswith(BOM) else 0, len(data)):
        byte, following = data[at], data[at + 1 : at + 2]
        if byte == QUOTE:
            if inside and following and following not in b',\n\r"':
                quotes.append((framing.BROKEN_QUOTING, at))
            elif not inside and previous not in b',\n"':
                quotes.append((framing.STRAY_QUOTE, at))
            inside = not inside
        elif inside and byte in (CR, LF):
            found.one_line = False  # a line break inside a quoted value
        elif byte == CR and following != b"\n":
            crs.append((framing.STRAY_CR, at))
        elif byte == CR and first_crlf < 0:
            first_crlf = at
        elif byte == LF:
            last_break = at
            end = at - 1 if previous == CR else at  # of the record
            found.trailing_comma = found.trailing_comma or data[end - 1 : end] == b","
            if previous != CR and first_bare_lf < 0:
                first_bare_lf = at
        found.one_line = found.one_line and byte not in CONTROL
        previous = byte
    found.faults += quotes + crs
    found.trailing_comma = found.trailing_comma or data.endswith(b",")
    if inside:  # named by the line where the record holding the quote starts
        found.at_end.append((framing.BROKEN_QUOTING, last_break + 1))
    if first_crlf >= 0 and first_bare_lf >= 0:
        found.at_end.append((framing.MIXED_ENDINGS, max(first_crlf, first_bare_lf)))
    return found


def message(data: bytes, problem: str, offset: int) -> str:
    """A problem as the scan words it: the line holding byte ``offset``."""
    line = data[:offset].count(b"\n") + 1
    text, _, advice = problem.partition(": ")
    return f"{text} (near line {line})" + (f": {advice}" if advice else "")


def scan(data: bytes, chunk: int) -> Framing:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.csv"
        path.write_bytes(data)
        with mock.patch.object(framing, "CHUNK", chunk):
            return framing.scan(path)


# Bytes that make or break the rules, and some that do not matter to them.
PIECES = [b"a", b" ", b",", b'"', b'""', b"\n", b"\r\n", b"\r", b"\xc3\xa9", b"\xe2\x82\xac"]
RARE = [b"\xc3", b"\xff", b"\x01", b"\t"]
pieces = st.one_of(st.sampled_from(PIECES), st.sampled_from(RARE))
noise = st.lists(pieces, max_size=60).map(b"".join)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """Well-formed CSV (values quoted or not, LF or CRLF endings, line breaks, commas and
    doubled quotes inside quoted values), then maybe a BOM and a few pieces inserted."""
    end = draw(st.sampled_from([b"\n", b"\r\n"]))
    text = st.lists(st.sampled_from([*PIECES[:2], *PIECES[4:], b","]), max_size=4)
    records = []
    for _ in range(draw(st.integers(0, 6))):
        values = []
        for _ in range(draw(st.integers(1, 4))):
            value = b"".join(draw(text))
            plain = not any(b in value for b in b'",\r\n') and draw(st.booleans())
            values.append(value if plain else b'"' + value + b'"')
        records.append(b",".join(values))
    data = end.join(records) + (end if draw(st.booleans()) else b"")
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(PIECES + RARE)) + data[at:]
    return (BOM if draw(st.integers(0, 9)) == 0 else b"") + data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(csv_files(), noise), chunk=st.integers(1, 40))
def test_the_scan_follows_the_reference(data: bytes, chunk: int) -> None:
    ref = reference(data)
    whole = scan(data, len(data) + 1)
    first = (ref.faults or ref.at_end or [None])[0]
    if first is None:
        assert whole == Framing(None, ref.one_line, ref.trailing_comma)
    else:
        assert whole == Framing(message(data, *first), False)
    chunked = scan(data, chunk)
    if len(ref.faults) > 1:  # named by the fault of the first chunk holding one
        assert chunked.problem in {message(data, *fault) for fault in ref.faults}
        assert not chunked.one_line
    else:
        assert chunked == whole
