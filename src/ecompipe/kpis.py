"""KPI definitions (DESIGN.md "KPIs"), written once as SQL against a dialect.

The SQL reads three relations holding the *current* curated state (``cur_orders``,
``cur_items``, ``cur_products``: one row per key, latest batch wins) and a relation
``affected_dates``. It returns money in cents and rates in units of 1e-4, already rounded
half-up with integer arithmetic, so no engine ever rounds a binary float; the Python side only
places the decimal point.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from enum import Enum
from functools import cached_property
from typing import Any, Generic, TypeVar

from ecompipe.contracts import MONEY_OUTPUT_SCALE, MONEY_SCALE, RATE_OUTPUT_SCALE, RETURNED_STATUS
from ecompipe.dialect import Dialect


@dataclass(frozen=True)
class OrderMetrics:
    """One row of order_metrics_table (columns: ORDER_TABLE)."""

    order_date: date
    total_orders: int
    total_revenue: Decimal
    total_items_sold: int
    return_rate: Decimal
    unique_customers: int


@dataclass(frozen=True)
class CategoryMetrics:
    """One row of category_metrics_table (columns: CATEGORY_TABLE)."""

    category: str
    order_date: date
    daily_revenue: Decimal
    avg_order_value: Decimal
    avg_return_rate: Decimal


class Kind(Enum):
    """What a metrics table's column holds, which says how it is stored and read back."""

    DATE = "date"
    TEXT = "text"
    COUNT = "count"
    #: Money, rounded half-up to MONEY_OUTPUT_SCALE decimals (the SQL gives cents).
    MONEY = "money"
    #: A rate, rounded half-up to RATE_OUTPUT_SCALE decimals (the SQL gives 1e-4 units).
    RATE = "rate"


#: Per kind, as expressions over a value ``{v}``: from the KPI SQL's output (money in cents,
#: rates in 1e-4 units), from what a store kept (or its text), and what a store keeps (dates
#: as ISO text, money and rates as exact decimal text: never a binary float).
_FROM_SQL = {
    Kind.DATE: "_as_date({v})",
    Kind.TEXT: "str({v})",
    Kind.COUNT: "int({v})",
    Kind.MONEY: f"Decimal(int({{v}})).scaleb(-{MONEY_OUTPUT_SCALE})",
    Kind.RATE: f"Decimal(int({{v}})).scaleb(-{RATE_OUTPUT_SCALE})",
}
_FROM_STORED = {
    **_FROM_SQL,
    Kind.MONEY: f"Decimal(str({{v}})).quantize(Decimal('1e-{MONEY_OUTPUT_SCALE}'))",
    Kind.RATE: f"Decimal(str({{v}})).quantize(Decimal('1e-{RATE_OUTPUT_SCALE}'))",
}
_STORED = {  # a row's texts and counts are already str and int
    Kind.DATE: "{v}.isoformat()",
    Kind.TEXT: "{v}",
    Kind.COUNT: "{v}",
    Kind.MONEY: "str({v})",
    Kind.RATE: "str({v})",
}

R = TypeVar("R", OrderMetrics, CategoryMetrics)


