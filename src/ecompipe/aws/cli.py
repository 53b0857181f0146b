"""`ecompipe aws ...` (operators) and `ecompipe task ...` (the ECS containers).

No boto3 at import time: `ecompipe --help` and the local path stay fast.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from ecompipe.config import Settings, load_settings
from ecompipe.workflow import WORKFLOW

TOPIC_NAME = "ecommerce-etl-alerts"


@click.group()
def aws() -> None:
    """AWS: create dev resources, print the state machine (the lock: `ecompipe lock
    --backend aws`)."""


@aws.command("state-machine")
def state_machine() -> None:
    """Print the Step Functions definition (ASL) generated from the workflow."""
    from ecompipe.aws.state_machine import render

    click.echo(render(), nl=False)


@aws.command()
def bootstrap() -> None:
    """Create what the aws backend needs and is missing (idempotent): buckets, tables, topic.

    For a development account and tests; production uses deploy/template.yaml.
    """
    from ecompipe.wiring import AwsPorts

    settings = load_settings()
    ports = AwsPorts(settings)
    ports.require(notifier=False)
    for line in bootstrap_resources(settings, ports.clients):
        click.echo(line)


def bootstrap_resources(settings: Settings, clients: Any) -> list[str]:
    """Create buckets, tables (TTL on the lock table), the lock item and the SNS topic."""
    from ecompipe.stores.aws.clients import error_code, translate
    from ecompipe.wiring import AwsPorts

    done: list[str] = []
    s3 = clients("s3")
    for bucket in dict.fromkeys(b for b in (settings.bucket_name, settings.archive_bucket) if b):
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if settings.aws_region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": settings.aws_region}
        if _bucket_exists(s3, bucket):
            # us-east-1 answers CreateBucket on an owned bucket with 200: ask first.
            done.append(f"bucket {bucket}: exists")
        else:
            try:
                s3.create_bucket(**kwargs)
                done.append(f"bucket {bucket}: created")
            except Exception as exc:
                if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise translate(exc, f"creating bucket {bucket}") from None
                done.append(f"bucket {bucket}: exists")
        if line := _add_abort_rule(s3, bucket):
            done.append(line)
    ddb = clients("dynamodb")
    for table, (keys, ttl, indexes) in table_specs(settings).items():
        try:
            ddb.create_table(
                TableName=table,
                KeySchema=_key_schema(keys),
                AttributeDefinitions=[
                    {"AttributeName": k, "AttributeType": "S"}
                    for k in dict.fromkeys(k for ks in [keys, *indexes.values()] for k, _ in ks)
                ],
                BillingMode="PAY_PER_REQUEST",
                **({"GlobalSecondaryIndexes": _indexes(indexes)} if indexes else {}),
            )
            ddb.get_waiter("table_exists").wait(TableName=table)
            if ttl:
                ddb.update_time_to_live(
                    TableName=table,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl},
                )
            done.append(f"table {table}: created")
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":
                raise translate(exc, f"creating table {table}") from None
            done.append(f"table {table}: exists")
            done.extend(_add_missing_indexes(ddb, table, indexes))
    ports = AwsPorts(settings, clients)
    ports.lock().ensure_item()
    # Executions recorded RUNNING before the log had its RUNNING item, and records written
    # before it had its index of records (an upgrade).
    running, records = ports.log().index_older()
    log_table = settings.executions_table
    if running:
        done.append(f"table {log_table}: {running} running execution(s) indexed")
    if records:
        done.append(f"table {log_table}: {records} execution record(s) indexed")
    name = settings.sns_topic_arn.rsplit(":", 1)[-1] if settings.sns_topic_arn else TOPIC_NAME
    try:
        arn = clients("sns").create_topic(Name=name)["TopicArn"]  # idempotent by name
    except Exception as exc:
        raise translate(exc, f"creating topic {name}") from None
    done.append(f"topic {arn}")
    done.append(f"export SNS_TOPIC_ARN={arn}")
    return done


#: A table's keys, TTL attribute and global secondary indexes: (name, type) pairs, as
#: deploy/template.yaml declares them (tests/aws/test_deploy_artifacts.py compares).
Keys = list[tuple[str, str]]
TableSpec = tuple[Keys, str | None, dict[str, Keys]]


def table_specs(settings: Settings) -> dict[str, TableSpec]:
    """Every table of the aws backend by name: its keys, TTL attribute and indexes."""
    from ecompipe.stores.aws.dynamodb import BY_DATE_INDEX, BY_SEQ_INDEX

    return {
        settings.lock_table: ([("LockId", "HASH")], "expires_at", {}),
        settings.order_metrics_table: ([("order_date", "HASH")], None, {}),
        settings.category_metrics_table: (
            [("category", "HASH"), ("order_date", "RANGE")],
            None,
            {BY_DATE_INDEX: [("order_date", "HASH"), ("category", "RANGE")]},
        ),
        settings.executions_table: (
            [("pk", "HASH"), ("sk", "RANGE")],
            None,
            {BY_SEQ_INDEX: [("record_list", "HASH"), ("record_seq", "RANGE")]},
        ),
    }


def _key_schema(keys: Keys) -> list[dict[str, str]]:
    return [{"AttributeName": k, "KeyType": t} for k, t in keys]


def _indexes(indexes: dict[str, Keys]) -> list[dict[str, Any]]:
    # Keys only: the index serves to find keys; the rows are read and written by key.
    return [
        {
            "IndexName": name,
            "KeySchema": _key_schema(keys),
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
        for name, keys in indexes.items()
    ]


def _add_missing_indexes(ddb: Any, table: str, indexes: dict[str, Keys]) -> list[str]:
    """Create the indexes an existing table lacks (one made by an older bootstrap), each
    waited for until DynamoDB has filled it (it takes one index change at a time)."""
    from ecompipe.stores.aws.clients import translate

    done = []
    try:
        described = ddb.describe_table(TableName=table)["Table"]
        status = {
            i["IndexName"]: i.get("IndexStatus")
            for i in described.get("GlobalSecondaryIndexes", [])
        }
        for name in indexes.keys() & status.keys():
            if status[name] != "ACTIVE":  # being built (a stack update made it): wait for it
                _wait_for_index(ddb, table, name)
        for spec in _indexes({n: k for n, k in indexes.items() if n not in status}):
            ddb.update_table(
                TableName=table,
                AttributeDefinitions=[
                    {"AttributeName": k["AttributeName"], "AttributeType": "S"}
                    for k in spec["KeySchema"]
                ],
                GlobalSecondaryIndexUpdates=[{"Create": spec}],
            )
            _wait_for_index(ddb, table, spec["IndexName"])
            done.append(f"table {table}: index {spec['IndexName']} created")
    except Exception as exc:
        raise translate(exc, f"adding indexes to table {table}") from None
    return done


def _wait_for_index(ddb: Any, table: str, name: str, timeout: float = 1800) -> None:
    """Until the index is ACTIVE (its backfill done); TerminalError after ``timeout``."""
    from ecompipe.errors import TerminalError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = ddb.describe_table(TableName=table)["Table"]
        status = {i["IndexName"]: i.get("IndexStatus") for i in described["GlobalSecondaryIndexes"]}
        if status.get(name) == "ACTIVE":
            return
        time.sleep(5)
    raise TerminalError(
        f"index {name} of table {table} is still being built after {timeout:.0f}s: "
        "run `ecompipe aws bootstrap` again later"
    )


#: The lifecycle rule both buckets get (deploy/template.yaml declares the same): a task killed
#: in the middle of a multipart copy cannot abort it, and its parts would be billed forever.
ABORT_UPLOADS_RULE = "ecompipe-abort-incomplete-multipart-uploads"
ABORT_UPLOADS_AFTER_DAYS = 7


def abort_uploads_rule() -> dict[str, Any]:
    """The lifecycle rule that aborts a bucket's incomplete multipart uploads."""
    return {
        "ID": ABORT_UPLOADS_RULE,
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_UPLOADS_AFTER_DAYS},
    }


