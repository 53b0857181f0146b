"""The engine port: what the pipeline asks of DuckDB, Spark or any other engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from ecompipe.contracts import DATASETS
from ecompipe.kpis import CategoryMetrics, OrderMetrics
from ecompipe.validation import ValidationReport

#: Columns of the rejects CSV written to quarantine/<execution-id>/rejects.csv.
REJECTS_COLUMNS = ("file", "line", "column", "reason", "text")

#: Typed schema of staged and curated data (engines create empty relations from it).
CURATED_SCHEMA: dict[str, tuple[tuple[str, str], ...]] = {
    "orders": (
        ("order_id", "BIGINT"),
        ("user_id", "BIGINT"),
        ("created_at", "TIMESTAMP"),
        ("status", "VARCHAR"),
    ),
    "order_items": (
        ("id", "BIGINT"),
        ("order_id", "BIGINT"),
        ("product_id", "BIGINT"),
        ("sale_price", "DECIMAL(18, 6)"),
    ),
    "products": (
        ("id", "BIGINT"),
        ("sku", "VARCHAR"),
        ("cost", "DECIMAL(18, 6)"),
        ("category", "VARCHAR"),
        ("retail_price", "DECIMAL(18, 6)"),
    ),
}
assert set(CURATED_SCHEMA) == {d.name for d in DATASETS}


@dataclass(frozen=True)
class InputFile:
    """One manifest file as the engine sees it: its landing key and a local path to read."""

    key: str
    dataset: str
    path: Path


@dataclass
class TransformResult:
    """What a transform computed: metric rows for every affected date, and waiting counts."""

    affected_dates: list[date]
    order_metrics: list[OrderMetrics]
    category_metrics: list[CategoryMetrics]
    waiting_for_order: int = 0
    waiting_for_product: int = 0
    curated_rows: dict[str, int] = field(default_factory=dict)

    def headline(self) -> dict[str, object]:
        """A few numbers for notifications: totals over the recomputed dates."""
        revenue = sum((m.total_revenue for m in self.order_metrics), Decimal(0))
        return {
            "dates_recomputed": len(self.affected_dates),
            "orders": sum(m.total_orders for m in self.order_metrics),
            "revenue": str(revenue),
            "items_sold": sum(m.total_items_sold for m in self.order_metrics),
            "waiting_for_order": self.waiting_for_order,
            "waiting_for_product": self.waiting_for_product,
        }


def staged_path(staging: Path, dataset: str) -> Path:
    """Where validation leaves a dataset's accepted, typed rows for the transform."""
    return staging / f"{dataset}.parquet"


def curated_path(curated: Path, dataset: str, seq: int) -> Path:
    """A batch's file in the curated log; its name carries the batch sequence number."""
    return curated / dataset / f"{seq:012d}.parquet"


class Engine(Protocol):
    """Validation and KPI computation; no knowledge of buckets, locks or metric stores."""

    name: str

    def validate(
        self,
        execution_id: str,
        files: list[InputFile],
        staging: Path,
        max_error_rate: Decimal,
    ) -> ValidationReport:
        """Check every file against its contract.

        Writes ``staged_path(staging, dataset)`` for each dataset with accepted rows and
        ``staging/rejects.csv`` (REJECTS_COLUMNS) when any row was rejected; returns the report.
        """
        ...

    def transform(self, curated: Path, seq: int) -> TransformResult:
        """Recompute KPIs for every date batch ``seq`` of the curated log can change."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...
