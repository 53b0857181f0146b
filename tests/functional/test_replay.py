"""`ecompipe replay`: an execution's quarantined files through the whole pipeline as a new
execution, once. Expected KPIs come from tests/reference.py over the union of the data the
pipeline was given (the accepted files, then the replayed ones as a later batch)."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests import reference
from tests.conftest import FIXTURES, ecompipe, ecompipe_proc, metrics_json
from tests.functional.test_pipeline_vs_reference import expected_json
from tests.support import DATASETS, land

pytestmark = [pytest.mark.duckdb]

HAND = FIXTURES / "hand_dirty"
#: order_items with 3 bad rows of 10: rejected whole at the default max_error_rate (0.05).
TOO_BAD = HAND / "error_rate" / "order_items.csv"


def _expected(*batches: tuple[dict[str, list[Path]], str]) -> dict[str, Any]:
    """Reference KPIs after ``batches`` (files by dataset, max_error_rate), in order."""
    state = None
    for files, rate in batches:
        state = reference.merge(state, reference.validate_batch(files, Decimal(rate)))
    assert state is not None
    return expected_json(*reference.kpis(state.orders, state.items, state.products))


def _first_run(workspace: Path, items: Path) -> str:
    """The hand_dirty batch with ``items`` as order_items, run: its execution id."""
    land(workspace, {"orders": HAND / "orders.csv", "products": HAND / "products.csv"})
    land(workspace, {"order_items": items})
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0
    (record,) = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    return str(record["execution_id"])


def _replay(workspace: Path, *args: str, **env: str) -> dict[str, Any]:
    result = ecompipe("replay", *args, "--json", workspace=workspace, **env)
    assert "Traceback" not in result.output
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["exit_code"] == result.exit_code
    return out


def _show(workspace: Path, execution_id: str) -> dict[str, Any]:
    shown = ecompipe("executions", "show", execution_id, "--json", workspace=workspace)
    data: dict[str, Any] = json.loads(shown.stdout)
    return data


@pytest.mark.fast
@pytest.mark.local
def test_replay_after_raising_max_error_rate_once(workspace: Path) -> None:
    source = _first_run(workspace, TOO_BAD)
    key = "order_items/order_items.csv"
    original = (workspace / "quarantine" / source / key).read_bytes()
    accepted = {"orders": [HAND / "orders.csv"], "products": [HAND / "products.csv"]}
    assert metrics_json(workspace) == _expected((accepted, "0.05"))

    out = _replay(workspace, source[:-2], ECOMPIPE_MAX_ERROR_RATE="0.5")
    assert out["exit_code"] == 0, out
    (outcome,) = out["executions"]
    replay = outcome["execution_id"]
    assert metrics_json(workspace) == _expected(
        (accepted, "0.05"), ({"order_items": [TOO_BAD]}, "0.5")
    )
    # The new execution says where its files came from; the original stays in quarantine;
    # the copy is archived under the replay.
    shown = _show(workspace, replay)
    assert shown["status"] == "SUCCEEDED"
    assert shown["summary"]["replay_of"] == source
    assert shown["summary"]["replayed_from"] == {key: f"quarantine/{source}/{key}"}
    assert [(e["key"], e["status"]) for e in shown["manifest"]] == [(key, "archived")]
    assert (workspace / "quarantine" / source / key).read_bytes() == original
    assert (workspace / "archive" / replay / key).read_bytes() == original
    assert _show(workspace, source)["summary"]["replays"] == {key: replay}

    # Twice: nothing happens, and it says which execution did it.
    before = metrics_json(workspace)
    again = _replay(workspace, source, ECOMPIPE_MAX_ERROR_RATE="0.5")
    assert again == {
        "exit_code": 0,
        "message": f"{source}: nothing to replay (already replayed by {replay})",
        "executions": [],
    }
    assert metrics_json(workspace) == before
    listed = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    assert [r["execution_id"] for r in listed] == [replay, source]


@pytest.mark.fast
@pytest.mark.local
def test_replay_of_a_file_fixed_in_place_and_of_a_replay(workspace: Path) -> None:
    # orders.csv lacks a column: rejected whole. Replayed unfixed, it is rejected again
    # (quarantined under the replay); fixed in place there, a replay of the replay counts it.
    land(workspace, {"order_items": HAND / "order_items.csv", "products": HAND / "products.csv"})
    land(workspace, {"orders": HAND / "missing_column" / "orders.csv"})
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0
    (record,) = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    source, key = record["execution_id"], "orders/orders.csv"

    unfixed = _replay(workspace, source, "--file", key)
    assert unfixed["exit_code"] == 1  # every file rejected (EXIT_REJECTED)
    (outcome,) = unfixed["executions"]
    second = outcome["execution_id"]
    assert (workspace / "quarantine" / second / key).exists()
    assert (workspace / "quarantine" / source / key).exists()

    shutil.copyfile(HAND / "orders.csv", workspace / "quarantine" / second / key)
    fixed = _replay(workspace, second)
    assert fixed["exit_code"] == 0, fixed
    assert metrics_json(workspace) == _expected(
        ({"order_items": [HAND / "order_items.csv"], "products": [HAND / "products.csv"]}, "0.05"),
        ({"orders": [HAND / "orders.csv"]}, "0.05"),
    )
    assert _replay(workspace, second)["message"].startswith(f"{second}: nothing to replay")


@pytest.mark.fast
@pytest.mark.local
def test_replayed_rows_follow_latest_wins(workspace: Path, tmp_path: Path) -> None:
    # Batch 1 counts orders 2001 and 2002; batch 2 restates them in a file missing a column
    # (quarantined; its other files count). Fixed in place and replayed, batch 3's statuses
    # replace batch 1's, as any later batch's would.
    first = {d: HAND / f"{d}.csv" for d in DATASETS}
    land(workspace, first)
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0
    broken = tmp_path / "late.csv"
    broken.write_text("order_id,user_id,created_at\n2001,1,2024-05-01 09:00:00\n")
    fixed = tmp_path / "fixed" / "late.csv"
    fixed.parent.mkdir()
    fixed.write_text(
        "order_id,user_id,created_at,status\n"
        "2001,1,2024-05-01 09:00:00,returned\n2002,2,2024-05-01 10:15:30,cancelled\n"
    )
    again = {"order_items": tmp_path / "items2.csv", "products": tmp_path / "products2.csv"}
    shutil.copyfile(FIXTURES / "hand" / "order_items.csv", again["order_items"])
    shutil.copyfile(FIXTURES / "hand" / "products.csv", again["products"])
    land(workspace, {"orders": broken, **again})
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0
    source = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)[0]
    shutil.copyfile(fixed, workspace / "quarantine" / source["execution_id"] / "orders/late.csv")

    assert _replay(workspace, source["execution_id"])["exit_code"] == 0
    assert metrics_json(workspace) == _expected(
        ({d: [p] for d, p in first.items()}, "0.05"),
        ({d: [p] for d, p in again.items()}, "0.05"),
        ({"orders": [fixed]}, "0.05"),
    )


@pytest.mark.fast
@pytest.mark.local
def test_replay_refusals(workspace: Path) -> None:
    land(workspace, {d: FIXTURES / "hand" / f"{d}.csv" for d in DATASETS})
    assert ecompipe("run", "--quiet", workspace=workspace).exit_code == 0
    (record,) = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    source = record["execution_id"]
    nothing = _replay(workspace, source)
    assert nothing["message"] == f"{source}: nothing to replay (none quarantined)"
    assert nothing["exit_code"] == 0
    unknown = ecompipe("replay", source, "--file", "orders/x.csv", workspace=workspace)
    assert unknown.exit_code == 2
    assert "quarantined no file 'orders/x.csv'" in unknown.output
    missing = ecompipe("replay", "exec-none", workspace=workspace)
    assert missing.exit_code == 2 and "no execution matching 'exec-none'" in missing.output
    assert len(json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)) == 1


@pytest.mark.slow
@pytest.mark.local
@pytest.mark.parametrize("point", ["replay:after-restore", "after:AcquireLock"])
def test_a_killed_replay_is_void_or_finished_by_the_next_run(workspace: Path, point: str) -> None:
    """Killed before its manifest was recorded, a replay owns nothing (the next run closes it)
    and the file can be replayed; killed after, the next run finishes it. Either way the
    file counts once."""
    source = _first_run(workspace, TOO_BAD)
    env = {"ECOMPIPE_MAX_ERROR_RATE": "0.5"}
    killed = ecompipe_proc(
        "replay", source, workspace=workspace, env={**env, "ECOMPIPE_CRASH_AT": point}
    )
    assert killed.returncode < 0  # SIGKILL
    resumed = ecompipe_proc("run", "--quiet", workspace=workspace, env=env)
    # (exit 3: the void replay was closed, and no set has landed)
    assert resumed.returncode == (3 if point == "replay:after-restore" else 0), resumed.stderr
    again = _replay(workspace, source, ECOMPIPE_MAX_ERROR_RATE="0.5")
    if point == "replay:after-restore":
        assert again["exit_code"] == 0 and len(again["executions"]) == 1, again
    else:
        assert "already replayed by" in again["message"] and again["executions"] == []
    accepted = {"orders": [HAND / "orders.csv"], "products": [HAND / "products.csv"]}
    assert metrics_json(workspace) == _expected(
        (accepted, "0.05"), ({"order_items": [TOO_BAD]}, "0.5")
    )
    assert _replay(workspace, source)["executions"] == []


@pytest.mark.fast
def test_replay_on_the_memory_backend() -> None:
    from ecompipe.config import load_settings
    from ecompipe.pipeline.rejects import Rejects, RejectsQuery
    from ecompipe.stores.memory import MemoryState
    from ecompipe.wiring import new_pipeline

    state = MemoryState()
    key = "order_items/order_items.csv"
    state.put("orders/orders.csv", (HAND / "orders.csv").read_bytes())
    state.put("products/products.csv", (HAND / "products.csv").read_bytes())
    state.put(key, TOO_BAD.read_bytes())
    first = new_pipeline("memory", load_settings(), quiet=True, memory=state).run()
    assert first.exit_code == 0
    source = first.outcomes[0].execution_id
    original = state.quarantine[f"{source}/{key}"].data

    lenient = load_settings(explicit={"max_error_rate": Decimal("0.5")})
    pipeline = new_pipeline("memory", lenient, quiet=True, memory=state)
    result = pipeline.replay(source)
    assert result.exit_code == 0, result.message
    replay = result.outcomes[0].execution_id
    got = {
        "order_metrics": [
            {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
            for row in (_plain(r) for r in pipeline.b.metrics.order_metrics())
        ]
    }
    accepted = {"orders": [HAND / "orders.csv"], "products": [HAND / "products.csv"]}
    want = _expected((accepted, "0.05"), ({"order_items": [TOO_BAD]}, "0.5"))
    assert got["order_metrics"] == want["order_metrics"]
    assert state.quarantine[f"{source}/{key}"].data == original
    assert state.archive[f"{replay}/{key}"].data == original
    record = pipeline.b.log.get(replay)
    assert record is not None and record.summary["replay_of"] == source
    assert "already replayed" in pipeline.replay(source).message
    # The rejects store reads the memory backend too: the file rejected whole, and the
    # hand-worked rejects of the two accepted files (tests/fixtures/hand_dirty).
    rejects = Rejects(pipeline.b.store, pipeline.b.log)
    rows, total = rejects.rows(RejectsQuery(source, reason="error_rate"))
    assert total == 1 and rows[0]["file"] == key and rows[0]["line"] is None
    expected = json.loads((HAND / "expected_rejects.json").read_text("utf-8"))
    rows, total = rejects.rows(RejectsQuery(source, limit=0))
    assert total == len(rows) == 1 + sum(e["file"] != "order_items.csv" for e in expected)


def _plain(row: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: v.isoformat() if k == "order_date" else v for k, v in asdict(row).items()}
