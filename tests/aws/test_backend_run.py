"""`ecompipe run --backend aws`: the whole pipeline in one process on S3, DynamoDB and SNS,
with the same KPIs as the local backend on the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.aws.conftest import HAND, Aws, local_metrics
from tests.conftest import ecompipe
from tests.support import as_metrics_json

pytestmark = [pytest.mark.aws, pytest.mark.duckdb, pytest.mark.xdist_group("moto")]


@pytest.mark.timeout(120)
def test_run_backend_aws_matches_local(
    aws: Aws, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = local_metrics(workspace)
    queue = aws.subscribe_queue()
    aws.land_hand()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    result = ecompipe("run", "--backend", "aws", "--json")
    assert result.exit_code == 0, result.output
    assert list(cwd.iterdir()) == []  # the aws backend needs no workspace: none is made
    got = ecompipe("metrics", "--backend", "aws", "--json")
    assert got.exit_code == 0, got.output
    import json

    assert json.loads(got.stdout) == expected
    execution_id = json.loads(result.stdout)["executions"][0]["execution_id"]
    bucket, archive = aws.env["BUCKET_NAME"], aws.env["S3_ARCHIVE_BUCKET"]
    assert aws.keys(archive) == sorted(
        f"archive/{execution_id}/{d}/hand {d}.csv" for d in ("orders", "order_items", "products")
    )
    # Landing is empty, staging cleaned up, the curated log kept.
    left = aws.keys(bucket)
    assert not [k for k in left if k.split("/")[0] in ("orders", "order_items", "products")]
    assert not [k for k in left if k.startswith("_ecompipe/staging/")]
    assert [k for k in left if k.startswith("_ecompipe/curated/")]
    messages = aws.messages(queue)
    assert len(messages) == 1 and "SUCCEEDED" in messages[0]["Subject"]
    # The lock is free again.
    lock = ecompipe("lock", "--backend", "aws", "--json")
    assert json.loads(lock.stdout) == []
    # The operator commands read the same ports: the executions and the lock on DynamoDB.
    listed = json.loads(ecompipe("executions", "--backend", "aws", "--json").stdout)
    assert [(r["execution_id"], r["status"]) for r in listed] == [(execution_id, "SUCCEEDED")]
    for args in (
        ("executions", "show", execution_id[:22], "--backend", "aws"),
        ("executions", "--backend", "aws", "show", execution_id[:22]),
    ):
        shown = ecompipe(*args)
        assert shown.exit_code == 0, shown.output
        assert "ReleaseLockAndNotifySuccess" in shown.stdout
        assert "orders/hand orders.csv" in shown.stdout and "archived" in shown.stdout
    assert json.loads(ecompipe("lock", "--backend", "aws", "--json").stdout) == []
    plain = ecompipe("lock", "--backend", "aws")
    assert "lock 'ecommerce-pipeline-lock': 0 of 1 slot(s) held" in plain.stdout


@pytest.mark.timeout(120)
def test_recompute_backend_aws_rebuilds_deleted_items(aws: Aws, workspace: Path) -> None:
    """Every metric item deleted and one added for a date without orders, behind ecompipe's
    back: `recompute --backend aws` gives back the hand fixture's metrics exactly."""
    import json

    aws.land_hand()
    assert ecompipe("run", "--backend", "aws", "--quiet", workspace=workspace).exit_code == 0
    settings = aws.settings()
    ddb = aws.client("dynamodb")
    for table, key in (
        (settings.order_metrics_table, ("order_date",)),
        (settings.category_metrics_table, ("category", "order_date")),
    ):
        for item in ddb.scan(TableName=table)["Items"]:
            ddb.delete_item(TableName=table, Key={k: item[k] for k in key})
    numbers = ("total_orders", "total_revenue", "total_items_sold", "return_rate")
    bogus = {"order_date": {"S": "2024-03-09"}, "unique_customers": {"N": "9"}}
    bogus.update({name: {"N": "1"} for name in numbers})
    ddb.put_item(TableName=settings.order_metrics_table, Item=bogus)
    result = ecompipe("recompute", "--backend", "aws", "--json", workspace=workspace)
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert (done["order_rows_written"], done["category_rows_written"]) == (2, 4)
    assert done["rows_deleted"] == 1
    got = ecompipe("metrics", "--backend", "aws", "--json", workspace=workspace)
    expected = json.loads((HAND / "expected.json").read_text("utf-8"))
    assert json.loads(got.stdout) == as_metrics_json(expected)
    again = ecompipe("recompute", "--backend", "aws", "--json", workspace=workspace)
    assert json.loads(again.stdout)["rows_changed"] == 0
    assert json.loads(ecompipe("lock", "--backend", "aws", "--json").stdout) == []


