"""The MetricsStore contract (stores/base.py), on every adapter: order_metrics_table and
category_metrics_table, replaced a set of dates at a time, money and rates exact."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from tests.contract.conftest import Adapter

D1, D2, D3, D4 = (date(2024, 3, day) for day in (1, 2, 3, 4))


def order(day: date, orders: int = 3, revenue: str = "65.11", rate: str = "0.3333") -> Any:
    from ecompipe.kpis import OrderMetrics

    return OrderMetrics(day, orders, Decimal(revenue), orders + 2, Decimal(rate), orders - 1)


def category(
    name: str, day: date, revenue: str = "49.86", rate: str = "0.5000", average: str = "24.93"
) -> Any:
    from ecompipe.kpis import CategoryMetrics

    return CategoryMetrics(name, day, Decimal(revenue), Decimal(average), Decimal(rate))


def test_replace_dates_makes_the_dates_hold_exactly_the_rows(adapter: Adapter) -> None:
    metrics = adapter.ports().metrics()
    metrics.replace_dates(
        [D1, D2, D3],
        [order(D1), order(D2), order(D3)],
        [category("Jeans", D1), category("Tops", D1), category("Jeans", D2), category("Tops", D3)],
    )
    # D2 changes (a new order count, Jeans gone, Shoes new); D3 has no rows any more.
    metrics.replace_dates([D2, D3], [order(D2, orders=7)], [category("Shoes", D2, "1.00")])
    assert metrics.order_metrics() == [order(D1), order(D2, orders=7)]
    assert metrics.category_metrics() == [
        category("Jeans", D1),
        category("Tops", D1),
        category("Shoes", D2, "1.00"),
    ]


def test_replace_dates_without_rows_deletes_those_dates_only(adapter: Adapter) -> None:
    metrics = adapter.ports().metrics()
    metrics.replace_dates([D1, D2], [order(D1), order(D2)], [category("Tops", D1)])
    metrics.replace_dates([D1], [], [])
    assert metrics.order_metrics() == [order(D2)]
    assert metrics.category_metrics() == []


def test_reads_filter_by_range_and_category_in_order(adapter: Adapter) -> None:
    metrics = adapter.ports().metrics()
    days = [D4, D2, D1, D3]  # given out of order: the reads sort
    metrics.replace_dates(
        days,
        [order(d) for d in days],
        [category(name, d) for d in days for name in ("Tops", "Jeans")],
    )
    assert [m.order_date for m in metrics.order_metrics()] == [D1, D2, D3, D4]
    assert [m.order_date for m in metrics.order_metrics(D2, D3)] == [D2, D3], "inclusive"
    assert [m.order_date for m in metrics.order_metrics(None, D2)] == [D1, D2]
    assert [m.order_date for m in metrics.order_metrics(D3)] == [D3, D4]
    assert [(m.category, m.order_date) for m in metrics.category_metrics(D2, D3)] == [
        ("Jeans", D2),
        ("Tops", D2),
        ("Jeans", D3),
        ("Tops", D3),
    ]
    tops = metrics.category_metrics(D3, None, category="Tops")
    assert [(m.category, m.order_date) for m in tops] == [("Tops", D3), ("Tops", D4)]
    assert metrics.category_metrics(category="Shoes") == []


def test_money_and_rates_round_trip_exactly(adapter: Adapter) -> None:
    """Money with 2 decimals, rates with 4, as written: never a binary float."""
    metrics = adapter.ports().metrics()
    orders = [
        order(D1, revenue="123456789012.34", rate="0.3333"),
        order(D2, revenue="0.10", rate="1.0000"),
        order(D3, revenue="0.00", rate="0.0000"),
    ]
    cats = [
        category("Tops", D1, "59.99", "0.6667", "19.99"),
        category("Jeans", D1, "0.05", "0.0001", "0.05"),
    ]
    metrics.replace_dates([D1, D2, D3], orders, cats)
    got = metrics.order_metrics()
    assert got == orders
    assert [(str(m.total_revenue), str(m.return_rate)) for m in got] == [
        ("123456789012.34", "0.3333"),
        ("0.10", "1.0000"),
        ("0.00", "0.0000"),
    ]
    got_cats = metrics.category_metrics()
    assert got_cats == sorted(cats, key=lambda m: m.category)
    assert [
        (str(m.daily_revenue), str(m.avg_order_value), str(m.avg_return_rate)) for m in got_cats
    ] == [
        ("0.05", "0.05", "0.0001"),
        ("59.99", "19.99", "0.6667"),
    ]


def test_handles_share_the_tables(adapter: Adapter) -> None:
    adapter.ports().metrics().replace_dates([D1], [order(D1)], [category("Tops", D1)])
    again = adapter.ports().metrics()
    assert again.order_metrics() == [order(D1)]
    assert again.category_metrics() == [category("Tops", D1)]
