"""Settings: one table of every knob, loaded with the precedence
explicit argument > environment variable > workspace config file > default.

Environment variable names are the original system's where one existed (BUCKET_NAME,
ORDER_METRICS_TABLE, ...), so its operators find their settings where they expect them.
Every problem is reported at start-up, one line each, in a single :class:`ConfigError`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ecompipe.contracts import DATASET_NAMES
from ecompipe.errors import ConfigError

CONFIG_FILE_NAME = "ecompipe.toml"
DEFAULT_WORKSPACE = Path("ecompipe-workspace")


def _whole(raw: Any, low: int, high: int | None, rule: str) -> int:
    """An integer in [low, high]; ``rule`` is the message for anything else."""
    try:
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError
        value = int(str(raw).strip()) if not isinstance(raw, float) else int(raw)
    except (ValueError, TypeError):
        raise ValueError(rule) from None
    if value < low or (high is not None and value > high):
        raise ValueError(rule)
    return value


def _real(raw: Any, ok: Callable[[float], bool], rule: str) -> float:
    """A finite number for which ``ok`` holds; ``rule`` is the message for anything else."""
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(str(raw).strip())
    except (ValueError, TypeError):
        raise ValueError(rule) from None
    if value != value or value in (float("inf"), float("-inf")) or not ok(value):
        raise ValueError(rule)
    return value


def _positive_int(raw: Any) -> int:
    return _whole(raw, 1, None, "must be a whole number >= 1")


def _non_negative_int(raw: Any) -> int:
    return _whole(raw, 0, None, "must be a whole number >= 0")


def _positive_float(raw: Any) -> float:
    return _real(raw, lambda v: v > 0, "must be a number > 0")


def _non_negative_float(raw: Any) -> float:
    return _real(raw, lambda v: v >= 0, "must be a number >= 0")


def _rate(raw: Any) -> Decimal:
    try:
        if isinstance(raw, bool):
            raise InvalidOperation
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise ValueError("must be a number between 0 and 1") from None
    if not value.is_finite() or not (0 <= value <= 1):
        raise ValueError("must be a number between 0 and 1")
    return value


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ValueError("must be one of " + ", ".join(allowed))
        return value

    return parse


def _text(raw: Any) -> str:
    value = str(raw).strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _table_name(raw: Any) -> str:
    # DynamoDB's rule for table names, so one setting works on both backends.
    value = str(raw).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", value):
        raise ValueError("must be 3-255 characters of letters, digits, '_', '.' or '-'")
    return value


def _optional_text(raw: Any) -> str:
    return str(raw).strip()


def _prefix(raw: Any) -> str:
    value = str(raw).strip().strip("/")
    if not value or ".." in value.split("/"):
        raise ValueError("must be a relative folder name such as 'orders'")
    return value


def _dynamodb_batch(raw: Any) -> int:
    return _whole(raw, 1, 25, "must be between 1 and 25 (DynamoDB's BatchWriteItem limit)")


def _log_level(raw: Any) -> str:
    # Empty: automatic (logs.configure: INFO for JSON logs, WARNING for text).
    return _choice("", "debug", "info", "warning", "error", "critical")(raw).upper()


def _jvm_memory(raw: Any) -> str:
    value = str(raw).strip().lower()
    if value and not re.fullmatch(r"[1-9][0-9]*[kmgt]?", value):
        raise ValueError("must be a JVM memory size such as 4g or 512m (or empty: automatic)")
    return value


#: Seconds per unit of a duration ("90m", "2h", "1d"); a bare number is seconds.
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The severities of a notification, mildest first (pipeline/messages.py decides each one).
SEVERITIES = ("success", "warning", "failure")


def parse_duration(raw: Any) -> float:
    """Seconds of a duration such as ``90m``, ``2h``, ``26h``, ``1d`` or ``45`` (seconds);
    ``0`` or empty: off."""
    text = str(raw).strip().lower()
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)", text)
    if text == "":
        return 0.0
    if isinstance(raw, bool) or match is None:
        raise ValueError("must be a duration such as 90m, 2h, 26h or 1d (0: off)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


def _severities(raw: Any) -> str:
    """A comma-separated subset of SEVERITIES (or a TOML list), kept in SEVERITIES' order."""
    items = raw if isinstance(raw, list) else str(raw).split(",")
    chosen = {str(item).strip().lower() for item in items if str(item).strip()}
    unknown = sorted(chosen - set(SEVERITIES))
    if unknown or not chosen:
        raise ValueError("must be one or more of " + ", ".join(SEVERITIES) + " (comma-separated)")
    return ",".join(s for s in SEVERITIES if s in chosen)


