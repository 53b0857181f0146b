"""DynamoDB adapters: the lock (leases), the two metrics tables, the execution log.

Lock item (table LOCK_TABLE = ProcessingLockTable, hash key LockId (S)):
  {LockId, holders: {<holder>: {execution_id, host, pid, acquired_at, expires_at}}, expires_at}
Every acquirer, the state machine's AcquireLock included (a Lambda task calling
DynamoDBLock.try_acquire), follows one rule: reap expired holders (and holders whose process
on this host is gone) with conditional removes, then one conditional UpdateItem taking a free
slot, or succeeding when the holder already holds (so a retried acquire that had succeeded is
a success). A lease taken for a Step Functions execution has host ``stepfunctions`` and pid 0:
no process embodies it, so only its expiry (renewed by the execution's tasks) ends it. The
item's top-level ``expires_at`` is the table's TTL attribute: it lets DynamoDB drop an idle lock
item; correctness never waits on it.

Execution log (table EXECUTIONS_TABLE, hash pk (S), range sk (S)):
  pk EXEC#<id>, sk RECORD           the execution record (summary as JSON text)
  pk EXEC#<id>, sk ENTRY#<key>      one manifest entry (ENTRY#~<SHA-256> for a key too long
                                    for a sort key; the key itself is in its ``key``)
  pk EXEC#<id>, sk EVENT#<ns>#<rnd> one state event
  pk COUNTER,   sk SEQ              the batch sequence counter
  pk REVISION#<date>, sk <execution id>#<category>   a KPI revision of the date's order row
                                    (category empty) or a category row (DynamoDBMetricsStore)
  pk REVISIONS#<execution id>, sk SUMMARY            the summary of what it revised
  pk RUNNING,   sk EXECUTIONS       ``ids``: the RUNNING executions (a string set)
Each record also carries ``record_list`` (always RECORD) and ``record_seq`` (its batch number,
zero-padded): the keys of BY_SEQ_INDEX, a sparse keys-only index of the records alone, so the
latest executions are read by key (`ecompipe executions`, the console), not by a scan of
every record, manifest entry and state event ever written.
The RUNNING item is the log's index of what runs: a record is created and finished in one
transaction with its entry there, so every S3 event and every run finds the unfinished
executions (and the files they own) with reads by key, whatever the history holds.

Metrics: category_metrics_table (hash category, range order_date) has the index
BY_DATE_INDEX (hash order_date, range category, keys only), so a run finds the rows of
the dates it replaces by key.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from ecompipe.errors import StoreError
from ecompipe.kpis import (
    CATEGORY_TABLE,
    ORDER_TABLE,
    CategoryMetrics,
    Kind,
    MetricTable,
    OrderMetrics,
    R,
)
from ecompipe.revisions import Revision, RevisionSummary, history_order, revise, summarize
from ecompipe.stores.aws.clients import error_code, translate
from ecompipe.stores.base import ExecutionRecord, LockHolder, ManifestEntry, metrics_read
from ecompipe.stores.host import HOST, lease_over

#: The host of a lease held by a Step Functions execution (pid 0: no process to check).
EXECUTION_HOST = "stepfunctions"
#: Keep an idle lock item this long after its last lease expired (TTL attribute).
LOCK_ITEM_TTL_SECONDS = 86_400


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | float | Decimal) -> dict[str, str]:
    return {"N": str(value)}


def _num(attr: dict[str, Any] | None, default: float = 0.0) -> float:
    return float(attr["N"]) if attr and "N" in attr else default


def _str(attr: dict[str, Any] | None) -> str | None:
    return attr["S"] if attr and "S" in attr else None


#: category_metrics_table's index of its keys by date (hash order_date, range category).
BY_DATE_INDEX = "by_order_date"
#: The execution log's index of its records by batch number (see the module docstring).
BY_SEQ_INDEX = "by_seq"
#: How often a batch read or write asks again for what DynamoDB left unprocessed (throttled)
#: before it fails.
BATCH_RETRIES = 8
_RECORD_LIST = "RECORD"

#: DynamoDB's limit on a sort key, in bytes.
_MAX_SORT_KEY_BYTES = 1024


#: The execution log's item listing the RUNNING executions.
_RUNNING_KEY = {"pk": _s("RUNNING"), "sk": _s("EXECUTIONS")}


def _by_seq(seq: int) -> dict[str, Any]:
    """A record's attributes that BY_SEQ_INDEX is keyed on."""
    return {"record_list": _s(_RECORD_LIST), "record_seq": _s(f"{seq:012d}")}


