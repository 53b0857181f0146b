"""The pipeline's KPIs equal the independent reference's, on hand fixtures and generated data."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests import reference
from tests.conftest import FIXTURES, ecompipe, metrics_json

pytestmark = [pytest.mark.duckdb, pytest.mark.local]


def land(workspace: Path, files: dict[str, list[Path]]) -> dict[str, list[Path]]:
    """Copy files into landing; returns the landed paths by dataset."""
    landed: dict[str, list[Path]] = {}
    for dataset, paths in files.items():
        for p in paths:
            dst = workspace / "landing" / dataset / p.name
            shutil.copyfile(p, dst)
            landed.setdefault(dataset, []).append(dst)
    return landed


def expected_json(orders: dict[Any, Any], categories: dict[Any, Any]) -> dict[str, Any]:
    """Reference KPIs in the shape of `ecompipe metrics --json`."""
    return {
        "order_metrics": [
            {"order_date": d.isoformat(), **{k: _num(v) for k, v in m.items()}}
            for d, m in sorted(orders.items())
        ],
        "category_metrics": [
            {"category": c, "order_date": d.isoformat(), **{k: _num(v) for k, v in m.items()}}
            for (c, d), m in sorted(categories.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        ],
    }


def _num(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


@pytest.mark.fast
def test_hand_fixture_matches_hand_computed_values(workspace: Path) -> None:
    import json

    hand = FIXTURES / "hand"
    land(
        workspace,
        {
            "orders": [hand / "orders.csv"],
            "order_items": [hand / "order_items.csv"],
            "products": [hand / "products.csv"],
        },
    )
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 0, result.output
    got = metrics_json(workspace)
    expected = json.loads((hand / "expected.json").read_text())
    got_orders = {m["order_date"]: m for m in got["order_metrics"]}
    assert set(got_orders) == {m["order_date"] for m in expected["order_metrics"]}
    for m in expected["order_metrics"]:
        row = got_orders[m["order_date"]]
        for key, value in m.items():
            assert str(row[key]) == str(value) or Decimal(str(row[key])) == Decimal(str(value)), (
                m["order_date"],
                key,
            )
    got_cats = {(m["category"], m["order_date"]): m for m in got["category_metrics"]}
    assert set(got_cats) == {(m["category"], m["order_date"]) for m in expected["category_metrics"]}
    for m in expected["category_metrics"]:
        row = got_cats[(m["category"], m["order_date"])]
        for key, value in m.items():
            if key in ("category", "order_date"):
                continue
            assert Decimal(str(row[key])) == Decimal(str(value)), (m, key)


@pytest.mark.slow
@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_generated_data_matches_reference(workspace: Path, dirty: bool) -> None:
    from ecompipe.sample import generate_sample

    summary = generate_sample(workspace / "landing", 3000, seed=7, dirty=dirty)
    files = {
        d: sorted((workspace / "landing" / d).glob("*.csv"))
        for d in ("orders", "order_items", "products")
    }
    ref = reference.validate_batch(files)
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 0, result.output
    orders, categories = reference.kpis(ref.orders, ref.items, ref.products)
    assert metrics_json(workspace) == expected_json(orders, categories)
    assert summary.rows["orders"] == 3000 or dirty
