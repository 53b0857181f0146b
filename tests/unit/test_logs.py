"""Log lines: JSON objects with time, level, execution id and state; secrets never written,
however a message spells them; where the lines go and at which level by default; the ECS
task and Lambda entry points choose JSON; progress reports reach whoever shows them."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from ecompipe import logs, progress
from tests.conftest import ecompipe

pytestmark = [pytest.mark.fast]

# Long enough to count as a secret, with characters a URL and JSON both escape.
CANARY = 'Sk3t/ch+y"q\\CANARY=&1'


class Stderr:
    """What ecompipe's handler wrote (to the sys.stderr of the moment: pytest's capture)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._seen = ""

    def getvalue(self) -> str:
        self._seen += self._capsys.readouterr().err
        return self._seen


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Stderr:
    """Stderr as the handler writes it; the chosen format is put back afterwards (the
    handler is taken down by conftest's _logging_put_back)."""
    monkeypatch.setattr(logs, "_format", logs._format)
    return Stderr(capsys)


def _lines(buffer: Stderr) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_context_and_extra(stderr: Stderr) -> None:
    assert logs.configure(logs.JSON, env={}) == logs.JSON
    log = logging.getLogger("ecompipe")
    log.debug("not at the default level")
    log.info("outside any execution")
    with logs.context(execution_id="exec-1"), logs.context(state="ValidateFiles"):
        log.info("%d files", 3, extra={"files": 3})
    log.warning("after it")
    first, inside, after = _lines(stderr)
    assert first["message"] == "outside any execution" and "execution_id" not in first
    assert inside["message"] == "3 files" and inside["files"] == 3
    assert (inside["execution_id"], inside["state"]) == ("exec-1", "ValidateFiles")
    assert (inside["level"], inside["logger"]) == ("INFO", "ecompipe")
    assert inside["time"].endswith("Z")
    assert datetime.fromisoformat(inside["time"]).utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert after["level"] == "WARNING" and "state" not in after


def test_text_lines_are_the_message_alone_and_quiet_by_default(stderr: Stderr) -> None:
    assert logs.configure(env={}) == logs.TEXT
    log = logging.getLogger("ecompipe")
    with logs.context(execution_id="exec-1"):
        log.info("an INFO line is below the default WARNING")
        log.warning("heartbeat failed: %s", "timeout")
    assert stderr.getvalue() == "heartbeat failed: timeout\n"


@pytest.mark.parametrize(
    ("env", "default", "expected"),
    [
        ({}, logs.TEXT, (logs.TEXT, logging.WARNING)),
        ({}, logs.JSON, (logs.JSON, logging.INFO)),
        ({"ECOMPIPE_LOG_FORMAT": "json"}, logs.TEXT, (logs.JSON, logging.INFO)),
        ({"ECOMPIPE_LOG_FORMAT": "text"}, logs.JSON, (logs.TEXT, logging.WARNING)),
        ({"ECOMPIPE_LOG_FORMAT": "auto", "LOG_LEVEL": "error"}, logs.JSON, (logs.JSON, 40)),
    ],
)
def test_format_and_level_defaults(
    stderr: Stderr, env: dict[str, str], default: str, expected: tuple[str, int]
) -> None:
    chosen = logs.configure(default_format=default, env=env)
    assert (chosen, logging.getLogger().level) == expected


def test_configure_twice_keeps_one_handler_and_drops_the_lambda_runtimes(
    stderr: Stderr,
) -> None:
    class LambdaLoggerHandler(logging.Handler):  # the name awslambdaric's handler has
        def emit(self, record: logging.LogRecord) -> None:
            raise AssertionError("the runtime's handler would write every line twice")

    root = logging.getLogger()
    root.addHandler(LambdaLoggerHandler())
    logs.configure(logs.TEXT, env={})
    others = [
        h for h in root.handlers if type(h).__name__ not in ("_Handler", "LambdaLoggerHandler")
    ]
    logs.configure(logs.TEXT, env={})
    logging.getLogger("ecompipe").warning("once")
    assert stderr.getvalue() == "once\n"
    # Ours replaced ours, the runtime's is gone, nobody else's (pytest's) was touched.
    assert [type(h).__name__ for h in root.handlers if h not in others] == ["_Handler"]
    assert all(h in root.handlers for h in others)


