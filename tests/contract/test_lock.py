"""The Lock contract (stores/base.py), on every adapter: a counting semaphore of leases,
with one lease rule (stores.host.lease_over): expired holders, and holders whose process on
this host is gone, are reaped by the next acquirer; no manual reset is ever needed."""

from __future__ import annotations

import os
import time
from typing import Any

from tests.contract.conftest import Adapter

#: Above Linux's largest pid (2**22): no process ever has it.
DEAD_PID = 2**22 + 1


def names(lock: Any) -> list[str]:
    """The holders' names, sorted."""
    return sorted(h.holder for h in lock.holders())


def test_the_limit_counts_slots(adapter: Adapter) -> None:
    lock = adapter.ports(lock_limit=2).lock()
    assert lock.try_acquire("a", None, 60) and lock.try_acquire("b", None, 60)
    assert not lock.try_acquire("c", None, 60), "limit 2: busy"
    assert names(lock) == ["a", "b"]


def test_a_retried_acquire_by_the_holder_succeeds_in_its_own_slot(adapter: Adapter) -> None:
    lock = adapter.ports(lock_limit=2).lock()
    assert lock.try_acquire("a", "exec-a", 60)
    assert lock.try_acquire("a", "exec-a", 60), "a retried acquire that had succeeded"
    assert lock.try_acquire("b", None, 60), "the retry took no second slot"
    assert not lock.try_acquire("c", None, 60)
    assert names(lock) == ["a", "b"]


def test_a_lease_names_its_holder_execution_process_and_expiry(adapter: Adapter) -> None:
    from ecompipe.stores.host import HOST

    lock = adapter.ports().lock()
    before = time.time()
    assert lock.try_acquire("a", "exec-a", 60)
    (held,) = lock.holders()
    assert (held.holder, held.execution_id, held.host, held.pid) == (
        "a",
        "exec-a",
        HOST,
        os.getpid(),
    )
    assert before - 1 <= held.acquired_at <= time.time() + 1
    assert abs(held.expires_at - (held.acquired_at + 60)) < 1


def test_an_expired_lease_cannot_be_renewed_and_is_reaped(adapter: Adapter) -> None:
    lock = adapter.ports().lock()
    assert lock.try_acquire("a", None, 0.2)
    time.sleep(0.3)
    assert not lock.renew("a", 60), "an expired lease cannot be renewed"
    assert lock.try_acquire("b", None, 60), "the next acquirer reaps the expired holder"
    assert names(lock) == ["b"]


def test_renew_extends_only_a_held_lease(adapter: Adapter) -> None:
    lock = adapter.ports().lock()
    assert lock.try_acquire("a", None, 60)
    assert lock.renew("a", 600)
    (held,) = lock.holders()
    assert held.expires_at > time.time() + 500
    assert not lock.renew("b", 600), "b holds nothing"
    assert names(lock) == ["a"]


def test_release_frees_the_slot_and_never_fails(adapter: Adapter) -> None:
    lock = adapter.ports().lock()
    assert lock.try_acquire("a", None, 60)
    lock.release("b")  # not held: no error
    assert names(lock) == ["a"]
    lock.release("a")
    lock.release("a")  # no longer held: no error
    assert lock.holders() == []
    assert lock.try_acquire("b", None, 60)


def test_a_dead_process_on_this_host_is_reaped_at_once(adapter: Adapter) -> None:
    from ecompipe.stores.base import LockHolder
    from ecompipe.stores.host import HOST

    now = time.time()
    lock = adapter.ports().lock()
    adapter.plant(lock.lock_id, LockHolder("ghost", None, HOST, DEAD_PID, now, now + 3600))
    assert lock.try_acquire("a", None, 60), "its process is gone: reaped before expiry"
    assert names(lock) == ["a"]


def test_other_leases_end_only_by_expiry(adapter: Adapter) -> None:
    """Another host's pid means nothing here; pid 0 (a Step Functions execution's lease)
    names no process."""
    from ecompipe.stores.base import LockHolder
    from ecompipe.stores.host import HOST

    now = time.time()
    lock = adapter.ports(lock_limit=2).lock()
    adapter.plant(lock.lock_id, LockHolder("far", None, "other-host", DEAD_PID, now, now + 3600))
    adapter.plant(lock.lock_id, LockHolder("set-1", "set-1", HOST, 0, now, now + 3600))
    assert not lock.try_acquire("a", None, 60)
    assert names(lock) == ["far", "set-1"]


def test_force_release_drops_one_holder_or_all(adapter: Adapter) -> None:
    lock = adapter.ports(lock_limit=3).lock()
    for holder in ("a", "b", "c"):
        assert lock.try_acquire(holder, None, 60)
    assert lock.force_release("a") == 1
    assert lock.force_release("nobody") == 0
    assert names(lock) == ["b", "c"]
    assert lock.force_release() == 2
    assert lock.holders() == []


def test_handles_share_the_lock_and_the_critical_section_is_apart(adapter: Adapter) -> None:
    """The heartbeat renews through a second handle (Backend.new_lock); the critical
    section (Backend.new_critical_lock) is a lock of its own, limit 1."""
    ports = adapter.ports(lock_limit=1)
    mine, heartbeat = ports.lock(), ports.lock()
    assert mine.try_acquire("a", None, 60)
    assert heartbeat.renew("a", 60) and not heartbeat.try_acquire("b", None, 60)
    critical, other = ports.lock(critical=True), ports.lock(critical=True)
    assert critical.lock_id != mine.lock_id
    assert critical.try_acquire("b", None, 60), "holding the lock does not hold the section"
    assert not other.try_acquire("a", None, 60), "the critical section admits one"
    assert names(heartbeat) == ["a"] and names(other) == ["b"]
