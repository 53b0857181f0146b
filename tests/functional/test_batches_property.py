"""The correctness property (DESIGN.md "KPIs"), tested with hypothesis.

Rows of a generated dataset are split into a random sequence of batches: random sizes, items
before their orders, products late, whole files re-delivered, rows updated in a later batch,
datasets with no rows in a batch (a header-only file, quarantined as no_rows). The pipeline
runs after each batch; its metrics must then equal the independent reference
(validate_batch + merge + kpis) over the union of the accepted rows so far.
"""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import reference
from tests.conftest import ecompipe, metrics_json
from tests.exactly_once import DATASETS, sample_tables, write_csv
from tests.functional.test_pipeline_vs_reference import expected_json

pytestmark = [pytest.mark.slow, pytest.mark.local, pytest.mark.duckdb]

_GEN = Path(tempfile.mkdtemp(prefix="ecompipe-prop-"))
TABLES = sample_tables(_GEN, 30, seed=3)
CATEGORIES = sorted(
    {r[TABLES["products"].header.index("category")] for r in TABLES["products"].rows}
)


def _col(dataset: str, name: str) -> int:
    return [c.strip().lower() for c in TABLES[dataset].header].index(name)


def updated(dataset: str, row: list[str], choice: int) -> list[str]:
    """A changed but valid version of ``row`` (which column changes depends on ``choice``)."""
    row = list(row)
    if dataset == "orders":
        if choice % 2:
            row[_col(dataset, "status")] = ["Returned", "Complete", "Cancelled"][choice % 3]
        else:
            at = _col(dataset, "created_at")
            day = date.fromisoformat(row[at][:10]) + timedelta(days=1 + choice % 40)
            row[at] = day.isoformat() + row[at][10:]
    elif dataset == "order_items":
        if choice % 3 == 0:
            row[_col(dataset, "sale_price")] = f"{choice % 97}.{choice % 100:02d}"
        elif choice % 3 == 1:
            row[_col(dataset, "order_id")] = str(1 + choice % len(TABLES["orders"].rows))
        else:
            row[_col(dataset, "product_id")] = str(1 + choice % len(TABLES["products"].rows))
    else:
        row[_col(dataset, "category")] = CATEGORIES[choice % len(CATEGORIES)]
    return row


@st.composite
def batch_plans(draw: st.DrawFn) -> list[dict[str, list[tuple[str, list[list[str]]]]]]:
    """A list of batches; each maps dataset -> [(file name, rows)]."""
    n = draw(st.integers(1, 4))
    plan: list[dict[str, list[tuple[str, list[list[str]]]]]] = [
        {d: [] for d in DATASETS} for _ in range(n)
    ]
    rows: list[dict[str, list[list[str]]]] = [{d: [] for d in DATASETS} for _ in range(n)]
    for dataset in DATASETS:
        for row in TABLES[dataset].rows:
            first = draw(st.integers(0, n - 1))
            rows[first][dataset].append(row)
            if first < n - 1 and draw(st.integers(0, 9)) == 0:  # updated in a later batch
                later = draw(st.integers(first + 1, n - 1))
                rows[later][dataset].append(updated(dataset, row, draw(st.integers(0, 999))))
    for i in range(n):
        for dataset in DATASETS:
            plan[i][dataset].append((f"b{i}.csv", rows[i][dataset]))
            if i and draw(st.integers(0, 3)) == 0:  # an earlier file delivered again, whole
                j = draw(st.integers(0, i - 1))
                plan[i][dataset].append(plan[j][dataset][0])
    return plan


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(plan=batch_plans())
def test_metrics_equal_reference_after_every_batch(
    plan: list[dict[str, list[tuple[str, list[list[str]]]]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = root / "ws"
        assert ecompipe("init", workspace=ws).exit_code == 0
        state: Any = None
        for i, batch in enumerate(plan):
            files: dict[str, list[Path]] = {}
            for dataset, entries in batch.items():
                header = TABLES[dataset].header
                for name, rows in entries:
                    write_csv(ws / "landing" / dataset / name, header, rows)
                    keep = write_csv(root / "keep" / str(i) / dataset / name, header, rows)
                    files.setdefault(dataset, []).append(keep)
            ref = reference.validate_batch(files)
            result = ecompipe("run", "--quiet", workspace=ws)
            usable = any(v.accepted for v in ref.verdicts)
            assert result.exit_code == (0 if usable else 1), result.output
            state = reference.merge(state, ref)
            orders, categories = reference.kpis(state.orders, state.items, state.products)
            assert metrics_json(ws) == expected_json(orders, categories), f"after batch {i}"


def test_waiting_items_are_reported(workspace: Path) -> None:
    """Items before their order and product: kept, reported as waiting, counted later."""
    orders, items, products = (TABLES[d] for d in DATASETS)
    ids = {r[_col("order_items", "order_id")] for r in items.rows[:5]}
    early = [r for r in orders.rows if r[_col("orders", "order_id")] not in ids]
    write_csv(workspace / "landing/orders/a.csv", orders.header, early)
    write_csv(workspace / "landing/order_items/a.csv", items.header, items.rows)
    write_csv(workspace / "landing/products/a.csv", products.header, products.rows[:1])
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 0, result.output
    waiting_order = sum(1 for r in items.rows if r[_col("order_items", "order_id")] in ids)
    assert f"{waiting_order} items waiting for their order" in result.output
    shown = ecompipe("executions", "show", "exec-", workspace=workspace)
    assert f"waiting for parent: {waiting_order} items for their order" in shown.output
    late = [r for r in orders.rows if r[_col("orders", "order_id")] in ids]
    write_csv(workspace / "landing/orders/b.csv", orders.header, late)
    write_csv(workspace / "landing/order_items/b.csv", items.header, items.rows[:1])
    write_csv(workspace / "landing/products/b.csv", products.header, products.rows)
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 0, result.output
    assert "0 items waiting for their order, 0 for their product" in result.output
    # The two batches have no conflicting keys: their union is one batch.
    want = reference.validate_batch(
        {d: sorted((workspace / "archive").rglob(f"{d}/*.csv")) for d in DATASETS}
    )
    assert metrics_json(workspace) == expected_json(
        *reference.kpis(want.orders, want.items, want.products)
    )
