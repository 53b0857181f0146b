"""`ecompipe check` (the deadline check, once, for cron) on a workspace, with the check's
clock set by hand: a set left incomplete past complete_set_deadline is notified once (exit
4 while it holds), clears when the set completes; nothing landed for freshness_deadline is
notified once too."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ecompipe
from tests.support import clean_batch, notifications, write_batch
from tests.webhook_server import webhook_server

pytestmark = [pytest.mark.fast, pytest.mark.local]

H = 3600.0
DEADLINES = {"ECOMPIPE_COMPLETE_SET_DEADLINE": "2h", "ECOMPIPE_FRESHNESS_DEADLINE": "26h"}


def _check_at(
    monkeypatch: pytest.MonkeyPatch, workspace: Path, moment: float, **env: str
) -> tuple[int, dict]:
    from ecompipe.pipeline import checks

    monkeypatch.setattr(checks, "time", SimpleNamespace(time=lambda: moment))
    result = ecompipe("check", "--json", workspace=workspace, **DEADLINES, **env)
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def _deadline_lines(workspace: Path) -> list[dict]:
    return [n for n in notifications(workspace) if "condition" in n]


@pytest.mark.duckdb
def test_incomplete_set_then_silence_each_notified_once(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = clean_batch({}, n=10)
    write_batch(workspace, {"orders": batch["orders"]})
    now = time.time()
    with webhook_server([200]) as hook:
        hooked = {"ECOMPIPE_WEBHOOK_URL": hook.url}
        code, found = _check_at(monkeypatch, workspace, now, **hooked)
        assert (code, found["notified"], _deadline_lines(workspace)) == (0, [], [])

        code, found = _check_at(monkeypatch, workspace, now + 3 * H, **hooked)
        assert code == 4
        [line] = _deadline_lines(workspace)
        assert line["severity"] == "warning" and line["kind"] == "incomplete_set"
        assert line["missing"] == ["order_items", "products"] and line["present"] == ["orders"]
        assert [n["condition"] for n in found["notified"]] == [line["condition"]]
        assert [b["condition"] for b in hook.bodies] == [line["condition"]]
        assert found["deliveries"][0]["outcome"] == "sent"

        # Still incomplete a minute later: it holds, and nobody is told twice.
        code, found = _check_at(monkeypatch, workspace, now + 3 * H + 60, **hooked)
        assert (code, found["notified"], found["holding"]) == (4, [], [line["condition"]])
        assert len(_deadline_lines(workspace)) == 1 and len(hook.bodies) == 1

    # The rest lands and runs: the condition clears, without a new notification.
    write_batch(workspace, {d: batch[d] for d in ("order_items", "products")})
    assert ecompipe("run", "-q", workspace=workspace).exit_code == 0
    code, found = _check_at(monkeypatch, workspace, now + 3 * H + 120)
    assert (code, found["notified"], found["cleared"]) == (0, [], [line["condition"]])

    # Then nothing lands for 26 hours after that run: one warning, once.
    for minutes in (0, 1):
        code, found = _check_at(monkeypatch, workspace, now + 30 * H + minutes * 60)
        assert code == 4
    stale = [n for n in _deadline_lines(workspace) if n["kind"] == "no_landing"]
    assert len(stale) == 1 and stale[0]["severity"] == "warning"
    assert "nothing has landed since" in stale[0]["subject"]


def test_with_both_deadlines_off_check_says_so(workspace: Path) -> None:
    result = ecompipe("check", workspace=workspace)
    assert result.exit_code == 0
    assert "both deadlines are off" in result.stderr
