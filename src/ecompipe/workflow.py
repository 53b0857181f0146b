"""The workflow, as data: the seed's states, their transitions and retry policy.

The local runner (pipeline.py) walks this definition; the Step Functions definition
(aws/state_machine.py) is generated from it. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    """State names, exactly as the original system's state machine has them."""

    ACQUIRE_LOCK = "AcquireLock"
    VALIDATE_FILES = "ValidateFiles"
    CHECK_VALIDATION_RESULT = "CheckValidationResult"
    TRANSFORM_DATA = "TransformData"
    ARCHIVE_FILES = "ArchiveFiles"
    SUCCESS = "ReleaseLockAndNotifySuccess"
    FAILURE = "ReleaseLockAndNotifyFailure"


class Status(StrEnum):
    """Execution status."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class RetryPolicy:
    """Retry of transient errors: attempts after the first, with exponential backoff."""

    max_attempts: int = 3
    interval_seconds: float = 2.0
    backoff_rate: float = 2.0
    max_delay_seconds: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(
            self.interval_seconds * self.backoff_rate ** (attempt - 1), self.max_delay_seconds
        )


@dataclass(frozen=True)
class StateSpec:
    """One state: what follows on success, on failure, and how it is retried."""

    name: State
    kind: str  # "task" | "choice" | "end"
    next: State | None = None
    on_failure: State | None = None
    #: For a choice: the state taken when validation left something usable.
    if_usable: State | None = None
    #: For a choice: why its other branch (the failure ending) is taken.
    otherwise: str = ""
    retry: RetryPolicy | None = None
    #: The worker doing the state's work (an ECS task ``ecompipe task <worker>`` on AWS).
    worker: str | None = None
    doc: str = ""


TRANSIENT_RETRY = RetryPolicy()
LOCK_RETRY = RetryPolicy(max_attempts=30, interval_seconds=5.0, backoff_rate=1.5)

WORKFLOW: tuple[StateSpec, ...] = (
    StateSpec(
        State.ACQUIRE_LOCK,
        "task",
        next=State.VALIDATE_FILES,
        on_failure=State.FAILURE,
        retry=LOCK_RETRY,
        doc="Take a lease on the pipeline lock (a slot of the semaphore).",
    ),
    StateSpec(
        State.VALIDATE_FILES,
        "task",
        next=State.CHECK_VALIDATION_RESULT,
        on_failure=State.FAILURE,
        retry=TRANSIENT_RETRY,
        worker="validate",
        doc="Record the manifest, claim its objects, check every file, quarantine the bad.",
    ),
    StateSpec(
        State.CHECK_VALIDATION_RESULT,
        "choice",
        if_usable=State.TRANSFORM_DATA,
        next=State.FAILURE,
        otherwise="every file was rejected: nothing could be computed",
        doc="Go on when at least one file was accepted.",
    ),
    StateSpec(
        State.TRANSFORM_DATA,
        "task",
        next=State.ARCHIVE_FILES,
        on_failure=State.FAILURE,
        retry=TRANSIENT_RETRY,
        worker="transform",
        doc="Merge accepted rows into the curated store; recompute KPIs of touched dates.",
    ),
    StateSpec(
        State.ARCHIVE_FILES,
        "task",
        next=State.SUCCESS,
        on_failure=State.FAILURE,
        retry=TRANSIENT_RETRY,
        worker="archive",
        doc="Verified move of every accepted file to archive/<execution-id>/<key>.",
    ),
    StateSpec(State.SUCCESS, "end", doc="Release the lease; notify success."),
    StateSpec(State.FAILURE, "end", doc="Release the lease; notify failure."),
)

SPECS: dict[State, StateSpec] = {s.name: s for s in WORKFLOW}
#: Worker name -> the state it runs.
WORKERS: dict[str, State] = {s.worker: s.name for s in WORKFLOW if s.worker}


def critical_lock_id(lock_id: str) -> str:
    """The critical-section lock beside the pipeline lock ``lock_id`` (limit 1 whatever the
    lock limit): claiming files and publishing a batch with its metrics never interleave."""
    return f"{lock_id}-transform"


START = State.ACQUIRE_LOCK


def next_state(current: State, usable: bool | None = None) -> State | None:
    """The state after ``current`` succeeded (``usable`` decides the choice state)."""
    spec = SPECS[current]
    if spec.kind == "choice":
        return spec.if_usable if usable else spec.next
    return spec.next


def happy_path() -> list[State]:
    """States from start to success when every file is accepted."""
    path: list[State] = []
    state: State | None = START
    while state is not None:
        path.append(state)
        state = next_state(state, usable=True)
    return path
