"""How an execution ends when something other than its data goes wrong (issue 16): a claimed
file still being written, a terminal failure that is not in the data, a transient or resource
error, an execution that makes no progress. Nothing gets a data verdict for it, nothing is
lost, and a later run is exact (expected KPIs from tests/reference.py).

The pipeline runs in-process with the real DuckDB engine behind a thin wrapper that plays
the fault (a writer appending to a claimed file, an engine raising).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import metrics_json
from tests.exactly_once import (
    Landed,
    Table,
    assert_settled,
    csv_text,
    events,
    files_under,
    lock_holders,
    sample_tables,
    sha,
    unfinished,
)
from tests.support import notifications

pytestmark = [pytest.mark.local, pytest.mark.duckdb]


class Faulty:
    """The real engine, with ``before_validate(files)`` / ``before_transform()`` run first."""

    def __init__(
        self,
        real: Any,
        before_validate: Callable[[list[Any]], None] | None = None,
        before_transform: Callable[[], None] | None = None,
    ) -> None:
        self.real, self.name, self.reads_uris = real, real.name, real.reads_uris
        self._before_validate, self._before_transform = before_validate, before_transform
        self.validations = 0

    def validate(self, execution_id: str, files: list[Any], staging: Path, rate: Decimal) -> Any:
        self.validations += 1
        if self._before_validate:
            self._before_validate(files)
        return self.real.validate(execution_id, files, staging, rate)

    def transform(self, curated: Any, seq: int) -> Any:
        if self._before_transform:
            self._before_transform()
        return self.real.transform(curated, seq)

    def close(self) -> None:
        self.real.close()


def run(workspace: Path, wrap: Callable[[Any], Any] | None = None, **env: str) -> Any:
    """One `ecompipe run` in-process; ``wrap`` puts a wrapper around the engine."""
    from ecompipe.config import load_settings
    from ecompipe.engines import create_engine
    from ecompipe.pipeline import Pipeline
    from ecompipe.wiring import open_backend
    from ecompipe.workspace import Workspace

    ws = Workspace(workspace)
    settings = load_settings(ws.config_file, env={**env, "ECOMPIPE_SETTLE_SECONDS": "0"})
    ports = open_backend("local", settings, ws, quiet=True)

    def engine() -> Any:
        real = create_engine(settings, temp_dir=str(workspace / "tmp"))
        return wrap(real) if wrap else real

    return Pipeline(settings, ports, engine).run()


def split_items(tables: dict[str, Table], at: int) -> tuple[Table, list[list[str]]]:
    """The items table cut after ``at`` rows, and the rows a writer appends later."""
    items = tables["order_items"]
    return Table(items.header, items.rows[:at]), items.rows[at:]


def appender(rows: list[list[str]], key: str = "order_items/a.csv") -> Callable[..., None]:
    """A writer that appends whole rows to the claimed copy of ``key`` (once)."""
    done: list[bool] = []

    def append(files: list[Any] | None = None, workspace: Path | None = None) -> None:
        if done:
            return
        if files is not None:
            path = next(f.path for f in files if f.key == key)
        else:
            assert workspace is not None
            (path,) = (workspace / "inflight").glob(f"*/{key}")
        with path.open("a", encoding="utf-8") as out:
            out.write(csv_text([], rows).lstrip("\n"))
        done.append(True)

    return append


def landed_whole(landed: Landed, keep: Path, key: str, table: Table) -> None:
    """Record that ``key`` ends up as ``table`` (for the reference and the settled check)."""
    path = keep / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(csv_text(table.header, table.rows), encoding="utf-8")
    dataset = key.split("/")[0]
    landed.batches[-1][dataset] = [*landed.batches[-1].get(dataset, []), path]
    landed.objects[(key, sha(path))] += 1


def land_sample(workspace: Path, tmp_path: Path, seed: int) -> tuple[dict[str, Table], Landed]:
    """A generated sample, every dataset landed whole."""
    tables = sample_tables(tmp_path / "gen", 80, seed=seed)
    landed = Landed()
    landed.land(workspace, tables, "a", tmp_path / "keep")
    return tables, landed


def redeliver_parents(
    workspace: Path, tmp_path: Path, tables: dict[str, Table], landed: Landed
) -> None:
    """The same orders and products landed again, completing a set for an items file left
    in landing alone."""
    again = Landed()
    again.land(workspace, {d: tables[d] for d in ("orders", "products")}, "c", tmp_path / "k2")
    landed.batches.append(again.batches[0])
    landed.objects.update(again.objects)


def next_run_is_exact(workspace: Path, landed: Landed) -> None:
    """A plain run succeeds; every landed file is settled once; the KPIs are the reference's."""
    result = run(workspace)
    assert result.exit_code == 0, result.message
    assert_settled(workspace, landed)
    assert metrics_json(workspace) == landed.expected()
    assert lock_holders(workspace) == [] and unfinished(workspace) == []