def _index_problem(table: str, detail: str) -> str:
    """What to do when DynamoDB refuses a read of BY_SEQ_INDEX (ValidationException)."""
    if "backfill" in detail.lower():
        return (
            f"index {BY_SEQ_INDEX} of {table} is still being built: try again once "
            f"`aws dynamodb describe-table --table-name {table}` shows it ACTIVE"
        )
    return (
        f"{table}: index {BY_SEQ_INDEX} cannot be read ({detail}): a table made by an older "
        "version lacks it; run `ecompipe aws bootstrap` to add it"
    )


def batch_get(
    ddb: Any,
    table: str,
    keys: list[dict[str, Any]],
    max_retries: int,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict[str, Any]]:
    """The items of ``keys`` that exist: BatchGetItem (consistent), 100 keys a call; keys
    DynamoDB hands back unprocessed are asked again with backoff, as batch writes are."""
    items: list[dict[str, Any]] = []
    for start in range(0, len(keys), 100):
        pending: list[dict[str, Any]] = keys[start : start + 100]
        attempt = 0
        while pending:
            try:
                response = ddb.batch_get_item(
                    RequestItems={table: {"Keys": pending, "ConsistentRead": True}}
                )
            except Exception as exc:
                raise translate(exc, f"reading {table}") from None
            got = response.get("Responses", {}).get(table, [])
            items += got
            pending = response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            # Keys left over from a full response (16 MB) are no throttling: count only calls
            # that brought nothing back.
            attempt = 0 if got else attempt + 1
            if pending and attempt > max_retries:
                raise StoreError(
                    f"{len(pending)} rows of {table} not read after {max_retries} "
                    "retries (throttled): try again"
                )
            if pending:
                sleep(random.uniform(0, min(20.0, 0.05 * 2**attempt)))
    return items


def _entry_sk(key: str) -> str:
    """A manifest entry's sort key: ``ENTRY#<key>``, or ``ENTRY#~<SHA-256 of the key>`` for a
    landing key (S3 takes 1,024 bytes) too long for a sort key with the prefix."""
    sk = f"ENTRY#{key}"
    if len(sk.encode("utf-8", "surrogateescape")) <= _MAX_SORT_KEY_BYTES:
        return sk
    return "ENTRY#~" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


# ---------------------------------------------------------------------- lock


