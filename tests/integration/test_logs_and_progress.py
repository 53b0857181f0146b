"""Logs and progress of real `ecompipe` runs: JSON log lines (execution id and state on each,
a canary secret never written), chosen by --log-format or ECOMPIPE_LOG_FORMAT; progress bars
drawn on a pseudo-terminal, never when stderr is piped or with --quiet."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, ecompipe, ecompipe_proc
from tests.support import DATASETS, SUCCESS_PATH, land

pytestmark = [pytest.mark.slow, pytest.mark.local, pytest.mark.duckdb, pytest.mark.timeout(120)]

HAND = FIXTURES / "hand"
CANARY = "CanarySecret0x5eed"
#: What rich draws a progress bar with.
BAR = "━"
#: The states that do work, each logged as entered then succeeded (written out here).
TASK_STATES = SUCCESS_PATH[1:-1]


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    lines = stderr.splitlines()
    assert lines, "no log line"
    return [json.loads(line) for line in lines]  # every line is one JSON object


def _check_run_lines(lines: list[dict[str, Any]], accepted: int, rejected: int) -> None:
    """One execution's narrative: started, each state entered and succeeded with its
    duration, the verdict counts, the ending; every line with execution id and state."""
    assert all({"time", "level", "logger", "message", "state"} <= ln.keys() for ln in lines)
    [execution_id] = {ln["execution_id"] for ln in lines}
    assert execution_id.startswith("exec-")
    assert list(dict.fromkeys(ln["state"] for ln in lines)) == SUCCESS_PATH
    for state in TASK_STATES:
        mine = [ln for ln in lines if ln["state"] == state]
        assert mine[0]["message"] == f"{state} entered"
        assert mine[-1]["message"].startswith(f"{state} succeeded in ")
        assert mine[-1]["seconds"] >= 0
    [verdicts] = [ln for ln in lines if "files_accepted" in ln]
    assert (verdicts["files_accepted"], verdicts["files_rejected"]) == (accepted, rejected)
    ending = lines[-1]
    assert (ending["status"], ending["exit_code"]) == ("SUCCEEDED", 0)
    assert ending["subject"].startswith(f"{execution_id} SUCCEEDED")


def test_json_logs_of_a_run_carry_execution_and_state_and_never_a_secret(
    workspace: Path,
) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    # A file whose key holds the canary: rejected, and its key logged with the verdict.
    (workspace / "landing" / "orders" / f"orders_{CANARY}.csv").write_text("not,a,header\n")
    env = {"LOG_LEVEL": "INFO", "AWS_SECRET_ACCESS_KEY": CANARY}
    proc = ecompipe_proc("--log-format", "json", "run", workspace=workspace, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = _json_lines(proc.stderr)  # the notifier's plain line is not among them
    _check_run_lines(lines, accepted=3, rejected=1)
    assert any("orders_***.csv" in ln["message"] for ln in lines)
    assert CANARY not in proc.stderr and CANARY not in proc.stdout
    # Piped: no progress bar, no terminal escape code.
    assert "\x1b" not in proc.stderr and BAR not in proc.stderr


def test_log_format_from_the_environment_logs_info_by_default(workspace: Path) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    result = ecompipe("run", workspace=workspace, ECOMPIPE_LOG_FORMAT="json")
    assert result.exit_code == 0, result.stderr
    _check_run_lines(_json_lines(result.stderr), accepted=3, rejected=0)


def _on_a_terminal(*args: str, workspace: Path, timeout: float = 60) -> tuple[int, str]:
    """Run `ecompipe ARGS` with stdout and stderr on a pseudo-terminal; returns its exit code
    and everything it wrote there."""
    main, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecompipe", *args, "--workspace", str(workspace)],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
        env=env,
    )
    os.close(child)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([main], [], [], 0.2)[0]:
                try:
                    data = os.read(main, 65536)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not data:
                    break
                out += data
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return code, out.decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_and_none_with_quiet(workspace: Path) -> None:
    code, shown = _on_a_terminal("generate", "--orders", "300", workspace=workspace)
    assert code == 0, shown
    assert BAR in shown and "generate" in shown and "3/3 files" in shown

    code, shown = _on_a_terminal("run", workspace=workspace)
    assert code == 0, shown
    assert BAR in shown and "validate orders" in shown and "1/1 files" in shown
    assert "archive" in shown

    assert ecompipe("generate", "--orders", "50", "--seed", "7", workspace=workspace).exit_code == 0
    code, shown = _on_a_terminal("run", "--quiet", workspace=workspace)
    assert code == 0, shown
    assert BAR not in shown and "\x1b" not in shown and "validate" not in shown
