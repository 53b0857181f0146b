"""The deadline rules (deadlines.py) with a hand-set clock, and the settings they read:
durations such as 2h or 26h, notify_on, the webhook URL (one line per problem)."""

from __future__ import annotations

import pytest

from ecompipe.config import load_settings
from ecompipe.errors import ConfigError

pytestmark = [pytest.mark.fast]

H = 3600.0
T0 = 1_780_000_000.0  # 2026-05-28T20:26:40Z


def _settings(**values: str) -> object:
    return load_settings(env={}, explicit=values)


def _found(
    landed: list[tuple[str, float | None]], last: float | None, now: float, **deadlines: str
) -> list:
    from ecompipe.deadlines import conditions

    return conditions(landed, last, now, _settings(**deadlines))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2h", 7200.0),
        ("26h", 93600.0),
        ("90m", 5400.0),
        ("1d", 86400.0),
        ("45", 45.0),
        ("1.5h", 5400.0),
        (" 30 S ", 30.0),
        ("0", 0.0),
        ("", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    settings = load_settings(env={}, explicit={"complete_set_deadline": text})
    assert settings.complete_set_deadline == seconds


def test_bad_settings_are_each_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            env={
                "ECOMPIPE_COMPLETE_SET_DEADLINE": "2 hours",
                "ECOMPIPE_FRESHNESS_DEADLINE": "-1h",
                "ECOMPIPE_NOTIFY_ON": "warning,loud",
                "ECOMPIPE_WEBHOOK_URL": "hooks.example.com/x",
                "ECOMPIPE_WEBHOOK_FORMAT": "teams",
            }
        )
    text = str(caught.value)
    for setting in (
        "ECOMPIPE_COMPLETE_SET_DEADLINE='2 hours': must be a duration",
        "ECOMPIPE_FRESHNESS_DEADLINE='-1h': must be a duration",
        "ECOMPIPE_NOTIFY_ON='warning,loud': must be one or more of success, warning, failure",
        "must be an http:// or https:// URL",
        "ECOMPIPE_WEBHOOK_FORMAT='teams': must be one of json, slack",
    ):
        assert setting in text


def test_notify_on_is_kept_in_severity_order() -> None:
    assert load_settings(env={"ECOMPIPE_NOTIFY_ON": "Failure, success"}).notify_on == (
        "success,failure"
    )
    assert load_settings(env={}).notify_on == "warning,failure"


def test_a_set_incomplete_past_its_deadline_names_what_is_missing_and_since_when() -> None:
    landed = [("orders/a.csv", T0), ("order_items/a.csv", T0 + 600)]
    assert _found(landed, None, T0 + 2 * H - 1, complete_set_deadline="2h") == []
    [late] = _found(landed, None, T0 + 2 * H, complete_set_deadline="2h")
    assert (late.kind, late.since, late.missing, late.present) == (
        "incomplete_set",
        T0,
        ("products",),
        ("orders", "order_items"),
    )
    assert late.condition_id == f"incomplete_set@{int(T0)}"
    message = late.message(T0 + 2 * H + 30)
    assert message["severity"] == "warning" and message["missing"] == ["products"]
    assert message["since"] == "2026-05-28T20:26:40Z" and message["seconds_late"] == 30.0
    assert "still missing products" in message["subject"] and "(2h ago)" in message["subject"]


def test_what_is_not_a_data_file_starts_no_set() -> None:
    landed = [("orders/a.csv.part", T0), ("orders/~$a.csv", T0), ("orders/notes.txt", T0)]
    assert _found(landed, None, T0 + 10 * H, complete_set_deadline="2h") == []


def test_a_complete_set_or_an_empty_landing_is_not_late() -> None:
    complete = [("orders/a.csv", T0), ("order_items/a.csv", T0), ("products/a.csv", T0)]
    assert _found(complete, None, T0 + 10 * H, complete_set_deadline="2h") == []
    assert _found([], T0, T0 + 10 * H, complete_set_deadline="2h") == []


def test_nothing_landed_for_the_freshness_deadline() -> None:
    # The latest execution took what had landed before it: the last landing is its start.
    assert _found([], T0, T0 + 26 * H - 1, freshness_deadline="26h") == []
    [stale] = _found([], T0, T0 + 26 * H, freshness_deadline="26h")
    assert (stale.kind, stale.since, stale.condition_id) == (
        "no_landing",
        T0,
        f"no_landing@{int(T0)}",
    )
    assert "nothing has landed since 2026-05-28T20:26:40Z" in stale.message(T0 + 26 * H)["subject"]
    # A newer file in landing is the last landing.
    assert _found([("orders/a.csv", T0 + H)], T0, T0 + 26 * H, freshness_deadline="26h") == []


def test_before_anything_landed_there_is_nothing_to_measure_from() -> None:
    assert _found([], None, T0, freshness_deadline="1s") == []


def test_an_object_of_unknown_landing_time_counts_as_landed_now() -> None:
    assert _found([("orders/a.csv", None)], T0 - 30 * H, T0, freshness_deadline="26h") == []


def test_deadlines_are_off_by_default() -> None:
    assert _found([("orders/a.csv", T0)], T0, T0 + 1000 * H) == []


def test_both_conditions_at_once_and_a_new_set_is_a_new_condition() -> None:
    both = _found(
        [("orders/a.csv", T0)],
        None,
        T0 + 30 * H,
        complete_set_deadline="2h",
        freshness_deadline="26h",
    )
    assert [c.kind for c in both] == ["incomplete_set", "no_landing"]
    later = _found([("orders/b.csv", T0 + 40 * H)], None, T0 + 43 * H, complete_set_deadline="2h")
    assert later[0].condition_id != both[0].condition_id
