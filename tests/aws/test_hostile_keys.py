"""Hostile object keys on S3 (moto server): a landing object whose key must not become a local
path is quarantined inside S3, unread, with the reason in the report; keys nested under a
dataset prefix (``..`` segments among them) are not landing objects and stay untouched; and
nothing is written outside the task's scratch folder.

moto keeps ``..`` segments literal (botocore does not normalise the URL path, moto does not
either) and accepts NUL and other control characters. It refuses a key with a line feed (404).
It accepts keys over 1,024 bytes, which real S3 refuses (KeyTooLongError), but its DynamoDB
then refuses the manifest item whose sort key holds the key (1,024 bytes at most), so such
keys are only in the unit tests of the rule and of the store's refusal.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import HAND, Aws, local_metrics
from tests.conftest import ecompipe

pytestmark = [pytest.mark.aws, pytest.mark.duckdb, pytest.mark.xdist_group("moto")]

# Items that would add 1,000.00 of revenue to 2024-03-01 if anything read them.
EXTRA_ITEMS = b"id,order_id,product_id,sale_price\n900,101,1,1000.00\n"
DEEP = "/".join([".."] * 8)  # climbs out of <scratch>/<execution>/inflight/order_items/
#: Direct children of a dataset prefix (landing objects), and what the report must name.
HOSTILE = {
    "order_items/back\\slash.csv": "backslash",
    "order_items/up\\..\\..\\..\\win.csv": "backslash",
    "order_items/ctl\x01char.csv": "U+0001",
    "order_items/esc\x1b[2J.csv": "U+001B",
    "order_items/nul\x00byte.csv": "U+0000",
    "order_items/cr\rtab\t.csv": "U+000D",
    "order_items/del\x7f.csv": "U+007F",
    "order_items/nel\x85.csv": "U+0085",
    "order_items/" + "s" * 252 + ".csv": "256 bytes",  # one segment over NAME_MAX
}
#: Not landing objects: not direct children (the listing uses Delimiter '/'), or hidden
#: names (uploads in progress). Ignored, left where they are.
NESTED = [
    "order_items/..\\..\\..\\hidden-escape.csv",
    f"order_items/{DEEP}/escape.csv",
    f"orders/{DEEP}/tmp/escape.csv",
    "order_items/./dot.csv",
    "order_items//empty.csv",
    "/order_items/leading.csv",
]
#: The longest name a segment may have (255 bytes): a good file, processed like any other.
LONG_PRODUCTS = "products/" + "p" * 251 + ".csv"


class _Recording:
    """The S3 client, recording every key read into a local file (GetObject, download_file)."""

    def __init__(self, client: Any, reads: list[str]) -> None:
        self._client, self._reads, self._guard = client, reads, threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_object(self, **kwargs: Any) -> Any:
        with self._guard:
            self._reads.append(kwargs["Key"])
        return self._client.get_object(**kwargs)

    def download_file(self, bucket: str, key: str, filename: str, **kwargs: Any) -> Any:
        with self._guard:
            self._reads.append(key)
        return self._client.download_file(bucket, key, filename, **kwargs)


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with the bytes of its files (None for folders, links)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.timeout(180)
def test_hostile_keys_are_quarantined_in_s3_unread(
    aws: Aws, workspace: Path, tmp_path: Path
) -> None:
    from ecompipe.engines import create_engine
    from ecompipe.pipeline import Pipeline
    from ecompipe.wiring import open_backend

    expected = local_metrics(workspace)  # the same hand files through the local backend
    bucket = aws.env["BUCKET_NAME"]
    aws.put("orders/hand orders.csv", HAND / "orders.csv")
    aws.put("order_items/hand order_items.csv", HAND / "order_items.csv")
    aws.put(LONG_PRODUCTS, HAND / "products.csv")
    for key in [*HOSTILE, *NESTED]:
        aws.put(key, EXTRA_ITEMS)
    landed = set(aws.keys(bucket))
    assert set(HOSTILE) | set(NESTED) <= landed, "moto kept every key as written"

    parent = tmp_path / "parent"
    scratch = parent / "scratch"
    scratch.mkdir(parents=True)
    (parent / "sibling.txt").write_text("untouched")
    before = _tree(tmp_path)

    settings = aws.settings()
    backend = open_backend(
        "aws",
        settings,
        quiet=True,
        clients=aws.clients(),
        work_dir=scratch,
    )
    reads: list[str] = []
    backend.store.s3 = _Recording(backend.store.s3, reads)  # type: ignore[attr-defined]
    pipeline = Pipeline(
        settings, backend, lambda: create_engine(settings, temp_dir=str(scratch / "tmp"))
    )
    result = pipeline.run()
    assert result.exit_code == 0, result.message
    (outcome,) = result.outcomes
    execution_id = outcome.execution_id

    # The good files were processed: the hand fixture's KPIs, as the local backend computes.
    got = ecompipe("metrics", "--backend", "aws", "--json")
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout) == expected

    # Each hostile landing object: quarantined within S3 with its reason, never downloaded.
    s3 = aws.client("s3")
    report_key = f"quarantine/{execution_id}/validation_report.json"
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    verdicts = {f["key"]: f for f in report["files"]}
    for key, names in HOSTILE.items():
        verdict = verdicts[key]
        assert (verdict["accepted"], verdict["reason"]) == (False, "unsafe_key"), key
        assert names in verdict["detail"], verdict
    assert {k for k, f in verdicts.items() if f["accepted"]} == {
        "orders/hand orders.csv",
        "order_items/hand order_items.csv",
        LONG_PRODUCTS,
    }
    left = set(aws.keys(bucket))
    for key in HOSTILE:
        # Under a stand-in any tool can copy to a disk: unsafe/<SHA-256 of the key>.
        stand_in = f"quarantine/{execution_id}/unsafe/{hashlib.sha256(key.encode()).hexdigest()}"
        assert stand_in in left and key not in left
        body = s3.get_object(Bucket=bucket, Key=stand_in)["Body"]
        assert body.read() == EXTRA_ITEMS
    landing_reads = [k for k in reads if not k.startswith("_ecompipe/")]
    assert sorted(landing_reads) == sorted(
        ["orders/hand orders.csv", "order_items/hand order_items.csv", LONG_PRODUCTS]
    )

    # Nested keys are not landing objects: still there, never read, never moved.
    for key in NESTED:
        assert key in left and key not in verdicts and key not in reads
    assert outcome.summary["files"] == 3 + len(HOSTILE)

    # Nothing outside the scratch folder changed; nothing inside it came from a hostile key.
    after = _tree(tmp_path)
    outside = {k: v for k, v in after.items() if not k.startswith("parent/scratch")}
    assert outside == {k: v for k, v in before.items() if not k.startswith("parent/scratch")}
    assert not [k for k, v in after.items() if v == EXTRA_ITEMS]
    assert not [p for p in tmp_path.rglob("*escape*")]
