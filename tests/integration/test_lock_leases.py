"""The lock as a semaphore of leases, and concurrent runs on one workspace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ecompipe, ecompipe_proc, metrics_json
from tests.exactly_once import (
    Landed,
    assert_settled,
    chunked,
    events,
    lock_holders,
    max_overlap,
    sample_tables,
    unfinished,
)

pytestmark = [pytest.mark.local]


def _lock(workspace: Path, limit: int, lock_id: str = "ecommerce-pipeline-lock") -> object:
    from ecompipe.stores.local.sqlite import SQLiteLock

    return SQLiteLock(workspace / "ecompipe.db", lock_id, limit)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _insert(workspace: Path, holder: str, host: str, pid: int, expires_in: float) -> None:
    import sqlite3

    con = sqlite3.connect(workspace / "ecompipe.db")
    with con:
        con.execute(
            "INSERT INTO lock_holders VALUES ('ecommerce-pipeline-lock', ?, NULL, ?, ?, ?, ?)",
            (holder, host, pid, time.time(), time.time() + expires_in),
        )
    con.close()


@pytest.mark.fast
def test_limit_dead_and_expired_holders(workspace: Path) -> None:
    from ecompipe.stores.host import HOST
    from ecompipe.stores.local.sqlite import SQLiteLock

    lock = _lock(workspace, 2)
    assert isinstance(lock, SQLiteLock)
    assert lock.try_acquire("a", None, 60) and lock.try_acquire("b", None, 60)
    assert not lock.try_acquire("c", None, 60)
    assert lock.try_acquire("a", None, 60)  # a holder keeps (and renews) its own slot
    lock.release("a")
    lock.release("b")
    # A live holder elsewhere with an unexpired lease blocks; expired, it is reaped.
    _insert(workspace, "far", "another-host", 1, expires_in=60)
    one = _lock(workspace, 1)
    assert isinstance(one, SQLiteLock)
    assert not one.try_acquire("me", None, 60)
    one.force_release("far")
    _insert(workspace, "far", "another-host", 1, expires_in=-1)
    assert one.try_acquire("me", None, 60)
    one.release("me")
    # A dead process on this host is reaped at once, however long its lease.
    _insert(workspace, "dead", HOST, _dead_pid(), expires_in=3600)
    assert one.try_acquire("me", None, 60)
    assert [h.holder for h in one.holders()] == ["me"]
    # Renewal extends; after a forced release it reports the lease lost.
    assert one.renew("me", 120)
    assert one.holders()[0].expires_at > time.time() + 100
    one.force_release()
    assert not one.renew("me", 120)


@pytest.mark.fast
def test_heartbeat_renews_the_lease(workspace: Path) -> None:
    from ecompipe.pipeline import Heartbeat
    from ecompipe.stores.local.sqlite import SQLiteLock

    lock = _lock(workspace, 1)
    assert isinstance(lock, SQLiteLock)
    assert lock.try_acquire("me", None, 0.3)
    with Heartbeat(_lock(workspace, 1), "me", 0.3) as hb:  # type: ignore[arg-type]
        time.sleep(1.0)
        assert lock.holders()[0].expires_at > time.time()
        assert not hb.lost.is_set()
        lock.force_release()
        time.sleep(0.4)
        assert hb.lost.is_set()


class _Broken:
    """A lock whose renewal raises something no adapter should (a bug)."""

    def __init__(self) -> None:
        self.calls = 0

    def renew(self, holder: str, lease_seconds: float) -> bool:
        self.calls += 1
        raise RuntimeError("a bug in an adapter")


@pytest.mark.fast
def test_a_heartbeat_that_breaks_counts_the_lease_as_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Renewals that end unexpectedly must not leave the run going past its lease: the
    lease counts as lost (the runner stops at the next state boundary); no thread dies
    with an uncaught exception."""
    import threading

    from ecompipe.pipeline import Heartbeat

    died: list[object] = []
    monkeypatch.setattr(threading, "excepthook", died.append)
    broken = _Broken()
    with Heartbeat(broken, "me", 0.15) as hb:  # type: ignore[arg-type]
        assert hb.lost.wait(5)
    assert broken.calls == 1 and died == []


