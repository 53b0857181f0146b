"""CuratedLog: what an engine is told about the curated log (folder or URI, batch numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecompipe.engines.base import CuratedLog, curated_path

pytestmark = [pytest.mark.fast]


def test_in_folder_lists_each_datasets_batches_oldest_first(tmp_path: Path) -> None:
    for dataset, seq in (("orders", 10), ("orders", 2), ("products", 2)):
        target = curated_path(tmp_path, dataset, seq)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")
    (tmp_path / "orders" / "compacted.parquet").write_bytes(b"")  # not a batch file
    log = CuratedLog.in_folder(tmp_path)
    assert log.batches == {"orders": (2, 10), "order_items": (), "products": (2,)}
    assert log.files("orders") == [
        str(tmp_path / "orders/000000000002.parquet"),
        str(tmp_path / "orders/000000000010.parquet"),
    ]
    assert not log.is_uri
    assert (log.has_batch_before(2), log.has_batch_before(3)) == (False, True)


def test_uri_root() -> None:
    log = CuratedLog("s3a://bucket/_ecompipe/curated/", {"orders": (7,)})
    assert log.is_uri
    assert log.files("orders") == ["s3a://bucket/_ecompipe/curated/orders/000000000007.parquet"]
    assert log.files("products") == []
