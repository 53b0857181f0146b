"""SQLiteMetricsStore.replace_dates over many dates (deleted a few hundred per statement)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ecompipe.kpis import CategoryMetrics, OrderMetrics
from ecompipe.stores.local.sqlite import SQLiteMetricsStore, create_schema

pytestmark = [pytest.mark.fast, pytest.mark.local]

START = date(2020, 1, 1)


def _rows(days: list[date], n: int) -> tuple[list[OrderMetrics], list[CategoryMetrics]]:
    orders = [OrderMetrics(d, n, Decimal("1.50"), n, Decimal("0.2500"), n) for d in days]
    cats = [
        CategoryMetrics(c, d, Decimal(n), Decimal("0.75"), Decimal("0.0000"))
        for d in days
        for c in ("Jeans", "Tops")
    ]
    return orders, cats


def test_replace_dates_across_many_dates(tmp_path: Path) -> None:
    """1,200 dates written; 1,100 of them replaced (past the per-statement chunk twice), of
    which only every other one still has rows: exactly those, and the 100 untouched."""
    create_schema(tmp_path / "m.db", "orders_t", "cats_t")
    store = SQLiteMetricsStore(tmp_path / "m.db", "orders_t", "cats_t")
    days = [START + timedelta(days=i) for i in range(1200)]
    store.replace_dates(days, *_rows(days, 1))
    replaced, kept = days[:1100], days[1100:]
    store.replace_dates(replaced, *_rows(replaced[::2], 2))
    got = store.order_metrics()
    assert [(m.order_date, m.total_orders) for m in got] == [
        *((d, 2) for d in replaced[::2]),
        *((d, 1) for d in kept),
    ]
    cats = store.category_metrics()
    assert len(cats) == 2 * (len(replaced[::2]) + len(kept))
    assert {(c.order_date, c.daily_revenue) for c in cats} == {
        *((d, Decimal(2)) for d in replaced[::2]),
        *((d, Decimal(1)) for d in kept),
    }
    store.close()
