"""`ecompipe replay --backend aws`: a quarantined file through the whole pipeline again on S3,
DynamoDB and SNS, once, its original kept. Expected KPIs come from tests/reference.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.aws.conftest import Aws
from tests.conftest import ecompipe
from tests.functional.test_replay import HAND, TOO_BAD, _expected

pytestmark = [pytest.mark.aws, pytest.mark.duckdb, pytest.mark.xdist_group("moto")]


def _json(*args: str, **env: str) -> Any:
    result = ecompipe(*args, "--backend", "aws", "--json", **env)
    assert "Traceback" not in result.output
    return json.loads(result.stdout)


@pytest.mark.timeout(120)
def test_replay_backend_aws_after_raising_max_error_rate_once(aws: Aws) -> None:
    aws.put("orders/orders.csv", HAND / "orders.csv")
    aws.put("products/products.csv", HAND / "products.csv")
    aws.put("order_items/order_items.csv", TOO_BAD)  # 3 bad rows of 10: rejected whole
    first = _json("run")
    assert first["exit_code"] == 0, first
    source, key = first["executions"][0]["execution_id"], "order_items/order_items.csv"
    bucket, archive = aws.env["BUCKET_NAME"], aws.env["S3_ARCHIVE_BUCKET"]
    s3 = aws.client("s3")

    def read(where: str, name: str) -> bytes:
        return bytes(s3.get_object(Bucket=where, Key=name)["Body"].read())

    assert read(bucket, f"quarantine/{source}/{key}") == TOO_BAD.read_bytes()
    accepted = {"orders": [HAND / "orders.csv"], "products": [HAND / "products.csv"]}
    assert _json("metrics") == _expected((accepted, "0.05"))

    out = _json("replay", source[:-2], ECOMPIPE_MAX_ERROR_RATE="0.5")
    assert out["exit_code"] == 0, out
    (outcome,) = out["executions"]
    replay = outcome["execution_id"]
    replayed = _expected((accepted, "0.05"), ({"order_items": [TOO_BAD]}, "0.5"))
    assert _json("metrics") == replayed
    shown = _json("executions", "show", replay)
    assert shown["status"] == "SUCCEEDED"
    assert shown["summary"]["replay_of"] == source
    assert [(e["key"], e["status"]) for e in shown["manifest"]] == [(key, "archived")]
    # Copied, never moved: the original stays in quarantine, the copy is archived under the
    # replay, and the replay's working copy is gone (moved into the archive).
    assert read(bucket, f"quarantine/{source}/{key}") == TOO_BAD.read_bytes()
    assert read(archive, f"archive/{replay}/{key}") == TOO_BAD.read_bytes()
    assert aws.keys(bucket, "_ecompipe/replay/") == []
    assert _json("executions", "show", source)["summary"]["replays"] == {key: replay}

    # Twice: nothing happens, and it says which execution did it.
    again = _json("replay", source, ECOMPIPE_MAX_ERROR_RATE="0.5")
    assert again == {
        "exit_code": 0,
        "message": f"{source}: nothing to replay (already replayed by {replay})",
        "executions": [],
    }
    assert _json("metrics") == replayed
    assert [r["execution_id"] for r in _json("executions")] == [replay, source]
    assert aws.keys(archive) == sorted(
        [f"archive/{source}/{d}/{d}.csv" for d in ("orders", "products")]
        + [f"archive/{replay}/{key}"]
    )
