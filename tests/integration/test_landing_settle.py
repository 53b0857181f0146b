"""A file still being written is never processed in part (issue 16, item 1).

A real writer process holds an items file open and writes it in chunks cut mid-row, pausing
longer than the settle period, while real `ecompipe run` and `ecompipe watch` processes
start. Expected KPIs come from tests/reference.py over the files as finally written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ecompipe, ecompipe_proc, metrics_json
from tests.exactly_once import (
    Landed,
    assert_settled,
    csv_text,
    events,
    lock_holders,
    sample_tables,
    sha,
    unfinished,
)

pytestmark = [pytest.mark.local, pytest.mark.duckdb]

#: Writes argv[1]'s bytes into argv[2] in argv[3] chunks (cut anywhere, mid-row too),
#: flushing each and pausing argv[4] seconds between them, with the file open throughout,
#: as an export or an SFTP upload does. Prints "open" once the file exists.
WRITER = """
import sys, time
data = open(sys.argv[1], "rb").read()
n, pause = int(sys.argv[3]), float(sys.argv[4])
step = -(-len(data) // n)
with open(sys.argv[2], "wb") as out:
    print("open", flush=True)
    for i in range(n):
        out.write(data[i * step:(i + 1) * step])
        out.flush()
        if i < n - 1:
            time.sleep(pause)
"""


def _writer(source: Path, target: Path, chunks: int, pause: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(source), str(target), str(chunks), str(pause)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
    return proc


def _land_with_writer(workspace: Path, tmp_path: Path, seed: int) -> tuple[Landed, Path, Path]:
    """Orders and products landed whole; the items file's final text kept aside (for the
    writer and the reference). Returns (landed, items source, items target in landing)."""
    tables = sample_tables(tmp_path / "gen", 300, seed=seed)
    landed = Landed()
    keep = tmp_path / "keep"
    landed.land(workspace, {d: tables[d] for d in ("orders", "products")}, "a", keep)
    items = keep / "0" / "order_items" / "a.csv"
    items.parent.mkdir(parents=True, exist_ok=True)
    items.write_text(csv_text(tables["order_items"].header, tables["order_items"].rows))
    landed.batches[0]["order_items"] = [items]
    landed.objects[("order_items/a.csv", sha(items))] += 1
    return landed, items, workspace / "landing" / "order_items" / "a.csv"


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
def test_a_file_written_in_chunks_is_processed_once_whole(workspace: Path, tmp_path: Path) -> None:
    landed, items, target = _land_with_writer(workspace, tmp_path, seed=16)
    env = {"ECOMPIPE_SETTLE_SECONDS": "0.5"}
    # Pauses twice the settle period: by its timestamps alone the file would look complete.
    writer = _writer(items, target, chunks=5, pause=1.0)
    during: list[subprocess.CompletedProcess[str]] = []
    while writer.poll() is None and len(during) < 20:
        during.append(ecompipe_proc("run", workspace=workspace, env=env, timeout=60))
    assert writer.wait(timeout=60) == 0
    assert during, "no run started while the file was being written"
    # Every run that started while the writer held the file open left the set alone; the
    # last one may have started as the writer finished, and taken the whole file.
    *while_open, last = during
    for run in while_open:
        assert run.returncode == 3, run.stderr
        assert "order_items/a.csv (" in run.stderr and "Traceback" not in run.stderr
    assert last.returncode in (0, 3), last.stderr
    assert any("order_items/a.csv (held open by a writer)" in r.stderr for r in during)
    if last.returncode == 3:  # nothing claimed yet, so nothing partial counted anywhere
        assert not list((workspace / "curated").rglob("*.parquet"))
    finished = None
    for _ in range(5):  # until nothing is left (the first run after settling takes it all)
        finished = ecompipe_proc("run", workspace=workspace, env=env, timeout=120)
        if finished.returncode == 3:
            break
        assert finished.returncode == 0, finished.stderr
    assert finished is not None and finished.returncode == 3
    assert_settled(workspace, landed)  # archived once, whole (its SHA-256 is the final one)
    assert metrics_json(workspace) == landed.expected()
    assert unfinished(workspace) == [] and lock_holders(workspace) == []


@pytest.mark.slow
@pytest.mark.xdist_group("subprocess")
def test_watch_waits_for_a_file_still_being_written(workspace: Path, tmp_path: Path) -> None:
    landed, items, target = _land_with_writer(workspace, tmp_path, seed=17)
    writer = _writer(items, target, chunks=4, pause=1.0)
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ecompipe",
            "watch",
            "--workspace",
            str(workspace),
            "--debounce",
            "0.3",
            "--max-runs",
            "1",
            "--timeout",
            "90",
        ],
        env={**os.environ, "ECOMPIPE_SETTLE_SECONDS": "0.5"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.wait(timeout=60) == 0
        _out, err = watch.communicate(timeout=90)
    finally:
        if watch.poll() is None:
            watch.send_signal(signal.SIGKILL)
    assert watch.returncode == 0, err
    assert "run 1: exit 0" in err and "watch ends (max-runs) after 1 run(s)" in err
    assert_settled(workspace, landed)
    assert metrics_json(workspace) == landed.expected()
    assert events(workspace, "returned") == []  # never claimed while it was written


@pytest.mark.slow
def test_a_run_waits_for_fresh_files_and_leaves_one_that_keeps_changing(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By timestamps alone (as where a writer cannot be seen: NFS, another owner's file)."""
    from ecompipe.stores.local import folder as local_store

    monkeypatch.setattr(local_store, "held_for_writing", lambda _path: False)
    monkeypatch.setenv("ECOMPIPE_SETTLE_SECONDS", "1")
    landed, items, target = _land_with_writer(workspace, tmp_path, seed=18)
    data = items.read_bytes()
    # A writer that rewrites a part of the file every 0.1 s, closing it in between: never
    # unchanged for the settle period (1 s) until it is done.
    target.write_bytes(data[:100])
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "data = open(sys.argv[1], 'rb').read()\n"
            "step = max(1, len(data) // 30)\n"
            "for n, i in enumerate(range(100, len(data), step)):\n"
            "    with open(sys.argv[2], 'r+b') as f:\n"
            "        f.seek(i); f.write(data[i:i + step])\n"
            "    if n == 0: print('started', flush=True)\n"
            "    time.sleep(0.1)\n",
            str(items),
            str(target),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    result = ecompipe("run", workspace=workspace)
    assert proc.wait(timeout=30) == 0
    assert result.exit_code == 3, result.output
    assert "order_items/a.csv" in result.stderr and "Traceback" not in result.stderr
    assert not list((workspace / "curated").rglob("*.parquet"))  # nothing partial counted
    # Complete now, unchanged from here on: the next run waits for it to settle, then runs.
    assert target.read_bytes() == data
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 0, result.output
    assert_settled(workspace, landed)
    assert metrics_json(workspace) == landed.expected()


