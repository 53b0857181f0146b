"""Each DuckDB engine spills into a folder of its own under the given temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecompipe.config import Settings
from ecompipe.engines.duckdb import DuckDBEngine

pytestmark = [pytest.mark.fast, pytest.mark.duckdb]


def test_concurrent_engines_never_share_a_spill_folder(tmp_path: Path) -> None:
    base = tmp_path / "tmp"  # created if missing, as in a fresh workspace
    one = DuckDBEngine(Settings(), temp_dir=str(base))
    two = DuckDBEngine(Settings(), temp_dir=str(base))
    one_dir, two_dir = (_spill_folder(e) for e in (one, two))
    assert one_dir != two_dir and one_dir.parent == base and two_dir.parent == base
    one.close()
    assert list(base.iterdir()) == [two_dir]
    two.close()
    assert list(base.iterdir()) == []


def _spill_folder(engine: DuckDBEngine) -> Path:
    row = engine.con.execute("SELECT current_setting('temp_directory')").fetchone()
    assert row is not None
    return Path(str(row[0]))
