"""How the Spark engine decides a file can be read line by line, and numbers its records.

Pure Python (no JVM): ``_scan`` reads the bytes, ``_records`` maps positions to lines. A wrong
"line by line" answer would make Spark split a quoted line break into two rows, so every reason
to refuse it is checked, also where it straddles two read chunks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ecompipe.engines import spark

pytestmark = [pytest.mark.fast, pytest.mark.spark]

HEADER = b"id,name,price\n"


def _file(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "f.csv"
    path.write_bytes(HEADER + body)
    return path


@pytest.mark.parametrize(
    "body",
    [
        b"1,a,2.00\n2,b,3.00\n",
        b'1,"a, with comma",2.00\r\n2,"say ""hi""",3.00\r\n',
        b"1,a,2.00\n\n   \n\t\n\x0b\x0c\n2,b,3.00",
        "1,caf\u00e9 \u00e0 la cr\u00e8me,2.00\n".encode() * 3,
    ],
    ids=["plain", "quoted-crlf", "blank-lines", "utf8"],
)
def test_one_record_per_line(tmp_path: Path, body: bytes) -> None:
    assert spark._scan(_file(tmp_path, body)) == (None, True)


@pytest.mark.parametrize(
    "body",
    [
        b'1,"two\nlines",2.00\n',
        b'1,"two\r\nlines",2.00\r\n',
        b'1,"cr\rinside",2.00\n',
        b"1,a,2.00\r2,b,3.00\n",  # a lone CR: Spark's line reader ends a line there
        b"1,a\x01,2.00\n",  # a control byte: a line of it is blank to Java, not to DuckDB
        b"\x00\n1,a,2.00\n",
    ],
    ids=["quoted-lf", "quoted-crlf", "quoted-cr", "lone-cr", "control", "nul"],
)
def test_needs_multiline(tmp_path: Path, body: bytes) -> None:
    assert spark._scan(_file(tmp_path, body)) == (None, False)


def test_quote_parity_carries_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quoted line break sits in the chunk after its opening quote."""
    monkeypatch.setattr(spark, "_CHUNK", 4)
    path = _file(tmp_path, b'1,"ab\ncd",2.00\n2,"x",3.00\n')
    assert spark._scan(path) == (None, False)
    # The same bytes without the break inside quotes: line by line, whatever the chunking.
    path = _file(tmp_path, b'1,"abcd",2.00\n2,"x",3.00\n')
    assert spark._scan(path) == (None, True)


def test_crlf_split_across_chunks_is_not_a_lone_cr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = b"1,a,2.00\r\n2,b,3.00\r\n"
    monkeypatch.setattr(spark, "_CHUNK", len(HEADER) + body.index(b"\r") + 1)
    assert spark._scan(_file(tmp_path, body)) == (None, True)


def test_problems_win_over_the_reading_mode(tmp_path: Path) -> None:
    problem, _ = spark._scan(_file(tmp_path, b'1,"open,2.00\n'))
    assert problem is not None and "quoting" in problem and "line 2" in problem
    problem, _ = spark._scan(_file(tmp_path, b"1,a,2.00\n2,\xff,2.00\n"))
    assert problem is not None and "UTF-8" in problem and "line 3" in problem


def test_utf8_character_split_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A two-byte character cut by the chunk boundary is valid; a truncated one is not."""
    body = "1,\u00e9t\u00e9,2.00\n".encode()
    monkeypatch.setattr(spark, "_CHUNK", len(HEADER) + 3)  # ends between \xc3 and \xa9
    assert spark._scan(_file(tmp_path, body)) == (None, True)
    problem, _ = spark._scan(_file(tmp_path, body + b"2,\xc3"))
    assert problem is not None and "UTF-8" in problem and "line 3" in problem


def test_record_positions_by_reading_mode(tmp_path: Path) -> None:
    """Whitespace-only lines are records in multiLine mode only; empty lines never are."""
    path = _file(tmp_path, b"1,a,2\n\n  \n\t\x0b\n2,b,3\n\xc2\xa0\n3,c,4\n")
    multi = [(pos, line) for pos, line, _ in spark._records(path)]
    by_line = [(pos, line) for pos, line, _ in spark._records(path, one_line=True)]
    assert multi == [(0, 2), (1, 4), (2, 5), (3, 6), (4, 7), (5, 8)]
    # The NBSP-only line is no empty line for Spark's reader (Java's trim keeps it).
    assert by_line == [(0, 2), (1, 6), (2, 7), (3, 8)]
