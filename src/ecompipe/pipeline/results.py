"""What the pipeline tells its callers: exit codes, how each execution ended, what a run and a
recompute did."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ecompipe.errors import DataRejectedError
from ecompipe.revisions import RevisionSummary
from ecompipe.workflow import SPECS, State

#: Exit codes of `ecompipe run` (documented in --help and the README).
EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_ERROR = 2
EXIT_NO_COMPLETE_SET = 3
#: `ecompipe check`: a deadline has passed (complete set or freshness), notified once.
EXIT_LATE = 4


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
    #: The id its KPI revisions are recorded under, and their summary.
    revision_id: str | None = None
    revisions: RevisionSummary = field(default_factory=RevisionSummary)


def everything_rejected() -> DataRejectedError:
    """The error of the failure ending CheckValidationResult chooses: no file was usable."""
    return DataRejectedError(SPECS[State.CHECK_VALIDATION_RESULT].otherwise)


def new_execution_id(kind: str = "exec") -> str:
    """Sortable, unique: exec-20261125T221500Z-1a2b3c (``kind`` recompute: the id a
    recompute records its KPI revisions under)."""
    return time.strftime(f"{kind}-%Y%m%dT%H%M%SZ-", time.gmtime()) + uuid.uuid4().hex[:6]
