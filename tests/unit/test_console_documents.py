"""The console's pieces without a server: which settings are secret, the state timeline,
the report's embedding of data, and which hosts count as this machine only."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

pytestmark = pytest.mark.fast


def _setting(default: str, env: str) -> Any:
    return field(default=default, metadata={"env": env})


@dataclass(frozen=True)
class FutureSettings:
    """Settings as they may grow: each secret by its field name or by its env var's name."""

    bucket_name: str = _setting("landing", "BUCKET_NAME")
    webhook_url: str = _setting("https://hooks.invalid/T0/B0/canary", "ECOMPIPE_WEBHOOK")
    api_key: str = _setting("canary-key", "ECOMPIPE_API_KEY")
    slack: str = _setting("canary-slack", "SLACK_WEBHOOK_URL")
    db_password: str = _setting("canary-password", "DB_PASSWORD")
    auth: str = _setting("canary-token", "ECOMPIPE_AUTH_TOKEN")
    client_secret: str = _setting("canary-secret", "CLIENT_SECRET")
    unset_token: str = _setting("", "ECOMPIPE_TOKEN")


def test_a_setting_named_key_secret_token_password_or_webhook_is_redacted() -> None:
    from ecompipe.config import REDACTED, redacted_settings

    shown = {s["name"]: s["value"] for s in redacted_settings(FutureSettings())}
    assert shown.pop("bucket_name") == "landing"
    assert shown.pop("unset_token") == ""  # nothing to hide: says it is unset
    assert shown == dict.fromkeys(shown, REDACTED)
    assert len(shown) == 6
    assert "canary" not in json.dumps(redacted_settings(FutureSettings()))


def test_todays_settings_are_shown_whole() -> None:
    """No setting of today is a secret: each is shown as it is (the settings page is useful)."""
    from ecompipe.config import load_settings, redacted_settings

    settings = load_settings(env={"BUCKET_NAME": "my-landing", "SNS_TOPIC_ARN": "arn:x"})
    shown = {s["name"]: s["value"] for s in redacted_settings(settings)}
    assert shown["bucket_name"] == "my-landing" and shown["sns_topic_arn"] == "arn:x"


def _record(status: str, finished_at: float | None) -> Any:
    from ecompipe.stores.base import ExecutionRecord

    return ExecutionRecord("exec-1", 1, status, None, 100.0, finished_at)


def test_state_spans_close_each_attempt_and_mark_interrupted_ones() -> None:
    """A killed attempt ends where the resumed one starts; the last open one runs until now."""
    from ecompipe.console.documents import state_spans

    events = [
        {"state": "AcquireLock", "event": "entered", "at": 100.0},
        {"state": "AcquireLock", "event": "succeeded", "at": 101.0},
        {"state": "ValidateFiles", "event": "entered", "at": 101.5},
        {"state": "AcquireLock", "event": "resumed", "at": 150.0},
        {"state": "ValidateFiles", "event": "entered", "at": 151.0},
        {"state": "ValidateFiles", "event": "failed", "at": 152.0},
        {"state": "ValidateFiles", "event": "entered", "at": 154.0},
    ]
    spans = state_spans(events, _record("RUNNING", None), now=160.0)
    assert [(s["state"], s["start"], s["end"], s["outcome"]) for s in spans] == [
        ("AcquireLock", 100.0, 101.0, "succeeded"),
        ("ValidateFiles", 101.5, 151.0, "interrupted"),
        ("ValidateFiles", 151.0, 152.0, "failed"),
        ("ValidateFiles", 154.0, 160.0, "running"),
    ]
    finished = state_spans(events, _record("FAILED", 158.0), now=999.0)
    assert (finished[-1]["end"], finished[-1]["outcome"]) == (158.0, "interrupted")


def test_the_report_embeds_data_that_cannot_close_its_script() -> None:
    """A landing key or a rejected row's text is data: `</script>` in it ends nothing."""
    from ecompipe.console.report import render_report

    hostile = '</script><script>alert("x")</script><!--'
    page = render_report({"executions": [{"execution_id": hostile}]})
    embedded = re.search(
        r'<script type="application/json" id="ecompipe-report">(.*?)</script>', page, re.S
    )
    assert embedded is not None
    assert json.loads(embedded.group(1)) == {"executions": [{"execution_id": hostile}]}
    assert hostile not in page
    # Nothing is loaded from anywhere: every asset is inline, the policy forbids fetching.
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)
    assert "default-src 'none'" in page


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.invalid", False),
    ],
)
def test_only_loopback_addresses_keep_the_console_to_this_machine(
    host: str, loopback: bool
) -> None:
    from ecompipe.console.app import is_loopback

    assert is_loopback(host) is loopback
