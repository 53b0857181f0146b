"""`ecompipe watch` with real file events and a real subprocess, bounded in time."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import metrics_json
from tests.exactly_once import Landed, assert_settled, chunked, lock_holders, sample_tables

pytestmark = [
    pytest.mark.slow,
    pytest.mark.local,
    pytest.mark.duckdb,
    pytest.mark.xdist_group("subprocess"),
]


def _watch(workspace: Path, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecompipe", "watch", "--workspace", str(workspace), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "watching" in proc.stderr.readline()  # the handlers are in place from here on
    return proc


def _succeeded(workspace: Path) -> int:
    con = sqlite3.connect(workspace / "ecompipe.db")
    try:
        row = con.execute("SELECT count(*) FROM executions WHERE status = 'SUCCEEDED'")
        return int(row.fetchone()[0])
    finally:
        con.close()


def _wait_until(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_watch_runs_once_per_complete_set(workspace: Path, tmp_path: Path) -> None:
    first, second = chunked(sample_tables(tmp_path / "gen", 200, seed=13), 2)
    landed = Landed()
    proc = _watch(workspace, "--debounce", "0.7", "--max-runs", "2", "--timeout", "90")
    # Files of a set arrive one by one, closer together than the quiet period: one run.
    for dataset in ("order_items", "orders", "products"):
        landed.land(workspace, {dataset: first[dataset]}, "a", tmp_path / "keep")
        time.sleep(0.2)
    landed.batches = [{d: p for b in landed.batches for d, p in b.items()}]
    _wait_until(lambda: _succeeded(workspace) == 1, 60)
    landed.land(workspace, second, "b", tmp_path / "keep")
    _out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "watch ends (max-runs) after 2 run(s)" in err
    assert _succeeded(workspace) == 2
    assert_settled(workspace, landed)
    assert metrics_json(workspace) == landed.expected()
    assert lock_holders(workspace) == []


def test_ctrl_c_stops_watch_cleanly(workspace: Path, tmp_path: Path) -> None:
    first = chunked(sample_tables(tmp_path / "gen", 100, seed=2), 1)[0]
    proc = _watch(workspace, "--poll", "--debounce", "0.3", "--timeout", "90")
    landed = Landed()
    landed.land(workspace, first, "a", tmp_path / "keep")
    _wait_until(lambda: _succeeded(workspace) == 1, 60)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "watch ends (stopped) after 1 run(s)" in err
    assert lock_holders(workspace) == []
    assert_settled(workspace, landed)