@pytest.mark.parametrize("fmt", [logs.TEXT, logs.JSON])
def test_secrets_never_reach_a_line_however_spelled(stderr: Stderr, fmt: str) -> None:
    env = {
        "AWS_SECRET_ACCESS_KEY": CANARY,
        "ECOMPIPE_WEBHOOK_URL": "https://hooks.example/T000/B000/xyzzy-webhook-canary",
        "TOKENIZERS_PARALLELISM": "false",  # too short to be a secret: "false" stays
        "LOG_LEVEL": "DEBUG",
    }
    logs.configure(fmt, env=env)
    log = logging.getLogger("ecompipe")
    url = f"https://api.example/upload?sig={quote(CANARY, safe='')}"
    log.error("upload failed: %s", url)
    log.info("as written: %s; as JSON: %s; flag false", CANARY, json.dumps({"k": CANARY}))
    log.info("posted to %s", env["ECOMPIPE_WEBHOOK_URL"], extra={"target": CANARY})
    try:
        raise RuntimeError(f"refused {CANARY}")
    except RuntimeError:
        log.exception("task crashed")
    out = stderr.getvalue()
    if fmt == logs.JSON:
        lines = _lines(stderr)  # still one valid object a line
        assert len(lines) == 4
        out += "\n".join(str(value) for line in lines for value in line.values())  # decoded
    for spelled in (CANARY, quote(CANARY, safe=""), json.dumps(CANARY)[1:-1], "Sk3t", "xyzzy"):
        assert spelled not in out
    assert out.count("***") >= 5 and "flag false" in out and "RuntimeError" in out


def test_a_secret_setting_from_a_workspace_file_is_redacted(stderr: Stderr) -> None:
    logs.configure(logs.TEXT, env={})
    logs.protect(["file-only-webhook-canary"])
    logging.getLogger("ecompipe").warning("POST https://x/file-only-webhook-canary failed")
    assert stderr.getvalue() == "POST https://x/*** failed\n"


def test_ecs_task_logs_json_by_default(stderr: Stderr) -> None:
    # Without TASK_TOKEN the task stops at once (exit 2); logging was set up before that.
    result = ecompipe("task", "archive")
    assert result.exit_code == 2 and "TASK_TOKEN" in result.stderr
    assert logs.is_json()
    result = ecompipe("config", workspace=Path("missing-ws"))
    assert not logs.is_json()  # any other command: text


def test_lambda_handler_logs_json_by_default(stderr: Stderr) -> None:
    from ecompipe.aws.lambda_handler import handler
    from ecompipe.errors import ConfigError

    with pytest.raises(ConfigError):  # BUCKET_NAME and STATE_MACHINE_ARN unset
        handler({}, None)
    assert logs.is_json() and logging.getLogger().level == logging.INFO


def test_progress_reaches_the_reporter_only_inside_reporting() -> None:
    seen: list[tuple[str, int, int | None, str]] = []
    progress.report("validate orders", 0, 2, "files")  # nobody listens: nothing happens
    assert progress.bytes_callback("upload x", 10) is None
    with progress.reporting(lambda *args: seen.append(args)):
        progress.report("validate orders", 1, 2, "files")
        add = progress.bytes_callback("upload x", 10)
        assert add is not None
        # boto3 calls back from its own threads, which do not see the context variable.
        threads = [threading.Thread(target=add, args=(n,)) for n in (4, 6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    progress.report("validate orders", 2, 2, "files")  # after: nobody listens again
    assert seen[:2] == [("validate orders", 1, 2, "files"), ("upload x", 0, 10, "bytes")]
    # Both chunks added up, whichever thread came first.
    assert len(seen) == 4 and max(done for _, done, _, _ in seen[2:]) == 10
