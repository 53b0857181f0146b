"""Alerts end to end on a workspace: the severity of each ending (in notifications.jsonl and
at the webhook), notify_on, and a webhook that is down: the run still succeeds (exit 0),
the failed delivery is logged and counted in the execution's summary, and the URL is in no
output, no file and no log line.

Severities are the rule of issue 21 applied by hand to each batch: a clean batch is a
success; one row rejected, one item without its order, one unknown status each a warning;
a batch whose every file is rejected a failure.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.conftest import ecompipe
from tests.support import clean_batch, notifications, write_batch
from tests.webhook_server import webhook_server

pytestmark = [pytest.mark.fast, pytest.mark.duckdb, pytest.mark.local]

EVERY = "success,warning,failure"
BATCHES = {
    "clean": ({}, 0, "success"),
    "a row rejected": ({"orders": ["x,1,2024-05-01 10:00:00,complete"]}, 0, "warning"),
    "an item waiting for its order": ({"order_items": ["900,999,1,1.50"]}, 0, "warning"),
    "an unknown status": ({"orders": ["900,1,2024-05-01 10:00:00,teleported"]}, 0, "warning"),
}


def _summary(workspace: Path) -> dict:
    [record] = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    shown = ecompipe("executions", "show", record["execution_id"], "--json", workspace=workspace)
    summary: dict = json.loads(shown.stdout)["summary"]
    return summary


@pytest.mark.parametrize(("extra", "code", "severity"), BATCHES.values(), ids=list(BATCHES))
def test_each_ending_has_its_severity_everywhere(
    workspace: Path, extra: dict[str, list[str]], code: int, severity: str
) -> None:
    write_batch(workspace, clean_batch(extra, n=50))
    with webhook_server([200]) as hook:
        result = ecompipe(
            "run",
            "-q",
            workspace=workspace,
            ECOMPIPE_WEBHOOK_URL=hook.url,
            ECOMPIPE_NOTIFY_ON=EVERY,
        )
    assert result.exit_code == code, result.output
    [line] = notifications(workspace)
    [body] = hook.bodies
    assert line["severity"] == body["severity"] == severity
    assert body["execution_id"] == line["execution_id"]
    assert _summary(workspace)["webhook"] == {"outcome": "sent", "attempts": 1, "error": None}


def test_a_failed_execution_is_a_failure(workspace: Path) -> None:
    write_batch(workspace, {d: "not,a,header\n1,2,3\n" for d in clean_batch({})})
    with webhook_server([200]) as hook:
        result = ecompipe("run", "-q", workspace=workspace, ECOMPIPE_WEBHOOK_URL=hook.url)
    assert result.exit_code == 1, result.output
    [body] = hook.bodies
    assert body["status"] == "FAILED" and body["severity"] == "failure"
    assert notifications(workspace)[0]["severity"] == "failure"


def test_by_default_a_success_is_not_sent_to_the_webhook(workspace: Path) -> None:
    write_batch(workspace, clean_batch({}, n=20))
    with webhook_server([200]) as hook:
        result = ecompipe("run", "-q", workspace=workspace, ECOMPIPE_WEBHOOK_URL=hook.url)
    assert result.exit_code == 0, result.output
    assert hook.bodies == []
    # The local record stays complete: the audit trail has every notification.
    assert [n["severity"] for n in notifications(workspace)] == ["success"]
    assert _summary(workspace)["webhook"]["outcome"] == "skipped"


def test_a_webhook_that_is_down_never_fails_the_run_nor_shows_its_url(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ecompipe.stores import webhook

    monkeypatch.setattr(webhook, "BACKOFF_SECONDS", 0.01)  # the test need not wait 1.5 s
    write_batch(workspace, clean_batch({"orders": ["x,1,2024-05-01 10:00:00,complete"]}, n=50))
    with webhook_server([500]) as hook, caplog.at_level(logging.WARNING, "ecompipe"):
        monkeypatch.setenv("ECOMPIPE_WEBHOOK_URL", hook.url)
        result = ecompipe("run", workspace=workspace)
        shown = [
            ecompipe("config", workspace=workspace).output,
            ecompipe("executions", "--json", workspace=workspace).output,
        ]
    assert result.exit_code == 0, result.output
    assert len(hook.bodies) == 3, "tried the webhook's three attempts"
    assert _summary(workspace)["webhook"] == {
        "outcome": "failed",
        "attempts": 3,
        "error": "HTTP 500",
    }
    assert "not delivered after 3 attempt(s): HTTP 500" in caplog.text
    files = [p.read_bytes().decode("utf-8", "replace") for p in workspace.rglob("*") if p.is_file()]
    for text in [result.output, caplog.text, *shown, *files]:
        assert "T0SECRET" not in text
