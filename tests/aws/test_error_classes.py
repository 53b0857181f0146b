"""How AWS conditions are classed, and that each failure is retried by one layer only.

Transient (throttling, 5xx, the network): a StoreError, retried by the state's owner (Step
Functions' Retry, or the local runner). Permanent (access denied, bad credentials, an object
in the way): PermanentStoreError, terminal, never retried. Missing resources: ConfigError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import HAND, REGION, Aws

pytestmark = [pytest.mark.aws, pytest.mark.xdist_group("moto")]


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} (test)"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "ListObjectsV2",
    )


@pytest.mark.fast
@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, "StoreError"),
        ("ProvisionedThroughputExceededException", 400, "StoreError"),
        ("SlowDown", 503, "StoreError"),
        ("InternalError", 500, "StoreError"),
        ("AccessDenied", 403, "PermanentStoreError"),
        ("AccessDeniedException", 400, "PermanentStoreError"),
        ("AllAccessDisabled", 403, "PermanentStoreError"),
        ("InvalidAccessKeyId", 403, "PermanentStoreError"),
        ("SignatureDoesNotMatch", 403, "PermanentStoreError"),
        ("UnrecognizedClientException", 400, "PermanentStoreError"),
        ("NoSuchBucket", 404, "ConfigError"),
        ("ResourceNotFoundException", 400, "ConfigError"),
        ("ValidationException", 400, "TerminalError"),
    ],
)
def test_translate_classes_each_aws_condition(code: str, status: int, expected: str) -> None:
    from ecompipe.errors import TerminalError, TransientError
    from ecompipe.stores.aws.clients import translate

    error = translate(_client_error(code, status), "listing s3://b/orders/")
    assert type(error).__name__ == expected
    # Transient or terminal, never both: the state machine retries one, catches the other.
    assert isinstance(error, TransientError) == (expected == "StoreError")
    assert isinstance(error, TerminalError) == (expected != "StoreError")
    assert code in str(error) and "listing s3://b/orders/" in str(error)


@pytest.mark.fast
def test_translate_classes_client_side_conditions() -> None:
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    from ecompipe.errors import ConfigError, StoreError
    from ecompipe.stores.aws.clients import translate

    assert isinstance(translate(NoCredentialsError(), "reading"), ConfigError)
    network = translate(EndpointConnectionError(endpoint_url="https://s3"), "reading")
    assert isinstance(network, StoreError)


@pytest.mark.fast
def test_permanent_errors_are_caught_not_retried_by_the_state_machine() -> None:
    from ecompipe.aws.state_machine import definition, lambda_error_name
    from ecompipe.errors import PermanentStoreError

    states = definition()["States"]
    for name in ("ValidateFiles", "TransformData", "ArchiveFiles"):
        (retry,) = states[name]["Retry"]
        assert PermanentStoreError.code not in retry["ErrorEquals"]
        assert states[name]["Catch"][0]["ErrorEquals"] == ["States.ALL"]
    for retry in states["AcquireLock"]["Retry"]:
        assert lambda_error_name(PermanentStoreError) not in retry["ErrorEquals"]


@pytest.mark.fast
def test_access_denied_from_s3_is_permanent(tmp_path: Path) -> None:
    """The adapter on a real boto3 client answered by botocore's Stubber (no network)."""
    import boto3  # noqa: TID251 (tests)
    from botocore.stub import Stubber

    from ecompipe.config import load_settings
    from ecompipe.errors import PermanentStoreError
    from ecompipe.stores.aws.s3 import S3ObjectStore

    s3 = boto3.client("s3", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    settings = load_settings(env={"BUCKET_NAME": "landing"})
    with Stubber(s3) as stub:
        stub.add_client_error(
            "list_objects_v2", service_error_code="AccessDenied", http_status_code=403
        )
        with pytest.raises(PermanentStoreError, match="AccessDenied"):
            S3ObjectStore(s3, settings, tmp_path).list_landing()


@pytest.mark.timeout(60)
def test_a_missing_bucket_is_a_config_error(aws: Aws, tmp_path: Path) -> None:
    from ecompipe.errors import ConfigError
    from ecompipe.stores.aws.s3 import S3ObjectStore

    aws.setenv("BUCKET_NAME", "no-such-bucket")
    store = S3ObjectStore(aws.client("s3"), aws.settings(), tmp_path)
    with pytest.raises(ConfigError, match="NoSuchBucket"):
        store.list_landing()


@pytest.mark.timeout(60)
def test_refusing_to_overwrite_is_permanent_and_keeps_the_file(aws: Aws, tmp_path: Path) -> None:
    """Other bytes already at the archive key: no retry changes that, so it is terminal
    (caught, notified), and the landed file stays where it is."""
    from ecompipe.errors import PermanentStoreError, TransientError
    from ecompipe.stores.aws.s3 import S3ObjectStore
    from ecompipe.stores.base import ManifestEntry

    aws.put("products/p.csv", HAND / "products.csv")
    archive = aws.env["S3_ARCHIVE_BUCKET"]
    aws.client("s3").put_object(Bucket=archive, Key="archive/e1/products/p.csv", Body=b"other")
    store = S3ObjectStore(aws.client("s3"), aws.settings(), tmp_path)
    (info,) = store.list_landing()
    entry = ManifestEntry(info.key, "products", info.size, info.etag)
    store.claim("e1", [entry])
    with pytest.raises(PermanentStoreError, match="refusing to overwrite") as refused:
        store.archive("e1", entry)
    assert not isinstance(refused.value, TransientError)
    assert entry.status == "claimed"
    assert [o.key for o in store.list_landing()] == ["products/p.csv"]


class _ThrottledBatches:
    """A DynamoDB client whose BatchWriteItem always fails throttled (what botocore raises
    once its own retries of the request are used up)."""

    def __init__(self) -> None:
        self.calls = 0

    def batch_write_item(self, **_: Any) -> Any:
        self.calls += 1
        raise _client_error("ProvisionedThroughputExceededException", 400)


@pytest.mark.fast
def test_batch_write_leaves_a_failed_request_to_the_state_owner() -> None:
    """botocore already retried the request; batch_write retries only UnprocessedItems, so
    a throttled request goes up as a StoreError after ONE call (not 1 + max_retries)."""
    from ecompipe.errors import StoreError
    from ecompipe.stores.aws.dynamodb import batch_write

    client = _ThrottledBatches()
    with pytest.raises(StoreError, match="ProvisionedThroughputExceededException"):
        batch_write(client, "t", [{"PutRequest": {"Item": {}}}], 25, 8, sleep=lambda _: None)
    assert client.calls == 1