@pytest.mark.timeout(60)
def test_run_backend_aws_incomplete_set_exits_3(aws: Aws) -> None:
    aws.put("orders/a.csv", HAND / "orders.csv")
    result = ecompipe("run", "--backend", "aws")
    assert result.exit_code == 3, result.output


@pytest.mark.timeout(60)
def test_bootstrap_is_idempotent(aws: Aws) -> None:
    # The fixture bootstrapped once already; again changes nothing and fails on nothing.
    result = ecompipe("aws", "bootstrap")
    assert result.exit_code == 0, result.output
    assert "table ProcessingLockTable: exists" in result.stdout
    assert "bucket ecs-data-landing: exists" in result.stdout
    assert f"export SNS_TOPIC_ARN={aws.env['SNS_TOPIC_ARN']}" in result.stdout
    ttl = aws.client("dynamodb").describe_time_to_live(TableName="ProcessingLockTable")
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    # The abort rule is there once, not added again.
    assert "incomplete multipart uploads" not in result.stdout
    rules = aws.client("s3").get_bucket_lifecycle_configuration(Bucket="ecs-data-landing")
    aborting = [r for r in rules["Rules"] if "AbortIncompleteMultipartUpload" in r]
    assert [r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] for r in aborting] == [7]


@pytest.mark.timeout(60)
def test_bootstrap_adds_the_abort_rule_beside_the_bucket_own_rules(aws: Aws) -> None:
    """PutBucketLifecycleConfiguration replaces every rule: bootstrap keeps the bucket's own."""
    s3, bucket = aws.client("s3"), "ecs-data-landing"
    own = {
        "ID": "expire-old-exports",
        "Status": "Enabled",
        "Filter": {"Prefix": "exports/"},
        "Expiration": {"Days": 30},
    }
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [own]})
    result = ecompipe("aws", "bootstrap")
    assert result.exit_code == 0, result.output
    line = f"bucket {bucket}: incomplete multipart uploads aborted after 7 days"
    assert line in result.stdout
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert set(rules) == {"expire-old-exports", "ecompipe-abort-incomplete-multipart-uploads"}
    assert rules["expire-old-exports"]["Expiration"] == {"Days": 30}
    again = ecompipe("aws", "bootstrap")
    assert again.exit_code == 0 and line not in again.stdout
    assert len(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]) == 2


@pytest.mark.timeout(60)
def test_lock_release_backend_aws_drops_a_holder(aws: Aws) -> None:
    from ecompipe.stores.aws.dynamodb import DynamoDBLock

    s = aws.settings()
    lock = DynamoDBLock(aws.client("dynamodb"), s.lock_table, s.lock_id, 1)
    assert lock.try_acquire("stuck-holder", None, 600)
    shown = ecompipe("lock", "--backend", "aws")
    assert "1 of 1 slot(s) held" in shown.stdout and "stuck-holder" in shown.stdout
    released = ecompipe("lock", "--backend", "aws", "release", "--force")
    assert released.exit_code == 0, released.output
    assert "released 1 holder(s)" in released.stdout
    assert lock.holders() == []
