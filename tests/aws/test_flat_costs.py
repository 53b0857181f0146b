"""What one S3 event, one EventBridge status change and one whole run cost in DynamoDB and
S3 calls does not grow with the history: counted with botocore event hooks on the clients
the code uses, with 10 earlier executions and again with 200, it is the same, call for call
and item for item read, and never a Scan."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import EVENTS, Aws, upload_event
from tests.support import DATASETS

pytestmark = [
    pytest.mark.aws,
    pytest.mark.duckdb,
    pytest.mark.slow,
    pytest.mark.xdist_group("moto"),
]

#: A state machine that ends at once: the trigger's StartExecution is counted, not played.
PASS_MACHINE = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}


class ApiCalls:
    """Every call a client makes, by (service, operation), and the items each DynamoDB
    Query or Scan examined (its ScannedCount): botocore's before-call and after-call."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.examined: Counter[str] = Counter()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call", self._before)
        client.meta.events.register("after-call", self._after)

    def _before(self, model: Any, **_: Any) -> None:
        self.calls[(model.service_model.service_name, model.name)] += 1

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        if "ScannedCount" in parsed:
            self.examined[model.name] += int(parsed["ScannedCount"])

    def take(self) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        """What was counted since the last take."""
        taken = (self.calls, self.examined)
        self.calls, self.examined = Counter(), Counter()
        return taken


def counted_clients(aws: Aws, calls: ApiCalls) -> Any:
    clients = aws.clients()
    for service in ("s3", "dynamodb", "stepfunctions", "sns"):
        calls.attach(clients(service))
    return clients


def seed_history(aws: Aws, first: int, count: int) -> None:
    """``count`` earlier executions, finished, as a run leaves them: record, manifest, a
    state event, a report in the landing bucket, and the metrics of one order date each
    (one earlier date per execution: the tables grow with them)."""
    from ecompipe.kpis import CategoryMetrics, OrderMetrics
    from ecompipe.stores.base import ManifestEntry
    from ecompipe.wiring import AwsPorts

    ports = AwsPorts(aws.settings(), aws.clients())
    log, metrics, s3 = ports.log(), ports.metrics(), aws.client("s3")
    # The first run ever creates the critical section's lock item (one UpdateItem): an
    # earlier run would have.
    ports.lock(critical=True).ensure_item()
    days, orders, categories = [], [], []
    for n in range(first, first + count):
        eid = f"exec-history-{n:04d}"
        log.create(eid, "an-earlier-run")
        entries = [ManifestEntry(f"{d}/old {n}.csv", d, 10, "e" * 32) for d in DATASETS]
        log.save_manifest(eid, entries)
        log.record_event(eid, "ArchiveFiles", "succeeded")
        log.finish(eid, "SUCCEEDED" if n % 7 else "FAILED", {"files": 3})
        s3.put_object(
            Bucket=aws.env["BUCKET_NAME"],
            Key=f"quarantine/{eid}/validation_report.json",
            Body=b"{}",
        )
        day = date(2020, 1, 1) + timedelta(days=n)
        days.append(day)
        orders.append(OrderMetrics(day, 1, Decimal("9.50"), 2, Decimal("0"), 1))
        categories.extend(
            CategoryMetrics(c, day, Decimal("9.50"), Decimal("9.50"), Decimal("0"))
            for c in ("Books", "Garden", "Toys")
        )
    metrics.replace_dates(days, orders, categories)


def a_set(base: int, month: int) -> tuple[bytes, bytes, bytes]:
    """Orders, order items and products of the same shape for every ``base`` (new ids) and
    ``month`` (two order dates of 2025 no earlier set had): a run of each writes the same
    rows of the same two categories."""
    orders = (
        "order_id,user_id,created_at,status\n"
        f"{base + 1},1,2025-{month:02d}-01 10:00:00,Complete\n"
        f"{base + 2},2,2025-{month:02d}-02 11:00:00,Returned\n"
    )
    items = (
        "id,order_id,product_id,sale_price\n"
        f"{base + 1},{base + 1},{base + 1},19.99\n"
        f"{base + 2},{base + 2},{base + 2},9.99\n"
        f"{base + 3},{base + 2},{base + 1},5.00\n"
    )
    products = (
        "id,sku,cost,category,retail_price\n"
        f"{base + 1},SKU-{base + 1},5.00,Jeans,20.00\n"
        f"{base + 2},SKU-{base + 2},2.50,Tops,10.00\n"
    )
    return orders.encode(), items.encode(), products.encode()


