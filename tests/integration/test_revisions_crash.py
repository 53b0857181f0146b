"""KPI revisions are recorded exactly once when the transform is killed after writing the
metrics (and the revisions) and the next run redoes it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.conftest import ecompipe, ecompipe_proc
from tests.functional.test_revisions import (
    BATCHES,
    D1,
    ORDER_CHANGES,
    TOPS_CHANGES,
    changes,
    history,
    run_batch,
)
from tests.support import DATASETS, land, notifications

pytestmark = [
    pytest.mark.slow,
    pytest.mark.local,
    pytest.mark.duckdb,
    pytest.mark.xdist_group("subprocess"),
    pytest.mark.timeout(300),
]


def test_a_transform_killed_after_the_metrics_records_each_revision_once(
    workspace: Path,
) -> None:
    run_batch(workspace, "b1")
    land(workspace, {d: BATCHES / "b2" / f"{d}.csv" for d in DATASETS})
    killed = ecompipe_proc(
        "run", workspace=workspace, env={"ECOMPIPE_CRASH_AT": "transform:after-metrics"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(history(workspace)) == 2, "the metrics and their revisions were written"
    resumed = ecompipe("run", "--quiet", workspace=workspace)
    assert resumed.exit_code == 0, resumed.output
    ending = notifications(workspace)[-1]
    revisions = history(workspace)
    assert [r["execution_id"] for r in revisions] == [ending["execution_id"]] * 2
    assert [changes(r) for r in revisions] == [ORDER_CHANGES, TOPS_CHANGES]
    # The redone transform found nothing left to revise; the summary is still the first's.
    assert ending["revisions"]["dates_changed"] == 1
    assert ending["revisions"]["largest_revenue_change"]["date"] == D1
