"""KPI revisions: the before and after values of metric rows that a write changed on dates
that already had metrics (late items, status corrections, re-categorised products).

Pure rules over the KPI rows; each MetricsStore adapter records what :func:`revise` gives in
the same atomic (or idempotent) write as the metrics themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ecompipe.contracts import MONEY_OUTPUT_SCALE
from ecompipe.kpis import CATEGORY_TABLE, ORDER_TABLE, CategoryMetrics, MetricTable, OrderMetrics

#: A row's metric columns as a store keeps them (exact decimal text, counts as integers).
Values = dict[str, int | str]


@dataclass(frozen=True)
class Revision:
    """One metric row that a write changed on a date that already had metrics.

    ``category`` None: the date's order_metrics row; else its category_metrics row.
    ``before`` None: the row appeared; ``after`` None: it went (its date or category has no
    data now).
    """

    execution_id: str
    at: float
    order_date: date
    category: str | None
    before: Values | None
    after: Values | None

    @property
    def table(self) -> MetricTable[Any]:
        """The metrics table the row is in."""
        return ORDER_TABLE if self.category is None else CATEGORY_TABLE

    def changes(self) -> list[tuple[str, int | str | None, int | str | None]]:
        """(column, before, after) of each metric column whose value changed."""
        before, after = self.before or {}, self.after or {}
        return [
            (name, before.get(name), after.get(name))
            for name, _kind in self.table.metrics
            if before.get(name) != after.get(name)
        ]

    def as_dict(self) -> dict[str, Any]:
        """The revision as ``metrics history --json`` gives it."""
        return {
            "execution_id": self.execution_id,
            "at": self.at,
            "order_date": self.order_date.isoformat(),
            "table": "order_metrics" if self.category is None else "category_metrics",
            "category": self.category,
            "before": self.before,
            "after": self.after,
            "changed": [name for name, _b, _a in self.changes()],
        }


@dataclass(frozen=True)
class RevisionSummary:
    """What one execution revised: how many past dates, how many rows, and the largest
    change of a date's total revenue (None: no date's revenue changed)."""

    dates_changed: int = 0
    rows_changed: int = 0
    largest_revenue_change: dict[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The summary as the execution summary and the notification carry it."""
        return {
            "dates_changed": self.dates_changed,
            "rows_changed": self.rows_changed,
            "largest_revenue_change": self.largest_revenue_change,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RevisionSummary:
        """The summary ``as_dict`` gave."""
        return cls(data["dates_changed"], data["rows_changed"], data["largest_revenue_change"])


#: A row as a store keeps it, in its table's column order (MetricTable.stored_values).
Stored = tuple[int | str, ...]


def revise(
    execution_id: str,
    at: float,
    before: tuple[Iterable[Stored], Iterable[Stored]],
    after: tuple[Sequence[OrderMetrics], Sequence[CategoryMetrics]],
) -> list[Revision]:
    """The revisions of replacing the rows ``before`` (the order and category rows a store
    held on the dates being replaced, as it keeps them) with the rows ``after``: every row
    that differs, on dates that had an order row before. A new date is no revision; a
    category row appearing or going on a past date is.

    Rows are compared as the stored tuples (one C-speed comparison each); only rows that
    differ become Revisions: a recompute that changes nothing costs a read and a compare.
    """
    old_orders = _by_key(ORDER_TABLE, before[0])
    past = {day for (day,) in old_orders}
    new_orders = _by_key(ORDER_TABLE, map(ORDER_TABLE.stored_values, after[0]))
    old_cats = _by_key(CATEGORY_TABLE, before[1], past)
    new_cats = _by_key(CATEGORY_TABLE, map(CATEGORY_TABLE.stored_values, after[1]), past)
    revisions = []
    for table, old, new in (
        (ORDER_TABLE, old_orders, new_orders),
        (CATEGORY_TABLE, old_cats, new_cats),
    ):
        keys = old.keys() if table is ORDER_TABLE else old.keys() | new.keys()
        for key in sorted(k for k in keys if old.get(k) != new.get(k)):
            day, category = (key[0], None) if table is ORDER_TABLE else (key[1], str(key[0]))
            revisions.append(
                Revision(
                    execution_id,
                    at,
                    date.fromisoformat(str(day)),
                    category,
                    _metric_values(table, old.get(key)),
                    _metric_values(table, new.get(key)),
                )
            )
    return revisions


def _by_key(
    table: MetricTable[Any], rows: Iterable[Stored], dates: set[int | str] | None = None
) -> dict[Stored, Stored]:
    """Stored rows by their key columns (those on ``dates`` only, when given)."""
    n = len(table.keys)
    day = [name for name, _kind in table.keys].index("order_date")
    return {r[:n]: r for r in rows if dates is None or r[day] in dates}


def _metric_values(table: MetricTable[Any], row: Stored | None) -> Values | None:
    if row is None:
        return None
    names = [name for name, _kind in table.metrics]
    return dict(zip(names, row[len(table.keys) :], strict=True))


_ZERO = Decimal(0).scaleb(-MONEY_OUTPUT_SCALE)


def _revenue(values: Values | None) -> Decimal:
    # A date without an order row has no revenue: zero, for the change.
    return Decimal(str(values["total_revenue"])) if values else _ZERO


def summarize(revisions: Iterable[Revision]) -> RevisionSummary:
    """The summary of one execution's revisions."""
    revisions = list(revisions)
    largest: Revision | None = None
    largest_delta = Decimal(0)
    for r in sorted(revisions, key=lambda r: r.order_date):
        if r.category is None:
            delta = _revenue(r.after) - _revenue(r.before)
            if abs(delta) > abs(largest_delta):
                largest, largest_delta = r, delta
    change = None
    if largest is not None:
        change = {
            "date": largest.order_date.isoformat(),
            "before": str(_revenue(largest.before)),
            "after": str(_revenue(largest.after)),
            "delta": f"{largest_delta:+}",
        }
    return RevisionSummary(len({r.order_date for r in revisions}), len(revisions), change)


def history_order(revisions: Iterable[Revision]) -> list[Revision]:
    """Revisions oldest first; within one write, the order row before its categories."""
    return sorted(
        revisions, key=lambda r: (r.at, r.execution_id, r.category is not None, r.category or "")
    )