def _add_abort_rule(s3: Any, bucket: str) -> str | None:
    """Give ``bucket`` the abort rule, unless it has a rule of that ID (an operator may have
    changed or disabled it: theirs to decide) or one of its own that aborts the uploads of
    the whole bucket. The bucket's other rules, and its default transition size, are kept
    (PutBucketLifecycleConfiguration replaces the whole configuration). Returns the line to
    print: what was done, or why nothing could be (no lifecycle permission: bootstrap goes
    on, the rule is the operator's to add); None when there was nothing to do."""
    from ecompipe.stores.aws.clients import error_code, translate

    try:
        current = s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    except Exception as exc:
        code = error_code(exc)
        if code == "AccessDenied":
            return _no_abort_rule(bucket, "s3:GetLifecycleConfiguration")
        if code != "NoSuchLifecycleConfiguration":
            raise translate(exc, f"reading the lifecycle rules of bucket {bucket}") from None
        current = {"Rules": []}
    rules = current["Rules"]
    for rule in rules:
        whole = not rule.get("Prefix") and rule.get("Filter", {}) in ({}, {"Prefix": ""})
        aborts = rule.get("Status") == "Enabled" and "AbortIncompleteMultipartUpload" in rule
        if rule.get("ID") == ABORT_UPLOADS_RULE or (aborts and whole):
            return None
    kept = {k: current[k] for k in ("TransitionDefaultMinimumObjectSize",) if k in current}
    try:
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket,
            LifecycleConfiguration={"Rules": [*rules, abort_uploads_rule()]},
            **kept,
        )
    except Exception as exc:
        if error_code(exc) == "AccessDenied":
            return _no_abort_rule(bucket, "s3:PutLifecycleConfiguration")
        raise translate(exc, f"adding a lifecycle rule to bucket {bucket}") from None
    return (
        f"bucket {bucket}: incomplete multipart uploads aborted after "
        f"{ABORT_UPLOADS_AFTER_DAYS} days"
    )


def _no_abort_rule(bucket: str, permission: str) -> str:
    return (
        f"bucket {bucket}: no lifecycle rule added (no {permission}): give it an "
        f"AbortIncompleteMultipartUpload rule of {ABORT_UPLOADS_AFTER_DAYS} days (docs/AWS.md)"
    )


def _bucket_exists(s3: Any, bucket: str) -> bool:
    from ecompipe.stores.aws.clients import error_code, translate

    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise translate(exc, f"checking bucket {bucket}") from None
    return True


@click.group()
def task() -> None:
    """ECS task entry points (run by the state machine with TASK_TOKEN and EXECUTION_ID)."""


def _task_command(worker: str, doc: str) -> None:
    @task.command(worker, help=doc)
    def command() -> None:
        from ecompipe.aws.tasks import run_task

        reported = run_task(worker)
        click.echo(json.dumps(reported, default=str))
        sys.exit(0 if reported["status"] == "success" else 2)


for _spec in WORKFLOW:
    if _spec.worker:
        _task_command(_spec.worker, f"{_spec.name}: {_spec.doc}")
