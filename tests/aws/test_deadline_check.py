"""The trigger Lambda's scheduled event (the template's DeadlineCheckRule) on moto: the
deadline check of `ecompipe check`, a set left incomplete notified once on SNS (with its
severity as a message attribute for filter policies), and cleared once it completes."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest

from tests.aws.conftest import EVENTS, HAND, Aws

pytestmark = [pytest.mark.aws, pytest.mark.slow, pytest.mark.xdist_group("moto")]

H = 3600.0


@pytest.mark.timeout(60)
def test_scheduled_check_notifies_an_incomplete_set_once(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecompipe.aws.lambda_handler import handler
    from ecompipe.pipeline import checks

    aws.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:none")
    aws.setenv("ECOMPIPE_COMPLETE_SET_DEADLINE", "2h")
    queue = aws.subscribe_queue()
    aws.put("orders/hand orders.csv", HAND / "orders.csv")
    event = json.loads((EVENTS / "scheduled_event.json").read_text())
    later = time.time() + 3 * H
    monkeypatch.setattr(checks, "time", SimpleNamespace(time=lambda: later))

    first = handler(event, None)
    [message] = aws.messages(queue)
    body = json.loads(message["Message"])
    assert body["kind"] == "incomplete_set" and body["severity"] == "warning"
    assert body["missing"] == ["order_items", "products"]
    assert message["MessageAttributes"]["severity"]["Value"] == "warning"
    assert [n["condition"] for n in first["notified"]] == [body["condition"]]

    second = handler(event, None)
    assert second["notified"] == [] and second["holding"] == [body["condition"]]
    assert aws.messages(queue) == []

    for dataset in ("order_items", "products"):
        aws.put(f"{dataset}/hand {dataset}.csv", HAND / f"{dataset}.csv")
    third = handler(event, None)
    assert third["cleared"] == [body["condition"]] and third["notified"] == []