class DynamoDBLock:
    """A semaphore of leases in one item; same semantics as stores.local.sqlite.SQLiteLock.

    ``for_executions``: the leases this handle takes belong to Step Functions executions (the
    holder is the execution's name), not to this process: they are marked so that only their
    expiry ends them, never the liveness of the process that wrote them (a Lambda).
    """

    def __init__(
        self, client: Any, table: str, lock_id: str, limit: int, for_executions: bool = False
    ) -> None:
        self.ddb, self.table, self.lock_id, self.limit = client, table, lock_id, limit
        self._host, self._pid = (EXECUTION_HOST, 0) if for_executions else (HOST, os.getpid())

    def _update(self, doing: str, **kwargs: Any) -> bool:
        """One UpdateItem on the lock item; False when its condition did not hold."""
        try:
            self.ddb.update_item(TableName=self.table, Key={"LockId": _s(self.lock_id)}, **kwargs)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate(exc, f"{doing} lock '{self.lock_id}'") from None
        return True

    def ensure_item(self) -> None:
        """Create the lock item (no holders) if it is missing; the state machine needs it."""
        self._update(
            "creating",
            UpdateExpression="SET holders = if_not_exists(holders, :empty)",
            ExpressionAttributeValues={":empty": {"M": {}}},
        )

    def _holders_raw(self) -> dict[str, Any] | None:
        try:
            item = self.ddb.get_item(
                TableName=self.table, Key={"LockId": _s(self.lock_id)}, ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise translate(exc, f"reading lock '{self.lock_id}'") from None
        if item is None or "holders" not in item:
            return None
        holders: dict[str, Any] = item["holders"]["M"]
        return holders

    @staticmethod
    def _holder(name: str, raw: dict[str, Any]) -> LockHolder:
        attrs = raw.get("M", {})
        return LockHolder(
            name,
            _str(attrs.get("execution_id")),
            _str(attrs.get("host")) or "?",
            int(_num(attrs.get("pid"))),
            _num(attrs.get("acquired_at")),
            _num(attrs.get("expires_at")),
        )

    def reap(self) -> int:
        """Remove expired holders (and holders whose process on this host is gone)."""
        raw = self._holders_raw() or {}
        now, reaped = time.time(), 0
        for name, value in raw.items():
            h = self._holder(name, value)
            # Conditional on the lease we saw: a holder that renewed meanwhile stays.
            if lease_over(h.host, h.pid, h.expires_at, now) and self._update(
                "reaping",
                UpdateExpression="REMOVE holders.#h",
                ConditionExpression="holders.#h = :seen",
                ExpressionAttributeNames={"#h": name},
                ExpressionAttributeValues={":seen": value},
            ):
                reaped += 1
        return reaped

    def try_acquire(self, holder: str, execution_id: str | None, lease_seconds: float) -> bool:
        """Take a slot if one is free; a holder that already has one keeps it (renewed)."""
        if self._holders_raw() is None:
            self.ensure_item()
        self.reap()
        now = time.time()
        lease = {
            "host": _s(self._host),
            "pid": _n(self._pid),
            "acquired_at": _n(now),
            "expires_at": _n(now + lease_seconds),
        }
        if execution_id:
            lease["execution_id"] = _s(execution_id)
        return self._update(
            "acquiring",
            UpdateExpression="SET holders.#me = :lease, expires_at = :ttl",
            ConditionExpression="size(holders) < :limit OR attribute_exists(holders.#me)",
            ExpressionAttributeNames={"#me": holder},
            ExpressionAttributeValues={
                ":lease": {"M": lease},
                ":limit": _n(self.limit),
                ":ttl": _n(int(now + lease_seconds + LOCK_ITEM_TTL_SECONDS)),
            },
        )

    def renew(self, holder: str, lease_seconds: float) -> bool:
        """Extend the lease; False when the holder no longer holds one (or it expired)."""
        now = time.time()
        return self._update(
            "renewing",
            UpdateExpression="SET holders.#me.expires_at = :exp, expires_at = :ttl",
            ConditionExpression="attribute_exists(holders.#me) AND holders.#me.expires_at > :now",
            ExpressionAttributeNames={"#me": holder},
            ExpressionAttributeValues={
                ":exp": _n(now + lease_seconds),
                ":now": _n(now),
                ":ttl": _n(int(now + lease_seconds + LOCK_ITEM_TTL_SECONDS)),
            },
        )

    def release(self, holder: str) -> None:
        """Give the slot back (nothing happens when it is not held)."""
        self._update(
            "releasing",
            UpdateExpression="REMOVE holders.#me",
            ConditionExpression="attribute_exists(holders.#me)",
            ExpressionAttributeNames={"#me": holder},
        )

    def holders(self) -> list[LockHolder]:
        """Current holders (expired ones included until someone reaps them)."""
        raw = self._holders_raw() or {}
        return sorted((self._holder(k, v) for k, v in raw.items()), key=lambda h: h.acquired_at)

    def force_release(self, holder: str | None = None) -> int:
        """Operators only: drop one holder, or all of them."""
        if holder is not None:
            before = len(self.holders())
            self.release(holder)
            return before - len(self.holders())
        count = len(self.holders())
        self._update(
            "clearing",
            UpdateExpression="SET holders = :empty",
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
        return count


# ---------------------------------------------------------------------- metrics


def batch_write(
    client: Any,
    table: str,
    requests: Sequence[dict[str, Any]],
    batch_size: int,
    max_retries: int,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """BatchWriteItem in chunks of ``batch_size`` (<= 25); items DynamoDB hands back as
    UnprocessedItems are sent again with exponential backoff and full jitter up to
    ``max_retries`` times.

    Only the unprocessed items are retried here: they are a partial success, which botocore
    does not retry. A failed request (throttled, 5xx) was already retried by botocore's
    standard mode; what it gives up on goes up to the state's owner (Step Functions, or the
    local runner) as a StoreError, never retried again here.

    Raises StoreError naming how many rows were not written: the run must fail then.
    """
    for start in range(0, len(requests), batch_size):
        pending = list(requests[start : start + batch_size])
        attempt = 0
        while pending:
            try:
                response = client.batch_write_item(RequestItems={table: pending})
            except Exception as exc:
                raise translate(exc, f"writing {table}") from None
            pending = response.get("UnprocessedItems", {}).get(table, [])
            if not pending:
                break
            attempt += 1
            if attempt > max_retries:
                left = len(pending) + max(0, len(requests) - start - batch_size)
                raise StoreError(
                    f"{left} rows of {table} not written after {max_retries} retries "
                    "(throttled): the run fails and is retried; raise the table's capacity "
                    "or DYNAMODB_MAX_RETRIES"
                )
            sleep(random.uniform(0, min(20.0, 0.05 * 2**attempt)))


class DynamoDBMetricsStore:
    """order_metrics_table (hash order_date) and category_metrics_table (hash category,
    range order_date; index BY_DATE_INDEX). Numbers are DynamoDB numbers written from
    Decimal, never floats. A run writes by key; only the operators' reads scan.
    KPI revisions are items of ``revisions_table`` (the execution log's table: see the module
    docstring), read by date."""

    def __init__(
        self,
        client: Any,
        order_table: str,
        category_table: str,
        revisions_table: str,
        batch_size: int = 25,
        max_retries: int = BATCH_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ddb = client
        self.orders, self.categories = order_table, category_table
        self.revisions_table = revisions_table
        self.batch_size, self.max_retries, self._sleep = min(batch_size, 25), max_retries, sleep

    def _scan(self, table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        try:
            for page in self.ddb.get_paginator("scan").paginate(
                TableName=table, ConsistentRead=True, **kwargs
            ):
                yield from page.get("Items", [])
        except Exception as exc:
            raise translate(exc, f"reading {table}") from None

    def _categories_on(self, day: str) -> Iterator[str]:
        """The categories with a row on ``day``, read by key from BY_DATE_INDEX.

        An index is read eventually consistent (DynamoDB offers no other read of one): a row
        written a moment ago may be missing. The rows read here were written by an earlier
        run or recompute, which the critical section and the states between put well
        before this one; a retry of this write reads them again.
        """
        try:
            for page in self.ddb.get_paginator("query").paginate(
                TableName=self.categories,
                IndexName=BY_DATE_INDEX,
                KeyConditionExpression="order_date = :d",
                ExpressionAttributeValues={":d": _s(day)},
            ):
                yield from (item["category"]["S"] for item in page.get("Items", []))
        except Exception as exc:
            raise translate(exc, f"reading {self.categories} by date") from None

    def _write(self, table: str, requests: list[dict[str, Any]]) -> None:
        batch_write(self.ddb, table, requests, self.batch_size, self.max_retries, self._sleep)

    def replace_dates(
        self,
        dates: Sequence[date],
        order_rows: Sequence[OrderMetrics],
        category_rows: Sequence[CategoryMetrics],
        revision_of: str | None = None,
    ) -> RevisionSummary:
        """Make ``dates`` hold exactly the given rows: put them, delete rows no longer there.

        Not one transaction (DynamoDB caps those at 100 items), but idempotent: a run that
        fails half-way is retried and writes the same rows again. The revisions of
        ``revision_of`` are written before any metric row, then their summary item: a retry
        that finds the summary knows every revision is recorded (the metrics it may have
        half-written no longer show what they were) and records nothing again; one that
        does not finds the metrics untouched and writes the same items again.
        """
        wanted = {d.isoformat() for d in dates}
        new_orders = {m.order_date.isoformat() for m in order_rows}
        new_cats = {(m.category, m.order_date.isoformat()) for m in category_rows}
        stale_cats = [(c, d) for d in sorted(wanted) for c in self._categories_on(d)]
        summary = RevisionSummary()
        if revision_of is not None:
            summary = self._revise(revision_of, wanted, stale_cats, order_rows, category_rows)
        puts_o = [{"PutRequest": {"Item": _item(ORDER_TABLE, m)}} for m in order_rows]
        dels_o = [
            {"DeleteRequest": {"Key": {"order_date": _s(d)}}} for d in sorted(wanted - new_orders)
        ]
        puts_c = [{"PutRequest": {"Item": _item(CATEGORY_TABLE, m)}} for m in category_rows]
        dels_c = [
            {"DeleteRequest": {"Key": {"category": _s(c), "order_date": _s(d)}}}
            for c, d in sorted(set(stale_cats) - new_cats)
        ]
        self._write(self.orders, puts_o + dels_o)
        self._write(self.categories, puts_c + dels_c)
        return summary

    def _revise(
        self,
        execution_id: str,
        days: set[str],
        categories: list[tuple[str, str]],
        order_rows: Sequence[OrderMetrics],
        category_rows: Sequence[CategoryMetrics],
    ) -> RevisionSummary:
        """Record the revisions of replacing the order rows of ``days`` and the category
        rows ``categories`` ((category, date) keys), unless recorded already; the summary."""
        marker = {"pk": _s(f"REVISIONS#{execution_id}"), "sk": _s("SUMMARY")}
        try:
            done = self.ddb.get_item(
                TableName=self.revisions_table, Key=marker, ConsistentRead=True
            ).get("Item")
        except Exception as exc:
            raise translate(exc, f"reading {self.revisions_table}") from None
        if done is not None:
            return RevisionSummary.from_dict(json.loads(done["summary"]["S"]))
        before_orders = self._get(self.orders, [{"order_date": _s(d)} for d in sorted(days)])
        before_cats = self._get(
            self.categories, [{"category": _s(c), "order_date": _s(d)} for c, d in categories]
        )
        found = revise(
            execution_id,
            time.time(),
            (
                [ORDER_TABLE.stored_values(_row(ORDER_TABLE, i)) for i in before_orders],
                [CATEGORY_TABLE.stored_values(_row(CATEGORY_TABLE, i)) for i in before_cats],
            ),
            (order_rows, category_rows),
        )
        self._write(self.revisions_table, [{"PutRequest": {"Item": _revision(r)}} for r in found])
        summary = summarize(found)
        try:
            self.ddb.put_item(
                TableName=self.revisions_table,
                Item={**marker, "summary": _s(json.dumps(summary.as_dict()))},
            )
        except Exception as exc:
            raise translate(exc, f"writing {self.revisions_table}") from None
        return summary

    def _get(self, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return batch_get(self.ddb, table, keys, self.max_retries, self._sleep)

    def revisions(self, order_date: date, category: str | None = None) -> list[Revision]:
        """The revisions of ``order_date`` (of ``category``'s row only), oldest first: one
        query of the date's items."""
        found = []
        try:
            for page in self.ddb.get_paginator("query").paginate(
                TableName=self.revisions_table,
                ConsistentRead=True,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": _s(f"REVISION#{order_date.isoformat()}")},
            ):
                found += [_from_revision(i) for i in page.get("Items", [])]
        except Exception as exc:
            raise translate(exc, f"reading {self.revisions_table}") from None
        return history_order(r for r in found if category is None or r.category == category)

    def order_metrics(
        self, date_from: date | None = None, date_to: date | None = None
    ) -> list[OrderMetrics]:
        """Order metrics in date order (a scan: operators' reads, never a run's)."""
        rows = (_row(ORDER_TABLE, i) for i in self._scan(self.orders))
        return metrics_read(rows, date_from, date_to)

    def category_metrics(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        category: str | None = None,
    ) -> list[CategoryMetrics]:
        """Category metrics ordered by date then category (a scan, as order_metrics)."""
        rows = (_row(CATEGORY_TABLE, i) for i in self._scan(self.categories))
        return metrics_read(rows, date_from, date_to, category)


def _item(table: MetricTable[R], row: R) -> dict[str, Any]:
    """A metrics row as a DynamoDB item: dates and text as strings, the rest as numbers
    (written from their exact decimal text, never floats)."""
    values = table.stored(row)
    return {
        name: {"S" if kind in (Kind.DATE, Kind.TEXT) else "N": str(values[name])}
        for name, kind in table.columns
    }


def _row(table: MetricTable[R], item: dict[str, Any]) -> R:
    """A metrics row from its DynamoDB item."""
    return table.from_stored({name: next(iter(item[name].values())) for name, _k in table.columns})


def _revision(revision: Revision) -> dict[str, Any]:
    """A revision as an item (before and after as JSON text: exact decimal text kept)."""
    item = {
        "pk": _s(f"REVISION#{revision.order_date.isoformat()}"),
        "sk": _s(f"{revision.execution_id}#{revision.category or ''}"),
        "execution_id": _s(revision.execution_id),
        "at": _n(revision.at),
    }
    if revision.category is not None:
        item["category"] = _s(revision.category)
    for name, values in (("before", revision.before), ("after", revision.after)):
        if values is not None:
            item[name] = _s(json.dumps(values))
    return item


def _from_revision(item: dict[str, Any]) -> Revision:
    return Revision(
        item["execution_id"]["S"],
        _num(item["at"]),
        date.fromisoformat(item["pk"]["S"].removeprefix("REVISION#")),
        _str(item.get("category")),
        json.loads(item["before"]["S"]) if "before" in item else None,
        json.loads(item["after"]["S"]) if "after" in item else None,
    )


# ---------------------------------------------------------------------- execution log


class DynamoDBExecutionLog:
    """Executions, manifests and state events in one table (see the module docstring)."""

    def __init__(self, client: Any, table: str) -> None:
        self.ddb, self.table = client, table

    def _call(self, op: str, doing: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.ddb, op)(TableName=self.table, **kwargs)
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise translate(exc, f"{doing} in {self.table}") from None

    def _query(self, execution_id: str, prefix: str) -> Iterator[dict[str, Any]]:
        try:
            for page in self.ddb.get_paginator("query").paginate(
                TableName=self.table,
                ConsistentRead=True,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                ExpressionAttributeValues={":pk": _s(f"EXEC#{execution_id}"), ":p": _s(prefix)},
            ):
                yield from page.get("Items", [])
        except Exception as exc:
            raise translate(exc, f"reading {self.table}") from None

    @staticmethod
    def _key(execution_id: str, sk: str = "RECORD") -> dict[str, Any]:
        return {"pk": _s(f"EXEC#{execution_id}"), "sk": _s(sk)}

    def _running(
        self, action: str, execution_id: str, started_at: float | None = None
    ) -> dict[str, Any]:
        """The transaction item that adds (``ADD``) or removes (``DELETE``) an execution
        from the RUNNING item; with ``started_at`` it also becomes the item's
        ``last_started_at`` (last_started_at reads it by key)."""
        values: dict[str, Any] = {":id": {"SS": [execution_id]}}
        expression = f"{action} ids :id"
        if started_at is not None:
            expression += " SET last_started_at = :t"
            values[":t"] = _n(started_at)
        return {
            "Update": {
                "TableName": self.table,
                "Key": _RUNNING_KEY,
                "UpdateExpression": expression,
                "ExpressionAttributeValues": values,
            }
        }

    def _transact(self, doing: str, items: list[dict[str, Any]]) -> bool:
        """TransactWriteItems; False when a condition in it did not hold (nothing written).

        A transaction that met another one on the RUNNING item is cancelled with
        TransactionConflict: transient, retried by the state's owner as any StoreError.
        """
        try:
            self.ddb.transact_write_items(TransactItems=items)
        except Exception as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise translate(exc, f"{doing} in {self.table}") from None
            reasons = {
                r.get("Code") for r in getattr(exc, "response", {}).get("CancellationReasons", [])
            }
            if "ConditionalCheckFailed" in reasons:
                return False
            raise StoreError(
                f"{doing} in {self.table}: cancelled ({', '.join(sorted(map(str, reasons)))}; "
                "transient; retried)"
            ) from None
        return True

    @staticmethod
    def _record(item: dict[str, Any]) -> ExecutionRecord:
        finished = item.get("finished_at")
        return ExecutionRecord(
            item["execution_id"]["S"],
            int(item["seq"]["N"]),
            item["status"]["S"],
            _str(item.get("state")),
            _num(item["started_at"]),
            _num(finished) if finished else None,
            json.loads(item["summary"]["S"]),
            _str(item.get("holder")),
        )

    def create(self, execution_id: str, holder: str | None) -> ExecutionRecord:
        """Record a RUNNING execution with the next batch number (an atomic counter)."""
        existing = self.get(execution_id)
        if existing is not None:
            return existing
        counter = self._call(
            "update_item",
            "numbering",
            Key={"pk": _s("COUNTER"), "sk": _s("SEQ")},
            UpdateExpression="ADD seq :one",
            ExpressionAttributeValues={":one": _n(1)},
            ReturnValues="UPDATED_NEW",
        )
        item = {
            **self._key(execution_id),
            "execution_id": _s(execution_id),
            "seq": counter["Attributes"]["seq"],
            "status": _s("RUNNING"),
            "started_at": _n(time.time()),
            "summary": _s("{}"),
            **_by_seq(int(counter["Attributes"]["seq"]["N"])),
        }
        if holder:
            item["holder"] = _s(holder)
        put = {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        # A lost race (two creates) keeps the first record, which its transaction listed as
        # running; the spent number is harmless.
        started = _num(item["started_at"])
        self._transact("creating", [put, self._running("ADD", execution_id, started)])
        record = self.get(execution_id)
        assert record is not None
        return record

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """One execution, or None."""
        got = self._call("get_item", "reading", Key=self._key(execution_id), ConsistentRead=True)
        item = (got or {}).get("Item")
        return self._record(item) if item else None

    def _record_items(self) -> list[dict[str, Any]]:
        """Every execution record's item: a scan, for the operators' reads and upgrades only."""
        try:
            pages = self.ddb.get_paginator("scan").paginate(
                TableName=self.table,
                ConsistentRead=True,
                FilterExpression="sk = :r",
                ExpressionAttributeValues={":r": _s("RECORD")},
            )
            return [i for page in pages for i in page.get("Items", [])]
        except Exception as exc:
            raise translate(exc, f"reading {self.table}") from None

    def _records(self) -> list[ExecutionRecord]:
        """Every execution record (a scan: see _record_items)."""
        return [self._record(i) for i in self._record_items()]

    def recent(self, limit: int = 50) -> list[ExecutionRecord]:
        """Latest executions first: the newest ``limit`` keys of BY_SEQ_INDEX, then those
        records by key, whatever the history holds. (An index is read eventually
        consistent: an execution created a moment ago may show on the next read.)"""
        if limit <= 0:
            return []
        keys: list[dict[str, Any]] = []
        try:
            pages = self.ddb.get_paginator("query").paginate(
                TableName=self.table,
                IndexName=BY_SEQ_INDEX,
                KeyConditionExpression="record_list = :r",
                ExpressionAttributeValues={":r": _s(_RECORD_LIST)},
                ScanIndexForward=False,
                PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 1000)},
            )
            keys = [{"pk": i["pk"], "sk": i["sk"]} for page in pages for i in page["Items"]]
        except Exception as exc:
            if error_code(exc) == "ValidationException":
                raise StoreError(_index_problem(self.table, str(exc))) from None
            raise translate(exc, f"reading {self.table}") from None
        records = [self._record(i) for i in batch_get(self.ddb, self.table, keys, BATCH_RETRIES)]
        return sorted(records, key=lambda r: r.seq, reverse=True)

    def find(self, prefix: str) -> list[ExecutionRecord]:
        """Executions whose id starts with ``prefix``, oldest first: a whole id is read by
        key; a shorter prefix needs every record (a scan: operators' reads only)."""
        exact = self.get(prefix) if prefix else None
        if exact is not None:
            return [exact]
        return sorted(
            (r for r in self._records() if r.execution_id.startswith(prefix)),
            key=lambda r: r.seq,
        )

    def _running_item(self) -> dict[str, Any]:
        got = self._call("get_item", "reading", Key=_RUNNING_KEY, ConsistentRead=True)
        item: dict[str, Any] = (got or {}).get("Item") or {}
        return item

    def _running_ids(self) -> list[str]:
        ids: list[str] = self._running_item().get("ids", {}).get("SS", [])
        return ids

    def last_started_at(self) -> float | None:
        """The RUNNING item's ``last_started_at``, set by each create's transaction (one
        GetItem; None for a log whose executions all predate it: the next one sets it)."""
        found = self._running_item().get("last_started_at")
        return _num(found) if found else None

    def unfinished(self) -> list[ExecutionRecord]:
        """RUNNING executions, oldest first: the RUNNING item, then each one's record."""
        records = (self.get(execution_id) for execution_id in self._running_ids())
        # Only RUNNING ones: index_older may add an id that finished meanwhile.
        return sorted(
            (r for r in records if r is not None and r.status == "RUNNING"), key=lambda r: r.seq
        )

    def index_older(self) -> tuple[int, int]:
        """What ``ecompipe aws bootstrap`` does once when upgrading, from one scan of the
        records: add to the RUNNING item every RUNNING record written before it existed, and
        give BY_SEQ_INDEX's keys to every record written before that index existed. Returns
        how many of each."""
        items = self._record_items()
        running = [i["execution_id"]["S"] for i in items if i["status"]["S"] == "RUNNING"]
        if running:
            self._call(
                "update_item",
                "indexing running executions",
                Key=_RUNNING_KEY,
                UpdateExpression="ADD ids :ids",
                ExpressionAttributeValues={":ids": {"SS": running}},
            )
        older = [i for i in items if "record_list" not in i]
        for item in older:
            keys = _by_seq(int(item["seq"]["N"]))
            self._call(
                "update_item",
                "indexing executions",
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET record_list = :l, record_seq = :s",
                # (A record deleted since the scan is not made again as a stub.)
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":l": keys["record_list"], ":s": keys["record_seq"]},
            )
        return len(running), len(older)

    def set_holder(self, execution_id: str, holder: str) -> None:
        """Record which lock holder runs the execution now."""
        self._call(
            "update_item",
            "updating",
            Key=self._key(execution_id),
            UpdateExpression="SET holder = :h",
            ExpressionAttributeValues={":h": _s(holder)},
        )

    def record_event(
        self, execution_id: str, state: str, event: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append a state event; the record's ``state`` follows it."""
        now = time.time()
        item = {
            **self._key(execution_id, f"EVENT#{time.time_ns():020d}#{uuid.uuid4().hex[:6]}"),
            "state": _s(state),
            "event": _s(event),
            "at": _n(now),
        }
        if detail:
            item["detail"] = _s(json.dumps(detail, default=str))
        self._call("put_item", "recording an event", Item=item)
        self._call(
            "update_item",
            "updating",
            Key=self._key(execution_id),
            UpdateExpression="SET #st = :s",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#st": "state"},
            ExpressionAttributeValues={":s": _s(state)},
        )

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        """State history in order."""
        return [
            {
                "state": i["state"]["S"],
                "event": i["event"]["S"],
                "at": _num(i["at"]),
                "detail": json.loads(i["detail"]["S"]) if "detail" in i else None,
            }
            for i in self._query(execution_id, "EVENT#")
        ]

    def completed_states(self, execution_id: str) -> set[str]:
        """States that have a 'succeeded' event."""
        return {e["state"] for e in self.events(execution_id) if e["event"] == "succeeded"}

    def save_manifest(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Record each entry once (a resumed execution keeps its first manifest)."""
        for e in entries:
            item = {
                **self._key(execution_id, _entry_sk(e.key)),
                "key": _s(e.key),
                "size": _n(e.size),
                "etag": _s(e.etag),
                "regular": {"BOOL": e.regular},
                "status": _s(e.status),
            }
            if e.dataset:
                item["dataset"] = _s(e.dataset)
            if e.location:
                item["location"] = _s(e.location)
            self._call(
                "put_item",
                "saving the manifest",
                Item=item,
                ConditionExpression="attribute_not_exists(sk)",
            )

    def manifest(self, execution_id: str) -> list[ManifestEntry]:
        """The manifest in key order."""
        return sorted(
            (
                ManifestEntry(
                    i["key"]["S"],
                    _str(i.get("dataset")),
                    int(i["size"]["N"]),
                    i["etag"]["S"],
                    i["regular"]["BOOL"],
                    i["status"]["S"],
                    _str(i.get("location")),
                )
                for i in self._query(execution_id, "ENTRY#")
            ),
            key=lambda e: e.key,
        )

    def update_entries(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Persist entries' status, location and claimed version, one item after another
        (a transaction would hold at most 100; each item alone is what a resume reads)."""
        for entry in entries:
            self._update_entry(execution_id, entry)

    def _update_entry(self, execution_id: str, entry: ManifestEntry) -> None:
        values: dict[str, Any] = {
            ":s": _s(entry.status),
            ":e": _s(entry.etag),
            ":z": _n(entry.size),
        }
        expression = "SET #st = :s, etag = :e, #sz = :z"
        if entry.location:
            expression += ", #loc = :l"
            values[":l"] = _s(entry.location)
        else:
            expression += " REMOVE #loc"
        self._call(
            "update_item",
            "updating the manifest",
            Key=self._key(execution_id, _entry_sk(entry.key)),
            UpdateExpression=expression,
            ExpressionAttributeNames={"#st": "status", "#loc": "location", "#sz": "size"},
            ExpressionAttributeValues=values,
        )

    def owned_keys(self) -> set[str]:
        """Keys claimed by RUNNING executions and still in their hands."""
        return {
            e.key
            for r in self.unfinished()
            for e in self.manifest(r.execution_id)
            if e.status == "claimed"
        }

    def finish(self, execution_id: str, status: str, summary: dict[str, Any]) -> None:
        """Close the execution with its status and summary."""
        self.save_summary(execution_id, summary)
        close = {
            "Update": {
                "TableName": self.table,
                "Key": self._key(execution_id),
                "UpdateExpression": "SET #st = :s, finished_at = :t",
                "ExpressionAttributeNames": {"#st": "status"},
                "ExpressionAttributeValues": {":s": _s(status), ":t": _n(time.time())},
            }
        }
        self._transact("finishing", [close, self._running("DELETE", execution_id)])

    def save_summary(self, execution_id: str, summary: dict[str, Any]) -> None:
        """Merge keys into the summary (one writer per execution: it holds the lock)."""
        record = self.get(execution_id)
        merged = {**(record.summary if record else {}), **summary}
        self._call(
            "update_item",
            "saving the summary",
            Key=self._key(execution_id),
            UpdateExpression="SET summary = :s",
            ExpressionAttributeValues={":s": _s(json.dumps(merged, default=str))},
        )
