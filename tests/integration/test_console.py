"""The operator console in a real browser: `ecompipe serve` (a real subprocess on a free port
of 127.0.0.1) and `ecompipe report --html`, on a workspace with known data, driven by
Playwright on Debian's headless Chromium.

The workspace: a generated dirty sample (rejected rows, a quarantined file, items waiting
for a parent), then a batch whose every file is rejected (a failed execution). Every value
the page shows is checked against tests/reference.py run on the same files, never against
ecompipe's own output. Screenshots go to test-artifacts/console/ (gitignored).

Chromium comes from Debian (`scripts/setup dev` installs it when missing); Playwright only
drives it (never `playwright install`).
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests import reference
from tests.conftest import FIXTURES
from tests.functional.test_pipeline_vs_reference import expected_json
from tests.support import SUCCESS_PATH

pytestmark = [
    pytest.mark.slow,
    pytest.mark.local,
    pytest.mark.duckdb,
    pytest.mark.xdist_group("browser"),
    pytest.mark.timeout(300),
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
#: Values that must never reach a page, an API answer or a report.
CANARIES = {
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-7f3a",
    "AWS_SESSION_TOKEN": "canary-session-token-9c1e",
    "ECOMPIPE_WEBHOOK_URL": "https://hooks.invalid/canary-webhook-55d2",
    "ECOMPIPE_API_KEY": "canary-api-key-0b8d",
}
LOCK_ID = "ecommerce-pipeline-lock"


@dataclass
class Known:
    """The workspace and what the reference says about it."""

    ws: Path
    env: dict[str, str]
    expected: dict[str, Any]  # expected_json: the document of `ecompipe metrics --json`
    rejects: list[reference.Reject]  # the first batch's rejected rows
    quarantined: list[str]  # basenames of the first batch's rejected files
    verdicts: list[reference.FileVerdict]  # both batches'
    waiting_for_order: int
    waiting_for_product: int


def _env() -> dict[str, str]:
    """The test process's environment without the developer's ecompipe/AWS settings (as
    conftest's _clean_env, for a module's subprocesses), plus the secret canaries."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ECOMPIPE_", "AWS_")) and k not in ("BUCKET_NAME", "LOG_LEVEL")
    }
    return {**env, **CANARIES, "ECOMPIPE_SETTLE_SECONDS": "0"}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecompipe", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _landed(ws: Path) -> dict[str, list[Path]]:
    return {d: sorted((ws / "landing" / d).glob("*.csv")) for d in reference.DATASETS}


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Known:
    """Two executions on a new workspace: a dirty sample (succeeds with rejects), then a
    batch whose every file is rejected (fails)."""
    env = _env()
    ws = tmp_path_factory.mktemp("console") / "ws"
    assert _cli(env, "init", "--workspace", str(ws)).returncode == 0
    made = _cli(env, "generate", "--workspace", str(ws), "--orders", "400", "--dirty")
    assert made.returncode == 0, made.stderr
    first = reference.validate_batch(_landed(ws))
    ran = _cli(env, "run", "--workspace", str(ws), "--quiet")
    assert ran.returncode == 0, ran.stderr
    dirty = FIXTURES / "hand_dirty"
    for dataset, source in {
        "orders": dirty / "unreadable" / "orders.csv",
        "order_items": dirty / "error_rate" / "order_items.csv",
        "products": dirty / "no_rows" / "products.csv",
    }.items():
        shutil.copyfile(source, ws / "landing" / dataset / f"second_{dataset}.csv")
    second = reference.validate_batch(_landed(ws))
    assert not any(v.accepted for v in second.verdicts)
    ran = _cli(env, "run", "--workspace", str(ws), "--quiet")
    assert ran.returncode == 1, ran.stderr
    state = reference.merge(reference.merge(None, first), second)
    orders, categories = reference.kpis(state.orders, state.items, state.products)
    return Known(
        ws=ws,
        env=env,
        expected=expected_json(orders, categories),
        rejects=first.rejects,
        quarantined=[Path(v.file).name for v in first.verdicts if not v.accepted],
        verdicts=first.verdicts + second.verdicts,
        waiting_for_order=sum(1 for i in state.items.values() if i[0] not in state.orders),
        waiting_for_product=sum(1 for i in state.items.values() if i[1] not in state.products),
    )


