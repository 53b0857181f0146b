"""DynamoDB adapters on moto: lease semantics of the lock, batch writes under throttling,
replace_dates deleting rows that no longer exist."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.aws.conftest import Aws, local_metrics
from tests.conftest import ecompipe

pytestmark = [pytest.mark.aws, pytest.mark.xdist_group("moto")]


def _lock(aws: Aws, limit: int = 1) -> Any:
    from ecompipe.stores.aws.dynamodb import DynamoDBLock

    s = aws.settings()
    return DynamoDBLock(aws.client("dynamodb"), s.lock_table, s.lock_id, limit)


@pytest.mark.timeout(60)
def test_lock_lease_semantics(aws: Aws) -> None:
    lock = _lock(aws)
    assert lock.try_acquire("a", "exec-a", 60)
    assert lock.try_acquire("a", "exec-a", 60), "a retried acquire by the holder succeeds"
    assert not lock.try_acquire("b", None, 60), "limit 1: busy"
    assert [h.holder for h in lock.holders()] == ["a"]
    assert lock.renew("a", 60) and not lock.renew("b", 60)
    lock.release("a")
    lock.release("a")  # no error when not held
    assert lock.try_acquire("b", None, 0.5)
    time.sleep(0.7)
    assert not lock.renew("b", 60), "an expired lease cannot be renewed"
    assert lock.try_acquire("c", None, 60), "an expired holder is reaped by the next acquirer"
    assert [h.holder for h in lock.holders()] == ["c"]
    item = aws.client("dynamodb").get_item(
        TableName="ProcessingLockTable", Key={"LockId": {"S": "ecommerce-pipeline-lock"}}
    )["Item"]
    assert "N" in item["expires_at"], "the TTL attribute is set"
    assert lock.force_release() == 1 and lock.holders() == []


@pytest.mark.timeout(60)
def test_lock_limit_counts_slots_and_reaps_expired_execution_leases(aws: Aws) -> None:
    from ecompipe.stores.aws.dynamodb import DynamoDBLock

    lock = _lock(aws, limit=2)
    assert lock.try_acquire("a", None, 60) and lock.try_acquire("b", None, 60)
    assert not lock.try_acquire("c", None, 60)
    lock.force_release()
    # Leases taken for Step Functions executions: no process to check, only the expiry.
    s = aws.settings()
    executions = DynamoDBLock(aws.client("dynamodb"), s.lock_table, s.lock_id, 2, True)
    assert executions.try_acquire("set-old", "set-old", 0.3)
    assert executions.try_acquire("set-live", "set-live", 60)
    old, live = sorted(lock.holders(), key=lambda h: h.holder == "set-live")
    assert (old.holder, old.host, old.pid) == ("set-old", "stepfunctions", 0)
    time.sleep(0.5)
    assert lock.reap() == 1, "the expired one only; pid 0 is never taken for a dead process"
    assert [h.holder for h in lock.holders()] == ["set-live"] and live.execution_id == "set-live"


@pytest.mark.timeout(60)
def test_acquire_lock_lambda_follows_the_lease_rule(aws: Aws) -> None:
    """AcquireLock's Lambda: a lease per execution name, a retried acquire succeeds, busy is
    LockBusyError (what the state machine's Retry matches, by the exception's class name),
    and an expired holder is reaped by the next acquire."""
    from ecompipe.aws.lambda_handler import acquire_lock
    from ecompipe.aws.state_machine import definition, lambda_error_name
    from ecompipe.errors import ConfigError, LockBusyError

    assert acquire_lock({"execution_name": "set-a"}) == {"holder": "set-a", "lease_seconds": 900}
    assert acquire_lock({"execution_name": "set-a"})["holder"] == "set-a"
    with pytest.raises(LockBusyError, match="set-a") as busy:
        acquire_lock({"execution_name": "set-b"})
    retry = definition()["States"]["AcquireLock"]["Retry"][0]
    assert retry["ErrorEquals"] == [lambda_error_name(type(busy.value))]
    with pytest.raises(ConfigError):
        acquire_lock({})
    lock = _lock(aws)
    (held,) = lock.holders()
    assert (held.holder, held.host, held.pid) == ("set-a", "stepfunctions", 0)
    assert held.expires_at > time.time() + 800
    aws.client("dynamodb").update_item(
        TableName="ProcessingLockTable",
        Key={"LockId": {"S": "ecommerce-pipeline-lock"}},
        UpdateExpression="SET holders.#h.expires_at = :past",
        ExpressionAttributeNames={"#h": "set-a"},
        ExpressionAttributeValues={":past": {"N": str(time.time() - 1)}},
    )
    assert acquire_lock({"execution_name": "set-b"})["holder"] == "set-b"
    assert [h.holder for h in lock.holders()] == ["set-b"]


class ThrottlingDynamoDB:
    """The real (moto) client, except BatchWriteItem: the first ``throttled`` calls write
    only half the items and hand the rest back as UnprocessedItems (what DynamoDB does under
    throttling); ``always`` never writes anything."""

    def __init__(self, real: Any, throttled: int = 3, always: bool = False) -> None:
        self._real, self._left, self._always = real, throttled, always
        self.calls: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def batch_write_item(self, RequestItems: dict[str, list[Any]], **kw: Any) -> Any:
        ((table, items),) = RequestItems.items()
        assert len(items) <= 25, "AWS rejects more than 25 items per BatchWriteItem"
        self.calls.append(len(items))
        if self._always:
            return {"UnprocessedItems": {table: items}}
        if self._left > 0 and len(items) > 1:
            self._left -= 1
            half = len(items) // 2
            self._real.batch_write_item(RequestItems={table: items[:half]}, **kw)
            return {"UnprocessedItems": {table: items[half:]}}
        return self._real.batch_write_item(RequestItems=RequestItems, **kw)


def _rows(days: int, categories: int) -> tuple[list[date], list[Any], list[Any]]:
    from ecompipe.kpis import CategoryMetrics, OrderMetrics

    dates = [date(2024, 1, 1) + timedelta(days=i) for i in range(days)]
    orders = [OrderMetrics(d, 3, Decimal("10.50"), 4, Decimal("0.3333"), 2) for d in dates]
    cats = [
        CategoryMetrics(f"cat{c}", d, Decimal("1.25"), Decimal("0.63"), Decimal("0.5000"))
        for d in dates
        for c in range(categories)
    ]
    return dates, orders, cats


def _metrics(aws: Aws, client: Any, retries: int = 8) -> Any:
    from ecompipe.stores.aws.dynamodb import DynamoDBMetricsStore

    s = aws.settings()
    return DynamoDBMetricsStore(
        client,
        s.order_metrics_table,
        s.category_metrics_table,
        s.executions_table,
        25,
        retries,
        sleep=lambda _: None,
    )


@pytest.mark.timeout(60)
def test_unprocessed_items_are_retried_and_no_row_is_lost(aws: Aws) -> None:
    client = ThrottlingDynamoDB(aws.client("dynamodb"), throttled=5)
    store = _metrics(aws, client)
    dates, orders, cats = _rows(days=40, categories=3)
    store.replace_dates(dates, orders, cats)
    assert store.order_metrics() == orders
    assert len(store.category_metrics()) == 120
    assert max(client.calls) <= 25 and len(client.calls) > (40 + 120) // 25


@pytest.mark.timeout(60)
def test_rows_left_unwritten_fail_the_write(aws: Aws) -> None:
    from ecompipe.errors import StoreError

    store = _metrics(aws, ThrottlingDynamoDB(aws.client("dynamodb"), always=True), retries=3)
    dates, orders, cats = _rows(days=2, categories=1)
    with pytest.raises(StoreError, match="not written after 3 retries"):
        store.replace_dates(dates, orders, cats)


@pytest.mark.timeout(60)
def test_replace_dates_deletes_rows_that_no_longer_exist(aws: Aws) -> None:
    store = _metrics(aws, aws.client("dynamodb"))
    dates, orders, cats = _rows(days=3, categories=2)
    store.replace_dates(dates, orders, cats)
    # Day 2 now has only cat0 and no order row; day 3 is untouched (not affected).
    store.replace_dates(dates[1:2], [], [c for c in cats if c.order_date == dates[1]][:1])
    assert [m.order_date for m in store.order_metrics()] == [dates[0], dates[2]]
    day2 = store.category_metrics(dates[1], dates[1])
    assert [c.category for c in day2] == ["cat0"]
    assert len(store.category_metrics()) == 5
    assert store.category_metrics(category="cat1") == [
        c for c in cats if c.category == "cat1" and c.order_date != dates[1]
    ]


class DiesWriting:
    """The real (moto) client, except that the first BatchWriteItem to ``table`` raises: a
    task killed half-way through replace_dates, after the writes before it."""

    def __init__(self, real: Any, table: str) -> None:
        self._real, self._table, self.died = real, table, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def batch_write_item(self, RequestItems: dict[str, list[Any]], **kw: Any) -> Any:
        if self._table in RequestItems and not self.died:
            self.died = True
            raise ConnectionError("killed")
        return self._real.batch_write_item(RequestItems=RequestItems, **kw)


@pytest.mark.timeout(60)
def test_revisions_of_a_write_that_died_half_way_are_recorded_once(aws: Aws) -> None:
    """Killed after the order rows, before the category rows: the retry must neither take
    the new date (its order row now there) for a past one, nor lose day 1's revision (its
    new order row already written), and must give the whole summary."""
    from ecompipe.kpis import OrderMetrics

    s = aws.settings()
    store = _metrics(aws, aws.client("dynamodb"))
    dates, orders, cats = _rows(days=2, categories=2)
    store.replace_dates(dates[:1], orders[:1], cats[:2], revision_of="e1")
    richer = OrderMetrics(dates[0], 4, Decimal("12.00"), 5, Decimal("0.2500"), 3)
    late = (dates, [richer, orders[1]], cats)  # day 2 is new, with its two categories
    dying = DiesWriting(aws.client("dynamodb"), s.category_metrics_table)
    with pytest.raises(Exception, match="killed"):
        _metrics(aws, dying).replace_dates(*late, revision_of="e2")
    assert store.order_metrics() == [richer, orders[1]], "died after the order rows"
    summary = store.replace_dates(*late, revision_of="e2")
    assert summary.as_dict() == {
        "dates_changed": 1,
        "rows_changed": 1,
        "largest_revenue_change": {
            "date": "2024-01-01",
            "before": "10.50",
            "after": "12.00",
            "delta": "+1.50",
        },
    }
    assert [r.changes() for r in store.revisions(dates[0])] == [
        [
            ("total_orders", 3, 4),
            ("total_revenue", "10.50", "12.00"),
            ("total_items_sold", 4, 5),
            ("return_rate", "0.3333", "0.2500"),
            ("unique_customers", 2, 3),
        ]
    ]
    assert store.revisions(dates[1]) == [], "a new date is no revision, even on a retry"
    assert store.category_metrics() == cats


@pytest.mark.timeout(120)
def test_pipeline_run_under_throttling_loses_no_row(aws: Aws, workspace: Any) -> None:
    """The whole `run --backend aws` with a throttling DynamoDB: same metrics as unthrottled."""
    from ecompipe.engines import create_engine
    from ecompipe.pipeline import Pipeline
    from ecompipe.stores.aws.clients import AwsClients
    from ecompipe.wiring import open_backend

    settings = aws.settings()
    clients = AwsClients(settings)
    throttled = ThrottlingDynamoDB(clients("dynamodb"), throttled=50)
    clients.made["dynamodb"] = throttled
    aws.land_hand()
    ports = open_backend("aws", settings, workspace, quiet=True, clients=clients)
    ports.metrics._sleep = lambda _: None  # type: ignore[attr-defined]
    result = Pipeline(settings, ports, lambda: create_engine(settings)).run()
    assert result.exit_code == 0, result.message
    assert any(n > 1 for n in throttled.calls)
    got = json.loads(ecompipe("metrics", "--backend", "aws", "--json").stdout)
    assert got == local_metrics(workspace)


@pytest.mark.timeout(60)
def test_a_manifest_entry_of_a_key_too_long_for_a_sort_key_round_trips(aws: Aws) -> None:
    """S3 takes keys of 1,024 bytes; "ENTRY#" + such a key is over DynamoDB's 1,024-byte
    sort key, so the entry is stored under a hash of the key, the key kept whole."""
    from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog
    from ecompipe.stores.base import ManifestEntry

    log = DynamoDBExecutionLog(aws.client("dynamodb"), aws.settings().executions_table)
    log.create("exec-long", "h")
    long_key = "orders/" + "/".join(["k" * 200] * 5) + "x" * 13  # 1,024 bytes
    assert len(long_key.encode()) == 1024
    entries = [
        ManifestEntry(long_key, None, 5, "e1"),
        ManifestEntry("orders/a.csv", "orders", 7, "e2"),
    ]
    log.save_manifest("exec-long", entries)
    entries[0].status, entries[0].location = "quarantined", "s3://b/quarantine/x"
    log.update_entries("exec-long", [entries[0]])
    got = {e.key: e for e in log.manifest("exec-long")}
    assert set(got) == {long_key, "orders/a.csv"}
    assert (got[long_key].status, got[long_key].location) == ("quarantined", "s3://b/quarantine/x")
    assert got["orders/a.csv"].status == "claimed"


@pytest.mark.timeout(60)
def test_bootstrap_upgrades_the_tables_an_older_version_left(aws: Aws) -> None:
    """A category table without the by-date index and an execution recorded RUNNING before
    the log had its RUNNING item, as an older version left them: bootstrap adds the index
    and lists the execution as running, so its files count as owned again."""
    from ecompipe.aws.cli import bootstrap_resources
    from ecompipe.errors import EcompipeError
    from ecompipe.stores.aws.dynamodb import BY_DATE_INDEX, BY_SEQ_INDEX, DynamoDBExecutionLog

    settings = aws.settings()
    ddb = aws.client("dynamodb")
    categories, executions = settings.category_metrics_table, settings.executions_table
    for table, keys in ((categories, ("category", "order_date")), (executions, ("pk", "sk"))):
        ddb.delete_table(TableName=table)
        ddb.create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": keys[0], "KeyType": "HASH"},
                {"AttributeName": keys[1], "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k in keys],
            BillingMode="PAY_PER_REQUEST",
        )
    old = {"pk": {"S": "EXEC#exec-old"}, "execution_id": {"S": "exec-old"}}
    ddb.put_item(
        TableName=executions,
        Item={
            **old,
            "sk": {"S": "RECORD"},
            "seq": {"N": "1"},
            "status": {"S": "RUNNING"},
            "started_at": {"N": "1"},
            "summary": {"S": "{}"},
        },
    )
    entry = {"key": {"S": "orders/a.csv"}, "size": {"N": "1"}, "etag": {"S": "e"}}
    entry.update(regular={"BOOL": True}, status={"S": "claimed"})
    ddb.put_item(TableName=executions, Item={**old, "sk": {"S": "ENTRY#orders/a.csv"}, **entry})
    log = DynamoDBExecutionLog(ddb, executions)
    assert log.unfinished() == []
    # (AWS answers ValidationException, moto ResourceNotFoundException: both say what to do.)
    with pytest.raises(EcompipeError, match="ecompipe aws bootstrap"):
        log.recent()

    done = bootstrap_resources(settings, aws.clients())

    assert f"table {categories}: index {BY_DATE_INDEX} created" in done
    assert f"table {executions}: index {BY_SEQ_INDEX} created" in done
    assert f"table {executions}: 1 running execution(s) indexed" in done
    assert f"table {executions}: 1 execution record(s) indexed" in done
    assert [r.execution_id for r in log.unfinished()] == ["exec-old"]
    assert [r.execution_id for r in log.recent()] == ["exec-old"]
    assert log.owned_keys() == {"orders/a.csv"}
    store = _metrics(aws, ddb)
    dates, orders, cats = _rows(days=1, categories=2)
    store.replace_dates(dates, orders, cats)
    store.replace_dates(dates, orders, cats[:1])  # the other row found by date, deleted
    assert store.category_metrics() == cats[:1]
    again = bootstrap_resources(settings, aws.clients())
    assert not [line for line in again if "index" in line and "created" in line]
    log.finish("exec-old", "FAILED", {})
    assert log.unfinished() == [] and log.owned_keys() == set()


@pytest.mark.timeout(60)
def test_the_latest_executions_are_read_by_key_whatever_the_history(aws: Aws) -> None:
    """`ecompipe executions` and the console read the newest records from the by-seq index
    and then by key: no Scan, the same calls after 3 or 40 executions."""
    from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog

    ddb = aws.client("dynamodb")
    log = DynamoDBExecutionLog(ddb, aws.settings().executions_table)
    calls: list[str] = []
    ddb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    made = []
    seen = {}
    for n in range(40):
        made.append(log.create(f"exec-{n:03d}", None).execution_id)
        log.record_event(made[-1], "ValidateFiles", "entered")  # items the index leaves out
        if n + 1 in (3, 40):
            calls.clear()
            latest = log.recent(5)
            seen[n + 1] = sorted(calls)
            assert [r.execution_id for r in latest] == made[::-1][:5]
    assert seen[3] == seen[40] == ["BatchGetItem", "Query"]
    assert log.recent(0) == []
    calls.clear()
    assert [r.execution_id for r in log.find("exec-007")] == ["exec-007"]
    assert calls == ["GetItem"]  # a whole id: by key
    assert [r.execution_id for r in log.find("exec-00")] == made[:10]  # a prefix: a scan


class LateReader:
    """A DynamoDB client whose first GetItem finds nothing: a create that read before
    another create of the same execution wrote."""

    def __init__(self, client: Any) -> None:
        self.client, self.fooled = client, False

    def get_item(self, **kwargs: Any) -> Any:
        if not self.fooled:
            self.fooled = True
            return {}
        return self.client.get_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.mark.timeout(60)
def test_a_create_that_lost_the_race_keeps_the_first_record(aws: Aws) -> None:
    """Two creates of one execution: the second one's transaction is cancelled by the
    record's condition (nothing of it written) and it returns the first record."""
    from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog

    table = aws.settings().executions_table
    first = DynamoDBExecutionLog(aws.client("dynamodb"), table).create("exec-twice", "a")
    late = DynamoDBExecutionLog(LateReader(aws.client("dynamodb")), table)
    second = late.create("exec-twice", "b")
    assert (second.seq, second.holder) == (first.seq, "a")
    assert [r.execution_id for r in late.unfinished()] == ["exec-twice"]


@pytest.mark.fast
def test_a_transaction_cancelled_by_a_conflict_is_transient() -> None:
    """Another transaction on the RUNNING item at the same moment cancels this one: a
    StoreError, which the state's owner retries, not a terminal error."""
    from botocore.exceptions import ClientError

    from ecompipe.errors import StoreError
    from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog

    class Conflicting:
        def transact_write_items(self, **_: Any) -> None:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                    "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
                },
                "TransactWriteItems",
            )

        def get_item(self, **_: Any) -> Any:
            return {}

        def update_item(self, **_: Any) -> None:
            return None

    with pytest.raises(StoreError, match="TransactionConflict"):
        DynamoDBExecutionLog(Conflicting(), "t").finish("exec-x", "SUCCEEDED", {})
