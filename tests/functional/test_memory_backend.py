"""The whole pipeline on the in-memory backend (wiring.new_pipeline("memory")) with the DuckDB
engine: the hand fixture gives the KPIs computed by hand (tests/fixtures/hand/expected.json,
never by ecompipe), its files are archived whole, the lock is free. The in-memory backend
serves functional tests without a workspace or a moto server."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import FIXTURES

pytestmark = [pytest.mark.fast, pytest.mark.duckdb]

HAND = FIXTURES / "hand"
DATASETS = ("orders", "order_items", "products")


def as_expected(row: Any) -> dict[str, Any]:
    """A metrics row in expected.json's shape: dates ISO, money and rates as exact text."""
    return {
        k: v.isoformat() if isinstance(v, date) else str(v) if isinstance(v, Decimal) else v
        for k, v in asdict(row).items()
    }


def test_hand_fixture_on_the_memory_backend() -> None:
    from ecompipe.config import load_settings
    from ecompipe.stores.memory import MemoryState
    from ecompipe.wiring import new_pipeline
    from ecompipe.workflow import critical_lock_id

    state = MemoryState()
    landed = {f"{d}/hand {d}.csv": (HAND / f"{d}.csv").read_bytes() for d in DATASETS}
    for key, data in landed.items():
        state.put(key, data)
    settings = load_settings()
    pipeline = new_pipeline("memory", settings, quiet=True, memory=state)

    result = pipeline.run()

    assert result.exit_code == 0, result.message
    (outcome,) = result.outcomes
    eid = outcome.execution_id
    expected = json.loads((HAND / "expected.json").read_text("utf-8"))
    metrics = pipeline.b.metrics
    assert [as_expected(r) for r in metrics.order_metrics()] == expected["order_metrics"]
    got = sorted(metrics.category_metrics(), key=lambda r: (r.category, r.order_date))
    assert [as_expected(r) for r in got] == expected["category_metrics"]
    # Every file archived whole under its execution; landing and working data empty.
    assert {k: b.data for k, b in state.archive.items()} == {
        f"{eid}/{k}": v for k, v in landed.items()
    }
    assert state.landing == {} and state.staging == {} and state.claims == {}
    assert sorted(state.quarantine) == [f"{eid}/validation_report.json"]
    assert sorted(state.curated) == [f"{d}/000000000001.parquet" for d in sorted(DATASETS)]
    # The lock and its critical section are free; the execution ended and said so.
    assert pipeline.b.lock.holders() == []
    assert state.leases == {settings.lock_id: {}, critical_lock_id(settings.lock_id): {}}
    record = pipeline.b.log.get(eid)
    assert record is not None and record.status == "SUCCEEDED"
    assert pipeline.b.log.unfinished() == []
    (message,) = state.notifications
    assert message["status"] == "SUCCEEDED" and message["subject"].startswith(eid)
