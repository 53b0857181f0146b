"""The ExecutionLog contract (stores/base.py), on every adapter: executions with their batch
numbers, state events, manifests and summaries."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from tests.contract.conftest import Adapter


def entry(key: str, size: int = 10, **kw: Any) -> Any:
    """A manifest entry; its dataset the key's first part unless given."""
    from ecompipe.stores.base import ManifestEntry

    kw.setdefault("dataset", key.split("/")[0])
    return ManifestEntry(key, size=size, etag=f"tag-{key}-{size}", **kw)


def ids(records: list[Any]) -> list[str]:
    """The records' execution ids, in order."""
    return [r.execution_id for r in records]


def test_create_records_a_running_execution_with_the_next_seq(adapter: Adapter) -> None:
    log = adapter.ports().log()
    before = time.time()
    first = log.create("exec-a", "host:1:aa")
    second = log.create("exec-b", None)
    assert second.seq > first.seq, "batch numbers increase"
    assert (first.execution_id, first.status, first.state, first.holder) == (
        "exec-a",
        "RUNNING",
        None,
        "host:1:aa",
    )
    assert (first.finished_at, first.summary, second.holder) == (None, {}, None)
    assert before - 1 <= first.started_at <= time.time() + 1
    assert log.get("exec-a") == first
    assert log.get("exec-missing") is None


def test_recent_find_and_unfinished(adapter: Adapter) -> None:
    log = adapter.ports().log()
    for execution_id in ("exec-20260101-a", "exec-20260102-b", "set-c"):
        log.create(execution_id, None)
    log.finish("exec-20260102-b", "SUCCEEDED", {})
    assert ids(log.recent()) == ["set-c", "exec-20260102-b", "exec-20260101-a"]
    assert ids(log.recent(limit=2)) == ["set-c", "exec-20260102-b"]
    assert ids(log.find("exec-2026")) == ["exec-20260101-a", "exec-20260102-b"], "oldest first"
    assert ids(log.find("exec-20260102")) == ["exec-20260102-b"]
    assert log.find("zzz") == []
    assert ids(log.unfinished()) == ["exec-20260101-a", "set-c"]


def test_last_started_at_is_the_newest_executions_start(adapter: Adapter) -> None:
    log = adapter.ports().log()
    assert log.last_started_at() is None, "no execution yet"
    log.create("exec-old", None)
    newest = log.create("exec-new", None)
    log.finish("exec-new", "SUCCEEDED", {})
    assert log.last_started_at() == newest.started_at, "finished or not, the newest start"


def test_a_whole_id_finds_only_its_own_execution(adapter: Adapter) -> None:
    """`executions show`, `replay` and `rejects --execution` take a whole id or a prefix: a
    whole id is never ambiguous, even when it begins another id (Step Functions names)."""
    log = adapter.ports().log()
    for execution_id in ("manual-1", "manual-10", "manual-11"):
        log.create(execution_id, None)
    assert ids(log.find("manual-1")) == ["manual-1"]
    assert ids(log.find("manual-")) == ["manual-1", "manual-10", "manual-11"]
    assert ids(log.find("manual-1x")) == []


def test_find_matches_the_prefix_literally(adapter: Adapter) -> None:
    """Step Functions names may hold ``_`` and capitals: a prefix is text, not a pattern."""
    log = adapter.ports().log()
    for execution_id in ("set_1a", "setX1b", "SET_1c", "50%-d", "50-e"):
        log.create(execution_id, None)
    assert ids(log.find("set_1")) == ["set_1a"]
    assert ids(log.find("SET")) == ["SET_1c"]
    assert ids(log.find("50%")) == ["50%-d"]


