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

import shutil
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from ecompipe import kpis, progress, validation
from ecompipe.contracts import DATASETS, Dataset, FileReason, Reason
from ecompipe.dialect import Dialect
from ecompipe.engines import records
from ecompipe.engines.base import (
    CuratedLog,
    InputFile,
    TransformResult,
    batch_dates_sql,
    fresh_staging,
    short_name,
    staged_path,
    version_views,
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
    def _curated(self, dataset: str, relation: str, curated: CuratedLog) -> None:
        """Register ``relation``: every row of every batch file of ``dataset`` in the
        curated log, the file's batch number as ``_seq``."""

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
        try:
            for ds in DATASETS:
                ds_files = sorted((f for f in files if f.dataset == ds.name), key=lambda f: f.key)
                with self._guard(f"validating {ds.name}", self.validation_failed):
                    self._validate_dataset(ds, ds_files, batch)
            if batch.rejected:
                with self._guard("writing the rejected rows", self.validation_failed):
                    target = staging / "rejects.csv"
                    records.write_rejects(self._local(), batch.rejects, batch.sources, target)
                report.rejects_file = "rejects.csv"
        finally:
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
        framed = self._frame(f.path)
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
        """Recompute KPIs for the dates batch ``seq`` touches, over the whole curated log.

        Raises ResourceError when the engine runs short, EngineError when the KPI SQL fails.
        """
        return self._kpis(curated, seq, batch_dates_sql(curated, seq))

    def recompute(
        self, curated: CuratedLog, date_from: date | None, date_to: date | None
    ) -> TransformResult:
        """KPIs of every order date in [date_from, date_to] over the current curated state."""
        return self._kpis(curated, None, kpis.all_dates_sql(date_from, date_to))

    def _kpis(self, curated: CuratedLog, seq: int | None, affected: str) -> TransformResult:
        """Views over the curated log (base.version_views for batch ``seq``; None: the
        current state only), then the KPIs of the dates the query ``affected`` lists."""
        try:
            rows: dict[str, int] = {}
            with self._guard("computing KPIs", self.log_failed):
                self._prepare(validating=False)
                for ds in DATASETS:
                    short = short_name(ds.name)
                    self._curated(ds.name, f"all_{short}", curated)
                    files = len(curated.batches.get(ds.name, ()))
                    for name, sql in version_views(ds.name, files, seq).items():
                        # Ranking versions is worth keeping; one batch file is as fast to re-read.
                        self._register(name, sql, keep=name == f"cur_{short}" and files > 1)
                    rows[ds.name] = self._scalar(f"SELECT count(*) FROM cur_{short}")
            with self._guard("computing KPIs", "KPI computation failed"):
                self._register("affected_dates", affected, keep=True)
                for name, sql in kpis.kpi_relations():
                    self._register(name, sql, keep=True)
                dates = [r[0] for r in self._rows("SELECT order_date FROM affected_dates")]
                order_rows = self._rows(kpis.order_metrics_sql(self.dialect))
                cat_rows = self._rows(kpis.category_metrics_sql(self.dialect))
                waiting = self._rows(kpis.waiting_sql())[0]
        finally:
            self._drop_all()
        return TransformResult(
            affected_dates=sorted(dates),
            order_metrics=kpis.order_metrics_from_rows(order_rows),
            category_metrics=kpis.category_metrics_from_rows(cat_rows),
            waiting_for_order=int(waiting[0]),
            waiting_for_product=int(waiting[1]),
            curated_rows=rows,
        )


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
