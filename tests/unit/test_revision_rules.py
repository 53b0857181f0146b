"""The revision rules on hand-made rows: what counts as a revision, the summary, and the
words the notification's subject gets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

pytestmark = [pytest.mark.fast]

D1, D2, D3 = (date(2024, 3, day) for day in (1, 2, 3))


def _order(day: date, revenue: str) -> object:
    from ecompipe.kpis import OrderMetrics

    return OrderMetrics(day, 2, Decimal(revenue), 3, Decimal("0.5000"), 2)


def _category(name: str, day: date, revenue: str) -> object:
    from ecompipe.kpis import CategoryMetrics

    return CategoryMetrics(name, day, Decimal(revenue), Decimal(revenue), Decimal("0.0000"))


def _stored(rows: list[object]) -> list[tuple[int | str, ...]]:
    """Rows as a store hands them to revise: their stored values."""
    from ecompipe.kpis import CATEGORY_TABLE, ORDER_TABLE, OrderMetrics

    return [
        (ORDER_TABLE if isinstance(r, OrderMetrics) else CATEGORY_TABLE).stored_values(r)  # type: ignore[arg-type]
        for r in rows
    ]


def test_largest_revenue_change_is_the_largest_in_size_with_its_sign() -> None:
    from ecompipe.pipeline.messages import revised
    from ecompipe.revisions import revise, summarize

    before = (_stored([_order(D1, "10.00"), _order(D2, "50.00")]), [])
    after = ([_order(D1, "14.00"), _order(D2, "37.50"), _order(D3, "99.00")], [])
    found = revise("e", 0.0, before, after)  # type: ignore[arg-type]
    assert [(r.order_date, r.category) for r in found] == [(D1, None), (D2, None)]
    summary = summarize(found)
    assert summary.as_dict() == {
        "dates_changed": 2,
        "rows_changed": 2,
        "largest_revenue_change": {
            "date": "2024-03-02",
            "before": "50.00",
            "after": "37.50",
            "delta": "-12.50",
        },
    }
    assert revised({"revisions": summary.as_dict()}) == (
        ", 2 past dates revised, largest revenue change -12.50 on 2024-03-02"
    )


def test_a_re_categorised_product_revises_category_rows_only() -> None:
    from ecompipe.pipeline.messages import revised
    from ecompipe.revisions import revise, summarize

    rows = [_order(D1, "10.00")]
    before = (_stored(rows), _stored([_category("Jeans", D1, "10.00")]))
    after = (rows, [_category("Tops", D1, "10.00")])
    found = revise("e", 0.0, before, after)  # type: ignore[arg-type]
    assert [(r.category, r.before is None, r.after is None) for r in found] == [
        ("Jeans", False, True),
        ("Tops", True, False),
    ]
    summary = summarize(found)
    assert (summary.dates_changed, summary.largest_revenue_change) == (1, None)
    assert revised({"revisions": summary.as_dict()}) == ", 1 past date revised (revenue unchanged)"
    assert revised({}) == "" and revised({"revisions": summarize([]).as_dict()}) == ""
