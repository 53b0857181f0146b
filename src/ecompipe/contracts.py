"""The data contracts: datasets, their key, required columns and column types.

Pure data, no I/O. Validation (every engine) and the KPI SQL read these definitions, so a rule
lives here once. See DESIGN.md "Data contracts".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ColumnType(Enum):
    """The value types a contract column can have."""

    INT = "int"
    TEXT = "text"
    TIMESTAMP = "timestamp"
    MONEY = "money"


@dataclass(frozen=True)
class Column:
    """One required column of a dataset."""

    name: str
    type: ColumnType


@dataclass(frozen=True)
class Dataset:
    """A dataset: the landing prefix it arrives under, its key and its required columns."""

    name: str
    key: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        """Required column names in contract order."""
        return tuple(c.name for c in self.columns)


ORDERS = Dataset(
    "orders",
    "order_id",
    (
        Column("order_id", ColumnType.INT),
        Column("user_id", ColumnType.INT),
        Column("created_at", ColumnType.TIMESTAMP),
        Column("status", ColumnType.TEXT),
    ),
)
ORDER_ITEMS = Dataset(
    "order_items",
    "id",
    (
        Column("id", ColumnType.INT),
        Column("order_id", ColumnType.INT),
        Column("product_id", ColumnType.INT),
        Column("sale_price", ColumnType.MONEY),
    ),
)
PRODUCTS = Dataset(
    "products",
    "id",
    (
        Column("id", ColumnType.INT),
        Column("sku", ColumnType.TEXT),
        Column("cost", ColumnType.MONEY),
        Column("category", ColumnType.TEXT),
        Column("retail_price", ColumnType.MONEY),
    ),
)

#: Datasets in processing order (the order files are listed and reported in).
DATASETS: tuple[Dataset, ...] = (ORDERS, ORDER_ITEMS, PRODUCTS)
DATASET_BY_NAME: dict[str, Dataset] = {d.name: d for d in DATASETS}
DATASET_NAMES = tuple(d.name for d in DATASETS)

#: Statuses we know; others are accepted with a warning. Compared lowercased.
KNOWN_STATUSES = ("processing", "shipped", "delivered", "complete", "cancelled", "returned")
RETURNED_STATUS = "returned"

#: Money is DECIMAL(MONEY_PRECISION, MONEY_SCALE); more than MONEY_INT_DIGITS before the point
#: does not fit and is a bad value.
MONEY_PRECISION = 18
MONEY_SCALE = 6
MONEY_INT_DIGITS = MONEY_PRECISION - MONEY_SCALE

#: Output rounding (half-up, at output only).
MONEY_OUTPUT_SCALE = 2
RATE_OUTPUT_SCALE = 4


class Reason:
    """Row-level reason codes written to the rejects CSV and the report."""

    MISSING_VALUE = "missing_value"
    BAD_INT = "bad_int"
    BAD_DECIMAL = "bad_decimal"
    NEGATIVE = "negative"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_ROW_SHAPE = "bad_row_shape"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"


class FileReason:
    """Why a whole file was quarantined."""

    UNREADABLE = "unreadable"
    MISSING_COLUMN = "missing_column"
    NO_ROWS = "no_rows"
    ERROR_RATE = "error_rate"
    NOT_A_FILE = "not_a_file"
    NOT_CSV = "not_csv"
    #: The object's key must not become a local path (trigger.key_problem): never read.
    UNSAFE_KEY = "unsafe_key"
