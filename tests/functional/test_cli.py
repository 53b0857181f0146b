"""The command line as a user meets it: help, exit codes, one-line errors, output shapes.

Most tests call the CLI in-process (tests.conftest.ecompipe); a few run the real console
entry point in a subprocess, where stdout/stderr are pipes as in a script.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import os
from decimal import Decimal
from pathlib import Path

import click
import pytest

from tests.conftest import FIXTURES, ecompipe, ecompipe_proc, metrics_json
from tests.support import DATASETS, SUCCESS_PATH, land, notifications, write_batch

pytestmark = [pytest.mark.duckdb, pytest.mark.local]

HAND = FIXTURES / "hand"
ORDER_FIELDS = [
    "order_date",
    "total_orders",
    "total_revenue",
    "total_items_sold",
    "return_rate",
    "unique_customers",
]
CATEGORY_FIELDS = ["category", "order_date", "daily_revenue", "avg_order_value", "avg_return_rate"]


def _all_commands() -> list[list[str]]:
    from ecompipe.cli import main

    found: list[list[str]] = [[]]

    def walk(group: click.Group, path: list[str]) -> None:
        for name, cmd in group.commands.items():
            found.append([*path, name])
            if isinstance(cmd, click.Group):
                walk(cmd, [*path, name])

    walk(main, [])
    return found


def _hand_run(workspace: Path) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    result = ecompipe("run", "-q", workspace=workspace)
    assert result.exit_code == 0, result.output


def _one_line_error(result: object, code: int) -> str:
    """Assert a user error: the exit code, no traceback, one or two lines on stderr."""
    exit_code = result.exit_code  # type: ignore[attr-defined]
    stderr: str = result.stderr  # type: ignore[attr-defined]
    output: str = result.output  # type: ignore[attr-defined]
    assert exit_code == code, output
    assert "Traceback" not in output
    lines = stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, stderr
    return stderr


# ------------------------------------------------------------------------- help


@pytest.mark.fast
def test_the_command_list_is_what_the_issue_names() -> None:
    names = {tuple(c) for c in _all_commands()}
    for command in ("init", "generate", "run", "metrics", "executions", "demo", "config"):
        assert (command,) in names
    assert ("executions", "show") in names


@pytest.mark.fast
@pytest.mark.parametrize("command", _all_commands(), ids=lambda c: " ".join(c) or "main")
def test_every_command_has_help(command: list[str]) -> None:
    result = ecompipe(*command, "--help")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: ")
    assert "--help" in result.stdout


@pytest.mark.fast
def test_run_help_documents_every_exit_code() -> None:
    text = ecompipe("run", "--help").stdout
    for code, words in [
        ("0", "success"),
        ("1", "rejected"),
        ("2", "operational"),
        ("3", "no complete set"),
        ("141", "went away"),
    ]:
        assert any(line.strip().startswith(code) and words in line for line in text.splitlines())


# ------------------------------------------------------------------------- missing workspace


MISSING_WS_COMMANDS = [
    ["run"],
    ["metrics"],
    ["metrics", "--json"],
    ["recompute"],
    ["executions"],
    ["executions", "show", "exec-1"],
    ["generate", "--orders", "5"],
    ["config"],
    ["lock"],
]


@pytest.mark.fast
@pytest.mark.parametrize("command", MISSING_WS_COMMANDS, ids=" ".join)
def test_commands_on_a_missing_workspace_say_so_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    ws = tmp_path / "nowhere"
    result = ecompipe(*command, workspace=ws)
    stderr = _one_line_error(result, 2)
    assert len(stderr.strip().splitlines()) == 1
    assert str(ws) in stderr and "ecompipe init" in stderr
    assert result.stdout == ""
    assert not ws.exists()  # nothing was created by the failed command


@pytest.mark.fast
def test_workspace_from_env_var(tmp_path: Path) -> None:
    ws = tmp_path / "from-env"
    assert ecompipe("init", ECOMPIPE_WORKSPACE=str(ws)).exit_code == 0
    assert (ws / "landing" / "orders").is_dir()
    assert (ws / "ecompipe.db").is_file() and (ws / "ecompipe.toml").is_file()
    for sub in ("archive", "quarantine", "landing/order_items", "landing/products"):
        assert (ws / sub).is_dir()
    result = ecompipe("executions", ECOMPIPE_WORKSPACE=str(ws))
    assert result.exit_code == 0 and "no executions yet" in result.stdout


@pytest.mark.fast
def test_init_twice_keeps_data(workspace: Path) -> None:
    (workspace / "landing" / "orders" / "keep.csv").write_text("x\n")
    config = workspace / "ecompipe.toml"
    config.write_text("[ecompipe]\nlock_limit = 2\n")
    assert ecompipe("init", workspace=workspace).exit_code == 0
    assert (workspace / "landing" / "orders" / "keep.csv").read_text() == "x\n"
    assert config.read_text() == "[ecompipe]\nlock_limit = 2\n"


@pytest.mark.fast
def test_init_over_a_damaged_database_is_one_line(workspace: Path) -> None:
    (workspace / "ecompipe.db").write_bytes(b"this is not SQLite " * 20)
    stderr = _one_line_error(ecompipe("init", workspace=workspace), 2)
    assert "ecompipe.db" in stderr


@pytest.mark.fast
def test_each_command_closes_the_database_when_it_ends(workspace: Path) -> None:
    """No connection outlives its command: the write-ahead log is folded into ecompipe.db
    when the command ends (a copy of the file is then whole), not whenever a garbage
    collection comes by (sqlite3 keeps a dropped connection alive in a reference cycle)."""
    land(workspace, {d: FIXTURES / "hand_dirty" / f"{d}.csv" for d in DATASETS})
    wal = workspace / "ecompipe.db-wal"
    gc.disable()  # only the commands themselves may close what they opened
    try:
        for args in (
            ["run"],
            ["metrics"],
            ["metrics", "history", "--date", "2024-03-01"],
            ["executions"],
            ["lock"],
            ["rejects"],
            ["rejects", "summary"],
            ["check"],
            ["recompute"],
            ["report", "--html", str(workspace.parent / "report.html")],
        ):
            result = ecompipe(*args, workspace=workspace)
            assert result.exit_code == 0, (args, result.output)
            assert not wal.exists(), f"`ecompipe {' '.join(args)}` left a connection open"
    finally:
        gc.enable()


# ------------------------------------------------------------------------- run exit codes


@pytest.mark.fast
def test_run_exit_0_with_rejected_rows(workspace: Path) -> None:
    land(workspace, {d: FIXTURES / "hand_dirty" / f"{d}.csv" for d in DATASETS})
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 0, result.output
    # The console notification names the outcome and the rejected rows (6: see the README).
    assert "SUCCEEDED" in result.stderr and "6 rows rejected" in result.stderr


@pytest.mark.fast
def test_run_exit_1_when_every_file_is_rejected(workspace: Path) -> None:
    write_batch(
        workspace,
        {
            "orders": "order_id,user_id,created_at\n1,1,2024-01-01 00:00:00\n",
            "order_items": "",
            "products": "id,sku,cost,category,retail_price\n",
        },
    )
    result = ecompipe("run", workspace=workspace)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "FAILED" in result.stderr
    assert metrics_json(workspace) == {"order_metrics": [], "category_metrics": []}


@pytest.mark.fast
@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ([], ["orders", "order_items", "products"]),
        (["orders"], ["order_items", "products"]),
        (["orders", "products"], ["order_items"]),
        (["order_items", "products"], ["orders"]),
    ],
)
def test_run_exit_3_lists_what_is_missing(
    workspace: Path, present: list[str], missing: list[str]
) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in present})
    result = ecompipe("run", workspace=workspace)
    stderr = _one_line_error(result, 3)
    first = stderr.splitlines()[0]
    assert first.split("missing ", 1)[1].strip().split(", ") == missing
    # The hint names the folders to fill.
    assert all(str(workspace / "landing" / d) in stderr for d in missing)
    # Nothing was started: no execution, landed files untouched.
    assert "no executions yet" in ecompipe("executions", workspace=workspace).stdout
    for d in present:
        assert (workspace / "landing" / d / f"{d}.csv").is_file()


@pytest.mark.fast
def test_run_exit_3_ignores_non_csv_files(workspace: Path) -> None:
    land(workspace, {"orders": HAND / "orders.csv", "products": HAND / "products.csv"})
    (workspace / "landing" / "order_items" / "notes.txt").write_text("not data\n")
    assert "order_items" in _one_line_error(ecompipe("run", workspace=workspace), 3)


@pytest.mark.fast
@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ECOMPIPE_MAX_ERROR_RATE": "lots"}, "ECOMPIPE_MAX_ERROR_RATE"),
        ({"ECOMPIPE_LOCK_LIMIT": "0"}, "ECOMPIPE_LOCK_LIMIT"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"ORDER_METRICS_TABLE": "bad name!"}, "ORDER_METRICS_TABLE"),
    ],
)
def test_run_exit_2_on_a_bad_config_value(
    workspace: Path, env: dict[str, str], needle: str
) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    stderr = _one_line_error(ecompipe("run", workspace=workspace, **env), 2)
    assert needle in stderr
    # Failed before touching anything.
    assert sorted(p.name for p in (workspace / "landing").rglob("*.csv")) == sorted(
        f"{d}.csv" for d in DATASETS
    )


@pytest.mark.fast
def test_run_exit_2_on_an_unreadable_workspace_database(workspace: Path) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    (workspace / "ecompipe.db").write_bytes(b"garbage, not a database " * 50)
    stderr = _one_line_error(ecompipe("run", workspace=workspace), 2)
    assert "ecompipe.db" in stderr
    for command in (["metrics"], ["executions"]):
        assert "ecompipe.db" in _one_line_error(ecompipe(*command, workspace=workspace), 2)


@pytest.mark.fast
def test_run_json_is_machine_readable(workspace: Path) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    result = ecompipe("run", "--json", workspace=workspace)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["exit_code"] == 0
    [execution] = data["executions"]
    assert execution["status"] == "SUCCEEDED"
    assert execution["execution_id"].startswith("exec-")
    assert result.stderr == ""  # --json implies no notification line


# ------------------------------------------------------------------------- metrics


@pytest.mark.fast
def test_metrics_json_shape_and_values(workspace: Path) -> None:
    _hand_run(workspace)
    data = metrics_json(workspace)
    assert list(data) == ["order_metrics", "category_metrics"]
    expected = json.loads((HAND / "expected.json").read_text())
    for name, fields in (("order_metrics", ORDER_FIELDS), ("category_metrics", CATEGORY_FIELDS)):
        assert len(data[name]) == len(expected[name])
        for row in data[name]:
            assert list(row) == fields
            for key, value in row.items():
                if key in ("order_date", "category"):
                    assert isinstance(value, str)
                else:  # JSON numbers, never strings
                    assert isinstance(value, int | float) and not isinstance(value, bool)
    got_orders = {r["order_date"]: r for r in data["order_metrics"]}
    for row in expected["order_metrics"]:
        got = got_orders[row["order_date"]]
        for key, value in row.items():
            if key != "order_date":
                assert Decimal(str(got[key])) == Decimal(str(value)), (row, key)
    got_cats = {(r["category"], r["order_date"]): r for r in data["category_metrics"]}
    for row in expected["category_metrics"]:
        got = got_cats[(row["category"], row["order_date"])]
        for key in ("daily_revenue", "avg_order_value", "avg_return_rate"):
            assert Decimal(str(got[key])) == Decimal(row[key]), (row, key)


@pytest.mark.fast
def test_metrics_filters(workspace: Path) -> None:
    _hand_run(workspace)

    def get(*args: str) -> tuple[list[str], list[tuple[str, str]]]:
        result = ecompipe("metrics", "--json", *args, workspace=workspace)
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        return (
            [r["order_date"] for r in data["order_metrics"]],
            [(r["category"], r["order_date"]) for r in data["category_metrics"]],
        )

    # The hand fixture has 2024-03-01 and 2024-03-02, categories Jeans and Tops on both.
    assert get("--from", "2024-03-02") == (
        ["2024-03-02"],
        [("Jeans", "2024-03-02"), ("Tops", "2024-03-02")],
    )
    assert get("--to", "2024-03-01") == (
        ["2024-03-01"],
        [("Jeans", "2024-03-01"), ("Tops", "2024-03-01")],
    )
    assert get("--from", "2024-03-01", "--to", "2024-03-02")[0] == ["2024-03-01", "2024-03-02"]
    assert get("--category", "Tops")[1] == [("Tops", "2024-03-01"), ("Tops", "2024-03-02")]
    assert get("--category", "Jeans", "--from", "2024-03-02") == (
        ["2024-03-02"],
        [("Jeans", "2024-03-02")],
    )
    assert get("--category", "Shoes") == ([], [])
    assert get("--from", "2025-01-01") == ([], [])


@pytest.mark.fast
def test_metrics_csv(workspace: Path) -> None:
    _hand_run(workspace)
    result = ecompipe("metrics", "--csv", workspace=workspace)
    assert result.exit_code == 0, result.output
    blocks = result.stdout.split("\n\n")
    assert len(blocks) == 2
    orders = list(csv.reader(io.StringIO(blocks[0])))
    categories = list(csv.reader(io.StringIO(blocks[1])))
    assert orders[0] == ORDER_FIELDS and categories[0] == CATEGORY_FIELDS
    assert [r[0] for r in orders[1:]] == ["2024-03-01", "2024-03-02"]
    # Hand-computed: 2024-03-01 revenue 65.11, return rate 0.3333 (tests/fixtures/hand).
    assert Decimal(orders[1][2]) == Decimal("65.11") and Decimal(orders[1][4]) == Decimal("0.3333")
    assert len(categories) == 5


@pytest.mark.fast
def test_metrics_table_is_the_default(workspace: Path) -> None:
    _hand_run(workspace)
    out = ecompipe("metrics", workspace=workspace).stdout
    assert "order_metrics_table (2 rows)" in out and "category_metrics_table (4 rows)" in out
    assert "65.11" in out and "2024-03-02" in out
    # Not a terminal here: every header is printed whole, never cut to "total_rev…".
    for name in (*ORDER_FIELDS, *CATEGORY_FIELDS):
        assert f" {name} " in out, name
    assert "…" not in out


@pytest.mark.fast
@pytest.mark.parametrize(
    "args",
    [["--from", "2024-13-01"], ["--to", "yesterday"], ["--json", "--csv"]],
    ids=["bad-month", "not-a-date", "json-and-csv"],
)
def test_metrics_usage_errors(workspace: Path, args: list[str]) -> None:
    result = ecompipe("metrics", *args, workspace=workspace)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    what, where = result.stderr.splitlines()  # two lines, not click's usage block
    assert what.startswith("ecompipe: error: ") and args[0] in what
    assert where == "  see `ecompipe metrics --help`"


@pytest.mark.fast
def test_a_misspelled_option_or_missing_argument_is_two_lines(workspace: Path) -> None:
    bogus = ecompipe("run", "--bogus", workspace=workspace)
    assert bogus.exit_code == 2
    assert bogus.stderr.splitlines() == [
        "ecompipe: error: No such option '--bogus'.",
        "  see `ecompipe run --help`",
    ]
    missing = ecompipe("executions", "show", workspace=workspace)
    assert missing.exit_code == 2
    assert missing.stderr.splitlines()[1] == "  see `ecompipe executions show --help`"
    alone = ecompipe("aws")  # a group named alone shows its help, not an error
    assert alone.output.startswith("Usage: ") and "aws [OPTIONS] COMMAND" in alone.output
    assert "error" not in alone.output


# ------------------------------------------------------------------------- executions


@pytest.mark.fast
def test_executions_list_and_show(workspace: Path) -> None:
    _hand_run(workspace)
    listed = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)
    assert len(listed) == 1 and listed[0]["status"] == "SUCCEEDED"
    eid = listed[0]["execution_id"]
    text = ecompipe("executions", workspace=workspace).stdout
    assert eid in text and "SUCCEEDED" in text
    # A finished execution shows its ending state, not the lease bookkeeping after it.
    assert "ReleaseLockAndNotifySuccess" in text.splitlines()[0]
    show = ecompipe("executions", "show", eid, workspace=workspace)
    assert show.exit_code == 0, show.output
    positions = [show.stdout.find(f"  {s} ") for s in SUCCESS_PATH]
    assert all(p > 0 for p in positions) and positions == sorted(positions), positions
    assert "validation report:" in show.stdout
    assert "orders/orders.csv: accepted" in show.stdout
    # A unique prefix works too.
    assert ecompipe("executions", "show", eid[:-2], workspace=workspace).exit_code == 0


@pytest.mark.fast
def test_executions_show_json_has_timed_history_in_order(workspace: Path) -> None:
    _hand_run(workspace)
    eid = json.loads(ecompipe("executions", "--json", workspace=workspace).stdout)[0][
        "execution_id"
    ]
    data = json.loads(ecompipe("executions", "show", eid, "--json", workspace=workspace).stdout)
    events = data["events"]
    times = [e["at"] for e in events]
    assert times == sorted(times) and all(isinstance(t, float) for t in times)
    # Each seed state was entered and succeeded, in the seed's order.
    entered = [e["state"] for e in events if e["event"] == "entered"]
    assert [s for s in entered if s != "AcquireLock"] == SUCCESS_PATH[1:]
    succeeded = [e["state"] for e in events if e["event"] == "succeeded"]
    assert succeeded == SUCCESS_PATH
    assert data["summary"]["validation"]["files_accepted"] == 3
    assert sorted(e["key"] for e in data["manifest"]) == sorted(f"{d}/{d}.csv" for d in DATASETS)


@pytest.mark.fast
def test_executions_show_unknown_id(workspace: Path) -> None:
    stderr = _one_line_error(ecompipe("executions", "show", "nope", workspace=workspace), 2)
    assert "nope" in stderr


# ------------------------------------------------------------------------- generate, demo, config


@pytest.mark.fast
def test_generate_is_deterministic_per_seed(tmp_path: Path) -> None:
    def gen(name: str, seed: str) -> dict[str, bytes]:
        ws = tmp_path / name
        assert ecompipe("init", workspace=ws).exit_code == 0
        result = ecompipe("generate", "--orders", "300", "--seed", seed, workspace=ws)
        assert result.exit_code == 0, result.output
        return {p.name: p.read_bytes() for p in sorted((ws / "landing").rglob("*.csv"))}

    first, again, other = gen("a", "5"), gen("b", "5"), gen("c", "6")
    assert first == again
    assert set(first) == {"orders_s5_n300.csv", "order_items_s5_n300.csv", "products_s5_n300.csv"}
    assert first["orders_s5_n300.csv"] != other["orders_s6_n300.csv"]
    assert first["orders_s5_n300.csv"].count(b"\n") == 301  # header + 300 orders


@pytest.mark.fast
def test_generate_refuses_to_overwrite(workspace: Path) -> None:
    assert ecompipe("generate", "--orders", "20", workspace=workspace).exit_code == 0
    stderr = _one_line_error(ecompipe("generate", "--orders", "20", workspace=workspace), 2)
    assert "--seed" in stderr or "--name" in stderr


@pytest.mark.fast
def test_generate_dirty_reports_its_faults(workspace: Path) -> None:
    result = ecompipe("generate", "--orders", "300", "--dirty", workspace=workspace)
    assert result.exit_code == 0, result.output
    assert "faults:" in result.stdout and "missing_column=1" in result.stdout
    nocol = list((workspace / "landing" / "order_items").glob("*_nocol.csv"))
    assert len(nocol) == 1
    assert "sale_price" not in nocol[0].read_text().splitlines()[0]


@pytest.mark.slow
def test_demo_on_a_fresh_folder(tmp_path: Path) -> None:
    ws = tmp_path / "fresh" / "demo-ws"
    result = ecompipe("demo", "--orders", "400", workspace=ws)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "order_metrics_table" in result.stdout and "category_metrics_table" in result.stdout
    # It ends by saying how to open the dashboard.
    assert f"ecompipe serve --workspace {ws}" in result.stdout.splitlines()[-1]
    assert "http://127.0.0.1:8765/" in result.stdout.splitlines()[-1]
    data = metrics_json(ws)
    assert sum(r["total_orders"] for r in data["order_metrics"]) == 400
    assert not any((ws / "landing").rglob("*.csv"))  # everything was processed and archived


@pytest.mark.fast
def test_config_prints_every_setting_with_its_source_names(workspace: Path) -> None:
    from ecompipe.config import setting_docs

    result = ecompipe("config", workspace=workspace, ORDER_METRICS_TABLE="om_from_env")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name, env, _default, _doc in setting_docs():
        assert any(line.startswith(f"{name} = ") and f"[{env}]" in line for line in lines), name
    assert any(line.startswith("order_metrics_table = om_from_env ") for line in lines)
    assert any(
        line.startswith("category_metrics_table = category_metrics_table ") for line in lines
    )


# ------------------------------------------------------------------------- real processes


@pytest.mark.slow
def test_real_process_errors_are_one_line_and_quiet_when_piped(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    missing = ecompipe_proc("run", workspace=ws, timeout=60)
    assert missing.returncode == 2
    assert missing.stdout == "" and len(missing.stderr.strip().splitlines()) == 1
    assert "Traceback" not in missing.stderr

    assert ecompipe_proc("init", workspace=ws, timeout=60).returncode == 0
    incomplete = ecompipe_proc("run", workspace=ws, timeout=60)
    assert incomplete.returncode == 3 and "Traceback" not in incomplete.stderr
    assert "orders, order_items, products" in incomplete.stderr

    bad = ecompipe_proc("run", workspace=ws, env={"ECOMPIPE_LEASE_SECONDS": "-1"}, timeout=60)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.count("ECOMPIPE_LEASE_SECONDS") == 1

    land(ws, {d: HAND / f"{d}.csv" for d in DATASETS})
    piped = ecompipe_proc("run", "--quiet", workspace=ws, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "" and piped.stderr == ""  # piped and --quiet: silent
    assert [n["status"] for n in notifications(ws)] == ["SUCCEEDED"]  # still recorded

    data = json.loads(ecompipe_proc("metrics", "--json", workspace=ws, timeout=60).stdout)
    assert [r["order_date"] for r in data["order_metrics"]] == ["2024-03-01", "2024-03-02"]


@pytest.mark.slow
def test_real_process_help_and_version(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMPIPE_")}
    done = subprocess.run(
        [sys.executable, "-m", "ecompipe", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0 and "Exit codes:" in done.stdout
    for command in ("init", "generate", "run", "metrics", "executions", "demo"):
        assert command in done.stdout


@pytest.mark.slow
def test_real_process_stops_quietly_when_the_reader_goes_away(workspace: Path) -> None:
    """`ecompipe ... | head`: no error line, exit 141 (as a process killed by SIGPIPE)."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "ecompipe", "executions", "--json", "-w", str(workspace)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the interpreter is up: its output meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