@pytest.mark.fast
def test_names_writers_use_while_writing_are_never_candidates(
    workspace: Path, tmp_path: Path
) -> None:
    tables = sample_tables(tmp_path / "gen", 50, seed=3)
    landed = Landed()
    landed.land(workspace, tables, "a", tmp_path / "keep")
    in_progress = [
        "order_items/.a2.csv",
        "order_items/~$a2.csv",
        "order_items/a2.csv.part",
        "order_items/a2.csv.partial",
        "order_items/a2.csv.crdownload",
        "order_items/a2.CSV.TMP",
        "orders/upload.tmp",  # a folder being filled: not quarantined as "not a file"
    ]
    for key in in_progress:
        path = workspace / "landing" / key
        if key.endswith(".tmp"):
            path.mkdir()
        else:
            path.write_text("id,order_id,product_id,sale_price\n1,1,1,")  # half a row
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 0, result.output
    assert metrics_json(workspace) == landed.expected()
    left = sorted(
        p.relative_to(workspace / "landing").as_posix()
        for p in (workspace / "landing").rglob("*")
        if p.name not in {"orders", "order_items", "products"}
    )
    assert left == sorted(in_progress)
    # No execution took any of them: the one execution's manifest is the landed set.
    shown = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    assert [sorted(f["key"] for f in r["summary"]["validation"]["files"]) for r in shown] == [
        ["order_items/a.csv", "orders/a.csv", "products/a.csv"]
    ]
