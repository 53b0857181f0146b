"""The Notifier contract (stores/base.py), on every adapter: each message reaches the
backend's target whole (memory: kept in its state; local: a line of notifications.jsonl;
SNS: a message on an SQS queue subscribed to the topic)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from tests.contract.conftest import Adapter

SUCCESS = {
    "subject": "exec-a SUCCEEDED: 3/3 files accepted",
    "execution_id": "exec-a",
    "status": "SUCCEEDED",
    "severity": "success",
    "files": [{"key": "orders/a.csv", "accepted": True}],
}
#: Values JSON has no type for travel as their text.
FAILURE = {
    "subject": "exec-b FAILED: every file rejected",
    "execution_id": "exec-b",
    "status": "FAILED",
    "revenue": Decimal("65.11"),
    "day": date(2024, 3, 1),
}


def carries(got: dict[str, Any], sent: dict[str, Any]) -> bool:
    """Whether ``got`` holds every field of ``sent``, as JSON would carry it (a target may
    add fields of its own, such as when it was sent)."""
    expected = {k: v if isinstance(v, str | list) else str(v) for k, v in sent.items()}
    return all(got.get(k) == v for k, v in expected.items())


def test_notify_delivers_each_message_whole(
    adapter: Adapter, capsys: pytest.CaptureFixture[str]
) -> None:
    notifier = adapter.ports().notifier(quiet=True)
    notifier.notify(SUCCESS)
    notifier.notify(FAILURE)
    delivered = {m["execution_id"]: m for m in adapter.delivered()}
    assert sorted(delivered) == ["exec-a", "exec-b"]
    assert carries(delivered["exec-a"], SUCCESS) and carries(delivered["exec-b"], FAILURE)
    assert capsys.readouterr().err == "", "quiet: no line on the console"


def test_every_handle_delivers_to_the_same_target(adapter: Adapter) -> None:
    adapter.ports().notifier(quiet=True).notify(SUCCESS)
    adapter.ports().notifier(quiet=True).notify(FAILURE)
    assert sorted(m["execution_id"] for m in adapter.delivered()) == ["exec-a", "exec-b"]