def one_of_each(aws: Aws, phase: str, base: int, month: int, work: Path) -> dict[str, Any]:
    """The calls of one S3 event of a complete set, one whole run taking it, and one
    status change of a stopped execution, each counted on its own."""
    from ecompipe.aws.lambda_handler import handler
    from ecompipe.wiring import AwsPorts, new_pipeline

    calls = ApiCalls()
    clients = counted_clients(aws, calls)
    keys = [f"{d}/{phase} {d}.csv" for d in DATASETS]
    for key, body in zip(keys, a_set(base, month), strict=True):
        aws.put(key, body)

    decided = handler(upload_event(aws, keys[0]), None, clients=clients)
    assert decided["started"] is True and decided["files"] == 3, decided
    event = calls.take()

    # The run's local working folder is kept between runs, as one machine's is: its mirror
    # of the curated log then downloads only batches it has not seen.
    pipeline = new_pipeline("aws", aws.settings(), quiet=True, clients=clients, work_dir=work)
    result = pipeline.run()
    assert result.exit_code == 0, result.message
    run = calls.take()

    stopped = f"set-stopped-{phase}"
    AwsPorts(aws.settings(), aws.clients()).log().create(stopped, stopped)
    status_change: dict[str, Any] = json.loads((EVENTS / "sfn_status_aborted.json").read_text())
    status_change["detail"].update(
        stateMachineArn=aws.env["STATE_MACHINE_ARN"], name=stopped, status="ABORTED", input="{}"
    )
    decided = handler(status_change, None, clients=clients)
    assert decided["closed"] is True and decided["started"] is False, decided
    stop = calls.take()
    return {"s3 event": event, "run": run, "status change": stop}


@pytest.mark.timeout(300)
def test_event_and_run_costs_do_not_grow_with_history(aws: Aws, tmp_path: Path) -> None:
    machine = aws.client("stepfunctions").create_state_machine(
        name="pass",
        definition=json.dumps(PASS_MACHINE),
        roleArn="arn:aws:iam::123456789012:role/ecompipe-sfn",
    )
    aws.setenv("STATE_MACHINE_ARN", machine["stateMachineArn"])
    # No lease renewal within a run: the heartbeat renews by the clock, not by the history.
    aws.setenv("ECOMPIPE_LEASE_SECONDS", "3600")
    work = tmp_path / "work"

    # A first run builds the curated store's current state; every later run folds into it.
    one_of_each(aws, "first", 500, 12, work)
    seed_history(aws, 0, 10)
    after_10 = one_of_each(aws, "a", 1000, 1, work)
    seed_history(aws, 10, 190)
    after_200 = one_of_each(aws, "b", 2000, 2, work)

    for path, (calls, examined) in after_200.items():
        assert ("dynamodb", "Scan") not in calls, path
        assert (calls, examined) == after_10[path], (
            f"{path}: {dict(calls)} {dict(examined)} against {after_10[path]}"
        )
    # The hooks saw what the paths do (a broken hook would count nothing everywhere).
    event_calls, _ = after_10["s3 event"]
    assert event_calls[("s3", "ListObjectsV2")] == 3 and event_calls[("dynamodb", "GetItem")]
    assert event_calls[("stepfunctions", "StartExecution")] == 1
    run_calls, run_examined = after_10["run"]
    assert run_calls[("dynamodb", "TransactWriteItems")] == 2  # the record opened, closed
    assert run_calls[("dynamodb", "Query")] and run_examined["Query"]
    assert run_calls[("sns", "Publish")] == 1
