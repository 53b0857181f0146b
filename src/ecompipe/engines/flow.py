"""The one flow every engine runs; each engine gives only its primitives.

Validation: per dataset, the files in key order are framed and their headers located, then
read by the engine into one relation of checked rows (validation.py's SQL); the flow decides
each file's verdict, collects the rejected rows (wrong shape, bad values, conflicting keys),
drops exact repeats, stages the accepted rows as Parquet and counts everything the report
says. Rejected rows are mapped back to their lines once, by records.py. KPIs: the curated
log's version views, the dates to recompute, and kpis.py's relations and queries.

An engine (engines/duckdb.py, engines/spark.py) implements :class:`EngineFlow`'s abstract
primitives: frame and load a file, build the dataset's checked relation, register and drop
relations, run SQL and fetch rows, write Parquet, keep rejected rows where DuckDB reads them,
read the curated log, and say which of its errors are resources (``_guard``).
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from ecompipe import kpis, progress, validation
from ecompipe.contracts import (
    DATASET_BY_NAME,
    DATASET_NAMES,
    DATASETS,
    Dataset,
    FileReason,
    Reason,
)
from ecompipe.dialect import Dialect
from ecompipe.engines import records
from ecompipe.engines.base import (
    CuratedLog,
    InputFile,
    TransformResult,
    batch_dates_sql,
    column_list,
    fresh_staging,
    latest_sql,
    merged_sql,
    short_name,
    staged_path,
    version_views,
)
from ecompipe.engines.current import (
    BATCH_COLUMN,
    PARTITION,
    PARTITIONED,
    WAITING,
    CurrentState,
    Part,
    StateUpdate,
    dataset_parts,
    month_sql,
    new_file_name,
    usable,
)
from ecompipe.engines.framing import Framing
from ecompipe.engines.header import Located, locate_columns
from ecompipe.faults import fault_point
from ecompipe.validation import NO_STATS, FileReport, ValidationReport


@dataclass(frozen=True)
class FileRead:
    """One landed file as the flow hands it to the engine: its dataset, its index in the
    dataset's key-ordered files, whether each of its records is one physical line and whether
    one ends with a comma (framing.Framing)."""

    dataset: Dataset
    idx: int
    file: InputFile
    one_line: bool
    trailing_comma: bool

    @property
    def name(self) -> str:
        """A name for the file's relations, unique within a validation."""
        return f"{self.dataset.name}_{self.idx}"


@dataclass(frozen=True)
class Loading:
    """A file framed and its columns located, for the engine to read (``_load_all``), and
    the report that takes its verdict."""

    read: FileRead
    located: Located
    fr: FileReport


