"""DuckDB reads a dataset's files of one header layout together; each keeps its own verdict.

What DuckDB itself finds unreadable is attributed to the one file it is in, at that file's
line, and the other files read with it keep their rows. (framing.py catches such files before
any engine reads them; its scan is left out here so that DuckDB's own verdict is what shows.)
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ecompipe.config import Settings
from ecompipe.engines import framing
from ecompipe.engines.base import InputFile
from ecompipe.engines.duckdb import DuckDBEngine

pytestmark = [pytest.mark.fast, pytest.mark.duckdb]

HEADER = "order_id,user_id,created_at,status\n"


def test_a_file_duckdb_cannot_read_is_unreadable_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DuckDBEngine, "_frame", lambda self, path: framing.Framing(None, True))
    contents = {
        "a.csv": HEADER + "1,1,2024-05-01 10:00:00,complete\n2,1,2024-05-01 11:00:00,complete\n",
        # A blank line before the header, and an unterminated quote on line 4 of the file.
        "b.csv": "\n" + HEADER + '3,1,2024-05-01 10:00:00,complete\n4,1,"2024-05-01,complete\n',
        "c.csv": HEADER + "5,2,2024-05-02 10:00:00,returned\n",
    }
    files = []
    for name, text in contents.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        files.append(InputFile(f"orders/{name}", "orders", path))
    engine = DuckDBEngine(Settings(), temp_dir=str(tmp_path / "tmp"))
    try:
        report = engine.validate("e1", files, tmp_path / "staging", Decimal("0.05"))
    finally:
        engine.close()
    got = {f.key: (f.accepted, f.reason, f.detail, f.rows) for f in report.files}
    assert got == {
        "orders/a.csv": (True, None, None, 2),
        "orders/b.csv": (False, "unreadable", f"{framing.BROKEN_QUOTING} (near line 4)", 0),
        "orders/c.csv": (True, None, None, 1),
    }
    assert report.accepted_rows == {"orders": 3}
