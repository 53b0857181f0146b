"""Local landing names under the one key rule (trigger.key_problem): a name with a control
character or a backslash is quarantined as it is, unread, with the reason in the report; a
name that is not UTF-8 at all is left in landing. The good files give the hand-computed KPIs.
"""

from __future__ import annotations

import hashlib
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, ecompipe, metrics_json
from tests.support import DATASETS, land, only_execution, read_report, sha256

pytestmark = [pytest.mark.duckdb, pytest.mark.local]

HAND = FIXTURES / "hand"
# Items that would add 1,000.00 of revenue to 2024-03-01 if anything read them.
EXTRA_ITEMS = b"id,order_id,product_id,sale_price\n900,101,1,1000.00\n"
UNSAFE = {
    "ctl\x01name.csv": "U+0001",
    "esc\x1b[2J.csv": "U+001B",
    "tab\there.csv": "U+0009",
    "del\x7f.csv": "U+007F",
    "nel\x85.csv": "U+0085",
    "back\\slash.csv": "backslash",
}


def _numbers(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Metrics with every KPI as a Decimal (the CLI's JSON prints numbers, expected.json
    text), rows in (date, category) order."""
    keys = ("order_date", "category")
    return {
        table: sorted(
            ({k: v if k in keys else Decimal(str(v)) for k, v in row.items()} for row in rows),
            key=lambda row: (row["order_date"], row.get("category", "")),
        )
        for table, rows in data.items()
    }


@pytest.mark.fast
def test_unsafe_local_names_are_quarantined_unread(
    workspace: Path, caplog: pytest.LogCaptureFixture
) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    folder = workspace / "landing" / "order_items"
    hashes = {}
    for name in UNSAFE:
        (folder / name).write_bytes(EXTRA_ITEMS)
        hashes[name] = sha256(folder / name)
    # Bytes that are not UTF-8: no manifest or report can name it, so it is left alone.
    not_utf8 = os.path.join(os.fsencode(folder), b"latin1-\xe9t\xe9.csv")
    with open(not_utf8, "wb") as handle:
        handle.write(EXTRA_ITEMS)

    result = ecompipe("run", "--quiet", workspace=workspace)
    assert result.exit_code == 0, result.output

    expected = json.loads((HAND / "expected.json").read_text())
    assert _numbers(metrics_json(workspace)) == _numbers(expected)
    q = only_execution(workspace)
    verdicts = {f["key"]: f for f in read_report(q)["files"]}
    for name, names in UNSAFE.items():
        verdict = verdicts[f"order_items/{name}"]
        assert (verdict["accepted"], verdict["reason"]) == (False, "unsafe_key")
        assert names in verdict["detail"] and verdict["rows"] == 0
        # Quarantined under a stand-in any tool can copy: unsafe/<SHA-256 of the key>.
        moved = q / "unsafe" / hashlib.sha256(f"order_items/{name}".encode()).hexdigest()
        assert sha256(moved) == hashes[name]  # moved whole, as landed
        assert not os.path.lexists(folder / name)
    assert verdicts["order_items/order_items.csv"]["accepted"]
    assert len(verdicts) == 3 + len(UNSAFE)
    assert os.listdir(os.fsencode(folder)) == [b"latin1-\xe9t\xe9.csv"]
    assert "latin1-" in caplog.text and caplog.text.count("not valid UTF-8") == 1
    # Shown to an operator, a key's control characters are escaped, never sent raw.
    shown = ecompipe("executions", "show", q.name, workspace=workspace).stdout
    assert "order_items/esc\\x1b[2J.csv" in shown and "\x1b" not in shown
    assert not any(c in shown for c in "\x01\x7f\x85")
