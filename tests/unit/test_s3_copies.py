"""The rules of stores/aws/copies.py that need no S3: part ranges within S3's multipart
limits, and which checksums a copy can be compared on."""

from __future__ import annotations

import itertools

import pytest

MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40


def _check_ranges(ranges: list[tuple[int, int]], size: int) -> None:
    """Contiguous, covering [0, size), <= 10,000 parts, every part but the last >= 5 MiB."""
    assert ranges[0][0] == 0 and ranges[-1][1] == size - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    assert len(ranges) <= 10_000
    assert all(last - first + 1 >= 5 * MiB for first, last in ranges[:-1])


@pytest.mark.fast
def test_part_ranges_stay_within_s3_limits() -> None:
    from ecompipe.stores.aws.copies import CopyPlan

    plan = CopyPlan()
    one_gib = plan.ranges(GiB)
    assert len(one_gib) == 8 and one_gib[1] == (128 * MiB, 256 * MiB - 1)
    _check_ranges(one_gib, GiB)
    # S3's largest object: 128 MiB parts would be 40,960; ceil(5 TiB / 10,000) is 524.29 MiB,
    # rounded up to 525 MiB parts: ceil(5 * 2**20 / 525) = 9,987 parts.
    largest = plan.ranges(5 * TiB)
    assert len(largest) == 9_987 and largest[0] == (0, 525 * MiB - 1)
    _check_ranges(largest, 5 * TiB)
    # A part size below S3's minimum is raised to it (moto and S3 refuse smaller parts).
    small = CopyPlan(threshold=8 * MiB, part_size=MiB).ranges(12 * MiB + 123)
    assert small == [(0, 5 * MiB - 1), (5 * MiB, 10 * MiB - 1), (10 * MiB, 12 * MiB + 122)]


@pytest.mark.fast
def test_only_full_object_checksums_are_compared() -> None:
    from ecompipe.stores.aws.copies import CopyPlan, full_checksum, reproducible_checksum

    single = {"ETag": '"abc"', "ContentLength": 10, "ChecksumCRC32": "AAAAAA=="}
    assert full_checksum(single) == ("CRC32", "AAAAAA==")  # single-part: of all the bytes
    composite = {"ETag": '"abc-3"', "ChecksumCRC32": "AAAAAA==-3", "ChecksumType": "COMPOSITE"}
    assert full_checksum(composite) is None
    untyped = {"ETag": '"abc-3"', "ChecksumCRC32": "AAAAAA=="}  # moto's multipart upload
    assert full_checksum(untyped) is None
    full = {"ETag": '"abc-3"', "ChecksumSHA256": "x", "ChecksumType": "FULL_OBJECT"}
    assert full_checksum(full) == ("SHA256", "x")
    assert full_checksum({"ETag": '"abc"'}) is None
    # A multipart copy makes FULL_OBJECT checksums of the CRC family only.
    plan = CopyPlan(threshold=8 * MiB)
    sha = {"ETag": '"abc"', "ContentLength": 9 * MiB, "ChecksumSHA256": "x"}
    assert reproducible_checksum(plan, sha) is None
    assert reproducible_checksum(plan, {**sha, "ContentLength": MiB}) == ("SHA256", "x")
    crc = {"ETag": '"abc"', "ContentLength": 9 * MiB, "ChecksumCRC32C": "y"}
    assert reproducible_checksum(plan, crc) == ("CRC32C", "y")


@pytest.mark.fast
def test_verified_compares_size_etag_and_checksum() -> None:
    from ecompipe.stores.aws.copies import verified

    source = {"ETag": '"md5"', "ContentLength": 10, "ChecksumCRC32": "c"}
    good = {
        "ETag": '"x-2"',
        "ContentLength": 10,
        "ChecksumCRC32": "c",
        "ChecksumType": "FULL_OBJECT",
    }
    assert verified(good, source, ("CRC32", "c"))
    assert not verified({**good, "ContentLength": 11}, source, ("CRC32", "c"))
    assert not verified({**good, "ChecksumCRC32": "d"}, source, ("CRC32", "c"))
    assert not verified({**good, "ChecksumCRC32": None}, source, ("CRC32", "c"))
    # Both single-part: the ETag is the MD5 of the bytes, compared even without a checksum.
    assert not verified({"ETag": '"md6"', "ContentLength": 10}, source, None)
    assert verified({"ETag": '"md5"', "ContentLength": 10}, source, None)
