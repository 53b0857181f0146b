"""Shared fixtures: a fresh workspace, the CLI, and the independent reference."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
if str(TESTS.parent) not in sys.path:
    sys.path.insert(0, str(TESTS.parent))

# One moto server per test process, for tests/aws/ and tests/contract/ alike: registered here,
# above both (a fixture defined in each folder would start a server of its own). Moto itself
# is imported only when a test asks for it.
from tests.moto_server import aws, moto_url  # noqa: E402, F401

# One Spark standalone cluster per test process, started by the first test that asks for it.
from tests.spark_cluster import spark_cluster  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own ecompipe/AWS settings."""
    for name in list(os.environ):
        if name.startswith(("ECOMPIPE_", "AWS_")) or name in {
            "BUCKET_NAME",
            "S3_ARCHIVE_BUCKET",
            "ORDERS_PATH",
            "ORDER_ITEMS_PATH",
            "PRODUCTS_PATH",
            "ORDER_METRICS_TABLE",
            "CATEGORY_METRICS_TABLE",
            "LOG_LEVEL",
            "SNS_TOPIC_ARN",
            "STATE_MACHINE_ARN",
        }:
            monkeypatch.delenv(name, raising=False)
    # Tests write each file whole before a run starts, so they need not wait for it to settle;
    # the tests of settling (test_landing_settle.py) set their own.
    monkeypatch.setenv("ECOMPIPE_SETTLE_SECONDS", "0")


@pytest.fixture(autouse=True)
def _logging_put_back() -> Iterator[None]:
    """An in-process CLI or Lambda call sets logging up for the whole process (ecompipe.logs
    writes to the sys.stderr of the moment): taken down after each test, so a later test's
    captured stderr holds only its own lines (not, say, moto's request log at INFO)."""
    root = logging.getLogger()
    level = root.level
    yield
    for handler in [h for h in root.handlers if type(h).__module__ == "ecompipe.logs"]:
        root.removeHandler(handler)
    root.setLevel(level)


def ecompipe(*args: str, workspace: Path | None = None, **env: str) -> Result:
    """Invoke the CLI in-process; returns click's Result (exit_code, stdout, stderr)."""
    from ecompipe.cli import main

    argv = list(args)
    if workspace is not None:
        argv += ["--workspace", str(workspace)]
    return CliRunner().invoke(main, argv, env=env or None, catch_exceptions=False)


def ecompipe_proc(
    *args: str, workspace: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run `ecompipe` as a real subprocess (for kill and concurrency tests)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ecompipe", *args, "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Path]:
    """An initialised, empty workspace."""
    ws = tmp_path / "ws"
    result = ecompipe("init", workspace=ws)
    assert result.exit_code == 0, result.output
    yield ws


def metrics_json(workspace: Path) -> dict[str, Any]:
    """`ecompipe metrics --json` parsed."""
    result = ecompipe("metrics", "--json", workspace=workspace)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data
