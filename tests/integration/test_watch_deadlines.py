"""`ecompipe watch` checks the deadlines as `ecompipe check` does: at start, then at most
once a minute (watch.CHECK_EVERY), each condition notified once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import ecompipe_proc
from tests.support import clean_batch, notifications, write_batch

pytestmark = [
    pytest.mark.slow,
    pytest.mark.local,
    pytest.mark.duckdb,
    pytest.mark.xdist_group("subprocess"),
]


def test_watch_warns_once_of_a_set_left_incomplete(workspace: Path) -> None:
    write_batch(workspace, {"orders": clean_batch({}, n=5)["orders"]})
    time.sleep(1.2)  # older than the 1 s deadline below (its landing time cannot be faked)
    env = {"ECOMPIPE_COMPLETE_SET_DEADLINE": "1s"}
    sessions = [
        ecompipe_proc("watch", "--timeout", "2", workspace=workspace, env=env, timeout=60)
        for _ in range(2)
    ]
    assert [s.returncode for s in sessions] == [0, 0], sessions[-1].stderr
    [warning] = notifications(workspace)
    assert warning["kind"] == "incomplete_set" and warning["severity"] == "warning"
    assert warning["missing"] == ["order_items", "products"]
    # The first session said it on the console; the second, finding it notified, did not.
    assert [f"ecompipe: {warning['subject']}" in s.stderr for s in sessions] == [True, False]
