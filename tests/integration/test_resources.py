"""Resources are not data: a real `ecompipe run` that runs out of memory or disk ends with
exit 2 and a one-line message naming what to change; no file gets a verdict, nothing is
quarantined, no KPI is computed without a file; the next run finishes the work exactly (the
reference's KPIs) and settles every landed file once.

Before: DuckDB's "Out of Memory Error" was a file verdict ("cannot read as CSV"): the files
were quarantined and the run ended SUCCEEDED with KPIs computed without them.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from ecompipe.engines import header
from tests.conftest import ecompipe, ecompipe_proc, metrics_json
from tests.exactly_once import (
    REPORT_NAMES,
    Landed,
    assert_settled,
    files_under,
    lock_holders,
    sha,
    unfinished,
)

pytestmark = [pytest.mark.local, pytest.mark.duckdb]

NO_METRICS = {"order_metrics": [], "category_metrics": []}


def generated(workspace: Path, orders: int, keep: Path) -> Landed:
    """`ecompipe generate --orders N` into landing, recorded for the reference."""
    result = ecompipe("generate", "--orders", str(orders), workspace=workspace)
    assert result.exit_code == 0, result.output
    landed = Landed()
    landed.landed_now(workspace, keep)
    return landed


def statuses(workspace: Path) -> list[str]:
    """The status of every execution."""
    con = sqlite3.connect(workspace / "ecompipe.db")
    try:
        return [r[0] for r in con.execute("SELECT status FROM executions").fetchall()]
    finally:
        con.close()


def kept(workspace: Path) -> Counter[tuple[str, str]]:
    """(key, sha) of every data object still in landing/ or inflight/<execution>/."""
    found: Counter[tuple[str, str]] = Counter()
    for area, skip in (("landing", 0), ("inflight", 1)):
        for path in files_under(workspace / area):
            key = "/".join(path.relative_to(workspace / area).parts[skip:])
            found[(key, sha(path))] += 1
    return found


def assert_kept_for_next_run(workspace: Path, landed: Landed, stderr: str, *words: str) -> None:
    """What an operational error leaves: its message, and every file for the next run."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    # The error, then which execution keeps its files for the next run.
    assert len(lines) == 2 and lines[0].startswith("ecompipe: error: "), stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert "the next `ecompipe run` resumes it" in lines[1]
    quarantined = files_under(workspace / "quarantine")
    assert [p for p in quarantined if p.name not in REPORT_NAMES] == []
    assert statuses(workspace) == ["RUNNING"]
    assert kept(workspace) == landed.objects
    assert metrics_json(workspace) == NO_METRICS


def assert_next_run_finishes(workspace: Path, landed: Landed) -> None:
    """A run with the machine back to normal: the reference's KPIs, every file settled once."""
    rerun = ecompipe_proc("run", "--quiet", workspace=workspace)
    assert rerun.returncode == 0, rerun.stderr
    assert_settled(workspace, landed)
    assert statuses(workspace) == ["SUCCEEDED"]
    assert unfinished(workspace) == [] and lock_holders(workspace) == []
    assert metrics_json(workspace) == landed.expected()


# DuckDB 1.x asks a 30.5 MiB buffer for every read_csv: under 16 MB no file can be read, for
# any N. At the 40 MB (one thread), orders are validated and staged, then the read of
# a later dataset runs out (from about 82,000 orders on, measured; 100,000 leaves a margin).
OUT_OF_MEMORY = [("16MB", 2_000), ("40MB", 100_000)]


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
@pytest.mark.parametrize(
    ("limit", "orders"), OUT_OF_MEMORY, ids=["below-one-read-buffer", "after-a-staged-dataset"]
)
def test_out_of_memory_keeps_everything_for_the_next_run(
    workspace: Path, tmp_path: Path, limit: str, orders: int
) -> None:
    landed = generated(workspace, orders, tmp_path / "keep")
    env = {"ECOMPIPE_DUCKDB_MEMORY_LIMIT": limit, "ECOMPIPE_DUCKDB_THREADS": "1"}
    short = ecompipe_proc("run", workspace=workspace, env=env)
    assert short.returncode == 2, short.stderr
    assert_kept_for_next_run(
        workspace,
        landed,
        short.stderr,
        "DuckDB ran out of memory",
        f"raise ECOMPIPE_DUCKDB_MEMORY_LIMIT (now {limit})",
    )
    assert_next_run_finishes(workspace, landed)


# Where the disk fills: the first staged Parquet file, the second (one already staged), the
# first publish into the curated log, the second (one batch file already published).
FULL_DISK = [
    ("staging", 0, "staging/{eid}/orders.parquet"),
    ("staging", 1, "staging/{eid}/order_items.parquet"),
    ("publish", 0, "curated/orders/000000000001.parquet"),
    ("publish", 1, "curated/order_items/000000000001.parquet"),
]


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
@pytest.mark.parametrize(
    ("point", "skip", "where"), FULL_DISK, ids=[f"{p}+{s}" for p, s, _ in FULL_DISK]
)
def test_full_disk_keeps_everything_for_the_next_run(
    workspace: Path, tmp_path: Path, point: str, skip: int, where: str
) -> None:
    landed = generated(workspace, 300, tmp_path / "keep")
    env = {"ECOMPIPE_FAULT_AT": f"enospc:{point}", "ECOMPIPE_FAULT_SKIP": str(skip)}
    full = ecompipe_proc("run", workspace=workspace, env=env)
    assert full.returncode == 2, full.stderr
    (eid,) = unfinished(workspace)
    path = workspace / where.format(eid=eid)
    assert_kept_for_next_run(
        workspace,
        landed,
        full.stderr,
        f"No space left on device ({path}): free disk space there",
    )
    assert_next_run_finishes(workspace, landed)


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_full_disk_at_the_spark_engines_staging_write(workspace: Path, tmp_path: Path) -> None:
    """The Spark engine lets the write's OSError through (no verdict, no EngineError). The
    next run uses the default engine (either reads the other's batch files): one JVM start."""
    landed = generated(workspace, 300, tmp_path / "keep")
    env = {"ECOMPIPE_FAULT_AT": "enospc:staging", "ECOMPIPE_FAULT_SKIP": "1"}
    full = ecompipe_proc("run", "--engine", "spark", workspace=workspace, env=env)
    assert full.returncode == 2, full.stderr
    (eid,) = unfinished(workspace)
    path = workspace / "staging" / eid / "order_items.parquet"
    # The JVM writes a few lines of its own at its start, before ecompipe's.
    ours = full.stderr[full.stderr.index("ecompipe: ") :]
    assert_kept_for_next_run(workspace, landed, ours, f"No space left on device ({path})")
    assert_next_run_finishes(workspace, landed)


@pytest.mark.fast
def test_too_many_open_files_reading_a_header_is_no_verdict(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMFILE on a landed file's header: before, the file was quarantined as unreadable."""
    landed = generated(workspace, 50, tmp_path / "keep")

    def too_many(path: Path) -> None:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE), str(path))

    with monkeypatch.context() as patch:
        patch.setattr(header, "read_header", too_many)
        result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 2, result.output
    assert_kept_for_next_run(
        workspace, landed, result.stderr, "Too many open files", "raise the open-files limit"
    )
    assert_next_run_finishes(workspace, landed)
