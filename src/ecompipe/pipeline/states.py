"""The work of each state, shared by the local runner and the ECS tasks.

ValidateFiles claims an execution's files and checks them, CheckValidationResult decides,
TransformData publishes the batch and writes the metrics of the dates it changes, ArchiveFiles
moves the processed files away. Each is idempotent and safe to run again after a crash.
Exactly one layer retries a transient failure: here, or (``retry_in_process`` False) Step
Functions.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from ecompipe import progress, trigger
from ecompipe.config import Settings
from ecompipe.engines.base import Engine, InputFile
from ecompipe.errors import ResourceError, ReturnedToLandingError, TransientError, from_os_error
from ecompipe.faults import crash_point
from ecompipe.pipeline.leases import Leases, jitter
from ecompipe.stores.base import Backend, ExecutionLog, ManifestEntry
from ecompipe.validation import ValidationReport, unread_verdict
from ecompipe.workflow import SPECS, State

log = logging.getLogger("ecompipe")


def report_of(log_: ExecutionLog, execution_id: str) -> ValidationReport:
    """The execution's validation report (empty before ValidateFiles saved it)."""
    record = log_.get(execution_id)
    if record is None or "validation" not in record.summary:
        return ValidationReport(execution_id)
    return ValidationReport.from_dict(record.summary["validation"])


