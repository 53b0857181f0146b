"""Crash safety: SIGKILL a real `ecompipe run` at every kill point, or after random delays.

After each kill the next `ecompipe run` must finish the work: every landed file ends in
archive/ or quarantine/ exactly once, nothing is left in inflight/ or staging/, no lock is
held, no execution is left RUNNING, and the metrics equal a clean run's (and the reference).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ecompipe, ecompipe_proc, metrics_json
from tests.exactly_once import (
    DATASETS,
    Landed,
    assert_settled,
    chunked,
    lock_holders,
    sample_tables,
    sha,
    unfinished,
)
from tests.support import SIGKILLED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.local,
    pytest.mark.duckdb,
    pytest.mark.xdist_group("subprocess"),
]


def land_dirty_sample(workspace: Path, keep: Path) -> Landed:
    """A dirty sample (one file quarantined whole, rows rejected) landed as one batch."""
    from ecompipe.sample import generate_sample

    generate_sample(keep, 150, seed=11, dirty=True)
    landed = Landed()
    batch: dict[str, list[Path]] = {}
    for dataset in DATASETS:
        for path in sorted((keep / dataset).glob("*.csv")):
            shutil.copyfile(path, workspace / "landing" / dataset / path.name)
            batch.setdefault(dataset, []).append(path)
            landed.objects[(f"{dataset}/{path.name}", sha(path))] += 1
    landed.batches.append(batch)
    return landed


@pytest.fixture(scope="module")
def clean_metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Metrics of an uninterrupted run over the same data."""
    root = tmp_path_factory.mktemp("clean")
    ws = root / "ws"
    assert ecompipe("init", workspace=ws).exit_code == 0
    landed = land_dirty_sample(ws, root / "keep")
    result = ecompipe("run", "--quiet", workspace=ws)
    assert result.exit_code == 0, result.output
    metrics = metrics_json(ws)
    assert metrics == landed.expected()
    return metrics


def assert_recovered(
    ws: Path, landed: Landed, clean: dict[str, Any], dead_lease_ok: bool = False
) -> None:
    """The state every kill must end in once the next run has finished."""
    from ecompipe.stores.host import pid_alive

    assert_settled(ws, landed)
    holders = lock_holders(ws)
    assert [h for h in holders if pid_alive(h[2])] == []
    assert dead_lease_ok or holders == []
    assert unfinished(ws) == []
    assert metrics_json(ws) == clean


# Moves, in order, for the dirty sample: 4 claims, 1 quarantine, 3 publishes, 3 archives.
KILL_POINTS = [
    ("acquire:after-create", 0),
    ("after:AcquireLock", 0),
    ("validate:after-claim", 0),
    ("after:ValidateFiles", 0),
    ("after:CheckValidationResult", 0),
    ("transform:after-publish", 0),
    ("after:TransformData", 0),
    ("after:ArchiveFiles", 0),
    ("success:after-notify", 0),
    ("after:ReleaseLockAndNotifySuccess", 0),
    ("move:after-copy-before-delete", 0),  # first claim
    ("move:after-copy-before-delete", 4),  # the quarantine of the rejected file
    ("move:after-copy-before-delete", 6),  # second curated publish
    ("move:after-copy-before-delete", 9),  # second archive
]


@pytest.mark.parametrize(
    ("point", "skip"), KILL_POINTS, ids=[f"{p}+{s}" if s else p for p, s in KILL_POINTS]
)
def test_kill_at_point_then_next_run_finishes(
    workspace: Path, tmp_path: Path, clean_metrics: dict[str, Any], point: str, skip: int
) -> None:
    landed = land_dirty_sample(workspace, tmp_path / "keep")
    env = {"ECOMPIPE_CRASH_AT": point, "ECOMPIPE_CRASH_SKIP": str(skip)}
    killed = ecompipe_proc("run", "--quiet", workspace=workspace, env=env)
    assert killed.returncode == SIGKILLED, killed.stderr
    # The dead run's lease is still in the table: the next run must reap it at once.
    assert lock_holders(workspace) != []
    rerun = ecompipe_proc("run", "--quiet", workspace=workspace)
    if point == "after:ReleaseLockAndNotifySuccess":
        # All work was recorded before the kill: nothing to do, so nothing is written; the
        # dead holder is shown as dead and reaped by the next run that takes the lock.
        assert rerun.returncode == 3, rerun.stderr
        shown = ecompipe("lock", workspace=workspace)
        assert "dead" in shown.output
        assert_recovered(workspace, landed, clean_metrics, dead_lease_ok=True)
        return
    assert rerun.returncode == 0, rerun.stderr
    assert_recovered(workspace, landed, clean_metrics)
    # Nothing new now: a no-op.
    assert ecompipe_proc("run", "--quiet", workspace=workspace).returncode == 3


def test_random_kills_of_real_runs(workspace: Path, tmp_path: Path) -> None:
    """Black box: three batches land one after another; runs are SIGKILLed after random
    delays (at most two kills a batch, six in all; bounded attempts)."""
    from ecompipe.stores.host import pid_alive

    rng = random.Random(20261125)
    tables = sample_tables(tmp_path / "gen", 400, seed=5)
    landed = Landed()
    kills = 0
    for i, batch in enumerate(chunked(tables, 3)):
        landed.land(workspace, batch, f"part{i}", tmp_path / "keep")
        for _attempt in range(4):
            proc = subprocess.Popen(
                [sys.executable, "-m", "ecompipe", "run", "--quiet", "--workspace", str(workspace)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if kills < 2 * (i + 1):
                time.sleep(rng.uniform(0.2, 1.5))
                if proc.poll() is None:
                    proc.kill()
                    kills += 1
            if proc.wait(timeout=120) != SIGKILLED:
                break  # it finished by itself: the batch is done
    final = ecompipe_proc("run", "--quiet", workspace=workspace)
    assert final.returncode in (0, 3), final.stderr
    assert_settled(workspace, landed)
    # A kill after the last execution finished leaves a dead lease (reaped by the next
    # acquirer; a run with nothing to do writes nothing): no live holder may remain.
    assert [h for h in lock_holders(workspace) if pid_alive(h[2])] == []
    assert unfinished(workspace) == []
    assert metrics_json(workspace) == landed.expected()


def test_kill_after_choosing_failure_then_next_run_ends_it(workspace: Path) -> None:
    """Every file rejected (header only): killed after CheckValidationResult chose failure,
    the next run finishes the failure ending (exit 1, all quarantined, lock free)."""
    for dataset, header in (
        ("orders", "order_id,user_id,created_at,status"),
        ("order_items", "id,order_id,product_id,sale_price"),
        ("products", "id,sku,cost,category,retail_price"),
    ):
        (workspace / "landing" / dataset / "empty.csv").write_text(header + "\n")
    env = {"ECOMPIPE_CRASH_AT": "after:CheckValidationResult"}
    killed = ecompipe_proc("run", "--quiet", workspace=workspace, env=env)
    assert killed.returncode == SIGKILLED, killed.stderr
    rerun = ecompipe_proc("run", "--quiet", workspace=workspace)
    assert rerun.returncode == 1, rerun.stderr
    assert (
        sorted(p.name for p in (workspace / "quarantine").rglob("empty.csv")) == ["empty.csv"] * 3
    )
    assert unfinished(workspace) == []
    assert lock_holders(workspace) == []
