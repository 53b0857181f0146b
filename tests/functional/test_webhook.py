"""The webhook alert channel against a receiver on 127.0.0.1: payloads (plain JSON, Slack),
retries with backoff, Retry-After, the statuses not worth a retry, a receiver that is down,
notify_on, and the URL never in a result or a log line."""

from __future__ import annotations

import logging
import socket

import pytest

from tests.webhook_server import webhook_server

pytestmark = [pytest.mark.fast]

WARNING = {
    "subject": "exec-a SUCCEEDED: 3/3 files accepted, 2 rows rejected",
    "execution_id": "exec-a",
    "status": "SUCCEEDED",
    "severity": "warning",
    "files_accepted": 3,
    "files_rejected": 0,
    "rejected_rows": 2,
}


def _alert(url: str, waits: list[float], **kwargs: object) -> object:
    from ecompipe.stores.webhook import WebhookAlert

    # No real sleeping, no randomness: the waits asked for are recorded instead.
    return WebhookAlert(url, sleep=waits.append, jitter=lambda: 0.0, **kwargs)  # type: ignore[arg-type]


def test_plain_json_is_the_message_itself() -> None:
    with webhook_server([200]) as hook:
        delivery = _alert(hook.url, []).send(WARNING)  # type: ignore[attr-defined]
    assert (delivery.outcome, delivery.attempts) == ("sent", 1)
    assert hook.bodies == [WARNING]
    assert hook.content_types == ["application/json"]


def test_slack_payload_has_text_and_blocks() -> None:
    with webhook_server([200]) as hook:
        _alert(hook.url, [], fmt="slack").send(WARNING)  # type: ignore[attr-defined]
    [body] = hook.bodies
    assert body["text"] == ":warning: " + WARNING["subject"]
    section, context = body["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    facts = context["elements"][0]["text"]
    assert "*execution_id*: exec-a" in facts and "*rejected_rows*: 2" in facts


def test_server_errors_are_retried_with_growing_backoff_then_delivered() -> None:
    with webhook_server([500, 503, 200]) as hook:
        waits: list[float] = []
        delivery = _alert(hook.url, waits).send(WARNING)  # type: ignore[attr-defined]
    assert (delivery.outcome, delivery.attempts) == ("sent", 3)
    assert len(hook.bodies) == 3 and all(b == WARNING for b in hook.bodies)
    # BACKOFF_SECONDS (0.5) doubled at each retry, jitter 0.
    assert waits == [0.5, 1.0]


def test_retry_after_of_a_429_is_honoured() -> None:
    with webhook_server([429, 200], headers={"Retry-After": "2"}) as hook:
        waits: list[float] = []
        delivery = _alert(hook.url, waits).send(WARNING)  # type: ignore[attr-defined]
    assert delivery.outcome == "sent" and waits == [2.0]


def test_a_status_a_retry_cannot_change_is_tried_once(caplog: pytest.LogCaptureFixture) -> None:
    with webhook_server([404]) as hook:
        waits: list[float] = []
        delivery = _alert(hook.url, waits).send(WARNING)  # type: ignore[attr-defined]
    assert (delivery.outcome, delivery.attempts, delivery.error) == ("failed", 1, "HTTP 404")
    assert waits == [] and len(hook.bodies) == 1


def test_a_receiver_always_failing_ends_failed_logged_without_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with webhook_server([500]) as hook, caplog.at_level(logging.WARNING, "ecompipe"):
        delivery = _alert(hook.url, []).send(WARNING)  # type: ignore[attr-defined]
    assert (delivery.outcome, delivery.attempts, delivery.error) == ("failed", 3, "HTTP 500")
    assert len(hook.bodies) == 3
    assert "webhook: exec-a not delivered after 3 attempt(s): HTTP 500" in caplog.text
    assert "T0SECRET" not in caplog.text and "127.0.0.1" not in caplog.text


def test_a_refused_connection_fails_without_the_url(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nobody listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/services/T0SECRET/hook"
        with caplog.at_level(logging.WARNING, "ecompipe"):
            delivery = _alert(url, []).send(WARNING)  # type: ignore[attr-defined]
    assert delivery.outcome == "failed" and delivery.attempts == 3
    assert "ConnectionRefusedError" in str(delivery.error)
    for text in (str(delivery), caplog.text):
        assert "T0SECRET" not in text and "127.0.0.1" not in text


@pytest.mark.parametrize(
    ("notify_on", "sent"),
    [
        (("warning", "failure"), ["warning", "failure"]),
        (("success", "warning", "failure"), ["success", "warning", "failure"]),
        (("failure",), ["failure"]),
    ],
)
def test_notify_on_picks_the_severities_sent(notify_on: tuple[str, ...], sent: list[str]) -> None:
    with webhook_server([200]) as hook:
        alert = _alert(hook.url, [], notify_on=notify_on)
        outcomes = [
            alert.send({**WARNING, "severity": s}).outcome  # type: ignore[attr-defined]
            for s in ("success", "warning", "failure")
        ]
    assert [b["severity"] for b in hook.bodies] == sent
    assert outcomes == [
        "sent" if s in sent else "skipped" for s in ("success", "warning", "failure")
    ]
