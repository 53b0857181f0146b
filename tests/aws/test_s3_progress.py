"""S3 transfers report their bytes to whoever shows progress (the CLI's bars), from boto3's
transfer threads too; with nobody listening they report nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.aws.conftest import HAND, Aws

pytestmark = [pytest.mark.aws, pytest.mark.xdist_group("moto"), pytest.mark.timeout(60)]


def test_downloads_and_uploads_report_bytes(aws: Aws, tmp_path: Path) -> None:
    from ecompipe import progress
    from ecompipe.stores.aws.s3 import S3ObjectStore
    from ecompipe.stores.base import ManifestEntry

    body = (HAND / "orders.csv").read_bytes()
    aws.put("orders/o.csv", body)
    store = S3ObjectStore(aws.client("s3"), aws.settings(), tmp_path / "work")
    entry = ManifestEntry("orders/o.csv", "orders", len(body), "")
    store.claim("exec-1", [entry])
    report = tmp_path / "validation_report.json"
    report.write_bytes(b"{}" * 5000)
    seen: list[tuple[str, int, int | None, str]] = []
    with progress.reporting(lambda *args: seen.append(args)):
        store.local_path("exec-1", entry)  # GetObject, read in chunks
        store.put_report("exec-1", "validation_report.json", report)  # upload_file
    done: dict[str, tuple[int, int | None, str]] = {}
    for step, n, total, unit in seen:
        done[step] = max(done.get(step, (0, total, unit)), (n, total, unit))
    assert done == {
        "download orders/o.csv": (len(body), len(body), "bytes"),
        "upload quarantine/exec-1/validation_report.json": (10_000, 10_000, "bytes"),
    }
    # Nobody listening: boto3 gets no callback and nothing is reported.
    store.put_report("exec-1", "again.json", report)
    assert not any(step.endswith("again.json") for step, *_ in seen)
