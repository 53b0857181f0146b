"""Complete-set detection, shared by ``ecompipe run``/``watch`` and the Lambda aggregator."""

from __future__ import annotations

from collections.abc import Iterable

from ecompipe.config import Settings

DATASET_NAMES = ("orders", "order_items", "products")


def is_csv_key(key: str) -> bool:
    """A data file: ``.csv`` in any case, not hidden."""
    name = key.rsplit("/", 1)[-1]
    return name.lower().endswith(".csv") and not name.startswith(".")


def missing_datasets(keys: Iterable[str], settings: Settings) -> list[str]:
    """Datasets that have no CSV among ``keys`` (empty list: the set is complete)."""
    present = {settings.dataset_of_key(k) for k in keys if is_csv_key(k)}
    return [d for d in DATASET_NAMES if d not in present]
