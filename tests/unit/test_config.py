"""Settings: precedence explicit > env > file > default, the original env var names, and one
clear line per problem."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ecompipe.config import Settings, load_settings, spark_conf_pairs
from ecompipe.errors import ConfigError
from tests.conftest import ecompipe
from tests.support import DATASETS, land

pytestmark = [pytest.mark.fast]

# The original system's environment variables and the setting each one feeds.
ORIGINAL_ENV = {
    "BUCKET_NAME": "bucket_name",
    "S3_ARCHIVE_BUCKET": "archive_bucket",
    "ORDERS_PATH": "orders_path",
    "ORDER_ITEMS_PATH": "order_items_path",
    "PRODUCTS_PATH": "products_path",
    "CATEGORY_METRICS_TABLE": "category_metrics_table",
    "ORDER_METRICS_TABLE": "order_metrics_table",
    "LOG_LEVEL": "log_level",
}


def _file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "ecompipe.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_defaults() -> None:
    s = load_settings(None, env={})
    assert (s.orders_path, s.order_items_path, s.products_path) == (
        "orders",
        "order_items",
        "products",
    )
    assert (s.order_metrics_table, s.category_metrics_table) == (
        "order_metrics_table",
        "category_metrics_table",
    )
    assert s.max_error_rate == Decimal("0.05") and s.engine == "duckdb" and s.lock_limit == 1


def test_file_beats_default(tmp_path: Path) -> None:
    path = _file(tmp_path, '[ecompipe]\nlock_limit = 3\norder_metrics_table = "om_file"\n')
    s = load_settings(path, env={})
    assert (s.lock_limit, s.order_metrics_table) == (3, "om_file")


def test_env_beats_file(tmp_path: Path) -> None:
    path = _file(tmp_path, '[ecompipe]\nlock_limit = 3\norder_metrics_table = "om_file"\n')
    s = load_settings(path, env={"ECOMPIPE_LOCK_LIMIT": "4", "ORDER_METRICS_TABLE": "om_env"})
    assert (s.lock_limit, s.order_metrics_table) == (4, "om_env")


def test_explicit_beats_env(tmp_path: Path) -> None:
    path = _file(tmp_path, '[ecompipe]\nengine = "spark"\nlock_limit = 3\n')
    s = load_settings(
        path, explicit={"engine": "duckdb", "lock_limit": 7}, env={"ECOMPIPE_ENGINE": "spark"}
    )
    assert (s.engine, s.lock_limit) == ("duckdb", 7)


def test_explicit_none_and_empty_env_fall_through(tmp_path: Path) -> None:
    path = _file(tmp_path, '[ecompipe]\nengine = "spark"\n')
    # An option not given (None) and an env var set to "" do not count as set.
    s = load_settings(path, explicit={"engine": None}, env={"ECOMPIPE_ENGINE": ""})
    assert s.engine == "spark"


@pytest.mark.parametrize(("env", "name"), sorted(ORIGINAL_ENV.items()))
def test_original_env_var_names(env: str, name: str) -> None:
    value = {"LOG_LEVEL": "debug"}.get(env, "custom_value_1")
    s = load_settings(None, env={env: value})
    assert getattr(s, name) == ("DEBUG" if env == "LOG_LEVEL" else value)


def test_several_problems_give_several_lines(tmp_path: Path) -> None:
    path = _file(tmp_path, '[ecompipe]\nbogus_key = 1\nlease_seconds = "soon"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(
            path,
            env={
                "ECOMPIPE_LOCK_LIMIT": "0",
                "ECOMPIPE_MAX_ERROR_RATE": "1.5",
                "LOG_LEVEL": "loud",
            },
        )
    problems = caught.value.problems
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    for needle in (
        "bogus_key",
        "lease_seconds",
        "ECOMPIPE_LOCK_LIMIT",
        "ECOMPIPE_MAX_ERROR_RATE",
        "LOG_LEVEL",
    ):
        assert sum(needle in p for p in problems) == 1, (needle, joined)
    assert all("\n" not in p for p in problems)
    # Messages say what is allowed, not Python's internals.
    assert "invalid literal" not in joined and "could not convert" not in joined


@pytest.mark.parametrize(
    ("env", "value", "says"),
    [
        ("ECOMPIPE_LOCK_LIMIT", "two", "whole number"),
        ("ECOMPIPE_LOCK_LIMIT", "1.5", "whole number"),
        ("ECOMPIPE_DUCKDB_THREADS", "-1", "whole number >= 0"),
        ("ECOMPIPE_LEASE_SECONDS", "0", "> 0"),
        ("ECOMPIPE_LEASE_SECONDS", "nan", "> 0"),
        ("ECOMPIPE_LOCK_WAIT_SECONDS", "-3", ">= 0"),
        ("ECOMPIPE_MAX_ERROR_RATE", "NaN", "between 0 and 1"),
        ("ECOMPIPE_ENGINE", "polars", "duckdb, spark"),
        ("DYNAMODB_BATCH_SIZE", "26", "25"),
        ("ORDERS_PATH", "../outside", "relative folder"),
        ("ORDER_METRICS_TABLE", "x", "3-255"),
        ("CATEGORY_METRICS_TABLE", "drop table;", "3-255"),
        ("SPARK_DRIVER_MEMORY", "4 GB", "such as 4g"),
        ("ECOMPIPE_SPARK_CONF", "spark.a=1;oops", "'oops' is not key=value"),
        ("ECOMPIPE_SPARK_CONF", "fs.s3a.endpoint=x", "spark.*"),
    ],
)
def test_bad_values_say_what_is_allowed(env: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={env: value})
    [problem] = caught.value.problems
    assert problem.startswith(f"env {env}=") and says in problem, problem


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"ORDERS_PATH": "data", "PRODUCTS_PATH": "data"}, "must differ"),
        ({"ORDERS_PATH": "data", "PRODUCTS_PATH": "data/products"}, "must not nest"),
        ({"ORDER_METRICS_TABLE": "same", "CATEGORY_METRICS_TABLE": "same"}, "must differ"),
    ],
)
def test_settings_that_clash(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env=env)
    assert len(caught.value.problems) == 1 and says in caught.value.problems[0]


def test_broken_toml_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = _file(tmp_path, "[ecompipe]\nlock_limit = = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    [problem] = caught.value.problems
    assert str(path) in problem and "\n" not in problem


def test_file_values_keep_their_toml_types(tmp_path: Path) -> None:
    path = _file(tmp_path, "[ecompipe]\nmax_error_rate = 0.1\nlease_seconds = 5\n")
    s = load_settings(path, env={})
    assert s.max_error_rate == Decimal("0.1") and s.lease_seconds == 5.0


def test_a_file_without_the_section_header_is_read_too(tmp_path: Path) -> None:
    assert load_settings(_file(tmp_path, "lock_limit = 2\n"), env={}).lock_limit == 2


def test_dataset_of_key_follows_custom_prefixes() -> None:
    s = load_settings(None, env={"ORDERS_PATH": "in/orders", "ORDER_ITEMS_PATH": "items"})
    assert s.dataset_of_key("in/orders/a.csv") == "orders"
    assert s.dataset_of_key("items/a.csv") == "order_items"
    assert s.dataset_of_key("orders/a.csv") is None
    assert s.dataset_of_key("in/orders/deeper/a.csv") is None
    assert isinstance(s, Settings)


# ----------------------------------------------------------------- through the CLI


def test_cli_config_shows_env_over_file_over_default(workspace: Path) -> None:
    config = workspace / "ecompipe.toml"
    config.write_text("[ecompipe]\nlock_limit = 3\nlease_seconds = 30\n")

    def shown(**env: str) -> dict[str, str]:
        result = ecompipe("config", workspace=workspace, **env)
        assert result.exit_code == 0, result.output
        return {
            line.split(" = ", 1)[0]: line.split(" = ", 1)[1].split("    [", 1)[0]
            for line in result.stdout.splitlines()
        }

    plain = shown()
    assert (plain["lock_limit"], plain["lease_seconds"], plain["lock_wait_seconds"]) == (
        "3",
        "30.0",
        "300.0",
    )
    assert shown(ECOMPIPE_LOCK_LIMIT="5")["lock_limit"] == "5"


def test_cli_config_errors_one_line_each(workspace: Path) -> None:
    (workspace / "ecompipe.toml").write_text('[ecompipe]\nnot_a_setting = 1\nlock_limit = "x"\n')
    result = ecompipe("config", workspace=workspace, ECOMPIPE_MAX_ERROR_RATE="2")
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert any("not_a_setting" in line and "unknown setting" in line for line in lines)


@pytest.mark.duckdb
@pytest.mark.local
def test_custom_paths_and_table_names_end_to_end(tmp_path: Path) -> None:
    """ORDERS_PATH & co and the two table names are honoured by init, generate and run."""
    import sqlite3

    env = {
        "ORDERS_PATH": "in/orders",
        "ORDER_ITEMS_PATH": "lines",
        "PRODUCTS_PATH": "catalog",
        "ORDER_METRICS_TABLE": "daily_orders",
        "CATEGORY_METRICS_TABLE": "daily_categories",
    }
    ws = tmp_path / "ws"
    assert ecompipe("init", workspace=ws, **env).exit_code == 0
    for folder in ("in/orders", "lines", "catalog"):
        assert (ws / "landing" / folder).is_dir()
    assert not (ws / "landing" / "orders").exists()
    hand = Path(__file__).parents[1] / "fixtures" / "hand"
    land(
        ws,
        {d: hand / f"{d}.csv" for d in DATASETS},
        prefix={"orders": "in/orders", "order_items": "lines", "products": "catalog"},
    )
    result = ecompipe("run", "-q", workspace=ws, **env)
    assert result.exit_code == 0, result.output
    with sqlite3.connect(ws / "ecompipe.db") as con:
        assert con.execute("SELECT count(*) FROM daily_orders").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM daily_categories").fetchone() == (4,)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert "order_metrics_table" not in tables
    archived = sorted(
        p.relative_to(ws / "archive").as_posix().split("/", 1)[1]
        for p in (ws / "archive").rglob("*.csv")
    )
    assert archived == ["catalog/products.csv", "in/orders/orders.csv", "lines/order_items.csv"]
    # generate writes into the custom folders too, and the data runs.
    assert ecompipe("generate", "--orders", "30", workspace=ws, **env).exit_code == 0
    assert len(list((ws / "landing" / "in" / "orders").glob("*.csv"))) == 1
    assert len(list((ws / "landing" / "lines").glob("*.csv"))) == 1
    assert ecompipe("run", "-q", workspace=ws, **env).exit_code == 0
    metrics = ecompipe("metrics", "--json", workspace=ws, **env)
    assert metrics.exit_code == 0
    assert "daily_orders" in ecompipe("metrics", workspace=ws, **env).stdout


def test_spark_settings_from_env_and_file(tmp_path: Path) -> None:
    """Values may hold commas and '='; the file may give a TOML table."""
    env = {
        "SPARK_DRIVER_MEMORY": "6G",
        "ECOMPIPE_SPARK_CONF": " spark.hadoop.fs.s3a.aws.credentials.provider=a.B,c.D ;"
        "spark.x=y=z;",
    }
    s = load_settings(None, env=env)
    assert s.spark_driver_memory == "6g"
    assert spark_conf_pairs(s.spark_conf) == [
        ("spark.hadoop.fs.s3a.aws.credentials.provider", "a.B,c.D"),
        ("spark.x", "y=z"),
    ]
    path = _file(
        tmp_path,
        '[ecompipe]\nspark_conf = { "spark.hadoop.fs.s3a.endpoint" = "http://127.0.0.1:5000" }\n',
    )
    s = load_settings(path, env={})
    assert spark_conf_pairs(s.spark_conf) == [
        ("spark.hadoop.fs.s3a.endpoint", "http://127.0.0.1:5000")
    ]
    assert (s.spark_driver_memory, load_settings(None, env={}).spark_conf) == ("", "")
    path = _file(tmp_path, '[ecompipe]\nspark_conf = { "spark.a" = "x;spark.b=y" }\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    [problem] = caught.value.problems
    assert "may not contain ';': spark.a" in problem


@pytest.mark.fast
def test_every_setting_is_in_the_readme_table() -> None:
    """The README's configuration table names every setting with its env var."""
    from ecompipe.config import setting_docs

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [
        name for name, env, _d, _doc in setting_docs() if f"| `{name}` | `{env}` |" not in readme
    ]
    assert missing == []
