"""Server-side S3 copies of any size, pinned to one version of the source and checkable.

CopyObject refuses sources above 5 GiB, so a source of ``threshold`` bytes or more is copied
as a multipart upload of UploadPartCopy ranges. Every request names the source's ETag
(CopySourceIfMatch): if the source is overwritten mid-copy, S3 fails the part
(PreconditionFailed) instead of assembling a mix of two versions. Any failure aborts the
multipart upload, after the parts in flight have finished, so no incomplete upload (billed
storage) is left behind by a copy that raised.

The copy asks S3 for the source's full-object checksum algorithm when one can be
reproduced (any algorithm for CopyObject; CRC32, CRC32C or CRC64NVME as a FULL_OBJECT
checksum for a multipart copy), so :func:`verified` can compare the copy's checksum with the
source's: a check of the bytes, not only of the size, whichever path copied them.

Errors are botocore's, unchanged: the caller knows what a missing or changed source means
for it (clients.translate for the rest).
"""

from __future__ import annotations

import contextlib
import math
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20
GiB = 1 << 30
#: S3's limits for multipart uploads: parts per upload, smallest part but the last.
MAX_PARTS = 10_000
MIN_PART = 5 * MiB
#: Algorithms S3 combines into a FULL_OBJECT checksum of a multipart upload.
FULL_OBJECT_CRCS = ("CRC64NVME", "CRC32C", "CRC32")
ALGORITHMS = (*FULL_OBJECT_CRCS, "SHA256", "SHA1")
#: What a multipart copy carries over from the source (CopyObject copies them itself).
KEPT_FIELDS = ("ContentType", "ContentEncoding", "ContentLanguage", "ContentDisposition")


@dataclass(frozen=True)
class CopyPlan:
    """How objects are copied: above ``threshold`` bytes, in parts of at least
    ``part_size`` bytes, ``threads`` at a time."""

    #: 1 GiB: below it one CopyObject (one request, and the copy keeps the source's ETag, an
    #: MD5 of the bytes, to compare); above it parallel parts, which S3 copies faster than one
    #: long CopyObject and which a 5 GiB source needs anyway. The AWS CLI uses 8 MiB.
    threshold: int = GiB
    #: 128 MiB parts: 8 to 40 requests for 1-5 GiB; raised for objects over 1.2 TiB so that
    #: no copy needs more than MAX_PARTS parts.
    part_size: int = 128 * MiB
    threads: int = 8

    def ranges(self, size: int) -> list[tuple[int, int]]:
        """Inclusive byte ranges of the parts of a ``size``-byte copy: at most MAX_PARTS,
        each of at least MIN_PART bytes but the last, in whole MiB."""
        wanted = max(self.part_size, MIN_PART, math.ceil(size / MAX_PARTS))
        part = math.ceil(wanted / MiB) * MiB
        return [(start, min(start + part, size) - 1) for start in range(0, size, part)]


def full_checksum(head: dict[str, Any]) -> tuple[str, str] | None:
    """``(algorithm, value)`` of the object's checksum of all its bytes, or None.

    A COMPOSITE checksum (a checksum of part checksums) depends on the part boundaries, so
    only a copy with the same parts could reproduce it. HeadObject reports ChecksumType on S3;
    a single-part object's checksum is of the whole object whatever the report says (moto
    omits the type), but a multipart one without a type cannot be told apart.
    """
    kind = head.get("ChecksumType")
    multipart = "-" in head.get("ETag", "")
    if kind == "COMPOSITE" or (kind is None and multipart):
        return None
    for algorithm in ALGORITHMS:
        value = head.get(f"Checksum{algorithm}")
        if value:
            return algorithm, str(value)
    return None


def reproducible_checksum(plan: CopyPlan, head: dict[str, Any]) -> tuple[str, str] | None:
    """The source's full-object checksum if the copy :func:`copy` makes can carry it."""
    found = full_checksum(head)
    if found is None:
        return None
    if int(head["ContentLength"]) < plan.threshold or found[0] in FULL_OBJECT_CRCS:
        return found
    return None