@dataclass(frozen=True)
class MetricTable(Generic[R]):
    """A metrics table as the KPI definitions give it: its key columns and metric columns
    (name, kind), in the order the KPI SQL returns them, and its row type. The stores
    derive their columns (SQLite) and attributes (DynamoDB) from it, so a new KPI is a new
    column here, in the SQL and in the row type, all in this module.

    Rows are converted tens of thousands at a time, so each conversion is compiled once per
    table into one plain function (as dataclasses compiles its __init__): generic per-value
    dispatch cost a 1M-item run 0.2 s.
    """

    keys: tuple[tuple[str, Kind], ...]
    metrics: tuple[tuple[str, Kind], ...]
    row: type[R]

    @property
    def columns(self) -> tuple[tuple[str, Kind], ...]:
        """Every column, keys first."""
        return self.keys + self.metrics

    def _compile(self, item: str, body: str, per_kind: dict[Kind, str]) -> Callable[[Any], Any]:
        """``lambda x: body``, where ``{values}`` in ``body`` is each column's expression for
        its kind applied to ``item`` (how to reach the column's value in ``x``: ``x[{i}]``,
        ``x[{name!r}]`` or ``x.{name}``). Only this module's names and kinds go into the
        source, never data."""
        values = ", ".join(
            per_kind[kind].format(v=item.format(i=i, name=name))
            for i, (name, kind) in enumerate(self.columns)
        )
        scope = {"Decimal": Decimal, "_as_date": _as_date, "Row": self.row}
        function: Callable[[Any], Any] = eval(f"lambda x: {body.format(values=values)}", scope)
        return function

    @cached_property
    def _from_sql(self) -> Callable[[Sequence[Any]], R]:
        return self._compile("x[{i}]", "Row({values})", _FROM_SQL)

    @cached_property
    def _from_stored(self) -> Callable[[Mapping[str, Any]], R]:
        return self._compile("x[{name!r}]", "Row({values})", _FROM_STORED)

    @cached_property
    def _stored_values(self) -> Callable[[R], tuple[int | str, ...]]:
        return self._compile("x.{name}", "({values},)", _STORED)

    def from_sql(self, values: Sequence[Any]) -> R:
        """A row from the KPI SQL's output (money in cents, rates in 1e-4 units)."""
        if len(values) != len(self.columns):
            raise ValueError(f"{len(values)} values for {len(self.columns)} columns")
        return self._from_sql(values)

    def from_stored(self, values: Mapping[str, Any]) -> R:
        """A row from the values a store kept (``stored``'s, or their text)."""
        return self._from_stored(values)

    def stored_values(self, row: R) -> tuple[int | str, ...]:
        """A row's values as a store keeps them, in column order: dates ISO text, counts
        integers, money and rates exact decimal text (never binary floats)."""
        return self._stored_values(row)

    def stored(self, row: R) -> dict[str, int | str]:
        """``stored_values`` by column name."""
        names = [name for name, _kind in self.columns]
        return dict(zip(names, self.stored_values(row), strict=True))


ORDER_TABLE = MetricTable(
    keys=(("order_date", Kind.DATE),),
    metrics=(
        ("total_orders", Kind.COUNT),
        ("total_revenue", Kind.MONEY),
        ("total_items_sold", Kind.COUNT),
        ("return_rate", Kind.RATE),
        ("unique_customers", Kind.COUNT),
    ),
    row=OrderMetrics,
)
CATEGORY_TABLE = MetricTable(
    keys=(("category", Kind.TEXT), ("order_date", Kind.DATE)),
    metrics=(
        ("daily_revenue", Kind.MONEY),
        ("avg_order_value", Kind.MONEY),
        ("avg_return_rate", Kind.RATE),
    ),
    row=CategoryMetrics,
)
for _table in (ORDER_TABLE, CATEGORY_TABLE):
    assert [f.name for f in fields(_table.row)] == [n for n, _k in _table.columns], _table.row


def _half_up_div(d: Dialect, numerator: str, denominator: str, scale: int) -> str:
    """round_half_up(numerator / denominator, scale) * 10**scale, for non-negative integers."""
    factor = 10**scale
    return d.int_div(f"({numerator}) * {2 * factor} + ({denominator})", f"2 * ({denominator})")


def _micro(d: Dialect, money_sum: str) -> str:
    return f"CAST({money_sum} * {10**MONEY_SCALE} AS {d.big_int})"


