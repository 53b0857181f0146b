"""Complete-set detection, shared by ``ecompipe run``/``watch`` and the Lambda aggregator."""

from __future__ import annotations

from collections.abc import Iterable

from ecompipe.config import Settings

DATASET_NAMES = ("orders", "order_items", "products")


#: Endings writers give a file while they write it (then rename it into place).
WRITER_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


def is_in_progress(key: str) -> bool:
    """A name writers use while writing: hidden (``.x.csv``, rsync's temporary names), an
    office lock file (``~$x.csv``), or a partial download (``x.csv.part``, ...). Such an
    entry is never a candidate, neither data nor an entry to quarantine."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith((".", "~")) or name.lower().endswith(WRITER_SUFFIXES)


def is_csv_key(key: str) -> bool:
    """A data file: ``.csv`` in any case, not a name writers use while writing."""
    return key.lower().endswith(".csv") and not is_in_progress(key)


def missing_datasets(keys: Iterable[str], settings: Settings) -> list[str]:
    """Datasets that have no CSV among ``keys`` (empty list: the set is complete)."""
    present = {settings.dataset_of_key(k) for k in keys if is_csv_key(k)}
    return [d for d in DATASET_NAMES if d not in present]