class EngineFlow(ABC):
    """Validation and KPIs for any engine (the Engine port of engines/base.py)."""

    dialect: Dialect
    #: What any other error of the engine while validating becomes (``_guard``): None lets
    #: it through, a text makes it an EngineError starting with that text.
    validation_failed: str | None = None
    #: The same while the curated log is read for the KPIs.
    log_failed: str | None = None
    #: Whether the engine reads a file of one-line records with a line reader that drops
    #: lines of only bytes up to a space (records.Source.drops_blank_lines).
    drops_blank_lines: bool = False
    #: A folder of the engine's own, removed on close.
    _scratch: Path

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    def _guard(self, doing: str, failed: str | None) -> AbstractContextManager[None]:
        """A context in which an error of the engine becomes a ResourceError when the machine
        ran short while ``doing``; else, with ``failed``, an EngineError ("<failed>: <the
        engine's first line>"); any other error passes unchanged."""

    @abstractmethod
    def _prepare(self, validating: bool) -> None:
        """Session settings for validation (rows numbered by their place in the file) or for
        the KPIs (no result depends on row order)."""

    @abstractmethod
    def _local(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB session that reads local files and kept rejects (records.py)."""

    @abstractmethod
    def _frame(self, path: Path) -> Framing:
        """framing.py's verdict on the file, as far as this engine's reader needs it."""

    @abstractmethod
    def _load(self, read: FileRead, located: Located, fr: FileReport) -> str | None:
        """Read a file whose header is ``located`` into a relation the engine names; on a
        file-level problem set ``fr``'s verdict and return None."""

    def _load_all(self, ds: Dataset, loads: list[Loading]) -> dict[int, str]:
        """Read a dataset's located files: the relation holding each readable file's rows,
        by file index; a file with a file-level problem gets its verdict and is left out.
        One ``_load`` a file; an engine that reads many files at once overrides this, and
        several files then share a relation (``_checked`` knows which)."""
        parts: dict[int, str] = {}
        for loading in loads:
            part = self._load(loading.read, loading.located, loading.fr)
            if part is not None:
                parts[loading.read.idx] = part
        return parts

    @abstractmethod
    def _checked(self, ds: Dataset, parts: dict[int, str]) -> tuple[str, str]:
        """Relations over the loaded files ``parts`` (``_load_all``): the checked rows
        (validation.checked_sql; ``_file_idx`` the file's index for a row of the header's
        width, any negative number for the engine's other records) and the records of the
        wrong shape (``_file_idx``, ``_row``; ``_row`` may be minus the record number of a
        record the engine could not split into values). Returns their names."""

    @abstractmethod
    def _register(self, name: str, sql: str, keep: bool = False) -> None:
        """Make ``sql`` the relation ``name``; ``keep``: it is read more than once, so worth
        computing once (a table or a cached view)."""

    @abstractmethod
    def _drop_all(self) -> None:
        """Drop every relation this engine registered."""

    @abstractmethod
    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a query and fetch its rows."""

    @abstractmethod
    def _write_parquet(self, sql: str, target: Path) -> None:
        """Write a query's rows to the single Parquet file ``target``."""

    @abstractmethod
    def _keep_rejects(self, name: str, sql: str, checked: str) -> str:
        """Keep the rejected rows of ``sql`` (``_file_idx``, ``_row`` as in ``checked``,
        ``column_name``, ``reason``) as a relation the local DuckDB session reads, ``_row``
        then a position (records.Source). Returns the relation."""

    @abstractmethod
    def _parquet(self, relation: str, dataset: str, files: list[str], log: bool = True) -> None:
        """Register ``relation``: the rows of the Parquet ``files`` (paths or URIs; none: no
        rows), ``dataset``'s columns and ``_seq``: the batch number in a log file's name
        (``log``), or a current-state file's ``_batch`` column."""

    @abstractmethod
    def _write_partitioned(self, sql: str, column: str, folder: Path) -> None:
        """Write a query's rows as Parquet under ``folder``, in one sub-folder
        ``<column>=<value>`` per value of ``column`` (which the files then leave out)."""

    def _count_records(self, read: FileRead, path: Path, width: int, lines_before: int) -> int:
        """Rows of a file that misses a column (header.locate_columns' ``count_rows``)."""
        return records.count_records(path)

    def _scalar(self, sql: str) -> int:
        value = self._rows(sql)[0][0]
        return int(value) if value is not None else 0

    # ------------------------------------------------------------------ validation

    def validate(
        self,
        execution_id: str,
        files: list[InputFile],
        staging: Path,
        max_error_rate: Decimal,
    ) -> ValidationReport:
        """Check every file; stage accepted rows as Parquet and rejected rows as CSV.

        Raises ResourceError, and gives no verdict, when the engine runs short of memory or
        disk (or, for Spark, loses an executor).
        """
        fresh_staging(staging)
        report = ValidationReport(execution_id, max_error_rate=str(max_error_rate))
        batch = _Batch(staging, max_error_rate, report, self._scratch / "copies")
        batch.copies.mkdir(exist_ok=True)
        self._prepare(validating=True)
        by_dataset = {
            ds.name: sorted((f for f in files if f.dataset == ds.name), key=lambda f: f.key)
            for ds in DATASETS
        }
        # The framing scans (numpy over each file's bytes: one core) run in a thread, in the
        # order the files are read: a dataset's scans run while the engine reads the dataset
        # before it (the first dataset's, orders, before the engine has anything to read).
        framer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecompipe-framing")
        try:
            with self._guard("starting the framing scans", self.validation_failed):
                batch.frames = {
                    (name, idx): framer.submit(self._frame, f.path)
                    for name, fs in by_dataset.items()
                    for idx, f in enumerate(fs)
                }
            for ds in DATASETS:
                with self._guard(f"validating {ds.name}", self.validation_failed):
                    self._validate_dataset(ds, by_dataset[ds.name], batch)
            if batch.rejected:
                with self._guard("writing the rejected rows", self.validation_failed):
                    target = staging / "rejects.csv"
                    records.write_rejects(self._local(), batch.rejects, batch.sources, target)
                report.rejects_file = "rejects.csv"
        finally:
            framer.shutdown(cancel_futures=True)
            shutil.rmtree(batch.copies, ignore_errors=True)
        return report

    def _validate_dataset(self, ds: Dataset, files: list[InputFile], batch: _Batch) -> None:
        file_reports: dict[int, FileReport] = {}
        loads: list[Loading] = []
        for idx, f in enumerate(files):
            progress.report(f"validate {ds.name}", idx, len(files), "files")
            fr = FileReport(key=f.key, dataset=ds.name, accepted=False)
            file_reports[idx] = fr
            loading = self._locate(ds, idx, f, fr, batch)
            if loading is not None:
                loads.append(loading)
        parts = self._load_all(ds, loads)
        progress.report(f"validate {ds.name}", len(files), len(files), "files")
        batch.report.files.extend(file_reports.values())
        if not parts:
            return  # every file has its verdict: none could be read
        checked, shape = self._checked(ds, parts)
        stats = validation.file_stats(self._rows(validation.file_stats_sql(ds, checked)))
        shape_sql = f"SELECT _file_idx, count(*) FROM {shape} GROUP BY _file_idx"
        shaped = {int(i): int(n) for i, n in self._rows(shape_sql)}
        accepted = _verdicts(file_reports, stats, shaped, batch.max_error_rate)
        if not accepted:
            self._drop_all()
            return
        for idx, fr in file_reports.items():
            fr.unknown_status = stats.get(idx, NO_STATS).unknown_status
        in_accepted = "(" + ", ".join(str(i) for i in accepted) + ")"
        rejects = []
        if any(shaped.get(i, 0) for i in accepted):
            rejects.append(
                f"SELECT _file_idx, _row, '' AS column_name, '{Reason.BAD_ROW_SHAPE}' AS reason "
                f"FROM {shape} WHERE _file_idx IN {in_accepted}"
            )
        if any(stats.get(i, NO_STATS).bad for i in accepted):
            rejects.append(
                f"SELECT * FROM ({validation.rejects_sql(ds, checked)}) AS r "
                f"WHERE _file_idx IN {in_accepted}"
            )
        good = f"good_{ds.name}"
        self._register(
            good, f"SELECT * FROM {checked} WHERE NOT _bad AND _file_idx IN {in_accepted}"
        )
        in_good = [stats.get(i, NO_STATS) for i in accepted]
        dups, removed, conflicts = self._duplicates(ds, good, in_good, file_reports)
        if dups is not None and conflicts:
            rejects.append(validation.conflicts_sql(ds, dups))
        batch.report.duplicates_dropped[ds.name] = sum(
            file_reports[i].duplicates_dropped for i in accepted
        )
        target = staged_path(batch.staging, ds.name)
        fault_point("staging", target)
        self._write_parquet(validation.accepted_sql(ds, good, dups), target)
        # accepted_sql keeps the good rows minus every non-first row of a repeated key.
        batch.report.accepted_rows[ds.name] = sum(s.rows - s.bad for s in in_good) - removed
        if rejects:
            kept = self._keep_rejects(f"rejects_{ds.name}", " UNION ALL ".join(rejects), checked)
            batch.rejects[ds.name] = kept
            per_file = self._local().execute(
                f"SELECT _file_idx, count(DISTINCT _row) FROM {kept} GROUP BY _file_idx"
            )
            for idx, n in per_file.fetchall():
                file_reports[int(idx)].rejected_rows = int(n)
                batch.rejected += int(n)
        self._drop_all()

    def _locate(
        self, ds: Dataset, idx: int, f: InputFile, fr: FileReport, batch: _Batch
    ) -> Loading | None:
        """Frame a file and locate its columns, for ``_load_all``; on a file-level problem
        set ``fr``'s verdict and return None."""
        framed = batch.frames[(ds.name, idx)].result()
        if framed.problem:
            fr.reason, fr.detail = FileReason.UNREADABLE, framed.problem
            return None
        read = FileRead(ds, idx, f, framed.one_line, framed.trailing_comma)
        located = locate_columns(
            ds,
            f.path,
            fr,
            batch.copies,
            lambda path, width, before: self._count_records(read, path, width, before),
        )
        if located is None:
            return None
        drops = self.drops_blank_lines and framed.one_line
        batch.sources[(ds.name, idx)] = records.Source(
            f.key, located.path, located.lines_before, drops
        )
        return Loading(read, located, fr)

    def _duplicates(
        self,
        ds: Dataset,
        good: str,
        in_good: list[validation.FileStats],
        file_reports: dict[int, FileReport],
    ) -> tuple[str | None, int, int]:
        """The relation of repeated keys' rows (validation.duplicates_sql), or None when no
        key repeats; the rows it removes from ``good`` and, of those, the conflicting ones.
        Sets each file's exact repeats dropped."""
        if not validation.may_repeat_keys(ds, good, in_good, self.dialect, self._scalar):
            return None, 0, 0
        dups = f"dups_{ds.name}"
        self._register(dups, validation.duplicates_sql(ds, good), keep=True)
        if not self._rows(f"SELECT 1 FROM {dups} LIMIT 1"):
            return None, 0, 0
        repeats = conflicts = 0
        for idx, dropped, rejected in self._rows(validation.removed_sql(dups)):
            file_reports[int(idx)].duplicates_dropped = int(dropped)
            repeats += int(dropped)
            conflicts += int(rejected)
        return dups, repeats + conflicts, conflicts

    # ------------------------------------------------------------------ KPIs

    def transform(self, curated: CuratedLog, seq: int) -> TransformResult:
        """Recompute KPIs for the dates batch ``seq`` touches.

        From the current state when the log has one that is still valid (engines/current.py:
        the batches it lacks are folded into the partitions they touch); else from the whole
        log, building the state when ``seq`` is the log's newest batch. Raises ResourceError
        when the engine runs short, EngineError when the KPI SQL fails.
        """
        state = usable(curated.state, curated.log_batches)
        if state is None:
            return self._from_log(curated, seq, batch_dates_sql(curated, seq))
        return self._from_state(curated, state, seq)

    def recompute(
        self, curated: CuratedLog, date_from: date | None, date_to: date | None
    ) -> TransformResult:
        """KPIs of every order date in [date_from, date_to] over the current curated state:
        read from the months of the range only when the state holds every batch."""
        state = usable(curated.state, curated.log_batches)
        if state is None or curated.log_batches - set(state.batches):
            return self._from_log(curated, None, kpis.all_dates_sql(date_from, date_to))
        low = date_from.isoformat()[:7] if date_from else ""
        high = date_to.isoformat()[:7] if date_to else "9999-99"
        months = {m for m in state.parts.get("orders", {}) if low <= m <= high}
        return self._from_state(curated, state, None, (months, date_from, date_to))

    def _from_log(self, curated: CuratedLog, seq: int | None, affected: str) -> TransformResult:
        """Views over the whole curated log (base.version_views for batch ``seq``; None: the
        current state only), then the KPIs of the dates the query ``affected`` lists; with an
        outbox and ``seq`` the log's newest batch, the current state built from the log."""
        try:
            with self._guard("computing KPIs", self.log_failed):
                self._prepare(validating=False)
                for ds in DATASETS:
                    short = short_name(ds.name)
                    self._parquet(f"all_{short}", ds.name, self._log_files(curated, ds.name))
                    files = len(curated.batches.get(ds.name, ()))
                    for name, sql in version_views(ds.name, files, seq).items():
                        # Ranking versions is worth keeping; one batch file is as fast to re-read.
                        self._register(name, sql, keep=name == f"cur_{short}" and files > 1)
            result = self._metrics(affected, kpis.waiting_sql())
            # Built only when seq is the newest batch: the state then holds every batch.
            if seq is not None and curated.outbox and seq == max(curated.log_batches, default=0):
                with self._guard("building the current state", "KPI computation failed"):
                    result.state = self._build_state(
                        curated.outbox, curated.log_batches, seq, result
                    )
            result.curated_rows = (
                {ds: result.state.state.rows(ds) for ds in DATASET_NAMES}
                if result.state
                else {
                    ds.name: self._scalar(f"SELECT count(*) FROM cur_{short_name(ds.name)}")
                    for ds in DATASETS
                }
            )
        finally:
            self._drop_all()
        return result

    def _metrics(self, affected: str, waiting: str) -> TransformResult:
        """The KPIs of the dates the query ``affected`` lists, over ``cur_orders``,
        ``cur_items`` and ``cur_products``, and the waiting counts the query ``waiting`` gives."""
        with self._guard("computing KPIs", "KPI computation failed"):
            self._register("affected_dates", affected, keep=True)
            for name, sql in kpis.kpi_relations():
                self._register(name, sql, keep=True)
            dates = [r[0] for r in self._rows("SELECT order_date FROM affected_dates")]
            order_rows = self._rows(kpis.order_metrics_sql(self.dialect))
            cat_rows = self._rows(kpis.category_metrics_sql(self.dialect))
            counts = self._rows(waiting)[0]
        return TransformResult(
            affected_dates=sorted(dates),
            order_metrics=kpis.order_metrics_from_rows(order_rows),
            category_metrics=kpis.category_metrics_from_rows(cat_rows),
            waiting_for_order=int(counts[0]),
            waiting_for_product=int(counts[1]),
        )

    def _log_files(
        self, curated: CuratedLog, dataset: str, only: list[int] | None = None
    ) -> list[str]:
        """Batch files of the log, as this engine reads them (``_check_reads``)."""
        self._check_reads(curated)
        return curated.files(dataset, only)

    def _check_reads(self, curated: CuratedLog) -> None:
        """Raise EngineError when this engine cannot read the store where ``curated`` is
        (any engine reads a local folder; the ones that read URIs say so by not raising)."""
        return None

    # ------------------------------------------------------------------ current state

    def _from_state(
        self,
        curated: CuratedLog,
        state: CurrentState,
        seq: int | None,
        asked: tuple[set[str], date | None, date | None] | None = None,
    ) -> TransformResult:
        """KPIs from the current state: for a transform, the batches the state lacks are
        folded in and the dates they change recomputed (none lacking: the dates of the fold
        that brought ``seq``, if it was the last, else none: they were written before that
        fold was committed); for a recompute (``asked``: the months, from, to), the dates
        asked, read from those months' files only."""
        self._check_reads(curated)
        missing = sorted(curated.log_batches - set(state.batches)) if seq is not None else []
        try:
            with self._guard("computing KPIs", self.log_failed):
                self._prepare(validating=False)
                for ds in DATASET_NAMES:
                    self._parquet(f"st_{short_name(ds)}", ds, curated.state_files(ds), False)
                fold = self._fold(curated, state, missing, seq) if missing else None
                self._current_views(curated, state, fold)
                if asked is not None:
                    months, low, high = asked
                    self._restricted(curated, months, fold)
                    affected = kpis.all_dates_sql(low, high)
                else:
                    if fold is not None:
                        # Every order the batches touch is in a touched partition, but the
                        # orders of items of a product that changed category: only then are
                        # all current orders and items looked up.
                        # (No such product: its lookup finds nothing in any items relation.)
                        everywhere = bool(self._rows(f"{kpis.changed_products_sql()} LIMIT 1"))
                        orders = "cur_orders_all" if everywhere else "n_orders"
                        items = "cur_items_all" if everywhere else "b_items"
                        versions = (
                            "(SELECT order_id, created_at FROM prev_orders UNION ALL "
                            f"SELECT order_id, created_at FROM {orders}) AS v"
                        )
                        affected = kpis.affected_dates_sql(versions, items)
                    else:
                        last = state.last_dates if seq in state.last_batches else ()
                        affected = _dates_sql(last)
                    # The dates first, then only their months' orders and items are read.
                    self._register("dates", affected, keep=True)
                    affected = "SELECT order_date FROM dates"
                    month = month_sql("order_date")
                    found = self._rows(f"SELECT DISTINCT {month} FROM dates")
                    self._restricted(curated, {str(r[0]) for r in found}, fold)
            waiting = kpis.waiting_sql("cur_items_all", "cur_orders", "cur_products", "cur_waiting")
            result = self._metrics(affected, waiting)
            new = fold.state if fold else state
            if fold is not None and fold.outbox is not None:
                committed = CurrentState(
                    new.batches, new.parts, tuple(missing), tuple(result.affected_dates)
                )
                result.state = StateUpdate(committed, fold.outbox, tuple(fold.new_files))
            result.curated_rows = {ds: new.rows(ds) for ds in DATASET_NAMES}
        finally:
            self._drop_all()
        return result

    def _fold(
        self, curated: CuratedLog, state: CurrentState, missing: list[int], seq: int | None
    ) -> _Fold:
        """Fold the log batches ``missing`` into the state: ``b_*`` their rows (latest of
        each key), ``prev_*`` the state's versions of those keys, ``n_*`` the new content of
        every partition they touch (with ``order_month``), written to the outbox when there
        is one. Returns the touched partitions and the new version."""
        for ds in DATASET_NAMES:
            short = short_name(ds)
            self._parquet(f"bl_{short}", ds, self._log_files(curated, ds, missing))
            rows = (
                latest_sql(ds, f"bl_{short}") if len(missing) > 1 else f"SELECT * FROM bl_{short}"
            )
            self._register(f"b_{short}", rows, keep=True)
        # Partitions the batches touch: their orders' months, old and new, the months of the
        # orders their items (old and new versions) belong to, and the waiting items. Only
        # key columns of the whole state are read to find them (the orders of the items'
        # old versions, the months of those orders); whole rows only in those partitions.
        self._register(
            "prev_item_orders",
            "SELECT order_id FROM st_items WHERE id IN (SELECT id FROM b_items)",
            keep=True,
        )
        month = month_sql("created_at")
        found = self._rows(
            f"SELECT {month} FROM b_orders UNION SELECT {month} FROM st_orders WHERE order_id IN "
            "(SELECT order_id FROM b_orders UNION SELECT order_id FROM b_items "
            "UNION SELECT order_id FROM prev_item_orders)"
        )
        touched = {str(r[0]) for r in found} | {WAITING}
        for ds in DATASET_NAMES:
            short, key = short_name(ds), DATASET_BY_NAME[ds].key
            source = f"sp_{short}" if ds in PARTITIONED else f"st_{short}"
            if ds in PARTITIONED:
                self._parquet(source, ds, curated.state_files(ds, touched), False)
            self._register(
                f"prev_{short}",
                f"SELECT * FROM {source} WHERE {key} IN (SELECT {key} FROM b_{short})",
                keep=True,
            )
        versions = {
            short_name(ds): merged_sql(ds, f"{src}_{short_name(ds)}", f"b_{short_name(ds)}")
            for ds, src in (("orders", "sp"), ("order_items", "sp"), ("products", "st"))
        }
        self._register(
            "n_orders",
            f"SELECT *, {month} AS {PARTITION} FROM ({versions['orders']}) AS l",
            keep=True,
        )
        self._register("n_items", _items_by_month(f"({versions['items']})"), keep=True)
        products_changed = self._scalar("SELECT count(*) FROM b_products") > 0
        if products_changed:
            self._register("n_products", versions["products"], keep=True)
        outbox = None
        if curated.outbox is not None and seq is not None:
            outbox = Path(curated.outbox)
            shutil.rmtree(outbox, ignore_errors=True)  # what a killed run left
            outbox.mkdir(parents=True)
        new_files: list[str] = []
        parts = {}
        for ds in DATASET_NAMES:
            before = state.parts.get(ds, {})
            if ds in PARTITIONED:
                written = self._write_new(outbox, ds, seq or 0, new_files)
                parts[ds] = dataset_parts(before, touched, written)
            elif products_changed:
                parts[ds] = self._write_new(outbox, ds, seq or 0, new_files)
            else:
                parts[ds] = dict(before)
        batches = tuple(sorted({*state.batches, *missing}))
        return _Fold(touched, products_changed, CurrentState(batches, parts), outbox, new_files)

    def _current_views(self, curated: CuratedLog, state: CurrentState, fold: _Fold | None) -> None:
        """``cur_orders_all``/``cur_items_all``: every current order and item (the state's
        untouched partitions and the fold's new ones; lazy views, read only for key lookups
        and the waiting counts), ``cur_products``, and ``cur_waiting``: the items waiting
        for their order (by the state's invariant, exactly the ``waiting`` partition)."""
        touched = fold.touched if fold else set()
        for ds in PARTITIONED:
            short = short_name(ds)
            untouched = [p for p in state.parts.get(ds, {}) if p not in touched]
            self._parquet(f"su_{short}", ds, curated.state_files(ds, untouched), False)
            new = f" UNION ALL SELECT {_columns(ds)} FROM n_{short}" if fold else ""
            self._register(f"cur_{short}_all", f"SELECT {_columns(ds)} FROM su_{short}{new}")
        products = "n_products" if fold and fold.products_changed else "st_products"
        self._register("cur_products", f"SELECT * FROM {products}")
        if fold:
            self._register("cur_waiting", f"SELECT * FROM n_items WHERE {PARTITION} = '{WAITING}'")
        else:
            waiting = curated.state_files("order_items", [WAITING])
            self._parquet("cur_waiting", "order_items", waiting, False)

    def _restricted(self, curated: CuratedLog, months: set[str], fold: _Fold | None) -> None:
        """``cur_orders``/``cur_items``: the current orders and items of ``months`` only
        (the files of those partitions, and the fold's new rows of them)."""
        touched = fold.touched if fold else set()
        listed = ", ".join(f"'{m}'" for m in sorted(months)) or "''"
        for ds in PARTITIONED:
            short = short_name(ds)
            kept = [m for m in months if m not in touched]
            self._parquet(f"sm_{short}", ds, curated.state_files(ds, kept), False)
            new = (
                f" UNION ALL SELECT {_columns(ds)} FROM n_{short} WHERE {PARTITION} IN ({listed})"
                if fold
                else ""
            )
            self._register(f"cur_{short}", f"SELECT {_columns(ds)} FROM sm_{short}{new}")

    def _build_state(
        self, outbox: str, curated_batches: set[int], seq: int, result: TransformResult
    ) -> StateUpdate:
        """The current state built from the log's ``cur_*`` views (every partition written),
        as the version that folded ``seq`` and changed ``result``'s dates."""
        box = Path(outbox)
        shutil.rmtree(box, ignore_errors=True)
        box.mkdir(parents=True)
        month = month_sql("created_at")
        # Kept: the items take their month from it, worked out once per order.
        self._register(
            "n_orders",
            f"SELECT {_columns('orders')}, {month} AS {PARTITION} FROM cur_orders",
            keep=True,
        )
        self._register("n_items", _items_by_month("cur_items"))
        self._register("n_products", "SELECT * FROM cur_products")
        new_files: list[str] = []
        parts = {ds: self._write_new(box, ds, seq, new_files) for ds in DATASET_NAMES}
        # Built only when seq is the newest batch: the state then holds every batch.
        state = CurrentState(
            tuple(sorted(curated_batches)), parts, (seq,), tuple(result.affected_dates)
        )
        return StateUpdate(state, box, tuple(new_files))

    def _write_new(
        self, outbox: Path | None, dataset: str, seq: int, new_files: list[str]
    ) -> dict[str, Part]:
        """Write ``n_<short>`` (with ``order_month`` for a partitioned dataset) as the new
        files of the partitions it holds into ``outbox``, adding their names to
        ``new_files``; returns those partitions. Without an outbox nothing is written and
        the partitions name no file (the version is only used for its counts)."""
        short = short_name(dataset)
        partitioned = dataset in PARTITIONED
        if outbox is None:
            by = PARTITION if partitioned else "''"
            counted = self._rows(f"SELECT {by}, count(*) FROM n_{short} GROUP BY {by}")
            return {str(k): Part((), int(n)) for k, n in counted}
        scratch = outbox / f"_write_{dataset}"
        shutil.rmtree(scratch, ignore_errors=True)
        sql = f"SELECT {_columns(dataset, BATCH_COLUMN)}"
        if partitioned:
            self._write_partitioned(f"{sql}, {PARTITION} FROM n_{short}", PARTITION, scratch)
        else:
            (scratch / f"{PARTITION}=").mkdir(parents=True)
            self._write_parquet(f"{sql} FROM n_{short}", scratch / f"{PARTITION}=" / "all.parquet")
        # Rows per file from the files' own metadata (local files: the DuckDB session reads
        # them for either engine), rather than a second pass over the rows.
        written = sorted(scratch.glob(f"{PARTITION}=*/*.parquet"))
        rows = dict(
            self._local()
            .execute(
                "SELECT file_name, num_rows FROM parquet_file_metadata(?)",
                [[str(p) for p in written]],
            )
            .fetchall()
            if written
            else []
        )
        parts: dict[str, Part] = {}
        for path in written:
            if not rows[str(path)]:
                continue  # no rows (products of an empty batch): no file
            k = path.parent.name.partition("=")[2]
            name = new_file_name(dataset, k, seq, len(parts.get(k, Part((), 0)).files))
            (outbox / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, outbox / name)
            before = parts.get(k, Part((), 0))
            parts[k] = Part((*before.files, name), before.rows + int(rows[str(path)]))
            new_files.append(name)
        shutil.rmtree(scratch, ignore_errors=True)
        return parts


def _items_by_month(items: str) -> str:
    """The items of the relation ``items`` with the partition of their order's month, read
    from ``n_orders`` (once per order, not per item), or ``waiting`` without their order."""
    cols = column_list("order_items", "i")
    return (
        f"SELECT {cols}, i._seq, coalesce(o.{PARTITION}, '{WAITING}') AS {PARTITION} "
        f"FROM {items} AS i LEFT JOIN n_orders o ON i.order_id = o.order_id"
    )


def _columns(dataset: str, seq_as: str = "_seq") -> str:
    """A dataset's columns and its version's batch number (``_seq``, or named ``seq_as``)."""
    cols = column_list(dataset)
    return f"{cols}, _seq" + ("" if seq_as == "_seq" else f" AS {seq_as}")


@dataclass
class _Fold:
    """What folding batches into the current state gave: the partitions it rewrote, the new
    version, the outbox its new files are in (None: not written) and their names."""

    touched: set[str]
    products_changed: bool
    state: CurrentState
    outbox: Path | None
    new_files: list[str]


def _dates_sql(dates: tuple[date, ...]) -> str:
    """A relation ``order_date`` holding ``dates`` (ISO literals, as in DuckDB and Spark)."""
    if not dates:
        return "SELECT CAST(NULL AS DATE) AS order_date WHERE false"
    values = ", ".join(f"(DATE '{d.isoformat()}')" for d in dates)
    return f"SELECT order_date FROM (VALUES {values}) AS t(order_date)"


@dataclass
class _Batch:
    """What one validation collects across its datasets."""

    staging: Path
    max_error_rate: Decimal
    report: ValidationReport
    copies: Path
    #: (dataset, file index) -> the file read for its rows (records.Source).
    sources: dict[tuple[str, int], records.Source] = field(default_factory=dict)
    #: dataset -> its kept rejects (EngineFlow._keep_rejects).
    rejects: dict[str, str] = field(default_factory=dict)
    #: Rows rejected in accepted files so far.
    rejected: int = 0
    #: (dataset, file index) -> its framing scan, running or done (EngineFlow.validate).
    frames: dict[tuple[str, int], Future[Framing]] = field(default_factory=dict)


def _verdicts(
    file_reports: dict[int, FileReport],
    stats: dict[int, validation.FileStats],
    shaped: dict[int, int],
    max_error_rate: Decimal,
) -> list[int]:
    """Each read file's rows, bad rows and verdict; returns the accepted files' indices."""
    accepted: list[int] = []
    for idx, fr in file_reports.items():
        if fr.reason is not None:
            continue
        st = stats.get(idx, NO_STATS)
        fr.rows = st.rows + shaped.get(idx, 0)
        fr.bad_rows = st.bad + shaped.get(idx, 0)
        if fr.rows == 0:
            fr.reason, fr.detail = FileReason.NO_ROWS, "the file has a header but no rows"
        elif validation.too_many_errors(fr.rows, fr.bad_rows, max_error_rate):
            fr.reason = FileReason.ERROR_RATE
            fr.detail = (
                f"{fr.bad_rows} of {fr.rows} rows have bad values "
                f"(more than {max_error_rate:%} allowed)"
            )
        else:
            fr.accepted = True
            accepted.append(idx)
    return accepted
