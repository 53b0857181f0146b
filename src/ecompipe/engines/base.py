"""The engine port: what the pipeline asks of DuckDB, Spark or any other engine."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from ecompipe import kpis
from ecompipe.contracts import DATASET_BY_NAME, DATASET_NAMES, DATASETS
from ecompipe.engines.current import (
    INCOMING,
    MANIFEST,
    STATE_DIR,
    CurrentState,
    StateUpdate,
    batch_file,
    read_manifest,
)
from ecompipe.errors import RESOURCE_ERRNOS, ResourceError, from_os_error
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
    #: The current state's new version, for the store to commit once the metrics are written.
    state: StateUpdate | None = None

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


def fresh_staging(staging: Path) -> None:
    """Create ``staging`` and remove what an interrupted validation of the same execution
    left there (staged Parquet, rejects CSV): a dataset the redo rejects must not publish
    the rows an earlier attempt staged."""
    staging.mkdir(parents=True, exist_ok=True)
    for dataset in DATASET_NAMES:
        staged_path(staging, dataset).unlink(missing_ok=True)
    (staging / "rejects.csv").unlink(missing_ok=True)


# An errno's text in the longest form first: ENFILE's "Too many open files in system" holds
# EMFILE's "Too many open files".
_RESOURCE_TEXTS = sorted(((os.strerror(e), e) for e in RESOURCE_ERRNOS), key=lambda t: -len(t[0]))


def resource_errno(text: str) -> int | None:
    """The resource errno (errors.RESOURCE_ERRNOS: ENOSPC, EDQUOT, EMFILE, ENFILE, ENOMEM)
    whose operating-system text (strerror, "No space left on device"...) ``text`` holds.

    An engine reports a failed system call in an error of its own, with the C library's
    text: DuckDB 'IO Error: Could not write file "...": No space left on device', Java
    'java.io.IOException: No space left on device'. Only these texts are matched.
    """
    for words, code in _RESOURCE_TEXTS:
        if words in text:
            return code
    return None


def resource_error_in(text: str, doing: str, path: str | None = None) -> ResourceError | None:
    """A ResourceError, with errors.from_os_error's advice, when ``text`` reports a resource
    errno (:func:`resource_errno`); ``path`` is the file the engine names, if any."""
    code = resource_errno(text)
    if code is None:
        return None
    found = from_os_error(OSError(code, os.strerror(code), path), doing)
    assert isinstance(found, ResourceError)  # every resource errno gives one
    return found


_BATCH_NAME = re.compile(r"([0-9]+)\.parquet")


#: A batch file's number from its name, as the regex each engine's SQL applies to file names.
BATCH_SEQ_SQL_PATTERN = r"([0-9]+)[.]parquet$"


def short_name(dataset: str) -> str:
    """The name kpis.py gives a dataset's relations: cur_orders, cur_items, cur_products."""
    return {"orders": "orders", "order_items": "items", "products": "products"}[dataset]


