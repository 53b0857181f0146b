"""How the Spark engine numbers a file's records (pure Python, no JVM).

``_records`` maps Spark's record positions back to physical lines and text; which files are read
line by line is decided by framing.scan (tests/unit/test_framing.py).
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


def test_record_positions_by_reading_mode(tmp_path: Path) -> None:
    """Whitespace-only lines are records in multiLine mode only; empty lines never are."""
    path = _file(tmp_path, b"1,a,2\n\n  \n\t\x0b\n2,b,3\n\xc2\xa0\n3,c,4\n")
    multi = [(pos, line) for pos, line, _ in spark._records(path)]
    by_line = [(pos, line) for pos, line, _ in spark._records(path, one_line=True)]
    assert multi == [(0, 2), (1, 4), (2, 5), (3, 6), (4, 7), (5, 8)]
    # The NBSP-only line is no empty line for Spark's reader (Java's trim keeps it).
    assert by_line == [(0, 2), (1, 6), (2, 7), (3, 8)]