def test_events_in_order_and_completed_states(adapter: Adapter) -> None:
    log = adapter.ports().log()
    log.create("exec-a", None)
    log.create("exec-b", None)
    before = time.time()
    log.record_event("exec-a", "AcquireLock", "entered")
    log.record_event("exec-a", "AcquireLock", "succeeded", {"holder": "h", "waited": 0.5})
    log.record_event("exec-b", "AcquireLock", "entered")
    log.record_event("exec-a", "ValidateFiles", "entered")
    log.record_event("exec-a", "ValidateFiles", "failed", {"error": "Ecompipe.X"})
    events = log.events("exec-a")
    assert [(e["state"], e["event"], e["detail"]) for e in events] == [
        ("AcquireLock", "entered", None),
        ("AcquireLock", "succeeded", {"holder": "h", "waited": 0.5}),
        ("ValidateFiles", "entered", None),
        ("ValidateFiles", "failed", {"error": "Ecompipe.X"}),
    ]
    times = [e["at"] for e in events]
    assert times == sorted(times) and before - 1 <= times[0] <= time.time() + 1
    assert log.get("exec-a").state == "ValidateFiles", "the record follows its events"
    assert log.completed_states("exec-a") == {"AcquireLock"}
    log.record_event("exec-a", "ValidateFiles", "succeeded")
    assert log.completed_states("exec-a") == {"AcquireLock", "ValidateFiles"}
    assert [e["event"] for e in log.events("exec-b")] == ["entered"]
    assert log.completed_states("exec-b") == set()


def test_the_manifest_is_saved_once_and_entries_are_updated(adapter: Adapter) -> None:
    log = adapter.ports().log()
    log.create("exec-a", None)
    long_key = "orders/" + "x" * 1000 + ".csv"  # past DynamoDB's sort key limit with prefix
    entries = [
        entry("products/p.csv"),
        entry("orders/a.csv"),
        entry("orders/sub", regular=False),
        entry("stray.csv", dataset=None),  # under no dataset prefix
        entry(long_key),
    ]
    log.save_manifest("exec-a", entries)
    assert log.manifest("exec-a") == sorted(entries, key=lambda e: e.key), "in key order"
    log.save_manifest("exec-a", [replace(e, size=99, status="gone") for e in entries])
    assert log.manifest("exec-a") == sorted(entries, key=lambda e: e.key), "saved once"
    moved = replace(entries[1], status="archived", location="archive/a", etag="t2", size=11)
    log.update_entries("exec-a", [moved, replace(entries[4], location="somewhere")])
    log.update_entries("exec-a", [replace(entries[4], status="returned", location=None)])
    log.update_entries("exec-a", [])
    got = {e.key: e for e in log.manifest("exec-a")}
    assert got["orders/a.csv"] == moved
    assert (got[long_key].status, got[long_key].location) == ("returned", None)
    assert got["products/p.csv"] == entries[0]
    assert log.manifest("exec-b") == []


def test_owned_keys_are_claimed_by_unfinished_executions(adapter: Adapter) -> None:
    log = adapter.ports().log()
    for execution_id in ("exec-a", "exec-b"):
        log.create(execution_id, None)
    log.save_manifest(
        "exec-a",
        [entry("orders/a.csv"), entry("orders/b.csv", status="archived"), entry("products/p.csv")],
    )
    log.save_manifest("exec-b", [entry("orders/c.csv")])
    returned = replace(log.manifest("exec-a")[-1], status="returned")
    log.update_entries("exec-a", [returned])
    log.finish("exec-b", "FAILED", {})
    assert log.owned_keys() == {"orders/a.csv"}


def test_finish_and_save_summary_merge_the_summary(adapter: Adapter) -> None:
    log = adapter.ports().log()
    started = log.create("exec-a", None).started_at
    log.save_summary("exec-a", {"validation": {"files": 3}, "note": "first"})
    log.save_summary("exec-a", {"transform": {"orders": 2}, "note": "second"})
    assert log.get("exec-a").summary == {
        "validation": {"files": 3},
        "transform": {"orders": 2},
        "note": "second",
    }
    log.finish("exec-a", "SUCCEEDED", {"notification": "exec-a SUCCEEDED"})
    record = log.get("exec-a")
    assert record.status == "SUCCEEDED"
    assert record.finished_at is not None and started <= record.finished_at <= time.time() + 1
    assert record.summary["notification"] == "exec-a SUCCEEDED"
    assert record.summary["validation"] == {"files": 3}
    assert log.unfinished() == []


def test_set_holder_and_handles_share_the_log(adapter: Adapter) -> None:
    adapter.ports().log().create("exec-a", "host:1:aa")
    other = adapter.ports().log()
    other.set_holder("exec-a", "host:2:bb")
    other.record_event("exec-a", "AcquireLock", "resumed", {"holder": "host:2:bb"})
    got = adapter.ports().log()
    assert got.get("exec-a").holder == "host:2:bb"
    assert [e["event"] for e in got.events("exec-a")] == ["resumed"]