def order_metrics_sql(d: Dialect) -> str:
    """Order metrics for every affected date; money in cents, rate in 1e-4.

    Unique customers are counted in their own small aggregate and joined on the date: next to
    other aggregates, Spark plans ``count(DISTINCT ...)`` by copying every row once per
    aggregate group.
    """
    per_order = (
        "SELECT order_date, returned, sum(revenue) AS revenue, sum(n_items) AS n_items "
        "FROM per_order_cat GROUP BY order_id, order_date, returned"
    )
    customers = (
        "SELECT order_date, count(*) AS unique_customers FROM "
        "(SELECT DISTINCT order_date, user_id FROM per_order_cat) AS du GROUP BY order_date"
    )
    rev = _micro(d, "sum(revenue)")
    totals = (
        "SELECT order_date, count(*) AS total_orders, "
        f"{_cents(d, rev, '1')} AS total_revenue, "
        "sum(n_items) AS total_items_sold, "
        f"{_half_up_div(d, 'sum(returned)', 'count(*)', RATE_OUTPUT_SCALE)} AS return_rate "
        f"FROM ({per_order}) AS p GROUP BY order_date"
    )
    joined = (
        "SELECT t.*, c.unique_customers FROM "
        f"({totals}) AS t JOIN ({customers}) AS c ON c.order_date = t.order_date"
    )
    return f"SELECT {_column_list(ORDER_TABLE)} FROM ({joined}) AS m"


def _cents(d: Dialect, micro: str, count: str) -> str:
    # micro-units / count, rounded half-up to cents: micro / (count * 10**4), to 0 decimals.
    return _half_up_div(d, micro, f"({count}) * {10 ** (MONEY_SCALE - MONEY_OUTPUT_SCALE)}", 0)


def category_metrics_sql(d: Dialect) -> str:
    """Category metrics for every affected date; money in cents, rate in 1e-4."""
    rev = _micro(d, "sum(revenue)")
    grouped = (
        "SELECT category, order_date, "
        f"{_cents(d, rev, '1')} AS daily_revenue, "
        f"{_cents(d, rev, 'count(*)')} AS avg_order_value, "
        f"{_half_up_div(d, 'sum(returned)', 'count(*)', RATE_OUTPUT_SCALE)} "
        "AS avg_return_rate "
        "FROM per_order_cat WHERE category IS NOT NULL GROUP BY category, order_date"
    )
    return f"SELECT {_column_list(CATEGORY_TABLE)} FROM ({grouped}) AS m"


def _column_list(table: MetricTable[Any]) -> str:
    """The table's columns in its order: the SQL returns what ``from_sql`` reads."""
    return ", ".join(name for name, _kind in table.columns)


def kpi_relations() -> list[tuple[str, str]]:
    """Relations the engine materialises, in order, before the two metric queries.

    ``per_order_cat``: one row per (current order on an affected date, category) with the
    order's date, customer and returned flag, the revenue and the item count; category is NULL
    for items whose product has not arrived (they count in order metrics, not yet in category
    metrics). Both metric queries read only it, so the items are scanned and joined once.
    """
    aff_orders = (
        "SELECT order_id, user_id, CAST(created_at AS DATE) AS order_date, "
        f"CASE WHEN status = '{RETURNED_STATUS}' THEN 1 ELSE 0 END AS returned "
        "FROM cur_orders WHERE CAST(created_at AS DATE) IN (SELECT order_date FROM affected_dates)"
    )
    per_order_cat = (
        "SELECT o.order_id, o.order_date, o.user_id, o.returned, pr.category, "
        "sum(i.sale_price) AS revenue, count(*) AS n_items "
        f"FROM cur_items i JOIN ({aff_orders}) AS o ON i.order_id = o.order_id "
        "LEFT JOIN cur_products pr ON i.product_id = pr.id "
        "GROUP BY o.order_id, o.order_date, o.user_id, o.returned, pr.category"
    )
    return [("per_order_cat", per_order_cat)]


