"""Objects above the multipart threshold (lowered to 8 MiB, parts of 5 MiB: moto, like S3,
refuses smaller parts but the last): moves and publishing copy them exactly, every part
pinned to the claimed version, and a copy that fails or does not verify leaves the source
and no incomplete multipart upload.

Moto ignores CopySourceIfMatch on CopyObject and UploadPartCopy (S3 honours it), so an
overwrite between two parts completes a mixed copy on moto: the verification must catch it.
What S3 does instead, a PreconditionFailed on the part, is played by a client that raises it.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import Aws

pytestmark = [pytest.mark.aws, pytest.mark.xdist_group("moto"), pytest.mark.timeout(120)]

MiB = 1 << 20
SIZE = 12 * MiB + 123  # three parts: 5 MiB, 5 MiB, 2 MiB + 123 bytes
KEY = "orders/big file+ü%2F.csv"  # botocore quotes it in CopySource, part by part too


def _bytes(seed: int) -> bytes:
    return random.Random(seed).randbytes(SIZE)


def _store(aws: Aws, tmp_path: Path, threads: int = 3) -> Any:
    from ecompipe.stores.aws.copies import CopyPlan
    from ecompipe.stores.aws.s3 import S3ObjectStore

    store = S3ObjectStore(aws.client("s3"), aws.settings(), tmp_path)
    store.copy_plan = CopyPlan(threshold=8 * MiB, part_size=5 * MiB, threads=threads)
    return store


def _claimed(aws: Aws, store: Any, data: bytes) -> Any:
    from ecompipe.stores.base import ManifestEntry

    aws.client("s3").put_object(
        Bucket=aws.env["BUCKET_NAME"], Key=KEY, Body=data, ContentType="text/csv"
    )
    (info,) = store.list_landing()
    entry = ManifestEntry(info.key, "orders", info.size, info.etag)
    store.claim("e1", [entry])
    assert entry.status == "claimed"
    return entry


def _body(aws: Aws, bucket: str, key: str) -> bytes:
    data: bytes = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def _no_uploads(aws: Aws) -> None:
    """No incomplete multipart upload left in either bucket."""
    for bucket in (aws.env["BUCKET_NAME"], aws.env["S3_ARCHIVE_BUCKET"]):
        assert aws.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


class _Parts:
    """The store's S3 client with ``hook(client, request)`` in place of UploadPartCopy."""

    def __init__(self, client: Any, hook: Callable[[Any, dict[str, Any]], Any]) -> None:
        self._client, self._hook = client, hook
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name in ("complete_multipart_upload", "abort_multipart_upload"):
            self.calls.append(name)
        return getattr(self._client, name)

    def upload_part_copy(self, **request: Any) -> Any:
        self.calls.append(f"part {request['PartNumber']}")
        return self._hook(self._client, request)


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    error = {
        "Error": {"Code": code, "Message": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(error, "UploadPartCopy")  # type: ignore[arg-type]


@pytest.mark.parametrize("move", ["archive", "quarantine"])
def test_moves_above_the_threshold_copy_the_exact_bytes(
    aws: Aws, tmp_path: Path, move: str
) -> None:
    store = _store(aws, tmp_path)
    data = _bytes(1)
    entry = _claimed(aws, store, data)
    getattr(store, move)("e1", entry)
    getattr(store, move)("e1", entry)  # again (a retried task): nothing changes, no error
    bucket = aws.env["S3_ARCHIVE_BUCKET" if move == "archive" else "BUCKET_NAME"]
    key = f"{move}/e1/{KEY}"
    assert entry.status == f"{move}d" and entry.location == f"s3://{bucket}/{key}"
    head = aws.client("s3").head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head["ETag"].endswith('-3"'), "copied in three parts"
    assert head["ContentType"] == "text/csv", "the multipart copy keeps the content type"
    assert hashlib.sha256(_body(aws, bucket, key)).digest() == hashlib.sha256(data).digest()
    assert KEY not in aws.keys(aws.env["BUCKET_NAME"]), "the source is deleted"
    _no_uploads(aws)


def test_publish_above_the_threshold_copies_the_exact_bytes(aws: Aws, tmp_path: Path) -> None:
    store = _store(aws, tmp_path)
    data = _bytes(2)
    bucket = aws.env["BUCKET_NAME"]
    aws.client("s3").put_object(Bucket=bucket, Key="_ecompipe/staging/e1/orders.parquet", Body=data)
    store.publish_batch("e1", 7)
    key = "_ecompipe/curated/orders/000000000007.parquet"
    assert aws.client("s3").head_object(Bucket=bucket, Key=key)["ETag"].endswith('-3"')
    assert hashlib.sha256(_body(aws, bucket, key)).digest() == hashlib.sha256(data).digest()
    _no_uploads(aws)


def test_overwrite_between_manifest_and_copy_is_not_archived(aws: Aws, tmp_path: Path) -> None:
    store = _store(aws, tmp_path)
    entry = _claimed(aws, store, _bytes(3))
    newer = _bytes(4)  # the same size: only the bytes tell the versions apart
    aws.put(KEY, newer)
    store.archive("e1", entry)
    assert entry.status == "gone" and entry.location is None
    assert _body(aws, aws.env["BUCKET_NAME"], KEY) == newer, "the new upload waits in landing"
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == []
    _no_uploads(aws)


def test_overwrite_between_parts_is_never_archived_as_a_mix(aws: Aws, tmp_path: Path) -> None:
    """Moto copies part 2 and 3 from the new version (it ignores CopySourceIfMatch) and
    completes the upload: the full-object CRC32 of the copy differs from the claimed
    version's, so the mix is deleted and the entry is ``gone``."""
    store = _store(aws, tmp_path, threads=1)  # part 1 is done before part 2 starts
    entry = _claimed(aws, store, _bytes(5))
    newer = _bytes(6)

    def overwrite_after_part_1(client: Any, request: dict[str, Any]) -> Any:
        done = client.upload_part_copy(**request)
        if request["PartNumber"] == 1:
            aws.put(KEY, newer)
        return done

    store.s3 = _Parts(store.s3, overwrite_after_part_1)
    store.archive("e1", entry)
    assert store.s3.calls == ["part 1", "part 2", "part 3", "complete_multipart_upload"]
    assert entry.status == "gone"
    assert _body(aws, aws.env["BUCKET_NAME"], KEY) == newer
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == [], "the mixed copy is deleted"
    _no_uploads(aws)


def test_precondition_failed_on_a_part_aborts_and_keeps_the_source(
    aws: Aws, tmp_path: Path
) -> None:
    """What S3 does when the source changes mid-copy: the next part fails its
    CopySourceIfMatch. The upload is aborted and the entry is ``gone``, as for a single-part
    copy."""
    store = _store(aws, tmp_path, threads=1)
    entry = _claimed(aws, store, _bytes(7))
    newer = _bytes(8)

    def overwritten_before_part_2(client: Any, request: dict[str, Any]) -> Any:
        if request["PartNumber"] == 2:
            aws.put(KEY, newer)
            raise _client_error("PreconditionFailed", 412)
        return client.upload_part_copy(**request)

    store.s3 = _Parts(store.s3, overwritten_before_part_2)
    store.archive("e1", entry)
    # Part 3 may have started before the failure was seen: the abort comes after it.
    assert store.s3.calls[:2] == ["part 1", "part 2"]
    assert store.s3.calls[-1] == "abort_multipart_upload"
    assert "complete_multipart_upload" not in store.s3.calls
    assert entry.status == "gone"
    assert _body(aws, aws.env["BUCKET_NAME"], KEY) == newer
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == []
    _no_uploads(aws)


def test_failed_part_aborts_the_upload_and_is_retried(aws: Aws, tmp_path: Path) -> None:
    """A part failing with a server error (botocore's retries spent) aborts the upload, keeps
    the source and raises the transient StoreError: the state is retried, and the retry
    copies the claimed version whole."""
    from ecompipe.errors import StoreError

    store = _store(aws, tmp_path)
    data = _bytes(9)
    entry = _claimed(aws, store, data)
    real = store.s3

    def part_3_fails(client: Any, request: dict[str, Any]) -> Any:
        if request["PartNumber"] == 3:
            raise _client_error("InternalError", 500)
        return client.upload_part_copy(**request)

    store.s3 = _Parts(real, part_3_fails)
    with pytest.raises(StoreError, match="InternalError"):
        store.archive("e1", entry)
    assert "abort_multipart_upload" in store.s3.calls
    assert entry.status == "claimed" and _body(aws, aws.env["BUCKET_NAME"], KEY) == data
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == []
    _no_uploads(aws)
    store.s3 = real
    store.archive("e1", entry)
    archived = _body(aws, aws.env["S3_ARCHIVE_BUCKET"], f"archive/e1/{KEY}")
    assert entry.status == "archived" and archived == data


def test_copy_that_does_not_verify_is_removed_and_the_source_kept(aws: Aws, tmp_path: Path) -> None:
    """Part 2 copied from the wrong range: the copy has the right size, its ETag cannot be
    compared (multipart), but its checksum differs from the source's. It is deleted, the
    source stays, and the error says what happened."""
    from ecompipe.errors import StoreError

    store = _store(aws, tmp_path)
    data = _bytes(10)
    entry = _claimed(aws, store, data)

    def part_2_from_part_1(client: Any, request: dict[str, Any]) -> Any:
        if request["PartNumber"] == 2:
            request = {**request, "CopySourceRange": f"bytes=0-{5 * MiB - 1}"}
        return client.upload_part_copy(**request)

    store.s3 = _Parts(store.s3, part_2_from_part_1)
    with pytest.raises(StoreError, match=r"did not verify .*copy removed, original kept"):
        store.archive("e1", entry)
    assert entry.status == "claimed" and _body(aws, aws.env["BUCKET_NAME"], KEY) == data
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == []
    _no_uploads(aws)
