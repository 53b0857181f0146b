"""The curated store's current state (engines/current.py) and `ecompipe curated`.

After any sequence of batches the state holds exactly the reference's latest version of
each key (tests/reference.py: validate_batch + merge), read with the DuckDB query that
docs/CURATED.md gives; `ecompipe curated` reports its rows and batches; an old store with
only the batch log gets its state built from the log on the next run.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests import reference
from tests.conftest import ecompipe, metrics_json
from tests.functional.test_pipeline_vs_reference import expected_json

pytestmark = [pytest.mark.local, pytest.mark.duckdb]

DATASETS = ("orders", "order_items", "products")


def _files(folder: Path) -> dict[str, list[Path]]:
    return {ds: sorted((folder / ds).glob("*.csv")) for ds in DATASETS}


def _batches(tmp_path: Path) -> list[dict[str, list[Path]]]:
    """Items before their orders, keys changed by a later batch, older versions again."""
    from ecompipe.sample import generate_sample

    generate_sample(tmp_path / "b1", 300, seed=3, dirty=True, name="one")
    generate_sample(tmp_path / "b2", 400, seed=4, dirty=True, name="two")
    one, two = _files(tmp_path / "b1"), _files(tmp_path / "b2")
    return [
        one,  # its orphan items wait for orders the second batch brings
        two,
        {"orders": one["orders"], "order_items": one["order_items"], "products": two["products"]},
    ]


def _run(ws: Path, batch: dict[str, list[Path]], tag: str) -> None:
    for dataset, paths in batch.items():
        for p in paths:
            shutil.copyfile(p, ws / "landing" / dataset / f"{tag}_{p.name}")
    assert ecompipe("run", "--quiet", workspace=ws).exit_code in (0, 1)


def _documented(ws: Path, dataset: str, where: str = "true") -> list[tuple[Any, ...]]:
    """The current state as docs/CURATED.md reads it with DuckDB (contract columns)."""
    cols = {
        "orders": "order_id, user_id, created_at, status",
        "order_items": "id, order_id, product_id, sale_price",
        "products": "id, sku, cost, category, retail_price",
    }[dataset]
    glob = ws / "curated" / "current" / dataset / "**" / "*.parquet"
    return duckdb.sql(
        f"SELECT {cols} FROM read_parquet('{glob}', hive_partitioning = true) WHERE {where}"
    ).fetchall()


def _assert_state_is(ws: Path, state: reference.BatchResult) -> None:
    orders = {
        k: (u, at.astimezone(UTC).replace(tzinfo=None), s) for k, (u, at, s) in state.orders.items()
    }
    assert {r[0]: r[1:] for r in _documented(ws, "orders")} == orders
    assert {r[0]: r[1:] for r in _documented(ws, "order_items")} == state.items
    assert {r[0]: r[1:] for r in _documented(ws, "products")} == state.products
    # Items whose order has not arrived are the `waiting` partition, and only they.
    waiting = {r[0] for r in _documented(ws, "order_items", "order_month = 'waiting'")}
    assert waiting == {k for k, (order, _p, _s) in state.items.items() if order not in state.orders}
    assert len(_documented(ws, "orders")) == len(orders)  # one row per key


def _curated(ws: Path) -> dict[str, Any]:
    result = ecompipe("curated", "--json", workspace=ws)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def test_the_current_state_is_the_references_after_every_batch(
    workspace: Path, tmp_path: Path
) -> None:
    assert _curated(workspace)["state"] is None
    text = ecompipe("curated", workspace=workspace)
    assert "current state: none yet" in text.stdout
    state = None
    for n, batch in enumerate(_batches(tmp_path), start=1):
        _run(workspace, batch, f"b{n}")
        state = reference.merge(state, reference.validate_batch(batch))
        _assert_state_is(workspace, state)
        summary = _curated(workspace)
        assert summary["state"]["batches"] == list(range(1, n + 1))
        assert summary["state"]["lags"] == [] and not summary["state"]["stale"]
        rows = {ds: d["rows"] for ds, d in summary["datasets"].items()}
        assert rows == {
            "orders": len(state.orders),
            "order_items": len(state.items),
            "products": len(state.products),
        }
        assert all(d["log_batches"] == list(range(1, n + 1)) for d in summary["datasets"].values())
        # Every file the command names is a file of the state, and no other is there.
        named = {f for d in summary["datasets"].values() for f in d["files"]}
        there = {str(p) for p in (workspace / "curated" / "current").rglob("*.parquet")}
        assert named == there
    assert state is not None
    orders, categories = reference.kpis(state.orders, state.items, state.products)
    assert metrics_json(workspace) == expected_json(orders, categories)
    text = ecompipe("curated", workspace=workspace).stdout
    assert "holds 3 batches" in text and f"{len(state.items)}" in text


def test_a_store_with_only_the_batch_log_gets_its_state_from_the_log(
    workspace: Path, tmp_path: Path
) -> None:
    """An existing user's store (curated/<dataset>/<seq>.parquet only): the next run builds
    the state from the log, and the metrics are the reference's."""
    batches = _batches(tmp_path)
    state = None
    for n, batch in enumerate(batches[:2], start=1):
        _run(workspace, batch, f"b{n}")
        state = reference.merge(state, reference.validate_batch(batch))
    shutil.rmtree(workspace / "curated" / "current")  # as before the current state existed
    assert _curated(workspace)["state"] is None
    _run(workspace, batches[2], "b3")
    state = reference.merge(state, reference.validate_batch(batches[2]))
    _assert_state_is(workspace, state)
    assert _curated(workspace)["state"]["batches"] == [1, 2, 3]
    orders, categories = reference.kpis(state.orders, state.items, state.products)
    assert metrics_json(workspace) == expected_json(orders, categories)
    # A recompute reads the state: the same metrics again.
    assert ecompipe("recompute", "--quiet", workspace=workspace).exit_code == 0
    assert metrics_json(workspace) == expected_json(orders, categories)