class States:
    """Runs one state of an execution against the ports and an engine (started on first use:
    a resumed ArchiveFiles never needs one)."""

    def __init__(
        self,
        settings: Settings,
        backend: Backend,
        leases: Leases,
        engine_factory: Callable[[], Engine],
        retry_in_process: bool,
    ) -> None:
        self.settings, self.b, self.leases = settings, backend, leases
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self.retry_in_process = retry_in_process

    @property
    def engine(self) -> Engine:
        """The engine, started on first use."""
        if self._engine is None:
            self._engine = self._engine_factory()
        return self._engine

    def close(self) -> None:
        """Release the engine, if one was started (a later use starts another)."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def run(self, execution_id: str, state: State) -> bool | None:
        """Run ``state``'s work; retry its transient errors with the workflow's policy when
        this layer owns the retries (never a ResourceError: the same limits would fail the
        same way, and the next run resumes). An OSError is classed by from_os_error."""
        spec = SPECS[state]
        work: Callable[[str], bool | None] = {
            State.VALIDATE_FILES: self.validate,
            State.CHECK_VALIDATION_RESULT: self.usable,
            State.TRANSFORM_DATA: self.transform,
            State.ARCHIVE_FILES: self.archive,
        }[state]
        attempt = 0
        while True:
            try:
                try:
                    return work(execution_id)
                except OSError as exc:
                    # The machine, not the data: a full disk, too many open files...
                    raise from_os_error(exc, str(state)) from exc
            except TransientError as exc:
                attempt += 1
                if (
                    not self.retry_in_process
                    or isinstance(exc, ResourceError)
                    or spec.retry is None
                    or attempt > spec.retry.max_attempts
                ):
                    raise
                log.warning("%s: %s (retry %d)", state, exc, attempt)
                time.sleep(spec.retry.delay(attempt) * (0.5 + jitter()))

    # ------------------------------------------------------------------ ValidateFiles

    def validate(self, execution_id: str) -> None:
        """Claim the manifest's objects, check them, stage the accepted rows, quarantine the
        rejected files; a claimed file still being written goes back to landing."""
        store = self.b.store
        entries = self.b.log.manifest(execution_id)
        record = self.b.log.get(execution_id)
        if record is not None and "validation" in record.summary:
            # Killed while quarantining: the claim (recorded before the checks), the report
            # and the staged data are complete; redoing the checks would miss the files
            # already quarantined, and claiming again would find them gone. Finish the moves.
            self._quarantine_rejected(execution_id, entries, report_of(self.b.log, execution_id))
            return None
        store.claim(execution_id, entries)
        self.b.log.update_entries(execution_id, entries)
        crash_point("validate:after-claim")
        staging = store.staging_dir(execution_id)
        while True:
            report = self._check(execution_id, entries, staging)
            claimed = [e for e in entries if e.status == "claimed" and e.regular]
            changed = [e for e in claimed if store.still_being_written(execution_id, e)]
            if not changed:
                break
            # A writer still held these open: what was checked is a part of each. They go
            # back whole for a later run, and the rest is checked again without them.
            why = "changed after its claim: still being written"
            self.give_back(execution_id, changed, State.VALIDATE_FILES, why)
            rest = [e for e in entries if e.status == "claimed"]
            if trigger.missing_datasets([e.key for e in rest], self.settings):
                # The rest is no complete set: it goes back too, to be taken together with
                # those files once they are whole.
                self.give_back(execution_id, rest, State.VALIDATE_FILES, "set incomplete")
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
        summary = report.to_dict()
        self.b.log.save_summary(execution_id, {"validation": summary})
        _log_verdicts(report, summary)
        self._quarantine_rejected(execution_id, entries, report)
        return None

    def _check(
        self, execution_id: str, entries: list[ManifestEntry], staging: Path
    ) -> ValidationReport:
        """Validate the execution's claimed files into ``staging`` (the engine starts it
        afresh: a second pass never leaves the first one's staged rows for the transform)."""
        store = self.b.store
        owned = [e for e in entries if e.status in ("claimed", "quarantined", "archived")]
        data = {
            e.key
            for e in owned
            if e.regular
            and e.dataset
            and trigger.is_csv_key(e.key)
            and not trigger.key_problem(e.key)
        }
        files = [
            InputFile(e.key, e.dataset, store.local_path(execution_id, e))
            for e in owned
            if e.key in data and e.dataset is not None and e.status == "claimed"
        ]
        report = self.engine.validate(execution_id, files, staging, self.settings.max_error_rate)
        for e in owned:
            if e.key not in data:
                report.files.append(unread_verdict(e.key, e.dataset or ""))
        return report

    def give_back(
        self, execution_id: str, entries: list[ManifestEntry], state: State, why: str
    ) -> None:
        """Return claimed objects to landing untouched (no verdict: nothing in the data)."""
        self._settle_each(execution_id, entries, self.b.store.unclaim)
        if entries:
            keys = [e.key for e in entries]
            self.b.log.record_event(execution_id, state, "returned", {"keys": keys, "why": why})

    def _quarantine_rejected(
        self, execution_id: str, entries: list[ManifestEntry], report: ValidationReport
    ) -> None:
        rejected = {f.key for f in report.files if not f.accepted}
        chosen = [e for e in entries if e.key in rejected and e.status == "claimed"]
        self._settle_each(execution_id, chosen, self.b.store.quarantine)

    def _settle_each(
        self,
        execution_id: str,
        entries: list[ManifestEntry],
        move: Callable[[str, ManifestEntry], None],
    ) -> None:
        """``move`` each entry (a verified, idempotent move that sets its status), then
        record them all in one write of the execution log: a write a file would cost more
        than the move. Those moved before an error are recorded all the same (the failure
        ending gives back only what is still claimed); after a kill, the moved files are
        still claimed in the log, and the resumed state moves them again, which finds each
        already in place and records it."""
        done: list[ManifestEntry] = []
        try:
            for entry in entries:
                move(execution_id, entry)
                done.append(entry)
        finally:
            if done:
                self.b.log.update_entries(execution_id, done)

    # ------------------------------------------------------------------ CheckValidationResult

    def usable(self, execution_id: str) -> bool:
        """Whether validation accepted at least one file."""
        return report_of(self.b.log, execution_id).usable

    # ------------------------------------------------------------------ TransformData

    def transform(self, execution_id: str) -> None:
        """Publish the batch into the curated log and write the metrics of the dates it can
        change, in the critical section."""
        record = self.b.log.get(execution_id)
        assert record is not None
        # Publish + recompute + write metrics is one critical section: two runs computing
        # from different snapshots of the curated log could each overwrite a shared date.
        step = f"transform batch #{record.seq}"
        with self.leases.critical() as span:
            progress.report(step, 0, 3, "steps")
            self.b.store.publish_batch(execution_id, record.seq)
            crash_point("transform:after-publish")
            progress.report(step, 1, 3, "steps")
            curated = self.b.store.curated_log(uri=self.engine.reads_uris)
            result = self.engine.transform(curated, record.seq)
            progress.report(step, 2, 3, "steps")
            revised = self.b.metrics.replace_dates(
                result.affected_dates,
                result.order_metrics,
                result.category_metrics,
                revision_of=execution_id,
            )
            crash_point("transform:after-metrics")
            if result.state is not None:
                # After the metrics: a committed state's dates are always written
                # (engines/current.py), so a resumed transform need not recompute them.
                crash_point("transform:before-state-commit")
                self.b.store.commit_state(result.state)
            progress.report(step, 3, 3, "steps")
        self.b.log.record_event(execution_id, State.TRANSFORM_DATA, "critical", span)
        headline = result.headline()
        self.b.log.save_summary(
            execution_id,
            {
                "transform": headline,
                "curated_rows": result.curated_rows,
                "revisions": revised.as_dict(),
            },
        )
        log.info(
            "batch #%d published; metrics of %d dates rewritten",
            record.seq,
            len(result.affected_dates),
            extra={"seq": record.seq, **headline},
        )
        return None

    def withdraw_unfinished_batch(self, execution_id: str) -> None:
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
        with self.leases.critical():
            self.b.store.withdraw_batch(execution_id, record.seq)

    # ------------------------------------------------------------------ ArchiveFiles

    def archive(self, execution_id: str) -> None:
        """Verified move of every claimed file to the archive."""
        claimed = [e for e in self.b.log.manifest(execution_id) if e.status == "claimed"]
        changed: list[ManifestEntry] = []
        done = 0

        def archive_whole(execution_id: str, entry: ManifestEntry) -> None:
            nonlocal done
            progress.report("archive", done, len(claimed), "files")
            done += 1
            # Looked at just before its move: one written to after its rows were counted
            # would, archived, have its new bytes never count. It stays claimed, goes back
            # to landing below, and a later run reads it whole; its rows counted now have
            # the same keys, so the later ones replace them.
            if entry.regular and self.b.store.still_being_written(execution_id, entry):
                changed.append(entry)
            else:
                self.b.store.archive(execution_id, entry)

        self._settle_each(execution_id, claimed, archive_whole)
        why = "changed after its rows were counted: still being written"
        self.give_back(execution_id, changed, State.ARCHIVE_FILES, why)
        progress.report("archive", len(claimed), len(claimed), "files")
        archived = sum(e.status == "archived" for e in claimed)
        log.info("%d of %d files archived", archived, len(claimed), extra={"archived": archived})
        return None


def _log_verdicts(report: ValidationReport, summary: dict[str, object]) -> None:
    """The verdict counts at INFO, and each rejected file with its reason."""
    log.info(
        "%s of %d files accepted, %s rejected; %s rows rejected in accepted files",
        summary["files_accepted"],
        len(report.files),
        summary["files_rejected"],
        summary["rejected_rows"],
        extra={
            k: summary[k]
            for k in ("files_accepted", "files_rejected", "rejected_rows", "accepted_rows")
        },
    )
    for f in report.files:
        if not f.accepted:
            # %r: a landed key may hold control characters (they must not reach a terminal).
            log.info(
                "rejected %r: %s (%s)",
                f.key,
                f.reason,
                f.detail,
                extra={"key": f.key, "reason": f.reason},
            )
