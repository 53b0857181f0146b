"""Logging: set up once by each entry point (the CLI, an ECS task, the Lambda), as text lines or
one JSON object per line, each line knowing the execution and state it belongs to, and no
secret ever written.

- :func:`configure` installs one handler on the root logger, writing to stderr: ``text`` (the
  message alone, as ecompipe always printed) or ``json`` (time in ISO-8601 UTC, level, logger,
  message, ``execution_id`` and ``state`` when known, and any ``extra`` fields). The format
  comes from ``--log-format``, else ECOMPIPE_LOG_FORMAT, else the entry point's default (json
  inside ECS tasks and the Lambda: CloudWatch keeps the fields queryable). LOG_LEVEL, else INFO
  for JSON (the narrative an operator reads in CloudWatch) and WARNING for text (a quiet
  terminal).
- :func:`context` says which execution and state the code inside it works for (a context
  variable: the runner and the ECS tasks set it around each state).
- Redaction: the values of environment variables whose names say key, secret, token, password
  or webhook (config.is_secret: AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN...) and of secret
  settings (:func:`protect`) are replaced by ``***`` in every line, as written or as they would
  appear inside a URL or a JSON string: message, extra fields and traceback alike.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

from ecompipe.config import REDACTED, is_secret, setting_from_env

TEXT, JSON = "text", "json"
#: Shorter values are not redacted: no real secret is that short, and a flag such as
#: TOKENIZERS_PARALLELISM=false would otherwise blank every "false" in the logs.
MIN_SECRET_LENGTH = 8

_context: ContextVar[Mapping[str, str]] = ContextVar(
    "ecompipe_log_context", default=MappingProxyType({})
)


@contextmanager
def context(**fields: str) -> Iterator[None]:
    """Log lines written inside carry ``fields`` (``execution_id``, ``state``) in JSON."""
    token = _context.set(MappingProxyType({**_context.get(), **fields}))
    try:
        yield
    finally:
        _context.reset(token)


class Redactor:
    """Replaces known secret values in text; values are added as they become known."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: tuple[str, ...] = ()

    def protect(self, values: Iterable[str]) -> None:
        """Redact ``values`` from now on (with their URL-quoted and JSON-escaped forms)."""
        with self._lock:
            forms = set(self._forms)
            for value in values:
                if len(value) >= MIN_SECRET_LENGTH:
                    forms |= {
                        value,
                        quote(value, safe=""),
                        quote_plus(value),
                        json.dumps(value)[1:-1],
                    }
            # Longest first: a secret that contains another is replaced whole.
            self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text


_redact = Redactor()


def protect(values: Iterable[str]) -> None:
    """Never write ``values`` in a log line (secret settings read from a workspace file)."""
    _redact.protect(values)


def redact(text: str) -> str:
    """``text`` with every known secret replaced by ``***`` (for lines printed, not logged)."""
    return _redact(text)


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """The values of environment variables whose names say they hold a secret."""
    return [value for name, value in env.items() if is_secret(name)]


# The attributes every LogRecord has: anything else on a record came from ``extra``.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _Context(logging.Filter):
    """Puts the current context's fields on the record (``extra`` wins over them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _context.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _scrubbed(value: Any) -> Any:
    """``value`` (a JSON-ready tree, or anything shown as text) with every secret redacted."""
    if isinstance(value, dict):
        return {str(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _redact(str(value))


class TextFormatter(logging.Formatter):
    """The message alone (and a traceback), every secret redacted."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The formatted line, redacted."""
        return _redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, context and extra fields,
    and the traceback as ``exception``; every secret redacted before encoding (so one
    quoted inside a message, hence escaped twice on the line, is found too)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        at = datetime.fromtimestamp(record.created, UTC)
        doc: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update((k, v) for k, v in record.__dict__.items() if k not in _RECORD_FIELDS)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(_scrubbed(doc))


class _Handler(logging.StreamHandler[TextIO]):
    """Writes each line, redacted, to the ``sys.stderr`` of the moment: click's test runner
    and rich's live display replace it while a command runs."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self.addFilter(_Context())

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # always the current sys.stderr


_format = TEXT


def configure(
    log_format: str | None = None,
    default_format: str = TEXT,
    env: Mapping[str, str] | None = None,
) -> str:
    """Install ecompipe's handler on the root logger (replacing one installed before, and the
    Lambda runtime's, which would write every record a second time); returns the format.

    ``log_format``: the command line's choice (None: ECOMPIPE_LOG_FORMAT, whose ``auto`` is
    ``default_format``, the entry point's). Raises ConfigError for a bad env value.
    """
    global _format
    env = os.environ if env is None else env
    chosen = log_format or setting_from_env("log_format", env)
    if chosen == "auto":
        chosen = default_format
    level = setting_from_env("log_level", env) or ("INFO" if chosen == JSON else "WARNING")
    protect(env_secrets(env))
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Handler) or type(old).__name__.startswith("LambdaLoggerHandler"):
            root.removeHandler(old)
    formatter = JsonFormatter() if chosen == JSON else TextFormatter()
    root.addHandler(_Handler(formatter))
    root.setLevel(level)
    _format = chosen
    return chosen


def is_json() -> bool:
    """Whether log lines are JSON (then stderr carries nothing else a machine must skip)."""
    return _format == JSON
