"""The application layer: the runner and the work of each state, over the ports.

- ``runner``: walks the workflow for a run (resume, new set, endings); ``Pipeline``;
- ``states``: the work of each state, shared by the local runner and the ECS tasks;
- ``leases``: taking the pipeline and critical-section locks, one heartbeat keeping them;
- ``landing``: what landed and may be taken (complete sets, files still being written);
- ``recompute``: rebuilding the metrics from the curated store;
- ``messages``: the notification an ending sends; ``results``: exit codes and outcomes;
- ``checks``: the deadline check (complete set, freshness), each condition notified once.
"""

from ecompipe.pipeline.checks import CheckResult, check
from ecompipe.pipeline.landing import Landing
from ecompipe.pipeline.leases import Heartbeat
from ecompipe.pipeline.results import (
    EXIT_ERROR,
    EXIT_LATE,
    EXIT_NO_COMPLETE_SET,
    EXIT_OK,
    EXIT_REJECTED,
    Outcome,
    RecomputeResult,
    RunResult,
    everything_rejected,
    new_execution_id,
)
from ecompipe.pipeline.runner import Pipeline

__all__ = [
    "EXIT_ERROR",
    "EXIT_LATE",
    "EXIT_NO_COMPLETE_SET",
    "EXIT_OK",
    "EXIT_REJECTED",
    "CheckResult",
    "Heartbeat",
    "Landing",
    "Outcome",
    "Pipeline",
    "RecomputeResult",
    "RunResult",
    "check",
    "everything_rejected",
    "new_execution_id",
]
