"""The Conditions contract (stores/base.py), on every adapter: a condition is raised once
(only the first raise says so, from any handle, even when several race), read back whole
and oldest first, and cleared, after which it can be raised again."""

from __future__ import annotations

import threading

from tests.contract.conftest import Adapter

LATE = {"subject": "incomplete set", "missing": ["products"], "seconds_late": 12.5}


def test_a_condition_is_raised_once_until_cleared(adapter: Adapter) -> None:
    conditions = adapter.ports().conditions()
    assert conditions.raised() == []
    assert conditions.raise_once("incomplete_set@100", LATE) is True
    assert conditions.raise_once("incomplete_set@100", {"other": 1}) is False
    assert adapter.ports().conditions().raise_once("incomplete_set@100", LATE) is False
    [raised] = adapter.ports().conditions().raised()
    assert (raised.condition_id, raised.detail) == ("incomplete_set@100", LATE)
    conditions.clear("incomplete_set@100")
    conditions.clear("never-raised")  # no error
    assert conditions.raised() == []
    assert conditions.raise_once("incomplete_set@100", LATE) is True


def test_raised_conditions_are_read_oldest_first(adapter: Adapter) -> None:
    conditions = adapter.ports().conditions()
    for name in ("no_landing@5", "incomplete_set@9", "incomplete_set@1"):
        assert conditions.raise_once(name, {"name": name})
    raised = conditions.raised()
    assert {c.condition_id for c in raised} == {
        "no_landing@5",
        "incomplete_set@9",
        "incomplete_set@1",
    }
    # Oldest first (two raised within one tick of the clock may come in either order).
    assert [c.raised_at for c in raised] == sorted(c.raised_at for c in raised)


def test_of_checkers_racing_only_one_raises(adapter: Adapter) -> None:
    handles = [adapter.ports().conditions() for _ in range(4)]
    start = threading.Barrier(len(handles))
    won: list[bool] = []

    def race(conditions: object) -> None:
        start.wait(timeout=30)
        won.append(conditions.raise_once("no_landing@7", LATE))  # type: ignore[attr-defined]

    threads = [threading.Thread(target=race, args=(h,)) for h in handles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(won) == [False, False, False, True]