def column_list(dataset: str, alias: str = "") -> str:
    """The curated columns of ``dataset``, comma-separated (each as ``<alias>.<column>`` when
    ``alias`` is given), as every query over the log and the state selects them."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{c}" for c, _ in CURATED_SCHEMA[dataset])


def latest_sql(dataset: str, source: str) -> str:
    """The latest version (highest ``_seq``) of each key of ``dataset`` among the rows of the
    relation or subquery ``source``: its columns and ``_seq``."""
    cols = column_list(dataset)
    key = DATASET_BY_NAME[dataset].key
    return (
        f"SELECT {cols}, _seq FROM (SELECT {cols}, _seq, row_number() OVER (PARTITION BY "
        f"{key} ORDER BY _seq DESC) AS _rn FROM {source}) AS x WHERE _rn = 1"
    )


def merged_sql(dataset: str, state: str, batch: str) -> str:
    """The latest version of each key of ``dataset`` (columns and ``_seq``) among two
    relations that each hold a key once: the state's rows and a batch's. Two anti-joins give
    what ranking the union would (latest_sql) without sorting every row."""
    cols = column_list(dataset)
    key = DATASET_BY_NAME[dataset].key
    return (
        f"SELECT {cols}, _seq FROM {state} s WHERE NOT EXISTS (SELECT 1 FROM {batch} b "
        f"WHERE b.{key} = s.{key} AND b._seq >= s._seq) UNION ALL SELECT {cols}, _seq FROM "
        f"{batch} b WHERE NOT EXISTS (SELECT 1 FROM {state} s WHERE s.{key} = b.{key} AND "
        "s._seq > b._seq)"
    )


def version_views(dataset: str, batches: int, seq: int | None) -> dict[str, str]:
    """The relations the KPI SQL reads for ``dataset``, as SQL over ``all_<short>`` (every
    version of every row, with its batch number ``_seq``; the log holds ``batches`` files):

    ``cur_<short>`` the latest version of each key (with its ``_seq``), ``b_<short>`` the rows
    of batch ``seq``, ``prev_<short>`` the latest version of each key before that batch. With
    ``seq`` None (a recompute: no batch to compare) only ``cur_<short>``.
    """
    short = short_name(dataset)
    cols = column_list(dataset)
    views = {
        # One batch holds each key once (validation dedups), so no ranking is needed.
        f"cur_{short}": (
            f"SELECT {cols}, _seq FROM all_{short}"
            if batches <= 1
            else latest_sql(dataset, f"all_{short}")
        ),
    }
    if seq is not None:
        views[f"b_{short}"] = f"SELECT {cols} FROM all_{short} WHERE _seq = {seq}"
        views[f"prev_{short}"] = latest_sql(
            dataset, f"(SELECT * FROM all_{short} WHERE _seq < {seq}) AS v"
        )
    return views


def batch_dates_sql(curated: CuratedLog, seq: int) -> str:
    """The kpis.py query for the dates batch ``seq`` of ``curated`` can change."""
    # With no earlier batch there is nothing to compare with: every date is new.
    if not curated.has_batch_before(seq):
        return kpis.all_dates_sql()
    return kpis.affected_dates_sql()


def curated_path(curated: Path, dataset: str, seq: int) -> Path:
    """A batch's file in a curated log kept in the local folder ``curated``."""
    return curated / batch_file(dataset, seq)


