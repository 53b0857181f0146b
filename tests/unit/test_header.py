"""The header record: the first non-blank record of a file, and what comes before it.

Pure Python. The engines read a file with blank lines before its header from a copy that
starts at the header, and add the lines left out to every reject's line, so both the line
count and the byte offset must be exact.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ecompipe.engines.header import HEADER_PROBE_BYTES, Header, read_header

pytestmark = [pytest.mark.fast, pytest.mark.local]

CASES = {
    "first-line": (b"a,b\n1,2\n", Header(["a", "b"], 0, 0)),
    "empty-lines": (b"\n\n  \na,b\n1,2\n", Header(["a", "b"], 3, 5)),
    "crlf": (b"\r\n \t\r\na,b\r\n", Header(["a", "b"], 2, 6)),
    "bom": (b"\xef\xbb\xbf\na,b\n", Header(["a", "b"], 1, 4)),
    "quoted-blanks": (b'""\n" "\na,b\n', Header(["a", "b"], 2, 7)),
    "quoted-line-break": (b'"\n"\na,b\n', Header(["a", "b"], 2, 4)),
    "commas-are-a-header": (b"\n,\na,b\n", Header(["", ""], 1, 1)),
    "quoted-header": (b'\n"a\nb",c\n', Header(["a\nb", "c"], 1, 1)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_header_after_blank_records(tmp_path: Path, case: tuple[bytes, Header]) -> None:
    content, expected = case
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert read_header(path) == expected
    # The copy an engine reads starts with the header line.
    assert content[expected.bytes_before :].split(b"\n")[0].rstrip(b"\r") in (
        b"a,b",
        b",",
        b'"a',
    )
    assert content.count(b"\n", 0, expected.bytes_before) == expected.lines_before


@pytest.mark.parametrize("content", [b"", b"\n\n", b" \n\t\n", b'""\n\n'])
def test_a_file_of_blank_records_has_no_header(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert read_header(path) is None


def test_a_probe_of_blank_lines_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"\n" * HEADER_PROBE_BYTES + b"a,b\n")
    with pytest.raises(csv.Error, match="no header in the first 1 MiB"):
        read_header(path)