def _webhook_url(raw: Any) -> str:
    # The URL is a secret (a Slack hook's path is its key): the message never repeats it.
    value = str(raw).strip()
    if value and not re.fullmatch(r"https?://[^\s/]+\S*", value):
        raise ValueError("must be an http:// or https:// URL (or empty: no webhook)")
    return value


def _spark_conf(raw: Any) -> str:
    """``key=value`` pairs separated by ';' (values may hold commas), or a TOML table."""
    if isinstance(raw, dict):
        pairs = [(str(k).strip(), str(v).strip()) for k, v in raw.items()]
        # The setting is kept as 'k=v;k2=v2': a ';' inside a value would split it in two.
        split = [k for k, v in pairs if ";" in v]
        if split:
            raise ValueError(f"values may not contain ';': {', '.join(split)}")
    else:
        pairs = []
        for item in str(raw).split(";"):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"'{item.strip()}' is not key=value (pairs are separated by ';')")
            pairs.append((key.strip(), value.strip()))
    bad = [k for k, _ in pairs if not re.fullmatch(r"spark\.[A-Za-z0-9_.-]+", k)]
    if bad:
        raise ValueError(f"keys must be Spark settings (spark.*): {', '.join(bad)}")
    return ";".join(f"{k}={v}" for k, v in pairs)


def spark_conf_pairs(text: str) -> list[tuple[str, str]]:
    """The (key, value) pairs of a normalised ``spark_conf`` setting."""
    return [(k, v) for k, _, v in (item.partition("=") for item in text.split(";") if item)]