@pytest.mark.fast
def test_a_heartbeat_whose_lock_fails_after_the_stop_ends_quietly() -> None:
    """A renewal in flight when the stop is asked and the lock closed under it (a second
    Ctrl-C cut the exit's join short) ends the thread quietly: no lost lease, no raise."""
    import sqlite3

    from ecompipe.pipeline import Heartbeat

    class ClosedUnderIt:
        calls = 0

        def renew(self, holder: str, lease_seconds: float) -> bool:
            ClosedUnderIt.calls += 1
            hb._stop.set()  # the exit asked to stop while this renewal ran
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

    hb = Heartbeat(ClosedUnderIt(), "me", 0.15)  # type: ignore[arg-type]
    hb._beat()  # the thread's body, run here: it must return, not raise
    assert ClosedUnderIt.calls == 1 and not hb.lost.is_set()


@pytest.mark.fast
def test_waiting_run_gives_up_with_exit_2_and_lock_cli(workspace: Path) -> None:
    from ecompipe.sample import generate_sample

    generate_sample(workspace / "landing", 20, seed=1)
    _insert(workspace, "busy-run", "another-host", 1, expires_in=600)
    result = ecompipe("run", workspace=workspace, ECOMPIPE_LOCK_WAIT_SECONDS="0.5")
    assert result.exit_code == 2
    assert "lock 'ecommerce-pipeline-lock' busy for 0.5s (holders: busy-run)" in result.output
    shown = ecompipe("lock", workspace=workspace)
    assert "busy-run" in shown.output and "1 of 1 slot(s) held" in shown.output
    as_json = json.loads(ecompipe("lock", "--json", workspace=workspace).stdout)
    assert [h["holder"] for h in as_json] == ["busy-run"]
    released = ecompipe("lock", "release", "--force", workspace=workspace)
    assert released.exit_code == 0
    assert "warning: releasing by force" in released.output
    assert lock_holders(workspace) == []
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0


@pytest.mark.slow
@pytest.mark.duckdb
@pytest.mark.xdist_group("subprocess")
@pytest.mark.parametrize("limit", [1, 2])
def test_concurrent_runs_with_files_landing(workspace: Path, tmp_path: Path, limit: int) -> None:
    """8 real `ecompipe run` processes while 6 batches land; then check exactly-once."""
    chunks = chunked(sample_tables(tmp_path / "gen", 600, seed=21), 6)
    landed = Landed()
    for i in range(2):
        landed.land(workspace, chunks[i], f"part{i}", tmp_path / "keep")
    env = {
        "ECOMPIPE_LOCK_LIMIT": str(limit),
        "ECOMPIPE_LOCK_WAIT_SECONDS": "120",
        "ECOMPIPE_DUCKDB_THREADS": "1",
    }
    import os

    procs = []
    for n in range(8):
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ecompipe", "run", "--quiet", "--workspace", str(workspace)],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        time.sleep(0.15)
        if 2 + n // 2 < len(chunks) and n % 2 == 1:
            i = 2 + n // 2
            landed.land(workspace, chunks[i], f"part{i}", tmp_path / "keep")
    for i in range(len(landed.batches), len(chunks)):
        landed.land(workspace, chunks[i], f"part{i}", tmp_path / "keep")
    for proc in procs:
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode in (0, 3), err
    for _ in range(3):  # whatever landed after the last process looked
        if ecompipe_proc("run", "--quiet", workspace=workspace, env=env).returncode == 3:
            break
    assert_settled(workspace, landed)
    assert lock_holders(workspace) == []
    assert unfinished(workspace) == []
    assert metrics_json(workspace) == landed.expected()
    leases = {
        (d["holder"], d["acquired_at"], d["released_at"])
        for d in (json.loads(x[2] or "{}") for x in events(workspace, "released"))
    }
    assert leases
    assert max_overlap([(a, b) for _h, a, b in leases]) <= limit
    spans = {
        (d["entered_at"], d["exited_at"])
        for d in (json.loads(x[2] or "{}") for x in events(workspace, "critical"))
    }
    assert spans
    assert max_overlap(list(spans)) == 1
