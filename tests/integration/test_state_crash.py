"""Kills around the current state's commit (engines/current.py): the next run finishes the
batch, the metrics and the current state are the reference's, and nothing is left over."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import reference
from tests.conftest import ecompipe_proc, metrics_json
from tests.exactly_once import Landed, assert_settled, chunked, sample_tables, unfinished
from tests.functional.test_curated_state import _assert_state_is
from tests.support import SIGKILLED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.local,
    pytest.mark.duckdb,
    pytest.mark.xdist_group("subprocess"),
]


@pytest.mark.parametrize(
    ("point", "batch"),
    [
        ("transform:before-state-commit", 0),  # the state built from the log, not committed
        ("transform:before-state-commit", 1),  # a fold computed, metrics written, not committed
        ("state:before-manifest", 1),  # the new files in place, the old manifest still current
    ],
)
def test_kill_around_the_state_commit(
    workspace: Path, tmp_path: Path, point: str, batch: int
) -> None:
    tables = sample_tables(tmp_path / "gen", 300, seed=11)
    landed = Landed()
    for i, part in enumerate(chunked(tables, 2)):
        landed.land(workspace, part, f"part{i}", tmp_path / "keep")
        env = {"ECOMPIPE_CRASH_AT": point} if i == batch else {}
        run = ecompipe_proc("run", "--quiet", workspace=workspace, env=env)
        assert run.returncode == (SIGKILLED if env else 0), run.stderr
        if env:
            rerun = ecompipe_proc("run", "--quiet", workspace=workspace)
            assert rerun.returncode == 0, rerun.stderr
    assert_settled(workspace, landed)
    assert unfinished(workspace) == []
    assert metrics_json(workspace) == landed.expected()
    state = None
    for files in landed.batches:
        state = reference.merge(state, reference.validate_batch(files))
    assert state is not None
    _assert_state_is(workspace, state)
    assert not (workspace / "curated" / "current" / "_incoming").exists()