@dataclass(frozen=True)
class CuratedLog:
    """The curated log as an engine reads it: where it is and which batch files it holds.

    ``root`` is a local folder or, for an engine whose workers are other machines, a URI they
    all read (``s3a://bucket/_ecompipe/curated``); ``batches`` has each dataset's batch
    numbers, oldest first. ``state`` is the committed current state (engines/current.py,
    under ``root``/current), if any; ``outbox`` a local folder where a transform writes the
    state's new files for the store to commit (None: the transform writes no state).
    """

    root: str
    batches: Mapping[str, tuple[int, ...]]
    state: CurrentState | None = None
    outbox: str | None = None

    @classmethod
    def listed(
        cls,
        root: str,
        names: Iterable[str],
        state: CurrentState | None = None,
        outbox: str | None = None,
    ) -> CuratedLog:
        """The log at ``root`` holding ``names`` (``<dataset>/<seq>.parquet`` relative to it);
        names of any other shape are not batch files and are left out. ``state``, ``outbox``:
        as the class says."""
        batches: dict[str, list[int]] = {ds: [] for ds in DATASET_NAMES}
        for name in names:
            dataset, _, file = name.partition("/")
            number = _BATCH_NAME.fullmatch(file)
            if dataset in batches and number:
                batches[dataset].append(int(number.group(1)))
        return cls(root, {ds: tuple(sorted(seqs)) for ds, seqs in batches.items()}, state, outbox)

    @classmethod
    def in_folder(cls, folder: Path) -> CuratedLog:
        """The log kept in a local folder, with its current state and an outbox beside it."""
        return cls.listed(
            str(folder),
            (f"{ds}/{p.name}" for ds in DATASET_NAMES for p in (folder / ds).glob("*.parquet")),
            read_manifest(folder / STATE_DIR),
            str(folder / STATE_DIR / INCOMING),
        )

    @property
    def is_uri(self) -> bool:
        """True when ``root`` is a URI (``s3a://...``), not a local folder."""
        return "://" in self.root

    def files(self, dataset: str, only: Iterable[int] | None = None) -> list[str]:
        """Every batch file of ``dataset`` (of the batches ``only``, when given), oldest
        first, as paths or URIs under ``root``."""
        wanted = None if only is None else set(only)
        return [
            f"{self.root.rstrip('/')}/{batch_file(dataset, seq)}"
            for seq in self.batches.get(dataset, ())
            if wanted is None or seq in wanted
        ]

    def state_files(self, dataset: str, partitions: Iterable[str] | None = None) -> list[str]:
        """The state's files of ``dataset`` (of ``partitions`` only, when given), as paths or
        URIs under ``root``; none without a state."""
        if self.state is None:
            return []
        base = f"{self.root.rstrip('/')}/{STATE_DIR}"
        return [f"{base}/{name}" for name in self.state.files(dataset, partitions)]

    @property
    def log_batches(self) -> set[int]:
        """Every batch number the log holds, whatever its datasets."""
        return {s for seqs in self.batches.values() for s in seqs}

    def summary(self) -> dict[str, Any]:
        """What ``ecompipe curated`` shows: where the current state is, which batches it
        holds, and per dataset its rows, partitions and files (from the manifest: nothing is
        read) and the log's batch numbers. ``state`` is None before the first run that
        builds it; ``lags`` lists the log's batches it has not folded yet."""
        base = f"{self.root.rstrip('/')}/{STATE_DIR}"
        state = self.state
        datasets: dict[str, Any] = {}
        for ds in DATASET_NAMES:
            parts = state.parts.get(ds, {}) if state else {}
            datasets[ds] = {
                "path": f"{base}/{ds}",
                "rows": state.rows(ds) if state else None,
                "partitions": {k: p.rows for k, p in sorted(parts.items())},
                "files": [f"{base}/{f}" for f in state.files(ds)] if state else [],
                "log_batches": list(self.batches.get(ds, ())),
            }
        return {
            "root": self.root,
            "state": None
            if state is None
            else {
                "path": base,
                "manifest": f"{base}/{MANIFEST}",
                "batches": list(state.batches),
                "lags": sorted(self.log_batches - set(state.batches)),
                "stale": not set(state.batches) <= self.log_batches,
                "last_fold": {"batches": list(state.last_batches), "dates": len(state.last_dates)},
            },
            "log_batches": sorted(self.log_batches),
            "datasets": datasets,
        }

    @property
    def empty(self) -> bool:
        """True when no dataset holds a batch: no run has published anything yet."""
        return not any(self.batches.values())

    def has_batch_before(self, seq: int) -> bool:
        """Whether any dataset holds a batch older than ``seq`` (else every date is new)."""
        return any(s < seq for seqs in self.batches.values() for s in seqs)


class Engine(Protocol):
    """Validation and KPI computation; no knowledge of buckets, locks or metric stores."""

    name: str
    #: True when the engine's workers are other machines (Spark on a cluster): it then reads
    #: the curated log at a URI rather than from a local copy.
    reads_uris: bool

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

    def transform(self, curated: CuratedLog, seq: int) -> TransformResult:
        """Recompute KPIs for every date batch ``seq`` of the curated log can change."""
        ...

    def recompute(
        self, curated: CuratedLog, date_from: date | None, date_to: date | None
    ) -> TransformResult:
        """KPIs of every order date in [date_from, date_to] (None: open on that side) over
        the current state of the curated log; ``affected_dates`` lists those dates."""
        ...

    def close(self) -> None:
        """Release the engine's resources."""
        ...
