"""S3 object store details and the Lambda trigger's decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import EVENTS, HAND, Aws

pytestmark = [pytest.mark.aws, pytest.mark.xdist_group("moto")]


def _store(aws: Aws, tmp_path: Path) -> Any:
    from ecompipe.stores.aws.s3 import S3ObjectStore

    return S3ObjectStore(aws.client("s3"), aws.settings(), tmp_path)


@pytest.mark.fast
def test_event_keys_are_url_decoded_once() -> None:
    from ecompipe.aws.lambda_handler import event_keys

    event = json.loads((EVENTS / "s3_put_orders.json").read_text())
    assert event_keys(event) == ["orders/hand orders.csv"]
    unrelated = json.loads((EVENTS / "s3_put_unrelated.json").read_text())
    assert event_keys(unrelated) == ["notes/readme+todo.txt"]


@pytest.mark.fast
def test_execution_name_is_valid_and_stable() -> None:
    import re

    from ecompipe.aws.lambda_handler import execution_name

    versions = [("orders/a b.csv", "e1", "t1"), ("products/p.csv", "e2", "t2")]
    name = execution_name(versions)
    assert name == execution_name(list(reversed(versions)))
    assert re.fullmatch(r"[A-Za-z0-9-]{1,80}", name)
    assert name != execution_name([("orders/a b.csv", "e1", "t9"), ("products/p.csv", "e2", "t2")])


class _Counting:
    """Counts the pages the paginator fetched."""

    def __init__(self, client: Any, paginator: Any, calls: list[int]) -> None:
        self._client, self._paginator, self._calls = client, paginator, calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_paginator(self, name: str) -> Any:
        outer = self

        class Pages:
            def paginate(self, **kwargs: Any) -> Any:
                for page in outer._paginator.paginate(**kwargs):
                    outer._calls.append(1)
                    yield page

        return Pages()


@pytest.mark.timeout(60)
def test_listing_is_paginated_and_csv_suffix_case_insensitive(aws: Aws, tmp_path: Path) -> None:
    from ecompipe import trigger

    for i in range(25):
        aws.put(f"order_items/part-{i:04d}.csv", b"id,order_id,product_id,sale_price\n")
    aws.put("orders/ORDERS.CSV", HAND / "orders.csv")
    aws.put("products/.hidden.csv", b"x")
    aws.put("products/sub/nested.csv", b"x")
    store = _store(aws, tmp_path)
    store.page_size = 4  # many ListObjectsV2 pages
    calls: list[int] = []
    real = store.s3.get_paginator("list_objects_v2")
    store.s3 = _Counting(store.s3, real, calls)
    keys = [o.key for o in store.list_landing()]
    assert len(keys) == 26 and sum(calls) > 3
    assert "products/.hidden.csv" not in keys and "products/sub/nested.csv" not in keys
    assert trigger.missing_datasets(keys, aws.settings()) == ["products"]


@pytest.mark.timeout(60)
def test_overwrite_after_claim_is_never_processed_or_archived(aws: Aws, tmp_path: Path) -> None:
    from ecompipe.stores.base import ManifestEntry

    aws.put("orders/a.csv", b"version 1\n")
    store = _store(aws, tmp_path)
    (info,) = store.list_landing()
    entry = ManifestEntry(info.key, "orders", info.size, info.etag)
    store.claim("e1", [entry])
    assert entry.status == "claimed"
    assert store.local_path("e1", entry).read_bytes() == b"version 1\n"
    aws.put("orders/a.csv", b"version 2, uploaded mid-run\n")
    store.archive("e1", entry)
    assert entry.status == "gone", "the claimed version is not there any more"
    body = aws.client("s3").get_object(Bucket=aws.env["BUCKET_NAME"], Key="orders/a.csv")["Body"]
    assert body.read() == b"version 2, uploaded mid-run\n", "the new upload stays for the next run"
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == []
    # A claim repeated after a crash sees the change too.
    again = ManifestEntry(info.key, "orders", info.size, info.etag, location="s3://x/orders/a.csv")
    store.claim("e1", [again])
    assert again.status == "gone"


@pytest.mark.timeout(60)
def test_archive_is_idempotent_and_verified(aws: Aws, tmp_path: Path) -> None:
    from ecompipe.stores.base import ManifestEntry

    aws.put("products/p.csv", HAND / "products.csv")
    store = _store(aws, tmp_path)
    (info,) = store.list_landing()
    entry = ManifestEntry(info.key, "products", info.size, info.etag)
    store.claim("e1", [entry])
    store.archive("e1", entry)
    store.archive("e1", entry)  # again (a retried task): nothing changes, no error
    assert entry.status == "archived"
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == ["archive/e1/products/p.csv"]
    assert store.list_landing() == []


@pytest.mark.timeout(60)
def test_curated_log_in_place_or_mirrored(aws: Aws, tmp_path: Path) -> None:
    """For Spark on a cluster the log is an s3a URI and nothing is downloaded; for a local
    engine it is mirrored, and both list the same batches."""
    bucket = aws.env["BUCKET_NAME"]
    for key in (
        "_ecompipe/curated/orders/000000000001.parquet",
        "_ecompipe/curated/orders/000000000003.parquet",
        "_ecompipe/curated/order_items/000000000001.parquet",
        "_ecompipe/curated/orders/notes.txt",  # not a batch file: ignored
    ):
        aws.put(key, b"PAR1")
    store = _store(aws, tmp_path)
    in_place = store.curated_log(uri=True)
    assert in_place.root == f"s3a://{bucket}/_ecompipe/curated"
    assert in_place.batches == {"orders": (1, 3), "order_items": (1,), "products": ()}
    assert in_place.files("orders") == [
        f"s3a://{bucket}/_ecompipe/curated/orders/000000000001.parquet",
        f"s3a://{bucket}/_ecompipe/curated/orders/000000000003.parquet",
    ]
    assert not (tmp_path / "curated").exists()
    mirrored = store.curated_log()
    assert mirrored.root == str(tmp_path / "curated") and not mirrored.is_uri
    assert mirrored.batches == in_place.batches
    assert (tmp_path / "curated/orders/000000000003.parquet").read_bytes() == b"PAR1"


@pytest.mark.timeout(60)
def test_trigger_ignores_unrelated_events_and_owned_files(aws: Aws) -> None:
    from ecompipe.aws.lambda_handler import handler

    aws.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:none")
    unrelated = json.loads((EVENTS / "s3_put_unrelated.json").read_text())
    assert handler(unrelated, None)["reason"] == "no landing CSV in the event"
    aws.land_hand()
    # The files belong to a running execution: a new upload alone starts nothing.
    from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog
    from ecompipe.stores.base import ManifestEntry

    log = DynamoDBExecutionLog(aws.client("dynamodb"), aws.settings().executions_table)
    log.create("running-one", "holder")
    log.save_manifest(
        "running-one",
        [ManifestEntry(f"{d}/hand {d}.csv", d, 1, "e") for d in ("orders", "products")],
    )
    event = json.loads((EVENTS / "s3_put_orders.json").read_text())
    decided = handler(event, None)
    assert decided["started"] is False and decided["missing"] == ["orders", "products"]


def _status_event(aws: Aws, **detail: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "sfn_status_aborted.json").read_text())
    event["detail"].update(stateMachineArn=aws.env["STATE_MACHINE_ARN"], **detail)
    return event


@pytest.mark.timeout(60)
def test_status_change_of_another_state_machine_changes_nothing(aws: Aws) -> None:
    from ecompipe.aws.lambda_handler import handler

    aws.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:ours")
    aws.land_hand()
    event = _status_event(aws)
    event["detail"]["stateMachineArn"] = "arn:aws:states:us-east-1:123456789012:stateMachine:x"
    decided = handler(event, None)
    assert decided == {"started": False, "reason": "another state machine's execution"}


@pytest.mark.timeout(60)
def test_restarts_after_stops_are_bounded(aws: Aws) -> None:
    """An execution that was itself the MAX_RESTARTS-th restart of a stopped one is not
    started again: a failure outside any Catch would loop forever otherwise. Its lease is
    freed all the same."""
    from ecompipe.aws.lambda_handler import MAX_RESTARTS, handler
    from ecompipe.stores.aws.dynamodb import DynamoDBLock

    aws.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:ours")
    aws.land_hand()
    settings = aws.settings()
    name = "set-restarted"
    lock = DynamoDBLock(aws.client("dynamodb"), settings.lock_table, settings.lock_id, 1, True)
    assert lock.try_acquire(name, name, 900)
    restarted = json.dumps({"files": 3, "restart_of": "set-x", "restarts": MAX_RESTARTS})
    decided = handler(_status_event(aws, name=name, status="FAILED", input=restarted), None)
    assert decided["released"] is True and lock.holders() == []
    assert decided["started"] is False and "restarts in a row" in decided["reason"]
