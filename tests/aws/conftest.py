"""Helpers of the AWS tests. The moto server and the ``aws`` fixture are in
tests/moto_server.py (registered by tests/conftest.py: the contract tests use them too)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.moto_server import EVENTS, HAND, REGION, TESTS, Aws

__all__ = [
    "EVENTS",
    "HAND",
    "REGION",
    "TESTS",
    "Aws",
    "local_metrics",
    "upload_event",
    "wait_for",
]


def local_metrics(workspace: Path) -> dict[str, Any]:
    """The local backend's KPIs for the hand fixture (what the AWS path must equal)."""
    import shutil

    from tests.conftest import ecompipe, metrics_json

    for dataset in ("orders", "order_items", "products"):
        shutil.copyfile(HAND / f"{dataset}.csv", workspace / "landing" / dataset / "a.csv")
    assert ecompipe("run", workspace=workspace).exit_code == 0
    return metrics_json(workspace)


def wait_for(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    """Poll until ``predicate`` returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def upload_event(aws: Aws, key: str) -> dict[str, Any]:
    """The S3 event of one upload of ``key`` to the landing bucket (tests/events sample), the
    key URL-encoded as S3 encodes it."""
    event: dict[str, Any] = json.loads((EVENTS / "s3_put_orders.json").read_text())
    record = event["Records"][0]["s3"]
    record["bucket"]["name"] = aws.env["BUCKET_NAME"]
    record["object"]["key"] = urllib.parse.quote_plus(key)
    return event