def error_of(workspace: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(workspace / "ecompipe.db")
    try:
        rows = con.execute("SELECT status, summary FROM executions ORDER BY seq").fetchall()
    finally:
        con.close()
    return [(s, (json.loads(summary).get("error") or {}).get("type", "")) for s, summary in rows]


@pytest.mark.fast
def test_a_file_written_during_validation_goes_back_with_its_set(
    workspace: Path, tmp_path: Path
) -> None:
    tables = sample_tables(tmp_path / "gen", 120, seed=21)
    first, later = split_items(tables, 150)
    landed = Landed()
    landed.land(
        workspace,
        {"orders": tables["orders"], "products": tables["products"]},
        "a",
        tmp_path / "keep",
    )
    write_items = Landed()
    write_items.land(workspace, {"order_items": first}, "a", tmp_path / "part")
    append = appender(later)

    result = run(workspace, lambda real: Faulty(real, before_validate=append))

    assert result.exit_code == 3, result.message
    assert "order_items/a.csv changed after the claim (still being written)" in result.message
    # The whole set is back in landing, untouched but for the writer's rows; nothing counted.
    back = sorted(
        p.relative_to(workspace / "landing").as_posix() for p in files_under(workspace / "landing")
    )
    assert back == ["order_items/a.csv", "orders/a.csv", "products/a.csv"]
    assert files_under(workspace / "quarantine") == []
    assert not list((workspace / "curated").rglob("*.parquet"))
    assert metrics_json(workspace) == {"order_metrics": [], "category_metrics": []}
    assert error_of(workspace) == [("FAILED", "Ecompipe.Returned")]
    assert notifications(workspace) == []  # nothing processed, nothing lost
    assert [e[1] for e in events(workspace, "returned")] == ["ValidateFiles", "ValidateFiles"]

    # Complete now: the next run takes it whole.
    landed_whole(landed, tmp_path / "keep", "order_items/a.csv", tables["order_items"])
    next_run_is_exact(workspace, landed)


@pytest.mark.fast
def test_when_the_rest_is_a_complete_set_only_the_changed_file_goes_back(
    workspace: Path, tmp_path: Path
) -> None:
    tables = sample_tables(tmp_path / "gen", 120, seed=22)
    first, later = split_items(tables, 150)
    landed = Landed()
    landed.land(workspace, {d: tables[d] for d in ("orders", "products")}, "a", tmp_path / "k")
    landed.land(
        workspace, {"order_items": Table(first.header, first.rows[:100])}, "a", tmp_path / "k"
    )
    part = Table(first.header, first.rows[100:])
    Landed().land(workspace, {"order_items": part}, "b", tmp_path / "part")
    append = appender(later, key="order_items/b.csv")

    result = run(workspace, lambda real: Faulty(real, before_validate=append))

    assert result.exit_code == 0, result.message
    assert sorted(p.name for p in files_under(workspace / "landing")) == ["b.csv"]
    report = json.loads(
        next((workspace / "quarantine").glob("*/validation_report.json")).read_text()
    )
    assert sorted(f["key"] for f in report["files"]) == [
        "order_items/a.csv",
        "orders/a.csv",
        "products/a.csv",
    ]
    # b.csv waits for the next complete set: the same orders and products delivered again.
    redeliver_parents(workspace, tmp_path, tables, landed)
    landed_whole(
        landed, tmp_path / "k", "order_items/b.csv", Table(first.header, first.rows[100:] + later)
    )
    next_run_is_exact(workspace, landed)


@pytest.mark.fast
def test_a_file_written_after_its_rows_counted_goes_back_instead_of_to_archive(
    workspace: Path, tmp_path: Path
) -> None:
    tables = sample_tables(tmp_path / "gen", 120, seed=23)
    first, later = split_items(tables, 150)
    landed = Landed()
    landed.land(workspace, {d: tables[d] for d in ("orders", "products")}, "a", tmp_path / "k")
    Landed().land(workspace, {"order_items": first}, "a", tmp_path / "part")
    append = appender(later)

    result = run(
        workspace, lambda real: Faulty(real, before_transform=lambda: append(workspace=workspace))
    )

    assert result.exit_code == 0, result.message
    assert [e[1] for e in events(workspace, "returned")] == ["ArchiveFiles"]
    assert sorted(p.name for p in files_under(workspace / "landing")) == ["a.csv"]
    assert not list((workspace / "archive").rglob("order_items/*"))  # never archived in part
    # With the next complete set it is read whole: its rows counted before are replaced by key.
    redeliver_parents(workspace, tmp_path, tables, landed)
    landed_whole(landed, tmp_path / "k", "order_items/a.csv", tables["order_items"])
    next_run_is_exact(workspace, landed)


@pytest.mark.fast
def test_a_terminal_failure_not_in_the_data_returns_the_files_to_landing(
    workspace: Path, tmp_path: Path
) -> None:
    from ecompipe.errors import EngineError

    _tables, landed = land_sample(workspace, tmp_path, seed=24)
    before = {p.name + p.parent.name: sha(p) for p in files_under(workspace / "landing")}

    def broken() -> None:
        raise EngineError("KPI computation failed: a bug")

    result = run(workspace, lambda real: Faulty(real, before_transform=broken))

    assert result.exit_code == 2, result.message
    after = {p.name + p.parent.name: sha(p) for p in files_under(workspace / "landing")}
    assert after == before  # every file back, byte for byte
    quarantined = {p.name for p in files_under(workspace / "quarantine")}
    assert quarantined <= {"validation_report.json"}  # reports only, no data file
    assert error_of(workspace) == [("FAILED", "Ecompipe.EngineError")]
    # Its batch was published before the failure: withdrawn, so a later run counts it.
    assert not list((workspace / "curated").rglob("*.parquet"))
    (note,) = notifications(workspace)
    assert note["status"] == "FAILED" and "a bug" in note["subject"]
    next_run_is_exact(workspace, landed)


@pytest.mark.fast
def test_a_resource_error_is_not_retried_in_process_and_the_next_run_resumes(
    workspace: Path, tmp_path: Path
) -> None:
    from ecompipe.errors import ResourceError

    _tables, landed = land_sample(workspace, tmp_path, seed=25)
    engines: list[Faulty] = []

    def short(_files: list[Any]) -> None:
        raise ResourceError("out of memory: raise ECOMPIPE_DUCKDB_MEMORY_LIMIT")

    def wrap(real: Any) -> Faulty:
        engines.append(Faulty(real, before_validate=short))
        return engines[-1]

    result = run(workspace, wrap)

    assert result.exit_code == 2 and "ECOMPIPE_DUCKDB_MEMORY_LIMIT" in result.message
    assert [e.validations for e in engines] == [1]  # the same limits would fail the same way
    assert len(files_under(workspace / "inflight")) == 3  # kept, claimed, no verdict
    assert files_under(workspace / "quarantine") == [] and notifications(workspace) == []
    assert len(unfinished(workspace)) == 1
    next_run_is_exact(workspace, landed)  # resumed


@pytest.mark.fast
def test_an_execution_resumed_without_progress_fails_after_max_resumes(
    workspace: Path, tmp_path: Path
) -> None:
    from ecompipe.errors import ResourceError

    _tables, landed = land_sample(workspace, tmp_path, seed=26)

    def short(_files: list[Any]) -> None:
        raise ResourceError("disk full: free space")

    def failing(real: Any) -> Faulty:
        return Faulty(real, before_validate=short)

    codes = [run(workspace, failing, ECOMPIPE_MAX_RESUMES="2").exit_code for _ in range(3)]
    assert codes == [2, 2, 2]
    assert unfinished(workspace) != []  # still RUNNING: resumed twice so far
    stalled = run(workspace, failing, ECOMPIPE_MAX_RESUMES="2")
    assert stalled.exit_code == 2
    assert "resumed 2 times without progress (last error: disk full" in stalled.message
    assert unfinished(workspace) == []
    assert error_of(workspace) == [("FAILED", "Ecompipe.Stalled")]
    (note,) = notifications(workspace)
    assert note["status"] == "FAILED"
    assert len(files_under(workspace / "landing")) == 3  # back, for when the cause is fixed
    next_run_is_exact(workspace, landed)


@pytest.mark.fast
def test_a_file_given_back_keeps_a_new_upload_of_its_name_beside_it(
    workspace: Path, tmp_path: Path
) -> None:
    tables = sample_tables(tmp_path / "gen", 60, seed=27)
    first, later = split_items(tables, 40)
    Landed().land(workspace, {d: tables[d] for d in ("orders", "products")}, "a", tmp_path / "k")
    Landed().land(workspace, {"order_items": first}, "a", tmp_path / "part")
    newer = b"id,order_id,product_id,sale_price\n"
    append = appender(later)

    def write_and_upload(files: list[Any]) -> None:
        append(files)
        (workspace / "landing" / "order_items" / "a.csv").write_bytes(newer)

    result = run(workspace, lambda real: Faulty(real, before_validate=write_and_upload))

    assert result.exit_code == 3, result.message
    folder = workspace / "landing" / "order_items"
    assert (folder / "a.csv").read_bytes() == newer  # the new upload, untouched
    (returned,) = folder.glob("a.returned-exec-*.csv")  # ours, whole, beside it
    assert returned.read_text() == csv_text(first.header, first.rows + later)
    assert files_under(workspace / "inflight") == []


@pytest.mark.fast
def test_an_io_error_in_a_framing_scan_is_retried_and_leaves_no_thread(
    workspace: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The framing scans run in a thread ahead of the engine (EngineFlow.validate): a read
    error there, in a dataset after the first, reaches the state as the I/O error it is
    (transient: retried in process, no verdict for the file), and no scan thread outlives
    the validation."""
    import errno
    import threading

    from ecompipe.engines.duckdb import DuckDBEngine

    _tables, landed = land_sample(workspace, tmp_path, seed=27)
    real_frame = DuckDBEngine._frame
    failed: list[Path] = []

    def flaky(self: Any, path: Path) -> Any:
        if path.parent.name == "order_items" and not failed:
            failed.append(path)
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real_frame(self, path)

    monkeypatch.setattr(DuckDBEngine, "_frame", flaky)
    result = run(workspace)

    assert len(failed) == 1 and result.exit_code == 0, result.message
    assert not [t for t in threading.enumerate() if t.name.startswith("ecompipe-framing")]
    retries = [r.getMessage() for r in caplog.records if "(retry" in r.getMessage()]
    assert len(retries) == 1 and retries[0].startswith("ValidateFiles: ")
    assert "Input/output error" in retries[0]
    assert_settled(workspace, landed)  # every file archived: the fault gave no verdict
    assert metrics_json(workspace) == landed.expected()
