"""Ports: the small interfaces the pipeline needs from storage. Adapters implement them.

The pipeline (pipeline.py) only talks to these; it never imports sqlite3, boto3 or os-level
file moves. Each backend is a package with one module per adapter (stores/local/,
stores/aws/); ecompipe.wiring builds them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ecompipe.kpis import CategoryMetrics, OrderMetrics, R
from ecompipe.revisions import Revision, RevisionSummary

if TYPE_CHECKING:
    # A type of the ObjectStore port only: the adapters that need no curated log (the
    # lock, metrics, execution log and notifier ones) do not load the engine port with it.
    from ecompipe.engines.base import CuratedLog
    from ecompipe.engines.current import StateUpdate


@dataclass(frozen=True)
class ObjectInfo:
    """One landed object: its key (``orders/a.csv``), size and version tag.

    ``changed_at`` is when it last changed (seconds since the epoch) where objects can be
    written in place, as files in a folder can; None where they appear whole (S3).
    ``held_open`` is True when a writer has it open now (where the store can tell).
    ``landed_at``: when it landed there (seconds since the epoch; its last change locally,
    its LastModified on S3), None where the store cannot tell: the deadline checks use it.
    """

    key: str
    size: int
    etag: str
    regular: bool = True
    changed_at: float | None = None
    held_open: bool = False
    landed_at: float | None = field(default=None, compare=False)


@dataclass
class ManifestEntry:
    """One object an execution owns, and where it is now."""

    key: str
    dataset: str | None
    size: int
    etag: str
    regular: bool = True
    #: claimed | quarantined | archived | gone | returned (given back to landing untouched)
    status: str = "claimed"
    location: str | None = None


@dataclass(frozen=True)
class LockHolder:
    """One lease on the pipeline lock."""

    holder: str
    execution_id: str | None
    host: str
    pid: int
    acquired_at: float
    expires_at: float


@dataclass
class ExecutionRecord:
    """An execution as the execution log keeps it."""

    execution_id: str
    seq: int
    status: str
    state: str | None
    started_at: float
    finished_at: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    holder: str | None = None


class ObjectStore(Protocol):
    """Landing, archive, quarantine and the engine's working data."""

    def list_landing(self) -> list[ObjectInfo]:
        """Objects directly under the dataset prefixes, regular or not (no hidden names)."""
        ...

    def claim(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Take ownership of the manifest's objects so later uploads cannot touch them.

        Idempotent: claiming again after a crash finishes a half-done claim. An entry whose
        object is gone (or changed) gets status ``gone``.
        """
        ...

    def still_being_written(self, execution_id: str, entry: ManifestEntry) -> bool:
        """Whether the claimed object changed since its claim recorded its version, or a
        writer still holds it open. Never, where objects appear whole and every read names
        the claimed version (S3)."""
        ...

    def unclaim(self, execution_id: str, entry: ManifestEntry) -> None:
        """Give a claimed object back to landing untouched (status ``returned``); idempotent.
        The next run sees it as a new landing."""
        ...

    def local_path(self, execution_id: str, entry: ManifestEntry) -> Path:
        """A local file holding exactly the claimed version of ``entry``, for the engine."""
        ...

    def archive(self, execution_id: str, entry: ManifestEntry) -> None:
        """Verified move to ``archive/<execution_id>/<key>``; idempotent; never overwrites."""
        ...

    def quarantine(self, execution_id: str, entry: ManifestEntry) -> None:
        """Verified move to ``quarantine/<execution_id>/<key>``; idempotent."""
        ...

    def restore(self, source: str, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Copy each entry's quarantined object ``quarantine/<source>/<key>`` into the claim
        of ``execution_id`` (a replay), recording its size and version; the original stays.
        Idempotent. Raises StoreError when a quarantined object is gone."""
        ...

    def put_report(self, execution_id: str, name: str, source: Path) -> str:
        """Store a report file under ``quarantine/<execution_id>/<name>``; returns its address."""
        ...

    def fetch_report(self, execution_id: str, name: str, target: Path) -> bool:
        """Copy the report ``put_report`` stored as ``name`` for the execution (the
        validation report, the rejects CSV) to the local file ``target``, streamed, never
        whole in memory; False, and nothing written, when there is none."""
        ...

    def staging_dir(self, execution_id: str) -> Path:
        """Local folder for the execution's staged (validated, typed) data."""
        ...

    def save_staging(self, execution_id: str) -> None:
        """Make the staged data durable where the transform step will find it."""
        ...

    def curated_log(self, uri: bool = False) -> CuratedLog:
        """The curated log for the engine: a local folder, or with ``uri`` a URI that an
        engine on other machines reads in place (a store on local disk gives its folder)."""
        ...

    def publish_batch(self, execution_id: str, seq: int) -> None:
        """Move the execution's staged files into the curated log as batch ``seq`` (idempotent)."""
        ...

    def withdraw_batch(self, execution_id: str, seq: int) -> None:
        """Remove batch ``seq`` from the curated log, if it is there (idempotent): a failed
        execution's batch, published before its metrics were written. A current state that
        folded it is withdrawn too (the next run rebuilds the state from the log)."""
        ...

    def commit_state(self, update: StateUpdate) -> None:
        """Make ``update`` the curated store's current state (engines/current.py): its new
        files in place, then its manifest (the one atomic step), then the files no manifest
        names deleted. Idempotent."""
        ...

    def cleanup(self, execution_id: str) -> None:
        """Drop working data of a finished execution."""
        ...


class Lock(Protocol):
    """A counting semaphore of leases."""

    def try_acquire(self, holder: str, execution_id: str | None, lease_seconds: float) -> bool:
        """Take a slot if one is free (reaping expired or dead holders first)."""
        ...

    def renew(self, holder: str, lease_seconds: float) -> bool:
        """Extend ``holder``'s lease; False when it no longer holds one."""
        ...

    def release(self, holder: str) -> None:
        """Give the slot back (no error if not held)."""
        ...

    def holders(self) -> list[LockHolder]:
        """Current holders."""
        ...

    def force_release(self, holder: str | None = None) -> int:
        """Operators only: drop one holder or all; returns how many were dropped."""
        ...


class MetricsStore(Protocol):
    """order_metrics_table and category_metrics_table."""

    def replace_dates(
        self,
        dates: Sequence[date],
        order_rows: Sequence[OrderMetrics],
        category_rows: Sequence[CategoryMetrics],
        revision_of: str | None = None,
    ) -> RevisionSummary:
        """Atomically make ``dates`` hold exactly the given rows (others for them deleted).

        With ``revision_of`` (an execution id), also record the revisions (revisions.revise)
        under that id, exactly once with the write: a retry of the same id records nothing
        twice, and returns the summary of everything recorded under it. Without: records
        nothing, returns an empty summary.
        """
        ...

    def revisions(self, order_date: date, category: str | None = None) -> list[Revision]:
        """Every revision recorded for ``order_date`` (its order row and category rows, or
        only ``category``'s row), oldest first (revisions.history_order)."""
        ...

    def order_metrics(
        self, date_from: date | None = None, date_to: date | None = None
    ) -> list[OrderMetrics]:
        """Order metrics in date order, optionally within [from, to]."""
        ...

    def category_metrics(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        category: str | None = None,
    ) -> list[CategoryMetrics]:
        """Category metrics ordered by date then category."""
        ...


def metrics_read(
    rows: Iterable[R],
    date_from: date | None = None,
    date_to: date | None = None,
    category: str | None = None,
) -> list[R]:
    """What a MetricsStore read returns, for an adapter that selects rows itself (a scan, a
    dict): those within [date_from, date_to] (and of ``category``), by date then category."""

    def wanted(row: R) -> bool:
        return (
            (date_from is None or row.order_date >= date_from)
            and (date_to is None or row.order_date <= date_to)
            and (category is None or getattr(row, "category", None) == category)
        )

    return sorted(filter(wanted, rows), key=lambda r: (r.order_date, getattr(r, "category", "")))


class ExecutionLog(Protocol):
    """Executions, their manifests and their state-by-state history."""

    def create(self, execution_id: str, holder: str | None) -> ExecutionRecord:
        """Record a new RUNNING execution; assigns its batch sequence number."""
        ...

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """One execution."""
        ...

    def recent(self, limit: int = 50) -> list[ExecutionRecord]:
        """Latest executions first."""
        ...

    def last_started_at(self) -> float | None:
        """When the newest execution started (None: none yet), read by key: the deadline
        check asks it on every tick, so it must not cost more as the history grows."""
        ...

    def find(self, prefix: str) -> list[ExecutionRecord]:
        """Executions whose id starts with ``prefix`` (short ids on the command line), oldest
        first; a whole id names only its own execution, even when it begins another id."""
        ...

    def unfinished(self) -> list[ExecutionRecord]:
        """RUNNING executions, oldest first."""
        ...

    def set_holder(self, execution_id: str, holder: str) -> None:
        """Record which lock holder is running the execution now (after a resume)."""
        ...

    def record_event(
        self, execution_id: str, state: str, event: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append a state event (entered, succeeded, failed) with a timestamp."""
        ...

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        """State history in order."""
        ...

    def completed_states(self, execution_id: str) -> set[str]:
        """States that have a 'succeeded' event."""
        ...

    def save_manifest(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Record (once) the objects the execution owns."""
        ...

    def manifest(self, execution_id: str) -> list[ManifestEntry]:
        """The execution's manifest, with each entry's current status."""
        ...

    def update_entries(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Persist entries' status, location and claimed version (size, etag): in one write
        where the store has transactions, else one entry after another (each entry's record
        is what a resumed state reads, never a half-updated one)."""
        ...

    def owned_keys(self) -> set[str]:
        """Keys claimed by unfinished executions and still in their hands."""
        ...

    def finish(self, execution_id: str, status: str, summary: dict[str, Any]) -> None:
        """Close the execution with SUCCEEDED or FAILED and its summary."""
        ...

    def save_summary(self, execution_id: str, summary: dict[str, Any]) -> None:
        """Merge keys into the execution's summary (validation report, transform result)."""
        ...


class Notifier(Protocol):
    """Where success and failure messages go."""

    def notify(self, message: dict[str, Any]) -> None:
        """Send one notification."""
        ...


@dataclass(frozen=True)
class Delivery:
    """What an alert channel did with one message: ``sent``, ``skipped`` (its severity is
    not in ``notify_on``) or ``failed`` (after ``attempts`` tries; ``error`` says why, in a
    few words that never hold the channel's address)."""

    channel: str
    outcome: str
    attempts: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The delivery as the execution summary and ``check --json`` record it."""
        return {"outcome": self.outcome, "attempts": self.attempts, "error": self.error}


class Alert(Protocol):
    """A best-effort channel (a webhook) sent to after an execution's ending is recorded:
    slow or failing, it never changes how a run ended."""

    def send(self, message: dict[str, Any]) -> Delivery:
        """Deliver one message if its severity is wanted; never raises."""
        ...


@dataclass(frozen=True)
class RaisedCondition:
    """A condition (a deadline passed) that was notified and has not cleared since."""

    condition_id: str
    raised_at: float
    detail: dict[str, Any]


class Conditions(Protocol):
    """The conditions notified and not yet cleared: each is notified once, by whichever
    checker raises it first, until it clears."""

    def raise_once(self, condition_id: str, detail: dict[str, Any]) -> bool:
        """Record the condition; True only for the call that recorded it (atomic)."""
        ...

    def raised(self) -> list[RaisedCondition]:
        """Every raised condition, oldest first."""
        ...

    def clear(self, condition_id: str) -> None:
        """Forget a condition (no error if it is not raised)."""
        ...


@dataclass
class Backend:
    """The five ports a pipeline runs against (and the optional conditions and alert).
    ``new_lock`` opens a second lock handle for the heartbeat thread.

    ``new_critical_lock`` opens a handle on the *critical-section* lock (limit 1, id
    ``<lock_id>-transform``). With a lock limit above 1, several runs validate at once, but
    claiming files (manifest) and publishing a batch + recomputing metrics must not
    interleave; that lock serialises them. None: the backend serialises by other means.
    """

    store: ObjectStore
    lock: Lock
    metrics: MetricsStore
    log: ExecutionLog
    notifier: Notifier
    new_lock: Callable[[], Lock]
    new_critical_lock: Callable[[], Lock] | None = None
    #: Where the deadline checks remember what they notified (None: no checks here).
    conditions: Conditions | None = None
    #: Sent to after each ending is recorded (a webhook); None: no such channel.
    alert: Alert | None = None
    #: Closes what the ports behind it opened (the local backend's SQLite connections).
    closer: Callable[[], None] | None = None

    def close(self) -> None:
        """Close the ports' connections now; a backend is not used after it."""
        if self.closer is not None:
            self.closer()
