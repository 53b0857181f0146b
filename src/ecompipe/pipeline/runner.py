"""The runner: walks workflow.WORKFLOW for one `ecompipe run`, and the executions' endings.

Every state is idempotent and records its completion, so an execution killed anywhere is
finished by the next run: ``run()`` first resumes executions whose holder is gone, then
starts one for the files that landed. Files are claimed (moved out of landing) under the
lock, so an upload during a run is left for the next one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from ecompipe import logs
from ecompipe.config import Settings
from ecompipe.engines.base import Engine
from ecompipe.errors import (
    DataRejectedError,
    EcompipeError,
    ReturnedToLandingError,
    StalledError,
    TransientError,
)
from ecompipe.faults import crash_point
from ecompipe.pipeline import messages
from ecompipe.pipeline.landing import Landing, LandingView
from ecompipe.pipeline.leases import Leases
from ecompipe.pipeline.recompute import recompute
from ecompipe.pipeline.replay import ReplayPlan, mark
from ecompipe.pipeline.replay import plan as replay_plan
from ecompipe.pipeline.results import (
    EXIT_ERROR,
    EXIT_NO_COMPLETE_SET,
    EXIT_OK,
    EXIT_REJECTED,
    Outcome,
    RecomputeResult,
    RunResult,
    everything_rejected,
    new_execution_id,
)
from ecompipe.pipeline.states import States, report_of
from ecompipe.stores.base import Backend, ExecutionRecord, ManifestEntry, ObjectInfo
from ecompipe.workflow import SPECS, State, Status, next_state

log = logging.getLogger("ecompipe")


class Pipeline:
    """One `ecompipe run`: take a lease, finish orphaned executions, run the new set; or one
    state of an execution whose lease Step Functions took (an ECS task)."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        engine_factory: Callable[[], Engine],
        on_state: Callable[[str, str], None] | None = None,
        retry_in_process: bool = True,
    ) -> None:
        """``retry_in_process``: retry a state's transient errors here, with the workflow's
        policy. The ECS tasks pass False: Step Functions owns their retries (one layer).
        The pipeline owns ``backend``: close() closes it (give each pipeline its own)."""
        self.settings = settings
        self.b = backend
        self._on_state = on_state or (lambda execution_id, state: None)
        self.leases = Leases(backend, settings)
        self.states = States(settings, backend, self.leases, engine_factory, retry_in_process)
        self.view = LandingView(
            backend.store, backend.log, settings, lambda text: self._on_state("landing", text)
        )

    @property
    def holder(self) -> str:
        """The name this pipeline holds its leases and executions under."""
        return self.leases.holder

    @holder.setter
    def holder(self, name: str) -> None:
        # An ECS task works under its execution's name: the state machine took the lease.
        self.leases.holder = name

    @property
    def engine(self) -> Engine:
        """The engine, started on first use (a resumed archive step never needs one)."""
        return self.states.engine

    def close(self) -> None:
        """Release the engine, if one was started, and close the backend's connections: the
        pipeline is not used after it."""
        self.states.close()
        self.b.close()

    def landing(self) -> Landing:
        """What landed and no unfinished execution owns, ready or still settling."""
        return self.view.landing()

    def candidates(self) -> list[ObjectInfo]:
        """Landed objects that may be taken now (``landing().ready``)."""
        return self.view.landing().ready

    # ------------------------------------------------------------------ entry points

    def run(self) -> RunResult:
        """Resume what a crash left, then process the complete set in landing, if any.

        Nothing is written (no lease, no execution) when there is nothing to do.
        """
        landing = self.view.settled()
        if self.view.missing(landing.ready) and not self.b.log.unfinished():
            raise self.view.incomplete(landing)
        waited_from = time.time()
        self.leases.take()
        lease: dict[str, Any] = {"acquired_at": time.time(), "holder": self.holder}
        outcomes: list[Outcome] = []
        touched: list[str] = []
        try:
            with self.leases.renewing(self.settings.lease_seconds):
                # Adopting orphans and recording the new manifest happen in the critical
                # section, so two runs can never own the same execution or the same file.
                with self.leases.critical() as span:
                    orphans = self._adopt_orphans()
                    landing = self.view.landing()
                    started = None
                    if not self.view.missing(landing.ready):
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
            self.leases.release()
            for eid in touched:
                # The lease interval, for `executions show` and the overlap tests.
                self.b.log.record_event(eid, State.ACQUIRE_LOCK, "released", lease)
            self.states.close()  # the engine's memory; the backend stays open
        if not outcomes:
            raise self.view.incomplete(landing)
        code = max(o.exit_code for o in outcomes)
        return RunResult(code, outcomes, "; ".join(o.message for o in outcomes))

    def replay(self, source: str, keys: list[str] | None = None) -> RunResult:
        """Put ``source``'s quarantined files (only ``keys``, when given) through the whole
        pipeline as a new execution, once (pipeline.replay). Files an execution already
        replayed are left out; with none left, nothing is written and the exit code is 0."""
        self.leases.take()
        try:
            with self.leases.renewing(self.settings.lease_seconds):
                with self.leases.critical():
                    todo = replay_plan(self.b.log, source, keys)
                    started = None
                    if todo.entries:
                        started = new_execution_id()
                        mark(self.b.log, source, [e.key for e in todo.entries], started)
                        now = time.time()
                        self._begin([], now, now, execution_id=started, replay=todo)
                if started is None:
                    done = sorted(set(todo.already.values()))
                    why = f"already replayed by {', '.join(done)}" if done else "none quarantined"
                    return RunResult(EXIT_OK, [], f"{source}: nothing to replay ({why})")
                crash_point(f"after:{State.ACQUIRE_LOCK}")
                outcome = self._walk(started, State.VALIDATE_FILES, resumed=False)
        finally:
            self.leases.release()
            self.states.close()  # the engine's memory; the backend stays open
        return RunResult(outcome.exit_code, [outcome], outcome.message)

    def recompute(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> RecomputeResult:
        """Rebuild the metrics of the dates in [date_from, date_to] from the curated store,
        under the lock and the critical section (pipeline.recompute)."""
        try:
            return recompute(
                self.b,
                self.leases,
                lambda: self.states.engine,
                date_from,
                date_to,
                progress or (lambda _message: None),
            )
        finally:
            self.states.close()  # the engine's memory; the backend stays open

    def run_state(self, execution_id: str, state: State) -> bool | None:
        """Run one state of an execution, recording entered / succeeded / failed.

        The local runner walks the states with it; on AWS each ECS task runs its state
        through it (``ecompipe task ...``), so both run the same code. Raises the state's
        EcompipeError once the retries this layer owns are used up.
        """
        with logs.context(execution_id=execution_id, state=state):
            self.b.log.record_event(execution_id, state, "entered")
            log.info("%s entered", state)
            began = time.monotonic()
            try:
                result = self.states.run(execution_id, state)
            except EcompipeError as exc:
                self.b.log.record_event(
                    execution_id, state, "failed", {"error": exc.code, "message": str(exc)}
                )
                seconds = round(time.monotonic() - began, 3)
                log.info(
                    "%s failed after %.1fs: %s",
                    state,
                    seconds,
                    exc.code,
                    extra={"seconds": seconds, "error": exc.code, "reason": str(exc)},
                )
                raise
            self.b.log.record_event(execution_id, state, "succeeded")
            seconds = round(time.monotonic() - began, 3)
            log.info("%s succeeded in %.1fs", state, seconds, extra={"seconds": seconds})
        return result

    def open_execution(self, execution_id: str) -> bool:
        """Open an execution whose lease was taken elsewhere (Step Functions' AcquireLock).

        Idempotent: an execution already recorded keeps its manifest. Returns False, and
        records nothing, when there is no complete set of unowned files to take.
        """
        if self.b.log.get(execution_id) is not None:
            return True
        with self.leases.critical():
            objects = self.candidates()
            if self.view.missing(objects):
                return False
            now = time.time()
            self._begin(objects, now, now, execution_id=execution_id)
        return True

    def end(self, execution_id: str, error: EcompipeError | None) -> Outcome:
        """Finish an execution: the success ending, or the failure ending for ``error``."""
        if error is None:
            return self._succeed(execution_id, resumed=False)
        return self._fail(execution_id, error, resumed=False)

    # ------------------------------------------------------------------ executions

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

    def _begin(
        self,
        objects: list[ObjectInfo],
        waited_from: float,
        acquired: float,
        execution_id: str | None = None,
        replay: ReplayPlan | None = None,
    ) -> str:
        """Create the execution and record its manifest: the objects it owns from now on
        (landed ``objects``, or the quarantined files a ``replay`` copies into its claim)."""
        execution_id = execution_id or new_execution_id()
        self.b.log.create(execution_id, self.holder)
        crash_point("acquire:after-create")
        self.b.log.record_event(execution_id, State.ACQUIRE_LOCK, "entered", {"at": waited_from})
        entries = [
            ManifestEntry(o.key, self.settings.dataset_of_key(o.key), o.size, o.etag, o.regular)
            for o in objects
        ]
        if replay is not None:
            entries = replay.entries
            # Copied before the manifest is recorded: a resumed replay finds its claim whole.
            self.b.store.restore(replay.source, execution_id, entries)
            self.b.log.save_summary(
                execution_id,
                {
                    "replay_of": replay.source,
                    "replayed_from": {
                        e.key: f"quarantine/{replay.source}/{e.key}" for e in entries
                    },
                },
            )
            crash_point("replay:after-restore")
        self.b.log.save_manifest(execution_id, entries)
        waited = round(acquired - waited_from, 3)
        self.b.log.record_event(
            execution_id,
            State.ACQUIRE_LOCK,
            "succeeded",
            {"holder": self.holder, "waited_seconds": waited},
        )
        with logs.context(execution_id=execution_id, state=State.ACQUIRE_LOCK):
            log.info(
                "execution started with %d files",
                len(entries),
                extra={"files": len(entries), "holder": self.holder, "waited_seconds": waited},
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
        with logs.context(execution_id=record.execution_id, state=State.ACQUIRE_LOCK):
            log.info(
                "execution resumed (%d resumes without progress so far)",
                stalled,
                extra={"holder": self.holder, "resumes": stalled},
            )
        state: State | None = State.VALIDATE_FILES
        while state is not None and state in done:
            state = next_state(state, usable=self.states.usable(record.execution_id))
        if state == State.FAILURE:
            # Killed after CheckValidationResult chose failure: finish that ending.
            return self._fail(record.execution_id, everything_rejected(), resumed=True)
        # state None cannot happen (SUCCESS ends the chain); SUCCESS: only the notify was lost.
        return self._walk(record.execution_id, state or State.SUCCESS, resumed=True)

    def _walk(self, execution_id: str, state: State, resumed: bool) -> Outcome:
        failure: EcompipeError | None = None
        current: State | None = state
        while current is not None and SPECS[current].kind != "end":
            if self.leases.lost:
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

    # ------------------------------------------------------------------ endings

    def _message(
        self, execution_id: str, status: str, error: EcompipeError | None
    ) -> dict[str, Any]:
        record = self.b.log.get(execution_id)
        return messages.message(
            execution_id,
            status,
            report_of(self.b.log, execution_id),
            record.summary if record else {},
            self.b.log.manifest(execution_id),
            error,
        )

    def _alert(self, execution_id: str, message: dict[str, Any]) -> dict[str, Any]:
        """Send the ending's message to the alert channel (a webhook), once the ending is
        recorded: a slow or failing hook neither delays the ending nor changes it. What the
        channel did is kept in the execution's summary and returned in the message."""
        if self.b.alert is None:
            return message
        delivery = self.b.alert.send(message)
        try:
            self.b.log.save_summary(execution_id, {delivery.channel: delivery.as_dict()})
        except EcompipeError as exc:
            # The run's outcome stands; only this record of the delivery is missing.
            log.warning("%s: %s delivery not recorded: %s", execution_id, delivery.channel, exc)
        return {**message, delivery.channel: delivery.as_dict()}

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
        message = self._alert(execution_id, message)
        return self._ended(
            State.SUCCESS,
            Outcome(execution_id, Status.SUCCEEDED, EXIT_OK, message["subject"], resumed, message),
        )

    def _fail(self, execution_id: str, error: EcompipeError, resumed: bool) -> Outcome:
        if isinstance(error, TransientError):
            # Leave the execution RUNNING and its files claimed: the next run resumes it
            # from the last completed state (nothing is redone twice, nothing is lost).
            outcome = Outcome(execution_id, Status.RUNNING, EXIT_ERROR, str(error), resumed)
            return self._ended(State.FAILURE, outcome)
        self.b.log.record_event(execution_id, State.FAILURE, "entered")
        self.states.withdraw_unfinished_batch(execution_id)
        # Files without a verdict go back to landing untouched: a failure that is not in the
        # data (a bug, a setting, storage refusing a write) never quarantines them.
        claimed = [e for e in self.b.log.manifest(execution_id) if e.status == "claimed"]
        self.states.give_back(execution_id, claimed, State.FAILURE, f"{error.code}: {error}")
        message = self._message(execution_id, Status.FAILED, error)
        if not isinstance(error, ReturnedToLandingError):
            # (Nothing was processed and nothing is lost then: no one need be told.)
            self.b.notifier.notify(message)
        self.b.store.cleanup(execution_id)
        self.b.log.finish(execution_id, Status.FAILED, {"error": message["error"]})
        self.b.log.record_event(execution_id, State.FAILURE, "succeeded")
        if not isinstance(error, ReturnedToLandingError):
            message = self._alert(execution_id, message)
        code = EXIT_ERROR
        if isinstance(error, DataRejectedError):
            code = EXIT_REJECTED
        elif isinstance(error, ReturnedToLandingError):
            code = EXIT_NO_COMPLETE_SET
        return self._ended(
            State.FAILURE,
            Outcome(execution_id, Status.FAILED, code, message["subject"], resumed, message),
        )

    def _ended(self, state: State, outcome: Outcome) -> Outcome:
        """Log how an execution ended. The text line leaves the subject out: the notifier
        prints it (JSON logs carry it, and the CLI then silences the notifier's line)."""
        record = self.b.log.get(outcome.execution_id)
        seconds = round(time.time() - record.started_at, 3) if record else None
        text = "execution ended %s (exit %d)"
        if outcome.status == Status.RUNNING:
            text = "execution stopped, still %s: the next run resumes it (exit %d)"
        with logs.context(execution_id=outcome.execution_id, state=state):
            log.info(
                text,
                outcome.status,
                outcome.exit_code,
                extra={
                    "status": outcome.status,
                    "exit_code": outcome.exit_code,
                    "subject": outcome.message,
                    "execution_seconds": seconds,
                },
            )
        return outcome


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