# ------------------------------------------------------------------------- unexpected errors


@pytest.mark.fast
def test_os_errors_and_bugs_are_still_short(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecompipe import sample

    def denied(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied", "/some/landing/orders")

    monkeypatch.setattr(sample, "generate_sample", denied)
    stderr = _one_line_error(ecompipe("generate", "--orders", "5", workspace=workspace), 2)
    assert stderr.strip() == "ecompipe: error: Permission denied: /some/landing/orders"

    def bug(*_a: object, **_k: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sample, "generate_sample", bug)
    stderr = _one_line_error(ecompipe("generate", "--orders", "5", workspace=workspace), 2)
    assert "internal error: RuntimeError: boom" in stderr and "LOG_LEVEL=DEBUG" in stderr
    with pytest.raises(RuntimeError, match="boom"):
        ecompipe("generate", "--orders", "5", workspace=workspace, LOG_LEVEL="DEBUG")


@pytest.mark.fast
def test_workspace_that_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    path.write_text("x")
    for command in (["init"], ["run"], ["metrics"]):
        result = ecompipe(*command, workspace=path)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert "is a file" in result.stderr
    assert path.read_text() == "x"


@pytest.mark.fast
@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden"])
def test_generate_rejects_a_bad_name_in_one_line(workspace: Path, name: str) -> None:
    stderr = _one_line_error(
        ecompipe("generate", "--orders", "5", "--name", name, workspace=workspace), 2
    )
    assert name in stderr
    assert not any((workspace / "landing").rglob("*.csv"))
    assert not (workspace.parent / "escape").exists()
