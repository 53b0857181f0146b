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


def _revised(metrics: Any, day: date, category: str | None = None) -> list[Any]:
    """(execution, row, changes) of each revision of ``day``, in the order read."""
    return [(r.execution_id, r.category, r.changes()) for r in metrics.revisions(day, category)]


def test_revisions_record_each_changed_row_of_past_dates_once(adapter: Adapter) -> None:
    """Hand-computed: D1's revenue 65.11 -> 70.00, Jeans on D1 49.86 -> 55.00, Tops gone
    from D1, Shoes new on D2; D2's order row unchanged, D3 new: no revision."""
    metrics = adapter.ports().metrics()
    first = metrics.replace_dates(
        [D1, D2],
        [order(D1), order(D2)],
        [category("Jeans", D1), category("Tops", D1)],
        revision_of="e1",
    )
    assert first.as_dict() == {
        "dates_changed": 0,
        "rows_changed": 0,
        "largest_revenue_change": None,
    }, "new dates are no revision"
    late = (
        [D1, D2, D3],
        [order(D1, revenue="70.00"), order(D2), order(D3)],
        [category("Jeans", D1, "55.00"), category("Shoes", D2)],
    )
    expected = {
        "dates_changed": 2,
        "rows_changed": 4,
        "largest_revenue_change": {
            "date": "2024-03-01",
            "before": "65.11",
            "after": "70.00",
            "delta": "+4.89",
        },
    }
    assert metrics.replace_dates(*late, revision_of="e2").as_dict() == expected
    # The same write again under the same id (a retried transform): recorded once, and the
    # summary is still the whole of what e2 revised.
    assert adapter.ports().metrics().replace_dates(*late, revision_of="e2").as_dict() == expected
    # The same rows again under a new id (a re-delivered identical file): nothing.
    assert metrics.replace_dates(*late, revision_of="e3").dates_changed == 0
    rate, avg = "0.5000", "24.93"
    assert _revised(metrics, D1) == [
        ("e2", None, [("total_revenue", "65.11", "70.00")]),
        ("e2", "Jeans", [("daily_revenue", "49.86", "55.00")]),
        (
            "e2",
            "Tops",
            [
                ("daily_revenue", "49.86", None),
                ("avg_order_value", avg, None),
                ("avg_return_rate", rate, None),
            ],
        ),
    ]
    assert _revised(metrics, D2) == [
        (
            "e2",
            "Shoes",
            [
                ("daily_revenue", None, "49.86"),
                ("avg_order_value", None, avg),
                ("avg_return_rate", None, rate),
            ],
        )
    ]
    assert _revised(metrics, D1, "Jeans") == [
        ("e2", "Jeans", [("daily_revenue", "49.86", "55.00")])
    ]
    assert _revised(metrics, D3) == [] and _revised(metrics, D1, "Shoes") == []
    assert metrics.order_metrics() == late[1], "the metrics themselves are replaced as ever"


def test_revisions_oldest_first_and_a_write_without_an_id_records_nothing(
    adapter: Adapter,
) -> None:
    metrics = adapter.ports().metrics()
    metrics.replace_dates([D1], [order(D1)], [])
    assert metrics.replace_dates([D1], [order(D1, orders=4)], []).rows_changed == 0
    assert metrics.revisions(D1) == []
    metrics.replace_dates([D1], [order(D1, orders=5)], [], revision_of="b")
    metrics.replace_dates([D1], [], [], revision_of="a")  # D1 has no orders now
    history = metrics.revisions(D1)
    # Oldest first, not by id: "a" came after "b".
    assert [(r.execution_id, r.after is None) for r in history] == [("b", False), ("a", True)]
    assert [r.changes()[0] for r in history] == [
        ("total_orders", 4, 5),
        ("total_orders", 5, None),
    ]
    summary = metrics.replace_dates([D1], [], [], revision_of="a")
    assert summary.largest_revenue_change == {
        "date": "2024-03-01",
        "before": "65.11",
        "after": "0.00",
        "delta": "-65.11",
    }, "a date whose order row went: its revenue went to zero"
