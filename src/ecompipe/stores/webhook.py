"""The webhook alert channel (``webhook_url``): each notification whose severity is in
``notify_on`` is POSTed as JSON, the message itself or Slack's ``text`` + ``blocks``.

Best effort by design: a few bounded attempts with exponential backoff and jitter (a 429's
Retry-After honoured within the budget), then a line in the log and a ``failed`` Delivery
the caller counts; it never raises, so a hook that is down never fails a run. The URL is a
secret (a Slack hook's path is its key): no log line, error or result ever holds it.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection
from typing import Any

from ecompipe.stores.base import Delivery

log = logging.getLogger("ecompipe")

CHANNEL = "webhook"
#: Attempts per message, and the time all of them may take together (seconds): a run ends
#: at most this much later than without a webhook.
ATTEMPTS, BUDGET_SECONDS = 3, 10.0
#: One attempt's timeout, and the first backoff (doubled at each retry, jittered).
TIMEOUT_SECONDS, BACKOFF_SECONDS = 3.0, 0.5
#: Statuses worth another attempt: the receiver is busy or broken now, not refusing us.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: What a Slack message starts with, by severity.
SLACK_MARKS = {"success": ":white_check_mark:", "warning": ":warning:", "failure": ":x:"}
#: Fields a Slack message lists under its subject, when the message has them.
SLACK_FIELDS = (
    "execution_id",
    "severity",
    "files_accepted",
    "files_rejected",
    "rejected_rows",
    "missing",
    "since",
    "last_landed_at",
)


def payload(message: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The JSON document POSTed for ``message``: the message itself (``json``), or a Slack
    message (``slack``): ``text`` (the subject, shown in notifications) and ``blocks``."""
    if fmt != "slack":
        return message
    text = f"{SLACK_MARKS.get(str(message.get('severity')), '')} {message.get('subject', '')}"
    facts = [
        f"*{name}*: {', '.join(map(str, value)) if isinstance(value, list) else value}"
        for name in SLACK_FIELDS
        if (value := message.get(name)) not in (None, "", [])
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text.strip()}}
    ]
    if facts:
        context = {"type": "mrkdwn", "text": " · ".join(facts)}
        blocks.append({"type": "context", "elements": [context]})
    return {"text": text.strip(), "blocks": blocks}


class WebhookAlert:
    """POSTs wanted notifications to one URL; an Alert (stores/base.py).

    ``sleep`` and ``jitter`` (a number in [0, 1)) are the clock and the randomness of the
    backoff, for tests.
    """

    def __init__(
        self,
        url: str,
        fmt: str = "json",
        notify_on: Collection[str] = ("warning", "failure"),
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._url, self.fmt, self.notify_on = url, fmt, frozenset(notify_on)
        self._sleep, self._jitter = sleep, jitter

    def __repr__(self) -> str:
        return f"WebhookAlert(fmt={self.fmt!r}, notify_on={sorted(self.notify_on)})"

    def send(self, message: dict[str, Any]) -> Delivery:
        """POST ``message`` if its severity is wanted; ``failed`` after the attempts or the
        budget ran out, or at once for a status a retry cannot change (400, 404, ...)."""
        # No severity: a message from before severities existed; failure is the safe guess.
        if str(message.get("severity", "failure")) not in self.notify_on:
            return Delivery(CHANNEL, "skipped")
        body = json.dumps(payload(message, self.fmt), default=str, sort_keys=True).encode()
        deadline = time.monotonic() + BUDGET_SECONDS
        error, attempt = "not attempted", 0
        for attempt in range(1, ATTEMPTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            failure, retry_after = self._post(body, min(TIMEOUT_SECONDS, left))
            if failure is None:
                return Delivery(CHANNEL, "sent", attempt)
            error = failure
            if retry_after is None or attempt == ATTEMPTS:
                break
            wait = max(retry_after, BACKOFF_SECONDS * 2 ** (attempt - 1) * (1 + self._jitter()))
            if time.monotonic() + wait >= deadline:
                break
            self._sleep(wait)
        log.warning(
            "webhook: %s not delivered after %d attempt(s): %s",
            message.get("execution_id") or message.get("condition") or "notification",
            attempt,
            error,
        )
        return Delivery(CHANNEL, "failed", attempt, error)

    def _post(self, body: bytes, timeout: float) -> tuple[str | None, float | None]:
        """One attempt: (None, None) when delivered, else (why, seconds to wait before a
        retry, or None when retrying is pointless)."""
        request = urllib.request.Request(
            self._url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "ecompipe"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(65536)
            return None, None
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRY_STATUSES:
                return f"HTTP {exc.code}", None
            return f"HTTP {exc.code}", _retry_after(exc.headers.get("Retry-After"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # The reason only (refused, timed out, name unknown): str(exc) may hold the URL.
            reason = getattr(exc, "reason", exc)
            return _without(f"{type(reason).__name__}: {reason}", self._url), 0.0


def _retry_after(header: str | None) -> float:
    """Seconds a 429 or 503 asks us to wait (a number; a date is not worth parsing here:
    the budget bounds the wait anyway), 0 when it says nothing usable."""
    try:
        return max(0.0, float(header)) if header else 0.0
    except ValueError:
        return 0.0


def _without(text: str, url: str) -> str:
    """``text`` with the URL, and its host, replaced: errors may name either."""
    host = urllib.parse.urlparse(url).netloc
    for secret in (url, host):
        if secret:
            text = text.replace(secret, CHANNEL)
    return text
