"""`ecompipe aws ...` (operators) and `ecompipe task ...` (the ECS containers).

No boto3 at import time: `ecompipe --help` and the local path stay fast.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ecompipe.config import Settings, load_settings
from ecompipe.workflow import WORKFLOW

TOPIC_NAME = "ecommerce-etl-alerts"


@click.group()
def aws() -> None:
    """AWS: create dev resources, print the state machine, inspect the lock."""


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
            continue
        try:
            s3.create_bucket(**kwargs)
            done.append(f"bucket {bucket}: created")
        except Exception as exc:
            if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise translate(exc, f"creating bucket {bucket}") from None
            done.append(f"bucket {bucket}: exists")
    ddb = clients("dynamodb")
    tables = {
        settings.lock_table: ([("LockId", "HASH")], "expires_at"),
        settings.order_metrics_table: ([("order_date", "HASH")], None),
        settings.category_metrics_table: ([("category", "HASH"), ("order_date", "RANGE")], None),
        settings.executions_table: ([("pk", "HASH"), ("sk", "RANGE")], None),
    }
    for table, (keys, ttl) in tables.items():
        try:
            ddb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
                AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
                BillingMode="PAY_PER_REQUEST",
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
    AwsPorts(settings, clients).lock().ensure_item()
    name = settings.sns_topic_arn.rsplit(":", 1)[-1] if settings.sns_topic_arn else TOPIC_NAME
    try:
        arn = clients("sns").create_topic(Name=name)["TopicArn"]  # idempotent by name
    except Exception as exc:
        raise translate(exc, f"creating topic {name}") from None
    done.append(f"topic {arn}")
    done.append(f"export SNS_TOPIC_ARN={arn}")
    return done


def _bucket_exists(s3: Any, bucket: str) -> bool:
    from ecompipe.stores.aws.clients import error_code, translate

    try:
        s3.head_bucket(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            return False
        raise translate(exc, f"checking bucket {bucket}") from None
    return True


@aws.command("lock")
@click.option("--json", "as_json", is_flag=True)
def aws_lock(as_json: bool) -> None:
    """Show the DynamoDB lock's holders (leases expire by themselves)."""
    from dataclasses import asdict

    from ecompipe.wiring import AwsPorts

    holders = AwsPorts(load_settings()).lock().holders()
    if as_json:
        click.echo(json.dumps([asdict(h) for h in holders], indent=2))
    elif not holders:
        click.echo("lock is free")
    for h in holders if not as_json else []:
        click.echo(f"{h.holder}  {h.host}  expires at {h.expires_at:.0f}")


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
