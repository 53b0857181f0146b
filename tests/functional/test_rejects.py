"""`ecompipe rejects` and `rejects summary`: every rejected row and file of every execution,
queried. Expected rows come from tests/fixtures/hand_dirty (worked out by hand: its
expected_rejects.json and expected_verdicts.json), never from ecompipe."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, ecompipe
from tests.support import DATASETS, land, physical_lines

pytestmark = [pytest.mark.fast, pytest.mark.duckdb, pytest.mark.local]

HAND = FIXTURES / "hand_dirty"
EXPECTED = json.loads((HAND / "expected_rejects.json").read_text("utf-8"))


def _run_batch(workspace: Path, replace: str | None = None) -> str:
    """Land the hand_dirty batch (one file swapped for ``replace``'s), run; the execution."""
    files = {d: HAND / f"{d}.csv" for d in DATASETS}
    for path in (HAND / replace).glob("*.csv") if replace else ():
        files[path.stem] = path
    land(workspace, files)
    result = ecompipe("run", "--quiet", workspace=workspace)
    assert result.exit_code == 0, result.output
    listed = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    return str(listed[0]["execution_id"])


def _rejects(workspace: Path, *args: str) -> list[dict[str, Any]]:
    result = ecompipe("rejects", "--json", *args, workspace=workspace)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def _row_key(r: dict[str, Any]) -> tuple[str, int, str, str]:
    return (r["file"].split("/")[-1], int(r["line"]), r["column"] or "", r["reason"])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A workspace where the hand_dirty batch ran, then the same with orders.csv missing a
    column (rejected whole): (workspace, first execution, second execution). The tests only
    read it."""
    workspace = tmp_path_factory.mktemp("rejects") / "ws"
    assert ecompipe("init", workspace=workspace).exit_code == 0
    return workspace, _run_batch(workspace), _run_batch(workspace, replace="missing_column")


def test_rejects_of_two_executions_row_and_file_level(two_runs: tuple[Path, str, str]) -> None:
    workspace, first, second = two_runs
    rows = _rejects(workspace)

    # The first execution: exactly the hand-worked rejects, each with its original line.
    mine = [r for r in rows if r["execution"] == first]
    assert sorted(map(_row_key, mine)) == sorted(
        (e["file"], e["line"], e["column"], e["reason"]) for e in EXPECTED
    )
    for r in mine:
        assert r["text"] == physical_lines(HAND / r["file"].split("/")[-1])[r["line"] - 1]
        assert r["dataset"] == r["file"].split("/")[0]
    # The second: orders.csv rejected whole (no line), the other files' rows as before.
    theirs = [r for r in rows if r["execution"] == second]
    (whole,) = [r for r in theirs if r["line"] is None]
    assert (whole["file"], whole["dataset"], whole["reason"], whole["column"]) == (
        "orders/orders.csv",
        "orders",
        "missing_column",
        None,
    )
    assert sorted(map(_row_key, (r for r in theirs if r["line"] is not None))) == sorted(
        (e["file"], e["line"], e["column"], e["reason"])
        for e in EXPECTED
        if e["file"] != "orders.csv"
    )
    assert len(rows) == len(mine) + len(theirs)


def test_rejects_filters_limit_and_csv(two_runs: tuple[Path, str, str]) -> None:
    workspace, first, _ = two_runs
    everything = _rejects(workspace, "--limit", "0")

    def only(**want: Any) -> list[dict[str, Any]]:
        return [r for r in everything if all(r[k] == v for k, v in want.items())]

    assert _rejects(workspace, "--execution", first[:-3]) == only(execution=first)
    assert _rejects(workspace, "--dataset", "products") == only(dataset="products")
    assert _rejects(workspace, "--reason", "missing_column") == only(reason="missing_column")
    items = only(file="order_items/order_items.csv")
    assert _rejects(workspace, "--file", "order_items/*.csv") == items
    assert _rejects(workspace, "--file", "order_items/order_items.csv") == items
    assert items and only(reason="bad_int")

    limited = ecompipe("rejects", "--json", "--limit", "3", workspace=workspace)
    assert json.loads(limited.stdout) == everything[:3]
    assert f"({len(everything) - 3} more not shown" in limited.stderr

    as_csv = ecompipe("rejects", "--csv", "--limit", "0", workspace=workspace)
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["text"] for r in parsed] == [r["text"] or "" for r in everything]
    assert [r["line"] for r in parsed] == [str(r["line"] or "") for r in everything]

    text = ecompipe("rejects", "--reason", "missing_column", workspace=workspace)
    assert "orders/orders.csv (file)  missing_column" in text.stdout


def test_rejects_summary_counts_by_day_dataset_reason(two_runs: tuple[Path, str, str]) -> None:
    workspace, first, _ = two_runs
    result = ecompipe("rejects", "summary", "--json", workspace=workspace)
    assert result.exit_code == 0, result.output
    got: dict[tuple[str, str], tuple[int, int]] = {}
    for r in json.loads(result.stdout):
        # Summed over days: the two runs may straddle midnight (UTC).
        rejects, executions = got.get((r["dataset"], r["reason"]), (0, 0))
        got[(r["dataset"], r["reason"])] = (rejects + r["rejects"], executions + r["executions"])

    dataset = {f"{d}.csv": d for d in DATASETS}
    once = Counter((dataset[e["file"]], e["reason"]) for e in EXPECTED)
    twice = Counter(
        (dataset[e["file"]], e["reason"]) for e in EXPECTED if e["file"] != "orders.csv"
    )
    expected = {k: (once[k] + twice[k], 2 if twice[k] else 1) for k in once}
    expected[("orders", "missing_column")] = (1, 1)
    assert got == expected

    one = ecompipe("rejects", "summary", "--json", "--execution", first, workspace=workspace)
    assert {(r["dataset"], r["reason"]): r["rejects"] for r in json.loads(one.stdout)} == once


def test_no_rejects_says_so(workspace: Path) -> None:
    hand = FIXTURES / "hand"
    land(workspace, {d: hand / f"{d}.csv" for d in DATASETS})
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0
    assert ecompipe("rejects", workspace=workspace).stdout == "no rejects\n"
    assert _rejects(workspace) == []
    summary = ecompipe("rejects", "summary", "--json", workspace=workspace)
    assert json.loads(summary.stdout) == []
