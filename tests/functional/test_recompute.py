"""`ecompipe recompute`: the metrics tables rebuilt from the curated store, under the lock.

Expected values come from the hand fixture's expected.json and from the independent
reference (tests/reference.py), never from ecompipe. The metrics tables are damaged behind
ecompipe's back with sqlite3, as an operator's mistake or an old backup would.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests import reference
from tests.conftest import FIXTURES, ecompipe, metrics_json
from tests.exactly_once import lock_holders
from tests.functional.test_pipeline_vs_reference import expected_json
from tests.support import DATASETS, as_metrics_json, land

pytestmark = [pytest.mark.duckdb, pytest.mark.local]

HAND = FIXTURES / "hand"
LOCK = "ecommerce-pipeline-lock"
#: A row of order_metrics_table and one of category_metrics_table, with made-up values.
BOGUS_ORDER = "INSERT INTO order_metrics_table VALUES (?, 9, '99.00', 9, '0.5000', 9)"
BOGUS_CATEGORY = "INSERT INTO category_metrics_table VALUES (?, ?, '1.00', '1.00', '0.0000')"


def run_sql(workspace: Path, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """Run statements on the workspace database, as someone working behind ecompipe would."""
    con = sqlite3.connect(workspace / "ecompipe.db")
    try:
        with con:
            for sql, args in statements:
                con.execute(sql, args)
    finally:
        con.close()


WIPE = (
    ("DELETE FROM order_metrics_table", ()),
    ("DELETE FROM category_metrics_table", ()),
)


def _recompute(workspace: Path, *args: str, **env: str) -> dict[str, Any]:
    """`ecompipe recompute --json ARGS`, which must succeed; its output parsed."""
    result = ecompipe("recompute", "--json", *args, workspace=workspace, **env)
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _hand_run(workspace: Path) -> dict[str, Any]:
    """Run the hand fixture; returns its expected metrics (expected.json, as printed)."""
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    assert ecompipe("run", "-q", workspace=workspace).exit_code == 0
    return as_metrics_json(json.loads((HAND / "expected.json").read_text("utf-8")))


@pytest.mark.fast
def test_recompute_rebuilds_lost_rows_and_drops_a_date_without_orders(workspace: Path) -> None:
    expected = _hand_run(workspace)
    # Every row lost, then an old backup: a stale 2024-03-02 and rows of a date with no orders.
    run_sql(
        workspace,
        *WIPE,
        (BOGUS_ORDER, ("2024-03-02",)),
        (BOGUS_ORDER, ("2024-03-09",)),
        (BOGUS_CATEGORY, ("Hats", "2024-03-09")),
    )
    done = _recompute(workspace)
    assert metrics_json(workspace) == expected
    assert done == {
        **done,
        "curated_empty": False,
        # 03-03 has an order but no items (no row); 03-09 had rows but has no orders.
        "dates_recomputed": 4,
        "first_date": "2024-03-01",
        "last_date": "2024-03-09",
        "order_rows_written": 2,
        "category_rows_written": 4,
        "rows_changed": 6,  # every row but none as it was: 03-02's was stale
        "rows_deleted": 2,  # the 03-09 order row and (Hats, 03-09)
    }
    # Idempotent: again, nothing changes.
    again = _recompute(workspace)
    assert (again["rows_changed"], again["rows_deleted"], again["dates_recomputed"]) == (0, 0, 3)
    assert metrics_json(workspace) == expected
    text = ecompipe("recompute", workspace=workspace)
    assert text.exit_code == 0, text.output
    assert text.stdout == (
        "recomputed 3 dates (2024-03-01 to 2024-03-03): 2 order rows and 4 category rows "
        "written (0 changed), 0 rows deleted\n"
    )
    assert ecompipe("recompute", "--quiet", workspace=workspace).output == ""


def _in(rows: list[dict[str, Any]], low: str, high: str) -> list[dict[str, Any]]:
    return [r for r in rows if low <= r["order_date"] <= high]


@pytest.mark.slow
def test_recompute_range_touches_only_that_range(workspace: Path) -> None:
    """Two batches whose keys overlap (the later version wins); every row lost; a recompute
    of a middle range rebuilds exactly that range and leaves the rest as it was."""
    from ecompipe.sample import generate_sample

    state = None
    for n, seed in ((300, 7), (150, 8)):
        summary = generate_sample(workspace / "landing", n, seed=seed, name=f"b{seed}")
        files = {ds: [path] for ds, path in summary.files.items()}
        state = reference.merge(state, reference.validate_batch(files))
        assert ecompipe("run", "-q", workspace=workspace).exit_code == 0
    assert state is not None
    expected = expected_json(*reference.kpis(state.orders, state.items, state.products))
    days = [r["order_date"] for r in expected["order_metrics"]]
    low, high = days[len(days) // 3], days[2 * len(days) // 3]
    run_sql(
        workspace,
        *WIPE,
        (BOGUS_ORDER, ("2999-01-01",)),  # outside the range: stays
        (BOGUS_CATEGORY, ("Hats", low)),  # inside, a category without data: goes
        (BOGUS_ORDER, (high,)),  # inside, stale: replaced
    )
    done = _recompute(workspace, "--from", low, "--to", high)
    got = metrics_json(workspace)
    for table in ("order_metrics", "category_metrics"):
        assert _in(got[table], low, high) == _in(expected[table], low, high), table
    # Outside the range: what was there before, the lost rows still lost.
    assert [r["order_date"] for r in got["order_metrics"]] == [
        *(d for d in days if low <= d <= high),
        "2999-01-01",
    ]
    assert _in(got["category_metrics"], "0000", "9999") == _in(got["category_metrics"], low, high)
    assert done["rows_deleted"] == 1
    assert (done["first_date"], done["last_date"]) == (low, high)


@pytest.mark.fast
@pytest.mark.parametrize("lock_id", [LOCK, f"{LOCK}-transform"], ids=["lock", "critical"])
def test_a_busy_lock_makes_recompute_wait_then_exit_2(workspace: Path, lock_id: str) -> None:
    """A live holder elsewhere: recompute waits the bound, exits 2, writes nothing, and
    gives back what it took (the main slot, when only the critical section was busy)."""
    _hand_run(workspace)
    run_sql(
        workspace,
        *WIPE,
        (
            "INSERT INTO lock_holders VALUES (?, 'busy-run', NULL, 'another-host', 1, ?, ?)",
            (lock_id, time.time(), time.time() + 600),
        ),
    )
    started = time.monotonic()
    result = ecompipe("recompute", workspace=workspace, ECOMPIPE_LOCK_WAIT_SECONDS="0.5")
    assert time.monotonic() - started >= 0.5
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"ecompipe: error: lock '{lock_id}' busy for 0.5s (holders: busy-run); try again "
        "later, or see `ecompipe lock`\n"
    )
    assert metrics_json(workspace) == {"order_metrics": [], "category_metrics": []}
    assert lock_holders(workspace) == [(lock_id, "busy-run", 1)]


@pytest.mark.fast
def test_an_interrupted_recompute_gives_the_lock_back(workspace: Path) -> None:
    """Ctrl-C while computing: both leases released, the metrics as they were."""
    from ecompipe.config import load_settings
    from ecompipe.engines.duckdb import DuckDBEngine
    from ecompipe.pipeline import Pipeline
    from ecompipe.wiring import open_backend
    from ecompipe.workspace import workspace_from

    expected = _hand_run(workspace)
    ws = workspace_from(workspace)
    settings = load_settings(ws.config_file)
    seen: list[list[tuple[Any, ...]]] = []

    class Interrupted(DuckDBEngine):
        def recompute(self, *args: Any) -> Any:
            seen.append(lock_holders(workspace))
            raise KeyboardInterrupt

    ports = open_backend("local", settings, ws, quiet=True)
    pipeline = Pipeline(settings, ports, lambda: Interrupted(settings))
    with pytest.raises(KeyboardInterrupt):
        pipeline.recompute()
    assert sorted(lock_id for lock_id, *_ in seen[0]) == [LOCK, f"{LOCK}-transform"]
    assert lock_holders(workspace) == []
    assert metrics_json(workspace) == expected


@pytest.mark.fast
def test_an_empty_curated_store_writes_nothing(workspace: Path) -> None:
    """Nothing published yet: exit 0 and say so. Metric rows there all the same (the wrong
    workspace or bucket?): exit 2, and they are kept rather than deleted."""
    result = ecompipe("recompute", workspace=workspace)
    assert result.exit_code == 0, result.output
    assert (
        result.stdout == "nothing to recompute: the curated store is empty (no batch was run yet)\n"
    )
    run_sql(workspace, (BOGUS_ORDER, ("2024-03-01",)))
    before = metrics_json(workspace)
    refused = ecompipe("recompute", workspace=workspace)
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith("ecompipe: error: the curated store is empty but 1 metric")
    assert len(refused.stderr.splitlines()) == 1
    assert metrics_json(workspace) == before
    # Outside the range asked for, the row is not at stake.
    assert _recompute(workspace, "--to", "2024-02-28")["curated_empty"] is True


@pytest.mark.fast
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--from", "2024-03-05", "--to", "2024-03-01"],
            "--from 2024-03-05 is after --to 2024-03-01",
        ),
        (["--from", "2024-02-30"], "'2024-02-30' is not a date like 2024-03-01"),
    ],
    ids=["from-after-to", "no-such-date"],
)
def test_recompute_usage_errors(workspace: Path, args: list[str], says: str) -> None:
    result = ecompipe("recompute", *args, workspace=workspace)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and says in lines[0], result.stderr
    assert lines[1] == "  see `ecompipe recompute --help`"