@dataclass
class Server:
    """A running `ecompipe serve`."""

    url: str
    proc: subprocess.Popen[str]


def _plant_leases(ws: Path) -> dict[str, str]:
    """Leases behind the lock's back (as tests/contract plants them): one held by another
    host, one expired, one whose process on this host is gone. Holder -> what it is."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    now = time.time()
    leases = {
        "other-host:1:held": ("exec-held", "other-host", 4242, now - 5, now + 3600),
        "other-host:2:expired": (None, "other-host", 4243, now - 600, now - 60),
        "this-host:gone": ("exec-gone", socket.gethostname(), gone.pid, now - 5, now + 3600),
    }
    con = sqlite3.connect(ws / "ecompipe.db")
    with con:
        for holder, lease in leases.items():
            con.execute(
                "INSERT INTO lock_holders VALUES (?, ?, ?, ?, ?, ?, ?)",
                (LOCK_ID, holder, *lease),
            )
    con.close()
    return {
        "other-host:1:held": "held",
        "other-host:2:expired": "expired",
        "this-host:gone": "dead",
    }


@pytest.fixture(scope="module")
def leases(known: Known) -> dict[str, str]:
    """The planted leases (after both runs: a run reaps what it can)."""
    return _plant_leases(known.ws)


@pytest.fixture(scope="module")
def server(known: Known, leases: dict[str, str]) -> Iterator[Server]:
    """`ecompipe serve --port 0` on the workspace, stopped after the module."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecompipe", "serve", "--workspace", str(known.ws), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=known.env,
    )
    try:
        selector = selectors.DefaultSelector()
        assert proc.stdout is not None
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=60), "ecompipe serve printed no URL within 60 s"
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line
        url = line.split(" at ", 1)[1].split()[0]
        yield Server(url, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
    # uvicorn shuts down on SIGTERM, then ends by the signal it caught, as a Unix tool does.
    errors = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode in (0, -signal.SIGTERM) and "Traceback" not in errors, errors


def get(server: Server, path: str, host: str | None = None) -> tuple[int, str]:
    """GET ``path``: status and body."""
    request = urllib.request.Request(server.url + path.lstrip("/"))
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def api(server: Server, path: str) -> Any:
    status, body = get(server, path)
    assert status == 200, (path, status, body)
    return json.loads(body)


# ---------------------------------------------------------------------------- the JSON API


def test_api_metrics_is_the_reference_and_the_cli_document(known: Known, server: Server) -> None:
    assert api(server, "/api/metrics") == known.expected
    cli = _cli(known.env, "metrics", "--json", "--workspace", str(known.ws))
    assert json.loads(cli.stdout) == known.expected


def test_api_metrics_filters_by_dates_and_category(known: Known, server: Server) -> None:
    dates = [m["order_date"] for m in known.expected["order_metrics"]]
    first, last = dates[len(dates) // 4], dates[len(dates) // 2]
    got = api(server, f"/api/metrics?from={first}&to={last}")
    assert got["order_metrics"] == [
        m for m in known.expected["order_metrics"] if first <= m["order_date"] <= last
    ]
    assert got["category_metrics"] == [
        c for c in known.expected["category_metrics"] if first <= c["order_date"] <= last
    ]
    category = known.expected["category_metrics"][0]["category"]
    got = api(server, f"/api/metrics?category={urllib.request.quote(category)}")
    mine = [c for c in known.expected["category_metrics"] if c["category"] == category]
    assert got["category_metrics"] == mine
    assert got["order_metrics"] == [
        m
        for m in known.expected["order_metrics"]
        if m["order_date"] in {c["order_date"] for c in mine}
    ]
    status, body = get(server, f"/api/metrics?from={last}&to={first}")
    assert status == 400 and "after" in body
    assert get(server, "/api/metrics?from=yesterday")[0] == 422


def test_api_executions_and_one_execution(known: Known, server: Server) -> None:
    rows = api(server, "/api/executions")
    assert [r["status"] for r in rows] == ["FAILED", "SUCCEEDED"]  # latest first
    failed, succeeded = rows
    first_batch = [v for v in known.verdicts if not Path(v.file).name.startswith("second_")]
    assert succeeded["files_accepted"] == sum(v.accepted for v in first_batch)
    assert succeeded["files_rejected"] == sum(not v.accepted for v in first_batch)
    assert succeeded["rows_rejected"] == len({(r.file, r.line) for r in known.rejects})
    # What the pipeline recorded, as `ecompipe executions --json` shows it.
    listed = json.loads(
        _cli(known.env, "executions", "--json", "--workspace", str(known.ws)).stdout
    )
    recorded = {r["execution_id"]: r["summary"] for r in listed}
    transform = recorded[succeeded["execution_id"]]["transform"]
    assert succeeded["dates_recomputed"] == transform["dates_recomputed"]
    assert failed["dates_recomputed"] is None
    assert failed["files_accepted"] == 0 and failed["files_rejected"] == 3
    one = api(server, f"/api/executions/{succeeded['execution_id']}")
    got = sorted(
        (Path(r["file"]).name, r["line"], r["column"], r["reason"]) for r in one["rejects"]["rows"]
    )
    assert got == sorted((Path(r.file).name, r.line, r.column, r.reason) for r in known.rejects)
    assert one["rejects"]["total"] == len(known.rejects)
    assert sorted(Path(e["key"]).name for e in one["quarantined"]) == sorted(known.quarantined)
    assert [s["state"] for s in one["timeline"]] == SUCCESS_PATH
    assert {s["outcome"] for s in one["timeline"]} == {"succeeded"}
    assert get(server, "/api/executions/exec-none")[0] == 404
    assert get(server, "/api/executions/..%2F..%2Fecompipe.db")[0] == 404


def test_api_lock_marks_expired_and_dead_holders(server: Server, leases: dict[str, str]) -> None:
    holders = {h["holder"]: h for h in api(server, "/api/lock")["holders"]}
    assert set(holders) == set(leases)
    shown = {
        name: "dead" if h["dead"] else "expired" if h["expired"] else "held"
        for name, h in holders.items()
    }
    assert shown == leases


def test_api_answers_only_to_loopback_names(server: Server) -> None:
    """A page elsewhere cannot read the API by pointing a name of its own at 127.0.0.1."""
    assert get(server, "/api/lock", host="attacker.invalid")[0] == 400
    assert get(server, "/api/lock", host="localhost")[0] == 200
    assert api(server, "/api/openapi.json")["paths"].keys() >= {
        "/api/metrics",
        "/api/executions",
        "/api/executions/{execution_id}",
        "/api/lock",
    }


def test_serve_and_run_do_not_load_the_web_framework(known: Known) -> None:
    """Only `serve` imports FastAPI/uvicorn: the CLI module and a run never pay for it."""
    code = (
        "import sys, ecompipe.cli, ecompipe.wiring; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'uvicorn', 'starlette', 'pydantic')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=known.env
    )
    assert out.stdout.strip() == "[]", out.stderr


# ---------------------------------------------------------------------------- the browser


@dataclass
class Browser:
    """A Chromium with a fresh profile; what every page logged and requested."""

    context: Any
    errors: list[str]
    requests: list[str]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright, with a fresh user-data-dir."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `scripts/setup dev` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1300, "height": 900},
        )
        seen = Browser(context, [], [])

        def on_page(page: Any) -> None:
            page.on(
                "console",
                lambda m: (
                    seen.errors.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: seen.errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: seen.errors.append(f"request failed: {r.url}"))
            page.on("request", lambda r: seen.requests.append(r.url))

        context.on("page", on_page)
        try:
            yield seen
        finally:
            context.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new tab; after the test, its screenshot, and no console error, failed or outside
    request may have happened."""
    browser.errors.clear()
    browser.requests.clear()
    tab = browser.context.new_page()
    try:
        yield tab
        assert browser.errors == []
    finally:
        tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        tab.close()


def wait_drawn(page: Any, view: str, after: int = 0) -> int:
    """Wait until the page has drawn ``view`` more than ``after`` times in all; that count."""
    page.wait_for_function(
        "([view, after]) => document.body.dataset.ready === view"
        " && Number(document.body.dataset.renders) > after",
        arg=[view, after],
        timeout=30_000,
    )
    return int(page.evaluate("Number(document.body.dataset.renders)"))


def table(page: Any, selector: str) -> list[dict[str, str]]:
    """The rows of a table as the page shows them: column -> text."""
    rows: list[dict[str, str]] = page.evaluate(
        """(selector) => [...document.querySelectorAll(`${selector} tbody tr`)].map((tr) =>
            Object.fromEntries([...tr.querySelectorAll('td')].map(
                (td) => [td.dataset.col, td.textContent])))""",
        selector,
    )
    return rows


def shown(row: dict[str, Any]) -> dict[str, str]:
    """A reference row as the page prints it: money 2 decimals, rates 4, counts whole."""
    out = {}
    for key, value in row.items():
        if key in ("total_revenue", "daily_revenue", "avg_order_value"):
            out[key] = f"{Decimal(str(value)):.2f}"
        elif key in ("return_rate", "avg_return_rate"):
            out[key] = f"{Decimal(str(value)):.4f}"
        else:
            out[key] = str(value)
    return out


def chart(page: Any, canvas: str) -> dict[str, Any]:
    """The data a chart draws (Chart.js's own record of it)."""
    data: dict[str, Any] = page.evaluate(
        """(id) => { const c = Chart.getChart(document.getElementById(id));
            return {labels: c.data.labels,
                    datasets: c.data.datasets.map((d) => ({label: d.label, data: d.data}))}; }""",
        canvas,
    )
    return data


def test_the_kpis_page_draws_the_workspace_numbers(
    known: Known, server: Server, page: Any, browser: Browser
) -> None:
    page.goto(server.url)
    wait_drawn(page, "kpis")
    orders = known.expected["order_metrics"]
    assert table(page, "#metrics-table") == [shown(m) for m in orders]
    revenue = chart(page, "chart-revenue")
    assert revenue["labels"] == [m["order_date"] for m in orders]
    assert revenue["datasets"][0]["data"] == [m["total_revenue"] for m in orders]
    assert chart(page, "chart-orders")["datasets"][0]["data"] == [m["total_orders"] for m in orders]
    assert chart(page, "chart-return-rate")["datasets"][0]["data"] == [
        m["return_rate"] for m in orders
    ]
    total = sum(Decimal(str(m["total_revenue"])) for m in orders)
    assert page.text_content("#tile-revenue .tile-value") == f"{total:.2f}"
    assert page.text_content("#tile-orders .tile-value") == str(
        sum(m["total_orders"] for m in orders)
    )
    # Revenue by category: the top five by revenue, the rest as "Other", every cent kept.
    categories = known.expected["category_metrics"]
    by_category: Counter[str] = Counter()
    for c in categories:
        by_category[c["category"]] += int(Decimal(str(c["daily_revenue"])) * 100)
    ranked = sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))
    drawn = chart(page, "chart-categories")
    assert [d["label"] for d in drawn["datasets"]] == [n for n, _ in ranked[:5]] + ["Other"]
    per_date: Counter[str] = Counter()
    for c in categories:
        per_date[c["order_date"]] += int(Decimal(str(c["daily_revenue"])) * 100)
    assert drawn["labels"] == sorted(per_date)
    sums = [round(sum(d["data"][i] for d in drawn["datasets"]) * 100) for i in range(len(per_date))]
    assert sums == [per_date[d] for d in sorted(per_date)]
    # Everything came from the server itself (no CDN): its page, script, style, chart library.
    assert browser.requests and all(u.startswith(server.url) for u in browser.requests)


def test_filters_change_charts_and_table_together(known: Known, server: Server, page: Any) -> None:
    page.goto(server.url)
    drawn = wait_drawn(page, "kpis")
    orders = known.expected["order_metrics"]
    first, last = orders[len(orders) // 4]["order_date"], orders[len(orders) // 2]["order_date"]
    page.fill("#filter-from", first)
    drawn = wait_drawn(page, "kpis", drawn)
    page.fill("#filter-to", last)
    drawn = wait_drawn(page, "kpis", drawn)
    within = [m for m in orders if first <= m["order_date"] <= last]
    assert 0 < len(within) < len(orders)
    assert table(page, "#metrics-table") == [shown(m) for m in within]
    assert chart(page, "chart-revenue")["labels"] == [m["order_date"] for m in within]
    # A category on top of the dates: its rows only, in the chart and the category table.
    categories = known.expected["category_metrics"]
    in_range = [c for c in categories if first <= c["order_date"] <= last]
    category = Counter(c["category"] for c in in_range).most_common(1)[0][0]
    page.select_option("#filter-category", category)
    drawn = wait_drawn(page, "kpis", drawn)
    mine = [c for c in in_range if c["category"] == category]
    assert [d["label"] for d in chart(page, "chart-categories")["datasets"]] == [category]
    assert table(page, "#metrics-table") == [
        shown(m) for m in within if m["order_date"] in {c["order_date"] for c in mine}
    ]
    page.select_option("#table-choice", "category_metrics")
    assert table(page, "#metrics-table") == [shown(c) for c in mine]
    # Sorting: by revenue, largest first on the second click.
    page.click('#metrics-table th[data-col="daily_revenue"] button')
    page.click('#metrics-table th[data-col="daily_revenue"] button')
    top = max(Decimal(str(c["daily_revenue"])) for c in mine)
    assert table(page, "#metrics-table")[0]["daily_revenue"] == f"{top:.2f}"
    page.click("#filter-reset")
    wait_drawn(page, "kpis", drawn)
    assert chart(page, "chart-revenue")["labels"] == [m["order_date"] for m in orders]


def test_an_execution_opens_with_its_timeline_and_rejected_rows(
    known: Known, server: Server, page: Any
) -> None:
    page.goto(server.url + "#/executions")
    drawn = wait_drawn(page, "executions")
    listed = table(page, "#executions-table")
    assert [r["status"] for r in listed] == ["FAILED", "SUCCEEDED"]
    files = Counter(str(v.reason) for v in known.verdicts if not v.accepted)
    assert {r["reason"]: int(r["count"]) for r in table(page, "#quality-files")} == files
    problems = Counter(r.reason for r in known.rejects)
    assert {r["reason"]: int(r["count"]) for r in table(page, "#quality-rows")} == problems
    assert page.text_content("#quality-waiting .waiting-order") == str(known.waiting_for_order)
    assert page.text_content("#quality-waiting .waiting-product") == str(known.waiting_for_product)
    page.click(f'#executions-table a:text("{listed[1]["execution_id"]}")')
    drawn = wait_drawn(page, "execution", drawn)
    timeline = chart(page, "chart-timeline")
    assert timeline["labels"][0] == "AcquireLock"
    assert timeline["labels"][-1] == "ReleaseLockAndNotifySuccess"
    outcomes = page.eval_on_selector_all(
        "#execution-graph li", "(lis) => lis.map((li) => [li.dataset.state, li.dataset.outcome])"
    )
    assert dict(outcomes)["TransformData"] == "succeeded"
    assert dict(outcomes)["ReleaseLockAndNotifyFailure"] == "not-run"
    rejects = table(page, "#execution-rejects")
    assert sorted(
        (Path(r["file"]).name, int(r["line"]), r["column"], r["reason"]) for r in rejects
    ) == sorted((Path(r.file).name, r.line, r.column, r.reason) for r in known.rejects)
    assert all(r["text"] for r in rejects if r["reason"] != "bad_row_shape")
    quarantined = [Path(r["key"]).name for r in table(page, "#execution-quarantined")]
    assert sorted(quarantined) == sorted(known.quarantined)
    page.screenshot(path=str(ARTIFACTS / "execution-succeeded.png"), full_page=True)
    # The failed one: its failure ending ran, the transform never did.
    page.goto(server.url + f"#/executions/{listed[0]['execution_id']}")
    wait_drawn(page, "execution", drawn)
    outcomes = page.eval_on_selector_all(
        "#execution-graph li", "(lis) => lis.map((li) => [li.dataset.state, li.dataset.outcome])"
    )
    assert dict(outcomes)["ReleaseLockAndNotifyFailure"] == "succeeded"
    assert dict(outcomes)["TransformData"] == "not-run"
    verdicts = {Path(r["key"]).name: r["verdict"] for r in table(page, "#execution-validation")}
    assert verdicts == {
        Path(v.file).name: f"rejected: {v.reason}"
        for v in known.verdicts
        if Path(v.file).name.startswith("second_")
    }


def test_the_lock_page_marks_dead_holders(
    server: Server, page: Any, leases: dict[str, str]
) -> None:
    page.goto(server.url + "#/lock")
    wait_drawn(page, "lock")
    rows = {r["holder"]: r["condition"] for r in table(page, "#lock-table")}
    assert set(rows) == set(leases)
    assert {h: c.split(",")[0].split(":")[0] for h, c in rows.items()} == leases


def test_the_html_report_opens_offline_with_the_period(
    known: Known, page: Any, browser: Browser, tmp_path: Path
) -> None:
    orders = known.expected["order_metrics"]
    first, last = orders[10]["order_date"], orders[-10]["order_date"]
    target = tmp_path / "report.html"
    made = _cli(
        known.env,
        "report",
        "--workspace",
        str(known.ws),
        "--html",
        str(target),
        "--from",
        first,
        "--to",
        last,
    )
    assert made.returncode == 0, made.stderr
    page.goto(target.as_uri())
    wait_drawn_report(page)
    within = [m for m in orders if first <= m["order_date"] <= last]
    assert table(page, "#metrics-table") == [shown(m) for m in within]
    assert chart(page, "chart-revenue")["datasets"][0]["data"] == [
        m["total_revenue"] for m in within
    ]
    assert [r["status"] for r in table(page, "#executions-table")] == ["FAILED", "SUCCEEDED"]
    files = Counter(str(v.reason) for v in known.verdicts if not v.accepted)
    assert {r["reason"]: int(r["count"]) for r in table(page, "#quality-files")} == files
    assert page.text_content("#quality-waiting .waiting-order") == str(known.waiting_for_order)
    # One file: nothing but itself (and data: URLs) was loaded.
    assert all(u.startswith(("file://", "data:")) for u in browser.requests), browser.requests
    assert {u for u in browser.requests if u.startswith("file://")} == {target.as_uri()}


def wait_drawn_report(page: Any) -> None:
    page.wait_for_function("document.body.dataset.ready === 'report'", timeout=30_000)


def test_no_secret_in_any_page_answer_or_report(
    known: Known, server: Server, page: Any, tmp_path: Path
) -> None:
    """The canaries (AWS credentials, a webhook URL, an API key in the environment of both
    processes) appear nowhere: no API answer, no drawn page, no report."""
    answers = [
        get(server, path)[1]
        for path in (
            "/",
            "/api/metrics",
            "/api/executions",
            "/api/lock",
            "/api/quality",
            "/api/meta",
            "/api/openapi.json",
        )
    ]
    execution_id = api(server, "/api/executions")[-1]["execution_id"]
    answers.append(get(server, f"/api/executions/{execution_id}")[1])
    drawn = 0
    for view, fragment in [
        ("kpis", "#/kpis"),
        ("executions", "#/executions"),
        ("execution", f"#/executions/{execution_id}"),
        ("lock", "#/lock"),
        ("settings", "#/settings"),
    ]:
        page.goto(server.url + fragment)  # after the first, a new fragment of the same page
        drawn = wait_drawn(page, view, drawn)
        answers.append(page.content())
    assert "bucket_name" in answers[-1]  # the settings page shows the settings
    target = tmp_path / "report.html"
    assert (
        _cli(known.env, "report", "--workspace", str(known.ws), "--html", str(target)).returncode
        == 0
    )
    answers.append(target.read_text(encoding="utf-8"))
    config = _cli(known.env, "config", "--workspace", str(known.ws))
    answers.append(config.stdout)
    for name, secret in CANARIES.items():
        assert not [a for a in answers if secret in a], name
