"""The deadline rules (no I/O): a set left incomplete past ``complete_set_deadline``, and
nothing landed for ``freshness_deadline``.

Each condition has an id that names it and when it began (``incomplete_set@<since>``), so
the checker notifies a condition once, keeps quiet while it lasts, and clears it when it is
no longer found; a new incomplete set, or a new silence after a landing, is a new condition.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ecompipe import trigger
from ecompipe.config import Settings
from ecompipe.contracts import DATASET_NAMES

INCOMPLETE_SET = "incomplete_set"
NO_LANDING = "no_landing"


@dataclass(frozen=True)
class Condition:
    """A deadline that has passed: ``kind`` since ``since`` (seconds since the epoch)."""

    kind: str
    since: float
    deadline: float
    #: incomplete_set: the datasets without a file, and those with one.
    missing: tuple[str, ...] = field(default=())
    present: tuple[str, ...] = field(default=())

    @property
    def condition_id(self) -> str:
        """The condition's identity: its kind and the second it began."""
        return f"{self.kind}@{int(self.since)}"

    def message(self, now: float) -> dict[str, Any]:
        """The ``warning`` notification of this condition (as an execution's message has a
        subject, a status and a severity)."""
        since, late = _utc(self.since), _duration(now - self.since)
        if self.kind == INCOMPLETE_SET:
            subject = (
                f"incomplete set: {', '.join(self.present)} landed since {since} ({late} ago), "
                f"still missing {', '.join(self.missing)} "
                f"(complete_set_deadline {_duration(self.deadline)})"
            )
        else:
            subject = (
                f"nothing has landed since {since} ({late} ago; "
                f"freshness_deadline {_duration(self.deadline)})"
            )
        found: dict[str, Any] = {
            "subject": subject,
            "condition": self.condition_id,
            "kind": self.kind,
            "status": "WARNING",
            "severity": "warning",
            "since": since,
            "seconds_late": round(now - self.since - self.deadline, 3),
        }
        if self.kind == INCOMPLETE_SET:
            found.update(missing=list(self.missing), present=list(self.present))
        return found


def conditions(
    landed: Sequence[tuple[str, float | None]],
    last_execution_at: float | None,
    now: float,
    settings: Settings,
) -> list[Condition]:
    """The conditions that hold at ``now``.

    ``landed``: (key, when it landed) of each landed object no unfinished execution owns
    (None: the store cannot tell, and the object counts as landed now);
    ``last_execution_at``: when the latest execution started (it took the files that had
    landed before it), None when there was none.

    - incomplete_set: some datasets have a CSV and others none, and the oldest of those
      files landed ``complete_set_deadline`` ago or more;
    - no_landing: the last landing (the newest object, else the latest execution's start)
      is ``freshness_deadline`` old or more. Before any landing at all there is nothing to
      measure from: no condition.
    A deadline of 0 is off.
    """
    found = []
    times = {key: now if at is None else at for key, at in landed}
    csvs = [key for key in times if trigger.is_csv_key(key) and settings.dataset_of_key(key)]
    missing = trigger.missing_datasets(csvs, settings)
    if settings.complete_set_deadline > 0 and csvs and missing:
        since = min(times[key] for key in csvs)
        if now - since >= settings.complete_set_deadline:
            present = tuple(d for d in DATASET_NAMES if d not in missing)
            found.append(
                Condition(
                    INCOMPLETE_SET, since, settings.complete_set_deadline, tuple(missing), present
                )
            )
    moments = [*times.values(), *([] if last_execution_at is None else [last_execution_at])]
    if settings.freshness_deadline > 0 and moments:
        last = max(moments)
        if now - last >= settings.freshness_deadline:
            found.append(Condition(NO_LANDING, last, settings.freshness_deadline))
    return found


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _duration(seconds: float) -> str:
    """``2h05m``, ``26h``, ``90s``: a duration as a person reads it."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"