def all_dates_sql(date_from: date | None = None, date_to: date | None = None) -> str:
    """Every order date within [date_from, date_to] (None: open on that side): all of them
    are what the first batch (nothing earlier to compare with) affects; a range is what
    ``ecompipe recompute`` rebuilds."""
    day = "CAST(created_at AS DATE)"
    # ISO date literals, spelled the same in DuckDB and Spark SQL.
    bounds = [
        f"{day} {op} DATE '{bound.isoformat()}'"
        for op, bound in ((">=", date_from), ("<=", date_to))
        if bound is not None
    ]
    where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
    return f"SELECT DISTINCT {day} AS order_date FROM cur_orders{where}"


def affected_dates_sql(versions: str = "all_orders", items: str = "cur_items") -> str:
    """Dates whose metrics the batch in ``b_orders``/``b_items``/``b_products`` can change.

    ``prev_*`` hold the latest version of each key before the batch (only the batch's keys
    are looked up); ``versions`` versions of orders, at least the previous and the current
    one of every order the batch touches (``all_orders``: every version); ``items`` the
    current items. A row that is byte-for-byte the same as its previous version touches
    nothing, so a re-delivered file recomputes no date. For a changed order both its old and
    its new date are affected; for a changed item both its old and new order; for a product
    that is new or changed category, the orders of the items that reference it.
    """
    changed_orders = (
        "SELECT b.order_id FROM b_orders b LEFT JOIN prev_orders p ON b.order_id = p.order_id "
        "WHERE p.order_id IS NULL OR p.user_id <> b.user_id OR p.created_at <> b.created_at "
        "OR p.status <> b.status"
    )
    changed_items = (
        "SELECT b.order_id AS new_order, p.order_id AS old_order FROM b_items b "
        "LEFT JOIN prev_items p ON b.id = p.id WHERE p.id IS NULL OR p.order_id <> b.order_id "
        "OR p.product_id <> b.product_id OR p.sale_price <> b.sale_price"
    )
    touched = (
        f"SELECT order_id FROM ({changed_orders}) AS co "
        f"UNION SELECT new_order FROM ({changed_items}) AS ci "
        f"UNION SELECT old_order FROM ({changed_items}) AS ci2 WHERE old_order IS NOT NULL "
        f"UNION SELECT i.order_id FROM {items} i WHERE i.product_id IN "
        f"(SELECT id FROM ({changed_products_sql()}) AS cp)"
    )
    return (
        f"SELECT DISTINCT CAST(created_at AS DATE) AS order_date FROM {versions} "
        f"WHERE order_id IN ({touched})"
    )


def changed_products_sql() -> str:
    """Products of the batch that are new or changed category: the items that reference them
    may change category metrics on any date."""
    return (
        "SELECT b.id FROM b_products b LEFT JOIN prev_products p ON b.id = p.id "
        "WHERE p.id IS NULL OR p.category <> b.category"
    )


def waiting_sql(
    items: str = "cur_items",
    orders: str = "cur_orders",
    products: str = "cur_products",
    orphans: str | None = None,
) -> str:
    """Items waiting for their order, and items waiting for their product (category metrics),
    among ``items``; ``orphans`` (default ``items``) the items that may lack their order:
    where items are kept by their order's month, only those of no month."""
    return (
        f"SELECT (SELECT count(*) FROM {orphans or items} i WHERE NOT EXISTS "
        f"(SELECT 1 FROM {orders} o WHERE o.order_id = i.order_id)) AS waiting_for_order, "
        f"(SELECT count(*) FROM {items} i WHERE NOT EXISTS "
        f"(SELECT 1 FROM {products} p WHERE p.id = i.product_id)) AS waiting_for_product"
    )


def order_metrics_from_rows(rows: list[tuple[Any, ...]]) -> list[OrderMetrics]:
    """Typed rows from order_metrics_sql's output (cents and 1e-4 units)."""
    return [ORDER_TABLE.from_sql(r) for r in rows]


def category_metrics_from_rows(rows: list[tuple[Any, ...]]) -> list[CategoryMetrics]:
    """Typed rows from category_metrics_sql's output."""
    return [CATEGORY_TABLE.from_sql(r) for r in rows]


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
