"""The workflow's footprint on disk: state history, archive, quarantine, notifications.

Expected bytes are the bytes we landed (hashed before the run); expected KPI headlines come from
tests/fixtures/hand/expected.json (hand-computed).
"""

from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, ecompipe
from tests.support import (
    DATASETS,
    SUCCESS_PATH,
    execution_dirs,
    land,
    notifications,
    only_execution,
    read_rejects,
    read_report,
    sha256,
    write_batch,
)

pytestmark = [pytest.mark.fast, pytest.mark.duckdb, pytest.mark.local]

HAND = FIXTURES / "hand"
HAND_DIRTY = FIXTURES / "hand_dirty"


def _run(workspace: Path, code: int = 0) -> None:
    result = ecompipe("run", "-q", workspace=workspace)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output


def _history(workspace: Path) -> list[dict]:
    [record] = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    shown = ecompipe("executions", "show", record["execution_id"], "--json", workspace=workspace)
    events: list[dict] = json.loads(shown.stdout)["events"]
    return events


def _state_order(events: list[dict]) -> list[str]:
    """States in the order they were first entered or succeeded."""
    order: list[str] = []
    for e in events:
        if e["event"] in ("entered", "succeeded") and e["state"] not in order:
            order.append(e["state"])
    return order


def test_success_path_transitions_are_timed_and_in_order(workspace: Path) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    _run(workspace)
    events = _history(workspace)
    assert _state_order(events) == SUCCESS_PATH
    assert all(isinstance(e["at"], float) and e["at"] > 1.6e9 for e in events)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    for state in SUCCESS_PATH:
        entered = [e["at"] for e in events if e["state"] == state and e["event"] == "entered"]
        done = [e["at"] for e in events if e["state"] == state and e["event"] == "succeeded"]
        assert len(done) == 1 and entered and entered[0] <= done[0], state
    assert not any(e["state"] == "ReleaseLockAndNotifyFailure" for e in events)


def test_failure_path_ends_in_release_and_notify_failure(workspace: Path) -> None:
    write_batch(
        workspace,
        {
            "orders": "order_id,user_id\n1,1\n",  # missing columns
            "order_items": "id,order_id,product_id,sale_price\n",  # no rows
            "products": b"\xff\xfe\x00i\x00d\x00\n",  # UTF-16: unreadable
        },
    )
    _run(workspace, code=1)
    events = _history(workspace)
    assert _state_order(events) == [
        "AcquireLock",
        "ValidateFiles",
        "CheckValidationResult",
        "ReleaseLockAndNotifyFailure",
    ]
    listed = ecompipe("executions", workspace=workspace).stdout
    assert "FAILED" in listed and "ReleaseLockAndNotifyFailure" in listed
    assert not any(e["state"] in ("TransformData", "ArchiveFiles") for e in events)
    # Every file was quarantined whole; nothing archived; landing is empty.
    folder = only_execution(workspace)
    reasons = {f["key"]: f["reason"] for f in read_report(folder)["files"]}
    assert reasons == {
        "orders/batch.csv": "missing_column",
        "order_items/batch.csv": "no_rows",
        "products/batch.csv": "unreadable",
    }
    for key in reasons:
        assert (folder / key).is_file()
    assert not any(p.is_file() for p in (workspace / "archive").rglob("*"))
    assert not any(p.is_file() for p in (workspace / "landing").rglob("*"))
    [note] = notifications(workspace)
    assert note["status"] == "FAILED" and note["files_rejected"] == 3 and note["error"]


def test_archive_holds_identical_bytes_and_landing_is_emptied(workspace: Path) -> None:
    land(workspace, {d: HAND_DIRTY / f"{d}.csv" for d in DATASETS})
    before = {
        p.relative_to(workspace / "landing").as_posix(): sha256(p)
        for p in (workspace / "landing").rglob("*.csv")
    }
    assert len(before) == 3
    _run(workspace)
    archive = only_execution(workspace, "archive")
    after = {
        p.relative_to(archive).as_posix(): sha256(p) for p in archive.rglob("*") if p.is_file()
    }
    assert after == before
    assert not any(p.is_file() or p.is_symlink() for p in (workspace / "landing").rglob("*"))
    # Archive and quarantine belong to the same execution id.
    assert archive.name == only_execution(workspace).name


def test_a_second_run_with_the_same_names_never_overwrites(workspace: Path) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    first = {d: sha256(HAND / f"{d}.csv") for d in DATASETS}
    _run(workspace)
    # Same file names, other content (an extra order on a new date).
    second_orders = (HAND / "orders.csv").read_text() + "199,9,2024-03-05 10:00:00,Complete\n"
    write_batch(workspace, {"orders": second_orders}, name="orders.csv")
    for d in ("order_items", "products"):
        shutil.copyfile(HAND / f"{d}.csv", workspace / "landing" / d / f"{d}.csv")
    second = {d: sha256(workspace / "landing" / d / f"{d}.csv") for d in DATASETS}
    _run(workspace)
    runs = execution_dirs(workspace, "archive")
    assert len(runs) == 2 and runs[0].name != runs[1].name
    assert first != second
    archived = [{d: sha256(run / d / f"{d}.csv") for d in DATASETS} for run in runs]
    assert sorted(archived, key=str) == sorted([first, second], key=str)


