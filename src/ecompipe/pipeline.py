"""The local runner: walks workflow.WORKFLOW against the storage ports and an engine.

Every state is idempotent and records its completion, so an execution killed anywhere is
finished by the next run: ``run()`` first resumes executions whose holder is gone, then
starts one for the files that landed. Files are claimed (moved out of landing) under the
lock, so an upload during a run is left for the next one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ecompipe import trigger
from ecompipe.config import Settings
from ecompipe.engines.base import Engine, InputFile
from ecompipe.errors import (
    DataRejectedError,
    EcompipeError,
    IncompleteSetError,
    LockBusyError,
    ResourceError,
    ReturnedToLandingError,
    StalledError,
    TerminalError,
    TransientError,
    from_os_error,
)
from ecompipe.faults import crash_point
from ecompipe.stores.base import (
    Backend,
    ExecutionRecord,
    Lock,
    ManifestEntry,
    ObjectInfo,
)
from ecompipe.validation import ValidationReport, unread_verdict
from ecompipe.workflow import SPECS, RetryPolicy, State, Status, critical_lock_id, next_state

log = logging.getLogger("ecompipe")

#: Exit codes of `ecompipe run` (documented in --help and the README).
EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_ERROR = 2
EXIT_NO_COMPLETE_SET = 3

#: How a local run polls a busy lock: short first waits (a transform holds the critical
#: section for seconds), growing to 5 s, bounded overall by ECOMPIPE_LOCK_WAIT_SECONDS.
LOCAL_LOCK_POLL = RetryPolicy(interval_seconds=0.1, backoff_rate=1.5, max_delay_seconds=5.0)


@dataclass
class Landing:
    """Landed objects no unfinished execution owns (CSVs, and entries to quarantine as they
    are), split into those that may be taken now and those changed within the last
    ``settle_seconds``, which may still be being written."""

    ready: list[ObjectInfo]
    settling: list[ObjectInfo]


@dataclass
class Outcome:
    """How one execution ended."""

    execution_id: str
    status: str
    exit_code: int
    message: str
    resumed: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """What ``Pipeline.run`` did."""

    exit_code: int
    outcomes: list[Outcome]
    message: str


@dataclass
class RecomputeResult:
    """What ``Pipeline.recompute`` did to the metrics tables.

    ``dates``: the dates replaced, those computed (every order date in the range) and those
    that had rows in the range; ``changed``: rows written that were absent or held other
    values; ``deleted``: rows removed because their date (or category on that date) has no
    data now. ``curated_empty``: there was nothing to recompute from, nothing was written.
    """

    dates: list[date]
    order_rows: int
    category_rows: int
    changed: int
    deleted: int
    curated_empty: bool = False


def everything_rejected() -> DataRejectedError:
    """The error of the failure ending CheckValidationResult chooses: no file was usable."""
    return DataRejectedError("every file was rejected: nothing could be computed")


def new_execution_id() -> str:
    """Sortable, unique: exec-20261125T221500Z-1a2b3c."""
    return time.strftime("exec-%Y%m%dT%H%M%SZ-", time.gmtime()) + uuid.uuid4().hex[:6]


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
        self._thread = threading.Thread(target=self._beat, name="ecompipe-heartbeat", daemon=True)

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


class Pipeline:
    """One `ecompipe run`: take a lease, finish orphaned executions, run the new set."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        engine_factory: Callable[[], Engine],
        on_state: Callable[[str, str], None] | None = None,
        retry_in_process: bool = True,
    ) -> None:
        """``retry_in_process``: retry a state's transient errors here, with the workflow's
        policy. The ECS tasks pass False: Step Functions owns their retries (one layer)."""
        self.settings = settings
        self.retry_in_process = retry_in_process
        self.b = backend
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._on_state = on_state or (lambda execution_id, state: None)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._heartbeat: Heartbeat | None = None
        new_critical = backend.new_critical_lock
        self._critical_lock = new_critical() if new_critical is not None else None
        #: key -> (version, when this pipeline first saw it): see ``landing``.
        self._seen: dict[str, tuple[str, float]] = {}

    # ------------------------------------------------------------------ entry point

    def landing(self) -> Landing:
        """What landed and no unfinished execution owns, ready or still settling.

        A name writers use while writing is never taken (trigger.is_in_progress). An object
        is ready once unchanged for ``settle_seconds``: by its own timestamp, or, when that
        cannot be trusted (a file server's clock ahead of ours), once this pipeline has seen
        the same version that long. Objects that appear whole (S3) are always ready.
        """
        owned = self.b.log.owned_keys()
        now, settle = time.time(), self.settings.settle_seconds
        ready: list[ObjectInfo] = []
        settling: list[ObjectInfo] = []
        for o in self.b.store.list_landing():
            if o.key in owned or trigger.is_in_progress(o.key):
                continue
            if o.regular and not trigger.is_csv_key(o.key):
                continue
            if self._seen.get(o.key, ("", 0.0))[0] != o.etag:
                self._seen[o.key] = (o.etag, now)
            if not o.held_open and (
                o.changed_at is None
                or now - o.changed_at >= settle
                or now - self._seen[o.key][1] >= settle
            ):
                ready.append(o)
            else:
                settling.append(o)
        return Landing(ready, settling)

    def candidates(self) -> list[ObjectInfo]:
        """Landed objects that may be taken now (``landing().ready``)."""
        return self.landing().ready

    def _missing(self, objects: list[ObjectInfo]) -> list[str]:
        return trigger.missing_datasets([o.key for o in objects], self.settings)

    def _settled_landing(self) -> Landing:
        """The landing, once files that would complete a set have settled.

        Waits only when the ready files alone miss a dataset and the settling ones would
        complete it, and then once, ``settle_seconds`` at most: a file that changed again
        meanwhile, or is held open by a writer, is still being written and is left for later.
        """
        landing = self.landing()
        if (
            not landing.settling
            or not self._missing(landing.ready)
            or self._missing(landing.ready + landing.settling)
        ):
            return landing
        # Long enough for every one of them to settle, unless it changes again or is held
        # open meanwhile: it is still being written then, and waiting longer would not do.
        now, settle = time.time(), self.settings.settle_seconds
        wait = max(
            min(settle - (now - (o.changed_at or now)), settle - (now - self._seen[o.key][1]))
            for o in landing.settling
        )
        names = ", ".join(o.key for o in landing.settling)
        self._on_state("landing", f"waiting for {names} to settle")
        time.sleep(min(settle, max(0.0, wait)) + 0.05)
        return self.landing()

    def _incomplete(self, landing: Landing) -> IncompleteSetError:
        """No complete set: which datasets miss, and which files are still being written."""
        now = time.time()
        return IncompleteSetError(
            self._missing(landing.ready),
            [
                f"{o.key} (held open by a writer)"
                if o.held_open
                else f"{o.key} (changed {max(0.0, now - (o.changed_at or now)):.1f}s ago)"
                for o in landing.settling
            ],
        )

    def run(self) -> RunResult:
        """Resume what a crash left, then process the complete set in landing, if any.

        Nothing is written (no lease, no execution) when there is nothing to do.
        """
        landing = self._settled_landing()
        if self._missing(landing.ready) and not self.b.log.unfinished():
            raise self._incomplete(landing)
        waited_from = time.time()
        self._wait_for(self.b.lock, self.settings.lock_id)
        lease: dict[str, Any] = {"acquired_at": time.time(), "holder": self.holder}
        outcomes: list[Outcome] = []
        touched: list[str] = []
        try:
            with self.renewing(self.settings.lease_seconds):
                # Adopting orphans and recording the new manifest happen in the critical
                # section, so two runs can never own the same execution or the same file.
                with self._critical() as span:
                    orphans = self._adopt_orphans()
                    landing = self.landing()
                    started = None
                    if not self._missing(landing.ready):
                        started = self._begin(landing.ready, waited_from, lease["acquired_at"])
                for eid in [*(r.execution_id for r in orphans), *([started] if started else [])]:
                    self.b.log.record_event(eid, State.ACQUIRE_LOCK, "critical", span)
                for record in orphans:
                    touched.append(record.execution_id)
                    outcomes.append(self._resume(record))
                if started is not None:
                    touched.append(started)
                    crash_point(f"after:{State.ACQUIRE_LOCK}")
                    outcomes.append(self._walk(started, State.VALIDATE_FILES, resumed=False))
        finally:
            lease["released_at"] = time.time()
            self.b.lock.release(self.holder)
            for eid in touched:
                # The lease interval, for `executions show` and the overlap tests.
                self.b.log.record_event(eid, State.ACQUIRE_LOCK, "released", lease)
            self.close()
        if not outcomes:
            raise self._incomplete(landing)
        code = max(o.exit_code for o in outcomes)
        return RunResult(code, outcomes, "; ".join(o.message for o in outcomes))

    def recompute(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> RecomputeResult:
        """Rebuild the metrics of every order date in [date_from, date_to] (None: open on that
        side) from the curated store; rows of dates in the range without orders now are
        deleted. Idempotent. ``progress`` hears what it is doing (for a spinner).

        Holds a slot of the lock and the critical section, waiting as a run does (bounded by
        ECOMPIPE_LOCK_WAIT_SECONDS): a transform publishes a batch and writes its dates there,
        and a recompute from the snapshot before it must not overwrite them. Both leases are
        given back on every way out, Ctrl-C included.
        """
        say = progress or (lambda _message: None)
        say(f"waiting for lock '{self.settings.lock_id}'")
        self._wait_for(self.b.lock, self.settings.lock_id)
        try:
            with self.renewing(self.settings.lease_seconds), self._critical():
                try:
                    return self._recompute(date_from, date_to, say)
                except OSError as exc:
                    raise from_os_error(exc, "recompute") from exc
        finally:
            self.b.lock.release(self.holder)
            self.close()

    def _recompute(
        self, date_from: date | None, date_to: date | None, say: Callable[[str], None]
    ) -> RecomputeResult:
        """The body of ``recompute``, run inside the critical section."""
        metrics = self.b.metrics
        before_orders = {m.order_date: m for m in metrics.order_metrics(date_from, date_to)}
        before_cats = {
            (m.category, m.order_date): m for m in metrics.category_metrics(date_from, date_to)
        }
        say("reading the curated store")
        curated = self.b.store.curated_log(uri=self.engine.reads_uris)
        if curated.empty:
            if before_orders or before_cats:
                # Rebuilding from nothing would delete every row: more likely the wrong
                # workspace or bucket than data that was never there.
                raise TerminalError(
                    f"the curated store is empty but {len(before_orders) + len(before_cats)} "
                    "metric rows exist in the range: kept, nothing to rebuild them from "
                    "(is this the right workspace / BUCKET_NAME?)"
                )
            return RecomputeResult([], 0, 0, 0, 0, curated_empty=True)
        say("computing KPIs")
        result = self.engine.recompute(curated, date_from, date_to)
        dates = sorted(
            {*result.affected_dates, *before_orders, *(day for _cat, day in before_cats)}
        )
        after_orders = {m.order_date: m for m in result.order_metrics}
        after_cats = {(m.category, m.order_date): m for m in result.category_metrics}
        if self._heartbeat is not None and self._heartbeat.lost.is_set():
            # Another holder may be in the critical section now, writing newer rows.
            raise TransientError("the lock lease was lost: nothing written; recompute again")
        say(f"writing the metrics of {len(dates)} dates")
        metrics.replace_dates(dates, result.order_metrics, result.category_metrics)
        return RecomputeResult(
            dates=dates,
            order_rows=len(after_orders),
            category_rows=len(after_cats),
            changed=sum(before_orders.get(k) != m for k, m in after_orders.items())
            + sum(before_cats.get(k) != m for k, m in after_cats.items()),
            deleted=len(before_orders.keys() - after_orders.keys())
            + len(before_cats.keys() - after_cats.keys()),
        )

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
        with Heartbeat(
            self.b.new_lock(),
            self.holder,
            lease_seconds,
            self._new_critical_handle(),
            critical_seconds=self.settings.lease_seconds,
            beat=beat,
            beat_every=beat_every,
        ) as hb:
            self._heartbeat = hb
            try:
                yield
            finally:
                self._heartbeat = None

    def _new_critical_handle(self) -> Lock | None:
        factory = self.b.new_critical_lock
        return factory() if factory is not None else None

    def _wait_for(self, lock: Lock, lock_id: str) -> None:
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
            time.sleep(min(LOCAL_LOCK_POLL.delay(attempt) * (0.5 + _jitter()), remaining))

    @contextmanager
    def _critical(self) -> Iterator[dict[str, float]]:
        """Hold the critical-section lease (limit 1) for the block.

        Yields a dict that gets ``entered_at`` (after the lease was granted) and
        ``exited_at`` (before it is given back): the recorded interval lies inside the
        time the lease was really held, so overlap checks on it are sound.
        """
        crit, hb = self._critical_lock, self._heartbeat
        if crit is not None:
            self._wait_for(crit, critical_lock_id(self.settings.lock_id))
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

    def _adopt_orphans(self) -> list[ExecutionRecord]:
        """Unfinished executions whose holder is gone become this run's (oldest first)."""
        live = {h.holder for h in self.b.lock.holders()}
        orphans = []
        for record in self.b.log.unfinished():
            if record.holder not in live or record.holder == self.holder:
                if not self.b.log.manifest(record.execution_id):
                    # Killed between creating the execution and recording its manifest: it
                    # owns nothing and did nothing; close it so it is not resumed as empty
                    # (which would end as "every file rejected").
                    self.b.log.finish(
                        record.execution_id,
                        Status.FAILED,
                        {"error": {"type": "Ecompipe.Abandoned", "message": "no manifest"}},
                    )
                    continue
                self.b.log.set_holder(record.execution_id, self.holder)
                orphans.append(record)
        return orphans

    def close(self) -> None:
        """Release the engine, if one was started (a later use starts another)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    @property
    def engine(self) -> Engine:
        """The engine, started on first use (a resumed archive step never needs one)."""
        if self._engine is None:
            self._engine = self._engine_factory()
        return self._engine

    # ------------------------------------------------------------------ executions

    def _begin(
        self,
        objects: list[ObjectInfo],
        waited_from: float,
        acquired: float,
        execution_id: str | None = None,
    ) -> str:
        """Create the execution and record its manifest: the objects it owns from now on."""
        execution_id = execution_id or new_execution_id()
        self.b.log.create(execution_id, self.holder)
        crash_point("acquire:after-create")
        self.b.log.record_event(execution_id, State.ACQUIRE_LOCK, "entered", {"at": waited_from})
        entries = [
            ManifestEntry(o.key, self.settings.dataset_of_key(o.key), o.size, o.etag, o.regular)
            for o in objects
        ]
        self.b.log.save_manifest(execution_id, entries)
        self.b.log.record_event(
            execution_id,
            State.ACQUIRE_LOCK,
            "succeeded",
            {"holder": self.holder, "waited_seconds": round(acquired - waited_from, 3)},
        )
        return execution_id

    def _resume(self, record: ExecutionRecord) -> Outcome:
        self.b.log.set_holder(record.execution_id, self.holder)
        stalled, last_error = _stalled(self.b.log.events(record.execution_id))
        if stalled >= self.settings.max_resumes:
            # The same failure each time (a setting to change, a fault to fix): stop
            # resuming and say so, rather than fail quietly on every run forever.
            stall = StalledError(
                f"resumed {stalled} times without progress (last error: {last_error}); its "
                "files went back to landing: fix the cause, then run again "
                f"(ECOMPIPE_MAX_RESUMES={self.settings.max_resumes})"
            )
            return self._fail(record.execution_id, stall, resumed=True)
        done = self.b.log.completed_states(record.execution_id)
        self.b.log.record_event(
            record.execution_id, State.ACQUIRE_LOCK, "resumed", {"holder": self.holder}
        )
        state: State | None = State.VALIDATE_FILES
        while state is not None and state in done:
            state = next_state(state, usable=self._usable(record.execution_id))
        if state == State.FAILURE:
            # Killed after CheckValidationResult chose failure: finish that ending.
            return self._fail(record.execution_id, everything_rejected(), resumed=True)
        # state None cannot happen (SUCCESS ends the chain); SUCCESS: only the notify was lost.
        return self._walk(record.execution_id, state or State.SUCCESS, resumed=True)

    def _usable(self, execution_id: str) -> bool:
        return self._report(execution_id).usable

    def _walk(self, execution_id: str, state: State, resumed: bool) -> Outcome:
        failure: EcompipeError | None = None
        current: State | None = state
        while current is not None and SPECS[current].kind != "end":
            if self._heartbeat is not None and self._heartbeat.lost.is_set():
                failure = TransientError("the lock lease was lost; the next run resumes")
                break
            self._on_state(execution_id, current)
            try:
                usable = self.run_state(execution_id, current)
            except EcompipeError as exc:
                failure = exc
                break
            crash_point(f"after:{current}")
            nxt = next_state(current, usable=usable)
            if nxt == State.FAILURE and current == State.CHECK_VALIDATION_RESULT:
                failure = everything_rejected()
            current = nxt
        if failure is None and current == State.SUCCESS:
            return self._succeed(execution_id, resumed)
        assert failure is not None
        return self._fail(execution_id, failure, resumed)

    def run_state(self, execution_id: str, state: State) -> bool | None:
        """Run one state of an execution, recording entered / succeeded / failed.

        The local runner walks the states with it; on AWS each ECS task runs its state
        through it (``ecompipe task ...``), so both run the same code. Raises the state's
        EcompipeError once in-process retries of transient errors are used up.
        """
        self.b.log.record_event(execution_id, state, "entered")
        try:
            result = self._run_state(execution_id, state)
        except EcompipeError as exc:
            self.b.log.record_event(
                execution_id, state, "failed", {"error": exc.code, "message": str(exc)}
            )
            raise
        self.b.log.record_event(execution_id, state, "succeeded")
        return result

    def open_execution(self, execution_id: str) -> bool:
        """Open an execution whose lease was taken elsewhere (Step Functions' AcquireLock).

        Idempotent: an execution already recorded keeps its manifest. Returns False, and
        records nothing, when there is no complete set of unowned files to take.
        """
        if self.b.log.get(execution_id) is not None:
            return True
        with self._critical():
            objects = self.candidates()
            if self._missing(objects):
                return False
            now = time.time()
            self._begin(objects, now, now, execution_id=execution_id)
        return True

    def end(self, execution_id: str, error: EcompipeError | None) -> Outcome:
        """Finish an execution: the success ending, or the failure ending for ``error``."""
        if error is None:
            return self._succeed(execution_id, resumed=False)
        return self._fail(execution_id, error, resumed=False)

    def _run_state(self, execution_id: str, state: State) -> bool | None:
        spec = SPECS[state]
        handler: Callable[[str], bool | None] = {
            State.VALIDATE_FILES: self._validate,
            State.CHECK_VALIDATION_RESULT: self._usable,
            State.TRANSFORM_DATA: self._transform,
            State.ARCHIVE_FILES: self._archive,
        }[state]
        attempt = 0
        while True:
            try:
                try:
                    return handler(execution_id)
                except OSError as exc:
                    # The machine, not the data: a full disk, too many open files...
                    raise from_os_error(exc, str(state)) from exc
            except TransientError as exc:
                attempt += 1
                if (
                    not self.retry_in_process
                    # The same limits would fail the same way: the next run resumes.
                    or isinstance(exc, ResourceError)
                    or spec.retry is None
                    or attempt > spec.retry.max_attempts
                ):
                    raise
                log.warning("%s: %s (retry %d)", state, exc, attempt)
                time.sleep(spec.retry.delay(attempt) * (0.5 + _jitter()))

    # ------------------------------------------------------------------ states

    def _validate(self, execution_id: str) -> None:
        store = self.b.store
        entries = self.b.log.manifest(execution_id)
        store.claim(execution_id, entries)
        for entry in entries:
            self.b.log.update_entry(execution_id, entry)
        crash_point("validate:after-claim")
        record = self.b.log.get(execution_id)
        if record is not None and "validation" in record.summary:
            # Killed while quarantining: the report (and staged data) are complete; redoing
            # the checks would miss the files already quarantined. Finish the moves only.
            self._quarantine_rejected(execution_id, entries, self._report(execution_id))
            return None
        staging = store.staging_dir(execution_id)
        while True:
            report = self._check(execution_id, entries, staging)
            changed = [
                e
                for e in entries
                if e.status == "claimed"
                and e.regular
                and store.still_being_written(execution_id, e)
            ]
            if not changed:
                break
            # A writer still held these open: what was checked is a part of each. They go
            # back whole for a later run, and the rest is checked again without them.
            why = "changed after its claim: still being written"
            self._give_back(execution_id, changed, State.VALIDATE_FILES, why)
            claimed = [e for e in entries if e.status == "claimed"]
            if trigger.missing_datasets([e.key for e in claimed], self.settings):
                # The rest is no complete set: it goes back too, to be taken together with
                # those files once they are whole.
                self._give_back(execution_id, claimed, State.VALIDATE_FILES, "set incomplete")
                raise ReturnedToLandingError(
                    f"{', '.join(e.key for e in changed)} changed after the claim (still being "
                    "written): the set went back to landing untouched; the next run takes it "
                    f"once every file is unchanged for {self.settings.settle_seconds:g}s"
                )
        report_path = staging / "validation_report.json"
        report_path.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
        store.put_report(execution_id, "validation_report.json", report_path)
        if report.rejects_file:
            store.put_report(execution_id, "rejects.csv", staging / report.rejects_file)
        store.save_staging(execution_id)
        self.b.log.save_summary(execution_id, {"validation": report.to_dict()})
        self._quarantine_rejected(execution_id, entries, report)
        return None

    def _check(
        self, execution_id: str, entries: list[ManifestEntry], staging: Path
    ) -> ValidationReport:
        """Validate the execution's claimed files into ``staging`` (the engine starts it
        afresh: a second pass never leaves the first one's staged rows for the transform)."""
        store = self.b.store
        owned = [e for e in entries if e.status in ("claimed", "quarantined", "archived")]
        data = [
            e
            for e in owned
            if e.regular
            and e.dataset
            and trigger.is_csv_key(e.key)
            and not trigger.key_problem(e.key)
        ]
        files = [
            InputFile(e.key, e.dataset, store.local_path(execution_id, e))
            for e in data
            if e.dataset is not None and e.status == "claimed"
        ]
        report = self.engine.validate(execution_id, files, staging, self.settings.max_error_rate)
        for e in owned:
            if e not in data:
                report.files.append(unread_verdict(e.key, e.dataset or ""))
        return report

    def _give_back(
        self, execution_id: str, entries: list[ManifestEntry], state: State, why: str
    ) -> None:
        """Return claimed objects to landing untouched (no verdict: nothing in the data)."""
        for entry in entries:
            self.b.store.unclaim(execution_id, entry)
            self.b.log.update_entry(execution_id, entry)
        if entries:
            keys = [e.key for e in entries]
            self.b.log.record_event(execution_id, state, "returned", {"keys": keys, "why": why})

    def _quarantine_rejected(
        self, execution_id: str, entries: list[ManifestEntry], report: ValidationReport
    ) -> None:
        rejected = {f.key for f in report.files if not f.accepted}
        for e in entries:
            if e.key in rejected and e.status == "claimed":
                self.b.store.quarantine(execution_id, e)
                self.b.log.update_entry(execution_id, e)

    def _report(self, execution_id: str) -> ValidationReport:
        record = self.b.log.get(execution_id)
        if record is None or "validation" not in record.summary:
            return ValidationReport(execution_id)
        return ValidationReport.from_dict(record.summary["validation"])

    def _transform(self, execution_id: str) -> None:
        record = self.b.log.get(execution_id)
        assert record is not None
        # Publish + recompute + write metrics is one critical section: two runs computing
        # from different snapshots of the curated log could each overwrite a shared date.
        with self._critical() as span:
            self.b.store.publish_batch(execution_id, record.seq)
            crash_point("transform:after-publish")
            curated = self.b.store.curated_log(uri=self.engine.reads_uris)
            result = self.engine.transform(curated, record.seq)
            self.b.metrics.replace_dates(
                result.affected_dates, result.order_metrics, result.category_metrics
            )
        self.b.log.record_event(execution_id, State.TRANSFORM_DATA, "critical", span)
        self.b.log.save_summary(
            execution_id, {"transform": result.headline(), "curated_rows": result.curated_rows}
        )
        return None

    def _archive(self, execution_id: str) -> None:
        for entry in self.b.log.manifest(execution_id):
            if entry.status != "claimed":
                continue
            if entry.regular and self.b.store.still_being_written(execution_id, entry):
                # Written to after its rows were counted: archived, its new bytes would never
                # count. Back to landing, a later run reads it whole; its rows counted now have
                # the same keys, so the later ones replace them.
                why = "changed after its rows were counted: still being written"
                self._give_back(execution_id, [entry], State.ARCHIVE_FILES, why)
                continue
            self.b.store.archive(execution_id, entry)
            self.b.log.update_entry(execution_id, entry)
        return None

    # ------------------------------------------------------------------ endings

    def _message(
        self, execution_id: str, status: str, error: EcompipeError | None
    ) -> dict[str, Any]:
        record = self.b.log.get(execution_id)
        summary = record.summary if record else {}
        report = self._report(execution_id)
        manifest = self.b.log.manifest(execution_id)
        return {
            "subject": _subject(execution_id, status, report, summary, error),
            "execution_id": execution_id,
            "status": status,
            "files": len(manifest),
            "files_accepted": sum(f.accepted for f in report.files),
            "files_rejected": sum(not f.accepted for f in report.files),
            "verdicts": [
                {"key": f.key, "accepted": f.accepted, "reason": f.reason, "detail": f.detail}
                for f in report.files
            ],
            "rejected_rows": report.rejected_rows,
            "duplicates_dropped": report.duplicates_dropped,
            "kpis": summary.get("transform"),
            "error": None if error is None else {"type": error.code, "message": str(error)},
        }

    def _succeed(self, execution_id: str, resumed: bool) -> Outcome:
        self.b.log.record_event(execution_id, State.SUCCESS, "entered")
        message = self._message(execution_id, Status.SUCCEEDED, None)
        self.b.notifier.notify(message)
        # A kill here sends the notification twice (at least once, never lost).
        crash_point("success:after-notify")
        self.b.store.cleanup(execution_id)
        self.b.log.finish(execution_id, Status.SUCCEEDED, {"notification": message["subject"]})
        self.b.log.record_event(execution_id, State.SUCCESS, "succeeded")
        crash_point(f"after:{State.SUCCESS}")
        return Outcome(
            execution_id, Status.SUCCEEDED, EXIT_OK, message["subject"], resumed, message
        )

    def _withdraw_unfinished_batch(self, execution_id: str) -> None:
        """A failure after TransformData started but before it succeeded may leave the batch
        in the curated log without its metrics written: withdrawn (in the critical section,
        as it was published), its rows count when a later run takes the files again, and
        the curated log and the metrics never disagree."""
        events = {
            e["event"]
            for e in self.b.log.events(execution_id)
            if e["state"] == State.TRANSFORM_DATA
        }
        record = self.b.log.get(execution_id)
        if record is None or "entered" not in events or "succeeded" in events:
            return
        with self._critical():
            self.b.store.withdraw_batch(execution_id, record.seq)

    def _fail(self, execution_id: str, error: EcompipeError, resumed: bool) -> Outcome:
        if isinstance(error, TransientError):
            # Leave the execution RUNNING and its files claimed: the next run resumes it
            # from the last completed state (nothing is redone twice, nothing is lost).
            return Outcome(execution_id, Status.RUNNING, EXIT_ERROR, str(error), resumed)
        self.b.log.record_event(execution_id, State.FAILURE, "entered")
        self._withdraw_unfinished_batch(execution_id)
        # Files without a verdict go back to landing untouched: a failure that is not in the
        # data (a bug, a setting, storage refusing a write) never quarantines them.
        claimed = [e for e in self.b.log.manifest(execution_id) if e.status == "claimed"]
        self._give_back(execution_id, claimed, State.FAILURE, f"{error.code}: {error}")
        message = self._message(execution_id, Status.FAILED, error)
        if not isinstance(error, ReturnedToLandingError):
            # (Nothing was processed and nothing is lost then: no one need be told.)
            self.b.notifier.notify(message)
        self.b.store.cleanup(execution_id)
        self.b.log.finish(execution_id, Status.FAILED, {"error": message["error"]})
        self.b.log.record_event(execution_id, State.FAILURE, "succeeded")
        code = EXIT_ERROR
        if isinstance(error, DataRejectedError):
            code = EXIT_REJECTED
        elif isinstance(error, ReturnedToLandingError):
            code = EXIT_NO_COMPLETE_SET
        return Outcome(execution_id, Status.FAILED, code, message["subject"], resumed, message)


def _subject(
    execution_id: str,
    status: str,
    report: ValidationReport,
    summary: dict[str, Any],
    error: EcompipeError | None,
) -> str:
    files = f"{sum(f.accepted for f in report.files)}/{len(report.files)} files accepted"
    rows = f"{report.rejected_rows} rows rejected"
    if error is not None:
        return f"{execution_id} FAILED: {error} ({files}, {rows})"
    kpi = summary.get("transform") or {}
    return (
        f"{execution_id} SUCCEEDED: {files}, {rows}, {kpi.get('dates_recomputed', 0)} dates "
        f"recomputed, {kpi.get('waiting_for_order', 0)} items waiting for their order, "
        f"{kpi.get('waiting_for_product', 0)} for their product"
    )


def _stalled(events: list[dict[str, Any]]) -> tuple[int, str]:
    """How many times an execution was resumed since a state last succeeded, and the last
    error it failed with."""
    resumes, last_error = 0, "none recorded"
    for ev in events:
        if ev["event"] == "succeeded" and ev["state"] != State.ACQUIRE_LOCK:
            resumes = 0
        elif ev["event"] == "resumed":
            resumes += 1
        elif ev["event"] == "failed" and ev.get("detail"):
            last_error = str(ev["detail"].get("message", ev["detail"]))
    return resumes, last_error


def _jitter() -> float:
    return int.from_bytes(os.urandom(2), "big") / 65535