def verified(
    copy: dict[str, Any], source: dict[str, Any], expected: tuple[str, str] | None
) -> bool:
    """Whether ``copy`` (HeadObject with ChecksumMode) holds the bytes of ``source``
    (HeadObject of the version copied): size equal; ETag equal when both are single-part
    (then it is the MD5 of the bytes); full-object checksum equal to ``expected``, when the
    source has one the copy could carry (:func:`reproducible_checksum`)."""
    if int(copy["ContentLength"]) != int(source["ContentLength"]):
        return False
    copy_etag, source_etag = copy["ETag"].strip('"'), source["ETag"].strip('"')
    if "-" not in copy_etag and "-" not in source_etag and copy_etag != source_etag:
        return False
    return expected is None or full_checksum(copy) == expected


def copy(
    s3: Any, plan: CopyPlan, source: dict[str, Any], src: tuple[str, str], dst: tuple[str, str]
) -> tuple[str, str] | None:
    """Copy the version of ``src`` (bucket, key) that ``source`` (its HeadObject with
    ChecksumMode) describes to ``dst``; returns the checksum the copy must show
    (:func:`verified`), None when the source has none the copy can carry.

    Raises botocore's ClientError PreconditionFailed when the source is no longer that version
    (NoSuchKey / 404 when it is gone).
    """
    expected = reproducible_checksum(plan, source)
    pinned = {"CopySource": {"Bucket": src[0], "Key": src[1]}, "CopySourceIfMatch": source["ETag"]}
    size = int(source["ContentLength"])
    if size < plan.threshold:
        asked = {"ChecksumAlgorithm": expected[0]} if expected else {}
        s3.copy_object(Bucket=dst[0], Key=dst[1], **pinned, **asked)
        return expected
    kept = {name: source[name] for name in KEPT_FIELDS if source.get(name)}
    if source.get("Metadata"):
        kept["Metadata"] = source["Metadata"]
    if expected:
        kept.update(ChecksumAlgorithm=expected[0], ChecksumType="FULL_OBJECT")
    target = {"Bucket": dst[0], "Key": dst[1]}
    upload = s3.create_multipart_upload(**target, **kept)["UploadId"]
    try:
        parts = _copy_parts(s3, plan, {**target, **pinned, "UploadId": upload}, size)
        s3.complete_multipart_upload(**target, UploadId=upload, MultipartUpload={"Parts": parts})
    except BaseException:
        _abort(s3, target, upload)
        raise
    return expected


def _copy_parts(s3: Any, plan: CopyPlan, request: dict[str, Any], size: int) -> list[Any]:
    """UploadPartCopy every range, ``plan.threads`` at a time; the first failure cancels the
    parts not started and is raised once the running ones are done (so that the abort that
    follows is not overtaken by a part completing after it)."""

    def one(number: int, first: int, last: int) -> dict[str, Any]:
        done = s3.upload_part_copy(
            **request, PartNumber=number, CopySourceRange=f"bytes={first}-{last}"
        )["CopyPartResult"]
        # S3 returns the part's checksum when the upload has an algorithm; Complete needs it.
        sums = {k: v for k, v in done.items() if k.startswith("Checksum")}
        return {"ETag": done["ETag"], "PartNumber": number, **sums}

    ranges = plan.ranges(size)
    with ThreadPoolExecutor(max_workers=max(1, min(plan.threads, len(ranges)))) as pool:
        futures = [pool.submit(one, n, *r) for n, r in enumerate(ranges, start=1)]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            future.cancel()
    for future in futures:
        if not future.cancelled() and future.exception() is not None:
            future.result()  # raises the first part's error (a cancelled part has none)
    return [future.result() for future in futures]


def _abort(s3: Any, target: dict[str, str], upload: str) -> None:
    # The copy's own error is the one to report: a failed abort only leaves an incomplete
    # upload, for the bucket's AbortIncompleteMultipartUpload lifecycle rule (docs/AWS.md).
    with contextlib.suppress(Exception):
        s3.abort_multipart_upload(**target, UploadId=upload)
