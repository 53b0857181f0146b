"""KPI revisions end to end: a late item and a status correction on a date that had metrics
record hand-computed before/after values (tests/fixtures/revisions/README.md), the
notification summarises them, `metrics history` shows them, and a re-delivered identical
batch records nothing."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests import reference
from tests.conftest import FIXTURES, ecompipe
from tests.support import DATASETS, land, notifications

pytestmark = [pytest.mark.duckdb, pytest.mark.local]

BATCHES = FIXTURES / "revisions"
D1 = "2024-03-01"

#: What b2 revises on D1 (hand-computed: tests/fixtures/revisions/README.md).
ORDER_CHANGES = [
    ["total_revenue", "30.00", "37.50"],
    ["total_items_sold", 2, 3],
    ["return_rate", "0.0000", "0.5000"],
]
TOPS_CHANGES = [
    ["daily_revenue", "20.00", "27.50"],
    ["avg_order_value", "20.00", "13.75"],
    ["avg_return_rate", "0.0000", "0.5000"],
]


def run_batch(workspace: Path, batch: str) -> dict[str, Any]:
    """Land and run one batch; its notification."""
    land(workspace, {d: BATCHES / batch / f"{d}.csv" for d in DATASETS})
    result = ecompipe("run", "--quiet", workspace=workspace)
    assert result.exit_code == 0, result.output
    return notifications(workspace)[-1]


def history(workspace: Path, *args: str) -> list[dict[str, Any]]:
    result = ecompipe("metrics", "history", "--date", D1, "--json", *args, workspace=workspace)
    assert result.exit_code == 0, result.output
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def changes(revision: dict[str, Any]) -> list[list[Any]]:
    return [[c, revision["before"][c], revision["after"][c]] for c in revision["changed"]]


def plain(value: Any) -> Any:
    """A reference value as a revision keeps it: exact decimal text, counts as integers."""
    return str(value) if isinstance(value, Decimal) else value


def reference_kpis(*batches: str) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The oracle's KPIs after ``batches`` (later rows win)."""
    state = None
    for batch in batches:
        files = {d: [BATCHES / batch / f"{d}.csv"] for d in DATASETS}
        state = reference.merge(state, reference.validate_batch(files))
    assert state is not None
    return reference.kpis(state.orders, state.items, state.products)


@pytest.mark.fast
def test_late_item_and_status_correction_are_recorded_once(workspace: Path) -> None:
    first = run_batch(workspace, "b1")
    assert first["revisions"]["dates_changed"] == 0, "a first batch revises nothing"
    second = run_batch(workspace, "b2")
    assert second["revisions"] == {
        "dates_changed": 1,
        "rows_changed": 2,
        "largest_revenue_change": {
            "date": D1,
            "before": "30.00",
            "after": "37.50",
            "delta": "+7.50",
        },
    }
    assert second["subject"].endswith(
        "1 past date revised, largest revenue change +7.50 on 2024-03-01"
    )
    revisions = history(workspace)
    assert [(r["execution_id"], r["category"]) for r in revisions] == [
        (second["execution_id"], None),
        (second["execution_id"], "Tops"),
    ]
    assert [changes(r) for r in revisions] == [ORDER_CHANGES, TOPS_CHANGES]
    # The oracle agrees: its KPIs after b1 and after b1 + b2, on the revised columns.
    (orders_before, cats_before), (orders_after, cats_after) = (
        reference_kpis(*b) for b in (["b1"], ["b1", "b2"])
    )
    day = date.fromisoformat(D1)
    for revision, was, now in (
        (revisions[0], orders_before[day], orders_after[day]),
        (revisions[1], cats_before[("Tops", day)], cats_after[("Tops", day)]),
    ):
        assert changes(revision) == [
            [c, plain(was[c]), plain(now[c])] for c in was if was[c] != now[c]
        ]
    assert history(workspace, "--category", "Tops") == revisions[1:]
    assert history(workspace, "--category", "Jeans") == []

    # The same files again: nothing changes, nothing is recorded.
    third = run_batch(workspace, "b2")
    assert third["revisions"]["dates_changed"] == 0
    assert "revised" not in third["subject"]
    assert history(workspace) == revisions


@pytest.mark.fast
def test_history_prints_each_changed_column(workspace: Path) -> None:
    run_batch(workspace, "b1")
    second = run_batch(workspace, "b2")
    shown = ecompipe("metrics", "history", "--date", D1, workspace=workspace)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert len(lines) == 2 and all(second["execution_id"] in line for line in lines)
    assert "order_metrics  total_revenue: 30.00 -> 37.50, total_items_sold: 2 -> 3" in lines[0]
    assert "category Tops  daily_revenue: 20.00 -> 27.50" in lines[1]
    quiet = ecompipe("metrics", "history", "--date", "2024-03-02", workspace=workspace)
    assert quiet.stdout.strip() == "no revisions of 2024-03-02"
    # `metrics` itself is as it was.
    table = ecompipe("metrics", "--json", "--category", "Tops", workspace=workspace)
    assert [m["daily_revenue"] for m in json.loads(table.stdout)["category_metrics"]] == [27.5]


@pytest.mark.fast
def test_a_recompute_records_what_it_restates_under_its_own_id(workspace: Path) -> None:
    """A row restored from an old backup (D1's revenue 1.00): recompute puts back 30.00 and
    records that under a recompute id; a second recompute changes and records nothing."""
    import sqlite3

    run_batch(workspace, "b1")
    con = sqlite3.connect(workspace / "ecompipe.db")
    with con:
        con.execute(
            "UPDATE order_metrics_table SET total_revenue = '1.00' WHERE order_date = ?", (D1,)
        )
    con.close()
    result = ecompipe("recompute", "--json", workspace=workspace)
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert done["revision_id"].startswith("recompute-")
    assert done["revisions"]["largest_revenue_change"] == {
        "date": D1,
        "before": "1.00",
        "after": "30.00",
        "delta": "+29.00",
    }
    revisions = history(workspace)
    assert [(r["execution_id"], changes(r)) for r in revisions] == [
        (done["revision_id"], [["total_revenue", "1.00", "30.00"]])
    ]
    again = json.loads(ecompipe("recompute", "--json", workspace=workspace).stdout)
    assert again["revisions"]["dates_changed"] == 0
    assert history(workspace) == revisions
