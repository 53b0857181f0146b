"""The manifest (files landing or overwritten mid-run wait for the next run) and idempotency
(nothing new is a no-op that writes nothing; the same files again change no metric)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import ecompipe, metrics_json
from tests.exactly_once import DATASETS, Landed, assert_settled, chunked, sample_tables

pytestmark = [pytest.mark.local, pytest.mark.duckdb]


def run_with_hook(workspace: Path, hook: object) -> int:
    """`ecompipe run` in-process with an on_state hook (called as each state is entered)."""
    from ecompipe.config import load_settings
    from ecompipe.engines import create_engine
    from ecompipe.pipeline import Pipeline
    from ecompipe.wiring import open_backend
    from ecompipe.workspace import Workspace

    ws = Workspace(workspace)
    settings = load_settings(ws.config_file)
    ports = open_backend("local", settings, ws, quiet=True)
    pipeline = Pipeline(settings, ports, lambda: create_engine(settings), on_state=hook)  # type: ignore[arg-type]
    return pipeline.run().exit_code


@pytest.mark.slow
def test_files_landed_or_overwritten_mid_run_wait_for_the_next_run(
    workspace: Path, tmp_path: Path
) -> None:
    first, second = chunked(sample_tables(tmp_path / "gen", 200, seed=9), 2)
    landed = Landed()
    landed.land(workspace, first, "a", tmp_path / "keep")
    later = Landed()  # what lands during the run, as its own batch
    seen: list[str] = []

    def hook(_execution_id: str, state: str) -> None:
        seen.append(state)
        if state == "TransformData":
            # Overwrite a key the run owns (its copy is already claimed): a new object.
            later.land(workspace, {"orders": second["orders"]}, "a", tmp_path / "keep-later")
        if state == "ArchiveFiles":
            rest = {d: second[d] for d in ("order_items", "products")}
            later.land(workspace, rest, "c", tmp_path / "keep-later2")

    assert run_with_hook(workspace, hook) == 0
    assert "ArchiveFiles" in seen
    # Only the first batch was computed; the mid-run files are still in landing, untouched.
    assert metrics_json(workspace) == landed.expected()
    waiting = sorted(
        p.relative_to(workspace / "landing").as_posix()
        for p in (workspace / "landing").rglob("*.csv")
    )
    assert waiting == ["order_items/c.csv", "orders/a.csv", "products/c.csv"]
    # The next run processes them.
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0
    landed.batches.append({d: p for b in later.batches for d, p in b.items()})
    landed.objects.update(later.objects)
    assert_settled(workspace, landed)
    assert metrics_json(workspace) == landed.expected()


def snapshot(workspace: Path) -> tuple[list[str], list[tuple[str, int, int]]]:
    """The database's content and every file's path, size and mtime (SQLite's -shm index
    and WAL are left out: readers may touch them without changing any data)."""
    con = sqlite3.connect(workspace / "ecompipe.db")
    try:
        dump = list(con.iterdump())
    finally:
        con.close()
    files = []
    for path in sorted(workspace.rglob("*")):
        if path.name.endswith(("-shm", "-wal")) or path.name == "ecompipe.db":
            continue
        st = path.lstat()
        files.append((path.relative_to(workspace).as_posix(), st.st_size, st.st_mtime_ns))
    return dump, files


@pytest.mark.slow
def test_nothing_new_is_a_no_op_and_the_same_files_again_change_no_metric(
    workspace: Path, tmp_path: Path
) -> None:
    from ecompipe.sample import generate_sample

    generate_sample(tmp_path / "keep", 300, seed=4, dirty=True)
    for dataset in DATASETS:
        for path in (tmp_path / "keep" / dataset).glob("*.csv"):
            shutil.copyfile(path, workspace / "landing" / dataset / path.name)
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0
    metrics = metrics_json(workspace)
    before = snapshot(workspace)
    result = ecompipe("run", "--quiet", workspace=workspace)
    assert result.exit_code == 3, result.output
    assert snapshot(workspace) == before
    # The very same files delivered again: a new execution, every metric unchanged.
    for dataset in DATASETS:
        for path in (tmp_path / "keep" / dataset).glob("*.csv"):
            shutil.copyfile(path, workspace / "landing" / dataset / path.name)
    result = ecompipe("run", "--json", workspace=workspace)
    assert result.exit_code == 0, result.output
    assert '"dates_recomputed": 0' in result.output
    assert metrics_json(workspace) == metrics
    assert not any(os.scandir(workspace / "inflight"))
