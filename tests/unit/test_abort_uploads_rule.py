"""`ecompipe aws bootstrap`'s lifecycle rule against the shapes real S3 answers with (moto
answers one of them): what counts as a rule aborting the whole bucket's uploads, an
operator's own rule of our ID, missing permissions, the bucket-wide settings kept."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ecompipe.aws.cli import ABORT_UPLOADS_RULE, _add_abort_rule, abort_uploads_rule

pytestmark = [pytest.mark.fast, pytest.mark.aws]

ABORT = {"AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3}}


def _denied(op: str) -> ClientError:
    return ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, op)


class Bucket:
    """get/put_bucket_lifecycle_configuration of one bucket, recording each put."""

    def __init__(self, current: dict[str, Any] | None, deny: str = "") -> None:
        self.current, self.deny = current, deny
        self.puts: list[dict[str, Any]] = []

    def get_bucket_lifecycle_configuration(self, Bucket: str) -> dict[str, Any]:
        if self.deny == "get":
            raise _denied("GetBucketLifecycleConfiguration")
        if self.current is None:
            code = {"Error": {"Code": "NoSuchLifecycleConfiguration", "Message": "none"}}
            raise ClientError(code, "GetBucketLifecycleConfiguration")
        return self.current

    def put_bucket_lifecycle_configuration(self, **kwargs: Any) -> None:
        if self.deny == "put":
            raise _denied("PutBucketLifecycleConfiguration")
        self.puts.append(kwargs)


@pytest.mark.parametrize(
    "rule",
    [
        {"ID": "old-style", "Status": "Enabled", "Prefix": "", **ABORT},
        {"ID": "empty-filter", "Status": "Enabled", "Filter": {}, **ABORT},
        {"ID": "empty-prefix", "Status": "Enabled", "Filter": {"Prefix": ""}, **ABORT},
        {"ID": ABORT_UPLOADS_RULE, "Status": "Disabled", "Filter": {"Prefix": "x/"}, **ABORT},
    ],
    ids=["prefix", "filter", "filter-prefix", "our-id-disabled"],
)
def test_a_rule_that_already_aborts_or_bears_our_id_is_left_alone(rule: dict[str, Any]) -> None:
    bucket = Bucket({"Rules": [rule]})
    assert _add_abort_rule(bucket, "b") is None
    assert bucket.puts == []


def test_a_rule_of_a_prefix_or_disabled_does_not_count_and_every_setting_is_kept() -> None:
    own = [
        {"ID": "exports", "Status": "Enabled", "Filter": {"Prefix": "exports/"}, **ABORT},
        {"ID": "off", "Status": "Disabled", "Filter": {}, **ABORT},
    ]
    size = "varies_by_storage_class"
    bucket = Bucket({"Rules": own, "TransitionDefaultMinimumObjectSize": size})
    line = _add_abort_rule(bucket, "b")
    assert line == "bucket b: incomplete multipart uploads aborted after 7 days"
    (put,) = bucket.puts
    assert put["LifecycleConfiguration"] == {"Rules": [*own, abort_uploads_rule()]}
    assert put["TransitionDefaultMinimumObjectSize"] == size


def test_a_bucket_without_rules_gets_ours() -> None:
    bucket = Bucket(None)
    assert _add_abort_rule(bucket, "b")
    assert bucket.puts == [
        {"Bucket": "b", "LifecycleConfiguration": {"Rules": [abort_uploads_rule()]}}
    ]


@pytest.mark.parametrize("deny", ["get", "put"])
def test_no_lifecycle_permission_is_a_line_not_a_failure(deny: str) -> None:
    line = _add_abort_rule(Bucket(None, deny=deny), "b")
    assert line is not None and line.startswith("bucket b: no lifecycle rule added (no s3:")
    assert "AbortIncompleteMultipartUpload" in line