def _setting(default: Any, env: str, parse: Callable[[Any], Any], doc: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every setting, typed. Field metadata names its env var and documents it."""

    engine: str = _setting(
        "duckdb", "ECOMPIPE_ENGINE", _choice("duckdb", "spark"), "Engine for validation and KPIs."
    )
    bucket_name: str = _setting(
        "", "BUCKET_NAME", _optional_text, "AWS: landing bucket. Local: unused (landing/)."
    )
    archive_bucket: str = _setting(
        "", "S3_ARCHIVE_BUCKET", _optional_text, "AWS: archive bucket. Local: unused (archive/)."
    )
    orders_path: str = _setting("orders", "ORDERS_PATH", _prefix, "Prefix of order files.")
    order_items_path: str = _setting(
        "order_items", "ORDER_ITEMS_PATH", _prefix, "Prefix of order item files."
    )
    products_path: str = _setting("products", "PRODUCTS_PATH", _prefix, "Prefix of product files.")
    order_metrics_table: str = _setting(
        "order_metrics_table", "ORDER_METRICS_TABLE", _table_name, "Order metrics table name."
    )
    category_metrics_table: str = _setting(
        "category_metrics_table",
        "CATEGORY_METRICS_TABLE",
        _table_name,
        "Category metrics table name.",
    )
    lock_table: str = _setting(
        "ProcessingLockTable", "LOCK_TABLE", _text, "Lock table (DynamoDB) name."
    )
    executions_table: str = _setting(
        "ecompipe_executions",
        "EXECUTIONS_TABLE",
        _text,
        "AWS: execution log table (DynamoDB): records, manifests, state events.",
    )
    lock_id: str = _setting(
        "ecommerce-pipeline-lock", "LOCK_ID", _text, "Id of the pipeline's lock item."
    )
    lock_limit: int = _setting(
        1, "ECOMPIPE_LOCK_LIMIT", _positive_int, "How many runs may hold the lock at once."
    )
    lease_seconds: float = _setting(
        60.0, "ECOMPIPE_LEASE_SECONDS", _positive_float, "Lock lease length; renewed by heartbeat."
    )
    lock_wait_seconds: float = _setting(
        300.0,
        "ECOMPIPE_LOCK_WAIT_SECONDS",
        _non_negative_float,
        "How long a run waits for a lock slot (with backoff) before it gives up with exit 2.",
    )
    max_error_rate: Decimal = _setting(
        Decimal("0.05"),
        "ECOMPIPE_MAX_ERROR_RATE",
        _rate,
        "Share of bad rows above which a whole file is quarantined.",
    )
    duckdb_memory_limit: str = _setting(
        "2GB", "ECOMPIPE_DUCKDB_MEMORY_LIMIT", _text, "DuckDB memory limit (it spills past it)."
    )
    duckdb_threads: int = _setting(
        0, "ECOMPIPE_DUCKDB_THREADS", _non_negative_int, "DuckDB threads; 0 means one per core."
    )
    spark_master: str = _setting("local[*]", "SPARK_MASTER", _text, "Spark master URL.")
    spark_app_name: str = _setting("ecompipe", "SPARK_APP_NAME", _text, "Spark application name.")
    spark_driver_memory: str = _setting(
        "",
        "SPARK_DRIVER_MEMORY",
        _jvm_memory,
        "Spark driver heap (4g, 512m); empty: in local mode a quarter of the memory, 1g-8g.",
    )
    spark_conf: str = _setting(
        "",
        "ECOMPIPE_SPARK_CONF",
        _spark_conf,
        "More Spark settings: 'spark.k=v;spark.k2=v2' (or a TOML table), e.g. s3a endpoint.",
    )
    settle_seconds: float = _setting(
        5.0,
        "ECOMPIPE_SETTLE_SECONDS",
        _non_negative_float,
        "Local: a landed file counts once its size and mtime are unchanged for this long.",
    )
    max_resumes: int = _setting(
        3,
        "ECOMPIPE_MAX_RESUMES",
        _positive_int,
        "Resumes without progress after which an execution fails (with a notification).",
    )
    debounce_seconds: float = _setting(
        2.0,
        "ECOMPIPE_DEBOUNCE_SECONDS",
        _non_negative_float,
        "watch: quiet period after the last file event before a run starts.",
    )
    aws_region: str = _setting("us-east-1", "AWS_REGION", _text, "AWS region.")
    sns_topic_arn: str = _setting(
        "", "SNS_TOPIC_ARN", _optional_text, "AWS: topic for notifications."
    )
    state_machine_arn: str = _setting(
        "", "STATE_MACHINE_ARN", _optional_text, "AWS: state machine the Lambda starts."
    )
    dynamodb_batch_size: int = _setting(
        25, "DYNAMODB_BATCH_SIZE", _dynamodb_batch, "Items per DynamoDB BatchWriteItem."
    )
    dynamodb_max_retries: int = _setting(
        8, "DYNAMODB_MAX_RETRIES", _positive_int, "Retries of unprocessed DynamoDB items."
    )
    log_level: str = _setting(
        "",
        "LOG_LEVEL",
        _log_level,
        "Logging level; empty: INFO with JSON logs, else WARNING (env only, as log_format).",
    )
    log_format: str = _setting(
        "auto",
        "ECOMPIPE_LOG_FORMAT",
        _choice("auto", "text", "json"),
        "Log lines: text, or json (one object per line); auto: json in `ecompipe task` and the "
        "Lambda, else text. Env or --log-format only: logging starts before a workspace is read.",
    )
    webhook_url: str = _setting(
        "",
        "ECOMPIPE_WEBHOOK_URL",
        _webhook_url,
        "A URL every notification is POSTed to as well (a secret: never shown); empty: none.",
    )
    webhook_format: str = _setting(
        "json",
        "ECOMPIPE_WEBHOOK_FORMAT",
        _choice("json", "slack"),
        "The webhook's payload: json (the message) or slack (text + blocks).",
    )
    notify_on: str = _setting(
        "warning,failure",
        "ECOMPIPE_NOTIFY_ON",
        _severities,
        "Severities the webhook is sent for (success, warning, failure; comma-separated).",
    )
    complete_set_deadline: float = _setting(
        0.0,
        "ECOMPIPE_COMPLETE_SET_DEADLINE",
        parse_duration,
        "Warn when part of a set landed and the rest is still missing after this (2h); 0: off.",
    )
    freshness_deadline: float = _setting(
        0.0,
        "ECOMPIPE_FRESHNESS_DEADLINE",
        parse_duration,
        "Warn when nothing at all has landed for this long (26h); 0: off.",
    )

    def prefix_of(self, dataset: str) -> str:
        """The landing prefix (folder) a dataset's files arrive under (setting
        ``<dataset>_path``)."""
        return str(getattr(self, f"{dataset}_path"))

    def dataset_of_key(self, key: str) -> str | None:
        """The dataset whose prefix a key is under, or None."""
        for name in DATASET_NAMES:
            prefix = self.prefix_of(name) + "/"
            if key.startswith(prefix) and "/" not in key[len(prefix) :]:
                return name
        return None


#: Words that make a setting secret wherever its name has them (``webhook_url``,
#: ``AWS_SECRET_ACCESS_KEY``): its value is never shown by the console or in a report.
SECRET_WORDS = ("key", "secret", "token", "password", "webhook")
REDACTED = "***"


def is_secret(name: str) -> bool:
    """Whether a setting named ``name`` (field or env var) holds a secret (SECRET_WORDS)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def _secret_field(f: Any) -> bool:
    return is_secret(f.name) or is_secret(str(f.metadata.get("env", "")))


