"""The leases a holder takes, and the one heartbeat that keeps them.

A holder takes a slot of the pipeline lock (a semaphore of leases) with bounded backoff, and
the critical-section lock (limit 1) around claiming files and around publishing a batch with
its metrics. One heartbeat thread renews both, and calls an ECS task's SendTaskHeartbeat on
the same tick, for the local runner and the tasks alike.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ecompipe.config import Settings
from ecompipe.errors import EcompipeError, LockBusyError
from ecompipe.stores.base import Backend, Lock
from ecompipe.stores.host import HOST
from ecompipe.workflow import RetryPolicy, critical_lock_id

log = logging.getLogger("ecompipe")

#: How a local run polls a busy lock: short first waits (a transform holds the critical
#: section for seconds), growing to 5 s, bounded overall by ECOMPIPE_LOCK_WAIT_SECONDS.
LOCAL_LOCK_POLL = RetryPolicy(interval_seconds=0.1, backoff_rate=1.5, max_delay_seconds=5.0)


def jitter() -> float:
    """A random factor in [0, 1] (spreads the retries of concurrent holders)."""
    return int.from_bytes(os.urandom(2), "big") / 65535


class Heartbeat:
    """Renews a lease on a thread of its own, every third of the shorter lease.

    If a renewal finds the lease gone (an operator forced it, or it expired while the
    machine was frozen) ``lost`` is set and the runner stops at the next state boundary.
    The critical-section lease (``critical``, ``critical_seconds`` long; default the same
    length) is renewed too while ``hold_critical`` says it is held; ``guard`` keeps a renewal
    from racing its release. ``beat``, when given, is called on every tick too, at least every
    ``beat_every`` seconds (an ECS task's SendTaskHeartbeat): one heartbeat for all.
    """

    def __init__(
        self,
        lock: Lock,
        holder: str,
        lease_seconds: float,
        critical: Lock | None = None,
        critical_seconds: float | None = None,
        beat: Callable[[], None] | None = None,
        beat_every: float | None = None,
    ) -> None:
        self._lock, self._holder, self._lease = lock, holder, lease_seconds
        self._critical = critical
        self._critical_lease = critical_seconds or lease_seconds
        self._extra = beat
        self._period = min(lease_seconds / 3, self._critical_lease / 3, beat_every or math.inf)
        self.hold_critical = False
        self.guard = threading.Lock()
        self._stop = threading.Event()
        self.lost = threading.Event()
        # In the creator's context: its warnings carry the execution it keeps (logs.context).
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._beat,),
            name="ecompipe-heartbeat",
            daemon=True,
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._period):
            if self._extra is not None:
                try:
                    self._extra()
                except Exception as exc:  # a missed beat is sent again at the next tick
                    log.warning("heartbeat failed: %s", exc)
            try:
                if not self._lock.renew(self._holder, self._lease):
                    self.lost.set()
                    return
                with self.guard:
                    if (
                        self._critical is not None
                        and self.hold_critical
                        and not self._critical.renew(self._holder, self._critical_lease)
                    ):
                        self.lost.set()
                        return
            except EcompipeError as exc:  # a busy database: try again next beat
                log.warning("heartbeat failed: %s", exc)
            except Exception:
                if self._stop.is_set():
                    return  # its lock closed under it: a second Ctrl-C cut the join short
                # Unexpected: renewals end, so the lease must count as lost (the runner stops
                # at the next state boundary) rather than run on past its expiry.
                log.exception("heartbeat stopped")
                self.lost.set()
                return


class Leases:
    """One holder's leases on ``backend``'s locks (``holder`` names it in both)."""

    def __init__(self, backend: Backend, settings: Settings) -> None:
        self.b, self.settings = backend, settings
        self.holder = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.heartbeat: Heartbeat | None = None
        new_critical = backend.new_critical_lock
        self._critical_lock = new_critical() if new_critical is not None else None

    @property
    def lost(self) -> bool:
        """Whether the heartbeat found a lease gone: stop at the next state boundary."""
        return self.heartbeat is not None and self.heartbeat.lost.is_set()

    def take(self) -> None:
        """A slot of the pipeline lock, waiting with backoff up to the wait bound."""
        self.wait_for(self.b.lock, self.settings.lock_id)

    def release(self) -> None:
        """Give the slot back (no error when it is not held)."""
        self.b.lock.release(self.holder)

    def wait_for(self, lock: Lock, lock_id: str) -> None:
        """Take a slot of ``lock``, polling with backoff up to ECOMPIPE_LOCK_WAIT_SECONDS."""
        deadline = time.monotonic() + self.settings.lock_wait_seconds
        attempt = 0
        while not lock.try_acquire(self.holder, None, self.settings.lease_seconds):
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holders = ", ".join(h.holder for h in lock.holders()) or "none"
                raise LockBusyError(
                    f"lock '{lock_id}' busy for {self.settings.lock_wait_seconds:g}s"
                    f" (holders: {holders}); try again later, or see `ecompipe lock`"
                )
            time.sleep(min(LOCAL_LOCK_POLL.delay(attempt) * (0.5 + jitter()), remaining))

    @contextmanager
    def renewing(
        self,
        lease_seconds: float,
        beat: Callable[[], None] | None = None,
        beat_every: float | None = None,
    ) -> Iterator[None]:
        """Renew this holder's lease of the lock (``lease_seconds`` long) for the block, and
        the critical-section lease (``ECOMPIPE_LEASE_SECONDS``) whenever the block holds it;
        call ``beat`` on the same heartbeat, at least every ``beat_every`` seconds.

        The local run and each ECS task (whose lease the state machine took, and which tells
        Step Functions it is alive with ``beat``) both use it: a transform longer than a
        lease must not let another run into the critical section.
        """
        factory = self.b.new_critical_lock
        with Heartbeat(
            self.b.new_lock(),
            self.holder,
            lease_seconds,
            factory() if factory is not None else None,
            critical_seconds=self.settings.lease_seconds,
            beat=beat,
            beat_every=beat_every,
        ) as hb:
            self.heartbeat = hb
            try:
                yield
            finally:
                self.heartbeat = None

    @contextmanager
    def critical(self) -> Iterator[dict[str, float]]:
        """Hold the critical-section lease (limit 1) for the block.

        Yields a dict that gets ``entered_at`` (after the lease was granted) and
        ``exited_at`` (before it is given back): the recorded interval lies inside the
        time the lease was really held, so overlap checks on it are sound.
        """
        crit, hb = self._critical_lock, self.heartbeat
        if crit is not None:
            self.wait_for(crit, critical_lock_id(self.settings.lock_id))
            if hb is not None:
                with hb.guard:
                    hb.hold_critical = True
        span = {"entered_at": time.time()}
        try:
            yield span
        finally:
            span["exited_at"] = time.time()
            if crit is not None:
                if hb is not None:
                    with hb.guard:
                        hb.hold_critical = False
                crit.release(self.holder)