def test_quarantine_layout_for_rows_and_whole_files(workspace: Path) -> None:
    land(workspace, {d: HAND_DIRTY / f"{d}.csv" for d in DATASETS})
    extra = HAND_DIRTY / "error_rate" / "order_items.csv"
    shutil.copyfile(extra, workspace / "landing" / "order_items" / "z_error_rate.csv")
    _run(workspace)
    folder = only_execution(workspace)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == ["order_items/z_error_rate.csv", "rejects.csv", "validation_report.json"]
    assert (folder / "order_items" / "z_error_rate.csv").read_bytes() == extra.read_bytes()
    rejects = read_rejects(folder)
    assert list(rejects[0]) == ["file", "line", "column", "reason", "text"]
    assert len(rejects) == 12  # tests/fixtures/hand_dirty/expected_rejects.json
    report = read_report(folder)
    assert report["execution_id"] == folder.name
    assert (report["files_accepted"], report["files_rejected"]) == (3, 1)
    archive = only_execution(workspace, "archive")
    assert not (archive / "order_items" / "z_error_rate.csv").exists()


def test_symlink_and_folder_in_landing_are_quarantined_as_they_are(
    workspace: Path, tmp_path: Path
) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    target = tmp_path / "outside.csv"
    target.write_bytes((HAND / "orders.csv").read_bytes())
    target_hash = sha256(target)
    link = workspace / "landing" / "orders" / "link.csv"
    os.symlink(target, link)
    folder_entry = workspace / "landing" / "products" / "nested.csv"
    folder_entry.mkdir()
    (folder_entry / "inside.csv").write_text("id\n1\n")
    _run(workspace)
    q = only_execution(workspace)
    moved_link = q / "orders" / "link.csv"
    assert moved_link.is_symlink() and os.readlink(moved_link) == str(target)
    assert target.is_file() and sha256(target) == target_hash  # never what it points to
    assert (q / "products" / "nested.csv").is_dir()
    assert (q / "products" / "nested.csv" / "inside.csv").read_text() == "id\n1\n"
    assert not os.path.lexists(link) and not os.path.lexists(folder_entry)
    verdicts = {f["key"]: (f["accepted"], f["reason"]) for f in read_report(q)["files"]}
    assert verdicts["orders/link.csv"] == (False, "not_a_file")
    assert verdicts["products/nested.csv"] == (False, "not_a_file")
    assert verdicts["orders/orders.csv"] == (True, None)


def test_notification_on_console_and_in_jsonl(workspace: Path) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 0, result.output
    [line] = [x for x in result.stderr.splitlines() if x.startswith("ecompipe: exec-")]
    assert "SUCCEEDED" in line and "3/3 files accepted" in line and "0 rows rejected" in line
    [note] = notifications(workspace)
    assert note["status"] == "SUCCEEDED" and note["subject"] in line
    assert (note["files"], note["files_accepted"], note["files_rejected"]) == (3, 3, 0)
    assert note["rejected_rows"] == 0
    assert sorted(v["key"] for v in note["verdicts"]) == sorted(f"{d}/{d}.csv" for d in DATASETS)
    assert all(v["accepted"] for v in note["verdicts"])
    expected = json.loads((HAND / "expected.json").read_text())["order_metrics"]
    kpis = note["kpis"]
    assert kpis["orders"] == sum(m["total_orders"] for m in expected)
    assert kpis["items_sold"] == sum(m["total_items_sold"] for m in expected)
    assert Decimal(kpis["revenue"]) == sum(Decimal(m["total_revenue"]) for m in expected)


def test_notification_counts_rejected_rows_and_verdicts(workspace: Path) -> None:
    land(workspace, {d: HAND_DIRTY / f"{d}.csv" for d in DATASETS})
    shutil.copyfile(
        HAND_DIRTY / "missing_column" / "orders.csv",
        workspace / "landing" / "orders" / "z_nocol.csv",
    )
    _run(workspace)
    [note] = notifications(workspace)
    assert note["rejected_rows"] == 6  # rows, not values: README of hand_dirty
    assert note["duplicates_dropped"] == {"orders": 1, "order_items": 1, "products": 1}
    verdicts = {v["key"]: (v["accepted"], v["reason"]) for v in note["verdicts"]}
    assert verdicts["orders/z_nocol.csv"] == (False, "missing_column")
    assert (note["files"], note["files_accepted"], note["files_rejected"]) == (4, 3, 1)