def redacted_settings(settings: Any) -> list[dict[str, str]]:
    """Every field of a settings dataclass as {name, env, value}, shown as text, a secret's
    value (by its field or env var name) replaced by REDACTED when it is set."""
    shown = []
    for f in fields(settings):
        value, env = str(getattr(settings, f.name)), str(f.metadata.get("env", ""))
        if value and _secret_field(f):
            value = REDACTED
        shown.append({"name": f.name, "env": env, "value": value})
    return shown


def secret_values(settings: Any) -> list[str]:
    """The values of a settings dataclass's secret fields that are set (what logs redact)."""
    values = (str(getattr(settings, f.name)) for f in fields(settings) if _secret_field(f))
    return [v for v in values if v]


def setting_from_env(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One setting from the environment alone, else its default: for what must be known
    before a workspace is read (logging). A bad value is a ConfigError as load_settings says
    it."""
    env = os.environ if env is None else env
    f = next(f for f in fields(Settings) if f.name == name)
    raw = env.get(f.metadata["env"], "")
    if raw == "":
        return f.default
    try:
        return f.metadata["parse"](raw)
    except (ValueError, TypeError) as exc:
        raise ConfigError([f"env {f.metadata['env']}={raw!r}: {exc}"]) from None


def setting_docs() -> list[tuple[str, str, str, str]]:
    """(file key, env var, default, description) for every setting, for docs and ``--help``."""
    return [
        (f.name, f.metadata["env"], str(f.default), f.metadata["doc"]) for f in fields(Settings)
    ]


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a workspace config file; a broken file is a ConfigError naming it."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read config file ({exc})"]) from None
    section = data.get("ecompipe", data)
    if not isinstance(section, dict):
        raise ConfigError([f"{path}: [ecompipe] must be a table of settings"])
    return section


def load_settings(
    config_file: Path | None = None,
    explicit: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Build Settings with precedence explicit > env > file > default; report every problem."""
    env = os.environ if env is None else env
    explicit = {k: v for k, v in (explicit or {}).items() if v is not None}
    from_file = read_config_file(config_file) if config_file else {}
    known = {f.name for f in fields(Settings)}
    problems = [
        f"{config_file}: unknown setting '{name}' (known: see `ecompipe config`)"
        for name in from_file
        if name not in known
    ]
    values: dict[str, Any] = {}
    for f in fields(Settings):
        env_name = f.metadata["env"]
        if f.name in explicit:
            raw, source = explicit[f.name], f"option for {f.name}"
        elif env.get(env_name, "") != "":
            raw, source = env[env_name], f"env {env_name}"
        elif f.name in from_file:
            raw, source = from_file[f.name], f"{config_file}: {f.name}"
        else:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except (ValueError, TypeError) as exc:
            problems.append(f"{source}={raw!r}: {exc}")
    if problems:
        raise ConfigError(problems)
    settings = Settings(**values)
    prefixes = [settings.prefix_of(d) for d in DATASET_NAMES]
    if len(set(prefixes)) != 3:
        problems.append("ORDERS_PATH, ORDER_ITEMS_PATH and PRODUCTS_PATH must differ")
    elif any(a != b and a.startswith(b + "/") for a in prefixes for b in prefixes):
        problems.append("ORDERS_PATH, ORDER_ITEMS_PATH and PRODUCTS_PATH must not nest")
    if settings.order_metrics_table == settings.category_metrics_table:
        problems.append("ORDER_METRICS_TABLE and CATEGORY_METRICS_TABLE must differ")
    if problems:
        raise ConfigError(problems)
    return settings
