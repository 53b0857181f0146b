"""The deadline check: `ecompipe check` once (cron), `watch` on its loop, the Lambda on its
schedule. It applies deadlines.conditions to the landing and notifies each condition once:
the Conditions port remembers it until it no longer holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ecompipe import deadlines, trigger
from ecompipe.config import Settings
from ecompipe.stores.base import Backend


@dataclass
class CheckResult:
    """What one check found: the conditions notified now, those that hold and were notified
    before, those that cleared (no longer hold), and what the alert channel did."""

    notified: list[dict[str, Any]] = field(default_factory=list)
    holding: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def late(self) -> bool:
        """Whether a deadline has passed (a condition holds, notified now or before)."""
        return bool(self.notified or self.holding)


def check(backend: Backend, settings: Settings, now: float | None = None) -> CheckResult:
    """Check both deadlines at ``now`` (default: the clock), notify the conditions that
    began to hold, and clear those that stopped. Nothing to do when both deadlines are off.

    A condition is recorded before it is notified, so two checkers at once notify it once;
    when notifying fails the record is dropped again and the next check retries it.
    """
    result = CheckResult()
    if backend.conditions is None or not (
        settings.complete_set_deadline or settings.freshness_deadline
    ):
        return result
    now = time.time() if now is None else now
    owned = backend.log.owned_keys()
    landed = [
        (o.key, o.landed_at)
        for o in backend.store.list_landing()
        if o.key not in owned and not trigger.is_in_progress(o.key)
    ]
    found = deadlines.conditions(landed, backend.log.last_started_at(), now, settings)
    ids = {c.condition_id for c in found}
    for raised in backend.conditions.raised():
        if raised.condition_id not in ids:
            backend.conditions.clear(raised.condition_id)
            result.cleared.append(raised.condition_id)
    for condition in found:
        message = condition.message(now)
        if not backend.conditions.raise_once(condition.condition_id, message):
            result.holding.append(condition.condition_id)
            continue
        try:
            backend.notifier.notify(message)
        except BaseException:
            backend.conditions.clear(condition.condition_id)
            raise
        if backend.alert is not None:
            delivery = backend.alert.send(message)
            message = {**message, delivery.channel: delivery.as_dict()}
            result.deliveries.append({"condition": condition.condition_id, **delivery.as_dict()})
        result.notified.append(message)
    return result
