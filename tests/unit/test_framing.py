"""How a CSV file is framed into records: the checks both engines make before reading it.

Pure Python. A wrong "one line per record" answer would make Spark split a quoted line break
into two rows, and a missed framing fault would make the engines part ways (DuckDB's reader
stops or reads it otherwise), so every rule is checked, also where it straddles two chunks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ecompipe.engines import framing
from ecompipe.engines.framing import Framing

pytestmark = [pytest.mark.fast, pytest.mark.local]

HEADER = b"id,name,price\n"

ONE_LINE = {
    "plain": b"1,a,2.00\n2,b,3.00\n",
    "quoted": b'1,"a, with comma",2.00\n2,"say ""hi""",3.00\n3,"",4.00\n4,"""",5.00',
    "blank-lines": b"1,a,2.00\n\n   \n\t\n\x0b\x0c\n2,b,3.00",
    "utf8": "1,caf\u00e9 \u00e0 la cr\u00e8me,2.00\n".encode() * 3,
}
MULTILINE = {
    "quoted-lf": b'1,"two\nlines",2.00\n',
    "quoted-cr": b'1,"cr\rinside",2.00\n',
    "quoted-crlf-in-lf-file": b'1,"two\r\nlines",2.00\n',
    "control": b"1,a\x01,2.00\n",  # a line of it is blank to Java, not to DuckDB
    "nul": b"\x00\n1,a,2.00\n",
}
# (body after HEADER, problem text, its line)
PROBLEMS = {
    "unterminated-quote": (b'1,"open,2.00\n2,b,3.00\n', framing.BROKEN_QUOTING, 2),
    "text-after-quote": (b'1,"a"b,2.00\n', framing.BROKEN_QUOTING, 2),
    "space-after-quote": (b'1,a,2.00\n2,"b" ,3.00\n', framing.BROKEN_QUOTING, 3),
    "quote-in-value": (b'1,a,2.00\n2,b"c,3.00\n', framing.STRAY_QUOTE, 3),
    "space-before-quote": (b'1, "a",2.00\n', framing.STRAY_QUOTE, 2),
    "doubled-quote-unquoted": (b'1,a""b,2.00\n', framing.STRAY_QUOTE, 2),
    "cr-inside-value": (b"1,a\rb,2.00\n", framing.STRAY_CR, 2),
    "cr-ending-a-line": (b"1,a,2.00\r2,b,3.00\n", framing.STRAY_CR, 2),
    "cr-at-file-end": (b"1,a,2.00\n2,b,3.00\r", framing.STRAY_CR, 3),
    "cr-after-quote": (b'1,"a"\r,2.00\n', framing.STRAY_CR, 2),
    "crlf-after-lf": (b"1,a,2.00\n2,b,3.00\r\n", framing.MIXED_ENDINGS, 3),
    "blank-crlf-line": (b"1,a,2.00\n\r\n2,b,3.00\n", framing.MIXED_ENDINGS, 3),
    "not-utf8": (b"1,a,2.00\n2,\xff,2.00\n", "the file is not valid UTF-8 text", 3),
}


def _file(tmp_path: Path, body: bytes, header: bytes = HEADER) -> Path:
    path = tmp_path / "f.csv"
    path.write_bytes(header + body)
    return path


def _near(problem: str, line: int) -> str:
    text, _, advice = problem.partition(": ")
    return f"{text} (near line {line})" + (f": {advice}" if advice else "")


@pytest.mark.parametrize("body", ONE_LINE.values(), ids=ONE_LINE.keys())
def test_one_record_per_line(tmp_path: Path, body: bytes) -> None:
    assert framing.scan(_file(tmp_path, body)) == Framing(None, True)


def test_crlf_files_with_a_bom(tmp_path: Path) -> None:
    """CRLF throughout, and a quoted header right after a byte order mark."""
    body = b'1,"a",2.00\r\n2,b,3.00\r\n'
    path = _file(tmp_path, body, b'\xef\xbb\xbf"id",name,price\r\n')
    assert framing.scan(path) == Framing(None, True)


@pytest.mark.parametrize("body", MULTILINE.values(), ids=MULTILINE.keys())
def test_needs_multiline(tmp_path: Path, body: bytes) -> None:
    assert framing.scan(_file(tmp_path, body)) == Framing(None, False)


@pytest.mark.parametrize("case", PROBLEMS.values(), ids=PROBLEMS.keys())
def test_problems_name_the_rule_and_the_line(tmp_path: Path, case: tuple[bytes, str, int]) -> None:
    body, problem, line = case
    assert framing.scan(_file(tmp_path, body)) == Framing(_near(problem, line), False)


def test_crlf_first_then_lf(tmp_path: Path) -> None:
    """The line that breaks the file's first kind of ending is named, whichever came first."""
    path = _file(tmp_path, b"1,a,2.00\r\n2,b,3.00\n", header=b"id,name,price\r\n")
    assert framing.scan(path) == Framing(_near(framing.MIXED_ENDINGS, 3), False)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 11])
def test_chunk_boundaries_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """Every verdict and line is the same read a few bytes at a time: quotes, doubled quotes,
    CRLF and UTF-8 characters cut by chunk boundaries."""
    bodies = {
        **ONE_LINE,
        **MULTILINE,
        "crlf": b'1,"a ""x""",2.00\r\n2,b,3.00\r\n',
        **{name: body for name, (body, _, _) in PROBLEMS.items()},
    }
    whole = {name: framing.scan(_file(tmp_path, body)) for name, body in bodies.items()}
    monkeypatch.setattr(framing, "CHUNK", size)
    for name, body in bodies.items():
        assert framing.scan(_file(tmp_path, body)) == whole[name], name


def test_utf8_character_split_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A two-byte character cut by the chunk boundary is valid; a truncated one is not."""
    body = "1,\u00e9t\u00e9,2.00\n".encode()
    monkeypatch.setattr(framing, "CHUNK", len(HEADER) + 3)  # ends between \xc3 and \xa9
    assert framing.scan(_file(tmp_path, body)) == Framing(None, True)
    problem = framing.scan(_file(tmp_path, body + b"2,\xc3")).problem
    assert problem == "the file is not valid UTF-8 text (near line 3)"


@pytest.mark.parametrize("chunk", [framing.CHUNK, 3])
def test_only_files_with_quotes_crs_or_non_ascii_bytes_need_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Without a quote, a CR or a non-ASCII byte a file is well framed UTF-8; with one, in
    any chunk (the last one short), it needs the scan."""
    monkeypatch.setattr(framing, "CHUNK", chunk)
    assert not framing.needs_scan(_file(tmp_path, b"1,a,2.00\n2,b,3.00\n"))
    assert not framing.needs_scan(_file(tmp_path, b"", header=b""))
    assert framing.needs_scan(_file(tmp_path, b'1,a,2.00\n2,"b",3.00\n'))
    assert framing.needs_scan(_file(tmp_path, b"1,a,2.00\n2,b,3.00\r\n"))
    assert framing.needs_scan(_file(tmp_path, b"1,a,2.00\n2,b,3.00\n3,\xc3\xa9,1\n"))
    assert framing.needs_scan(_file(tmp_path, b"1,a,2.00\n2,b,3.00\n3,\xff,1\n"))
