"""The `ecompipe` command line.

Exit codes (every command): 0 success; 1 the data was rejected so nothing could be computed;
2 an operational or usage error (bad config, missing workspace, lock busy, I/O); 3 there is
no complete set to run (`run`); 141 the reader of the output went away (`| head`). Errors are
one or two lines on stderr, never a traceback (set LOG_LEVEL=DEBUG to see one). Log lines go
to stderr too (`--log-format json`: one JSON object each); progress bars only on a terminal.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import closing, suppress
from dataclasses import asdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from ecompipe import logs
from ecompipe.config import Settings, load_settings, redacted_settings, secret_values, setting_docs
from ecompipe.contracts import DATASET_NAMES
from ecompipe.display import working as _status
from ecompipe.errors import EcompipeError, IncompleteSetError
from ecompipe.workspace import Workspace, workspace_from

if TYPE_CHECKING:
    from ecompipe.pipeline import Pipeline
    from ecompipe.pipeline.rejects import Rejects
    from ecompipe.wiring import Closed, Ports

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = """
\b
Exit codes:
  0  success (also when some rows were rejected and quarantined)
  1  the data was rejected: no file was usable, nothing could be computed
  2  operational error (bad config, missing workspace, lock busy, I/O)
  3  no complete set: orders, order_items or products has no CSV in landing
     (or only one still being written)
  141  the reader of the output went away (`| head`): stopped quietly, as on SIGPIPE
"""


def workspace_option(func: F) -> F:
    """--workspace on every command (env ECOMPIPE_WORKSPACE, default ./ecompipe-workspace)."""
    return click.option(
        "--workspace",
        "-w",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Workspace folder [env ECOMPIPE_WORKSPACE; default ./ecompipe-workspace].",
    )(func)


def backend_option(where: str, default: str | None = "local") -> Callable[[F], F]:
    """--backend local|aws; ``where`` says what lives on the backend. A subcommand's option
    defaults to None: its group's choice then stands."""
    return click.option(
        "--backend",
        type=click.Choice(["local", "aws"]),
        default=default,
        help=f"Where {where} live [default: {default or 'as for the group, else local'}].",
    )


def pipeline_options(where: str) -> Callable[[F], F]:
    """--backend local|aws and --engine duckdb|spark (default: the ECOMPIPE_ENGINE setting),
    for the commands that run the pipeline; ``where`` says what lives on the backend."""

    def add(func: F) -> F:
        func = click.option(
            "--engine", type=click.Choice(["duckdb", "spark"]), default=None, help="Engine."
        )(func)
        return backend_option(where)(func)

    return add


def _settings(ws: Workspace, **explicit: Any) -> Settings:
    settings = load_settings(ws.config_file, explicit=explicit)
    # A secret may come from the workspace's file, which logging never read.
    logs.protect(secret_values(settings))
    return settings


def _debug() -> bool:
    """LOG_LEVEL=DEBUG: let errors through with their traceback."""
    return os.environ.get("LOG_LEVEL", "").strip().upper() == "DEBUG"


class EcompipeGroup(click.Group):
    """Turns every EcompipeError into a one-line message and its exit code; an OSError or an
    unexpected exception into one or two lines and exit 2 (LOG_LEVEL=DEBUG: the traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except IncompleteSetError as exc:
            click.echo(f"ecompipe: {exc}", err=True)
            click.echo("  land at least one .csv under each of them, then run again", err=True)
            ctx.exit(3)
        except EcompipeError as exc:
            problems = getattr(exc, "problems", None) or [str(exc)]
            for problem in problems:
                click.echo(f"ecompipe: error: {logs.redact(problem)}", err=True)
            if _debug():
                raise
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("ecompipe: interrupted", err=True)
            ctx.exit(130)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a group named alone: click shows its help
        except click.UsageError as exc:
            # Like every other error: what is wrong, then where to look (not click's usage
            # block). Errors in the top-level options themselves still get click's form.
            path = (exc.ctx or ctx).command_path.split()[1:]  # without the program's name
            click.echo(f"ecompipe: error: {exc.format_message()}", err=True)
            click.echo(f"  see `{' '.join(['ecompipe', *path, '--help'])}`", err=True)
            ctx.exit(2)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # `ecompipe ... | head`: stop quietly, as Unix tools do. Output goes to /dev/null
            # from here, so Python's own flush at exit does not fail on the pipe again.
            with suppress(OSError, ValueError):  # ValueError: no real stdout (tests)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(141)
        except OSError as exc:
            # A file or folder the user pointed us at (permissions, a full disk...).
            where = f": {exc.filename}" if exc.filename else ""
            click.echo(f"ecompipe: error: {logs.redact(f'{exc.strerror or exc}{where}')}", err=True)
            if _debug():
                raise
            ctx.exit(2)
        except Exception as exc:
            # A bug, not a user error: still one line (the traceback with LOG_LEVEL=DEBUG).
            if _debug():
                raise
            click.echo(
                f"ecompipe: internal error: {type(exc).__name__}: {logs.redact(str(exc))}", err=True
            )
            click.echo(
                "  run again with LOG_LEVEL=DEBUG to see the traceback; please report it", err=True
            )
            ctx.exit(2)


@click.group(cls=EcompipeGroup, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="ecompipe")
@click.option(
    "--log-format",
    type=click.Choice([logs.TEXT, logs.JSON]),
    default=None,
    help="Log lines on stderr: text, or one JSON object each (time, level, execution_id, "
    "state...) [env ECOMPIPE_LOG_FORMAT; default text, json for `ecompipe task`]. "
    "LOG_LEVEL: default WARNING, INFO with json.",
)
@click.pass_context
def main(ctx: click.Context, log_format: str | None) -> None:
    """ecompipe: validate e-commerce CSV batches and compute daily KPIs, exactly once.

    Start with `ecompipe demo`, or `ecompipe init` then `generate` and `run`.
    """
    # The ECS tasks' lines go to CloudWatch, where JSON fields can be queried.
    default = logs.JSON if ctx.invoked_subcommand == "task" else logs.TEXT
    logs.configure(log_format, default_format=default)


@main.command()
@workspace_option
def init(workspace: Path | None) -> None:
    """Create the workspace: landing/, archive/, quarantine/, config file, database."""
    from ecompipe.wiring import init_workspace

    ws = workspace_from(workspace)
    settings = _settings(ws)
    init_workspace(ws.root, settings)
    click.echo(f"workspace ready at {ws.root}")
    click.echo(f"  drop CSVs into {_landing_folders(ws, settings)} then `ecompipe run`")


def _landing_folders(ws: Workspace, settings: Settings, datasets: list[str] | None = None) -> str:
    """The landing folders of ``datasets`` (default all), as the user should see them."""
    names = datasets or list(DATASET_NAMES)
    return ", ".join(f"{ws.landing / settings.prefix_of(d)}/" for d in names)


@main.command()
@workspace_option
@click.option("--orders", "n_orders", type=click.IntRange(min=1), required=True, help="Orders.")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option("--dirty", is_flag=True, help="Add realistic faults (bad values, duplicates...).")
@click.option("--name", default=None, help="File name stem (default s<seed>_n<orders>).")
def generate(
    workspace: Path | None, n_orders: int, seed: int, dirty: bool, name: str | None
) -> None:
    """Write TheLook-shaped sample CSVs into landing/."""
    from ecompipe.sample import generate_sample

    ws = workspace_from(workspace).require()
    settings = _settings(ws)
    with _status(f"generating {n_orders:,} orders"):
        try:
            summary = generate_sample(
                ws.landing,
                n_orders,
                seed=seed,
                dirty=dirty,
                name=name,
                prefixes={d: settings.prefix_of(d) for d in DATASET_NAMES},
            )
        except FileExistsError as exc:
            raise _usage(f"{exc}; pass another --seed or --name") from None
        except ValueError as exc:
            raise _usage(str(exc)) from None
    for dataset, path in summary.files.items():
        click.echo(f"{path}  {summary.rows[dataset]:,} rows")
    if summary.faults:
        click.echo("faults: " + ", ".join(f"{k}={v}" for k, v in summary.faults.items()))


def _usage(message: str) -> EcompipeError:
    from ecompipe.errors import ConfigError

    return ConfigError([message])


@main.command(epilog=EXIT_CODES_HELP)
@workspace_option
@pipeline_options("the bucket, lock and metrics")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No notification line and no progress on stderr.")
def run(
    workspace: Path | None, backend: str, engine: str | None, as_json: bool, quiet: bool
) -> None:
    """Run the pipeline once: resume interrupted work, then process the complete set."""
    from ecompipe.wiring import new_pipeline

    ws = workspace_from(workspace)
    settings = _settings(ws, engine=engine)
    started = time.monotonic()
    try:
        with _status("starting", quiet=quiet or as_json) as update:
            pipeline = new_pipeline(
                backend,
                settings,
                ws,
                # JSON logs: the ending's log line carries the notification's subject.
                quiet or as_json or logs.is_json(),
                on_state=lambda eid, state: update(f"{eid}: {state}"),
            )
            _closed_at_end(pipeline)
            result = pipeline.run()
    except IncompleteSetError as exc:
        click.echo(f"ecompipe: {exc}", err=True)
        if exc.settling:
            click.echo(
                f"  a file counts once unchanged for {settings.settle_seconds:g}s "
                "(ECOMPIPE_SETTLE_SECONDS): run again when it is complete",
                err=True,
            )
        else:
            click.echo(
                f"  land at least one .csv in {_landing_folders(ws, settings, exc.missing)} "
                "then run again",
                err=True,
            )
        sys.exit(3)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "exit_code": result.exit_code,
                    "seconds": round(time.monotonic() - started, 3),
                    "executions": [asdict(o) for o in result.outcomes],
                },
                default=str,
                indent=2,
            )
        )
    for outcome in result.outcomes:
        if outcome.status == "RUNNING":
            # Stopped by an operational error (no notification was sent): say what to fix.
            click.echo(f"ecompipe: error: {outcome.message}", err=True)
            click.echo(
                f"  {outcome.execution_id} keeps its files; the next `ecompipe run` resumes it",
                err=True,
            )
    sys.exit(result.exit_code)


@main.command()
@workspace_option
@click.option(
    "--debounce",
    type=click.FloatRange(min=0),
    default=None,
    help="Quiet seconds after the last file event before a run [env ECOMPIPE_DEBOUNCE_SECONDS].",
)
@click.option("--poll", is_flag=True, help="Poll the folder instead of file-system events.")
@click.option("--max-runs", type=click.IntRange(min=1), default=None, help="Stop after N runs.")
@click.option("--timeout", type=click.FloatRange(min=0), default=None, help="Stop after S seconds.")
@click.option("--quiet", "-q", is_flag=True, help="No notification line on stderr.")
def watch(
    workspace: Path | None,
    debounce: float | None,
    poll: bool,
    max_runs: int | None,
    timeout: float | None,
    quiet: bool,
) -> None:
    """Watch landing/ and run whenever a complete set has landed and landing is quiet;
    check the deadlines (as `ecompipe check` does) once a minute when one is set.

    Ctrl-C stops after the current run (a second Ctrl-C interrupts it; the next run resumes
    it). Exit 0 when stopped, at --max-runs or at --timeout.
    """
    from ecompipe.engines import require_engine
    from ecompipe.pipeline import check
    from ecompipe.watch import watch as watch_landing
    from ecompipe.wiring import new_pipeline, open_backend

    ws = workspace_from(workspace).require()
    settings = _settings(ws, debounce_seconds=debounce)
    require_engine(settings)

    def local_pipeline() -> Pipeline:
        return new_pipeline("local", settings, ws, quiet or logs.is_json())

    def check_deadlines() -> None:
        with closing(open_backend("local", settings, ws, quiet)) as backend:
            check(backend, settings)

    watch_landing(
        ws.landing,
        local_pipeline,
        settings.debounce_seconds,
        poll=poll,
        max_runs=max_runs,
        timeout=timeout,
        echo=lambda line: click.echo(f"ecompipe: {line}", err=True),
        check=check_deadlines
        if settings.complete_set_deadline or settings.freshness_deadline
        else None,
    )


CHECK_EXIT_CODES_HELP = """
\b
Exit codes:
  0  every deadline is met (or both are off)
  2  operational error (bad config, missing workspace, I/O)
  4  a deadline has passed: a set is incomplete past complete_set_deadline, or nothing
     has landed for freshness_deadline (notified the first time only)
"""


@main.command(epilog=CHECK_EXIT_CODES_HELP)
@workspace_option
@backend_option("the bucket and the execution log")
@click.option("--json", "as_json", is_flag=True, help="Print what was found as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No notification line on stderr.")
def check(workspace: Path | None, backend: str, as_json: bool, quiet: bool) -> None:
    """Check the deadlines once (for cron): an incomplete set past complete_set_deadline,
    nothing landed for freshness_deadline. Each condition is notified once until it clears."""
    from ecompipe.pipeline import EXIT_LATE, EXIT_OK
    from ecompipe.pipeline import check as check_deadlines
    from ecompipe.wiring import open_backend

    ws = workspace_from(workspace)
    settings = _settings(ws)
    opened = _closed_at_end(open_backend(backend, settings, ws, quiet or as_json))
    result = check_deadlines(opened, settings)
    if as_json:
        click.echo(json.dumps(asdict(result), default=str, indent=2))
    elif not (settings.complete_set_deadline or settings.freshness_deadline):
        click.echo(
            "ecompipe: both deadlines are off: set complete_set_deadline and/or "
            "freshness_deadline (e.g. 2h, 26h)",
            err=True,
        )
    else:
        for condition in result.holding:
            click.echo(f"ecompipe: still holds (notified before): {condition}", err=True)
        for condition in result.cleared:
            click.echo(f"ecompipe: cleared: {condition}", err=True)
    sys.exit(EXIT_LATE if result.late else EXIT_OK)


def _parse_date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-03-01") from None


def date_range_options(func: F) -> F:
    """--from and --to: the order dates a command looks at, either side open."""
    for name, first_or_last in (("--to", "Last"), ("--from", "First")):
        func = click.option(
            name,
            f"date_{name[2:]}",
            callback=_parse_date,
            help=f"{first_or_last} order_date (YYYY-MM-DD).",
        )(func)
    return func


@main.group(invoke_without_command=True)
@workspace_option
@date_range_options
@click.option("--category", default=None, help="Only this category (category metrics).")
@backend_option("the metrics tables")
@click.option("--json", "as_json", is_flag=True, help="JSON: {order_metrics, category_metrics}.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV: order metrics, a blank line, category.")
@click.pass_context
def metrics(
    ctx: click.Context,
    workspace: Path | None,
    date_from: date | None,
    date_to: date | None,
    category: str | None,
    backend: str,
    as_json: bool,
    as_csv: bool,
) -> None:
    """Show the KPIs: order_metrics_table and category_metrics_table (`metrics history
    --date D` for how a date's KPIs were revised)."""
    ctx.ensure_object(dict)
    ctx.obj.update(workspace=workspace, backend=backend)
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    from ecompipe.console.documents import metrics_document, metrics_rows, plain

    ports = _ports(workspace, backend)
    settings, store = ports.settings, ports.metrics()
    orders, categories = metrics_rows(store, date_from, date_to, category)
    if as_json:
        click.echo(json.dumps(metrics_document(orders, categories), indent=2))
        return
    if as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        for rows in (orders, categories):
            if rows:
                out.writerow(rows[0].keys())
                out.writerows([plain(v) for v in r.values()] for r in rows)
            if rows is orders:
                out.writerow([])
        return
    _print_table(f"{settings.order_metrics_table} ({len(orders)} rows)", orders)
    _print_table(f"{settings.category_metrics_table} ({len(categories)} rows)", categories)


@metrics.command("history")
@workspace_option
@click.option(
    "--date", "day", required=True, callback=_parse_date, help="The order_date (YYYY-MM-DD)."
)
@click.option("--category", default=None, help="Only this category's row.")
@backend_option("the metrics tables", default=None)
@click.option("--json", "as_json", is_flag=True, help="JSON: a list of revisions.")
@click.pass_context
def metrics_history(
    ctx: click.Context,
    workspace: Path | None,
    day: date,
    category: str | None,
    backend: str | None,
    as_json: bool,
) -> None:
    """Every revision of a date's KPIs, oldest first: which execution (or recompute) changed
    its order row or category rows after they were first written, when, and each changed
    column's value before -> after ("-": the row was not there)."""
    found = _group_ports(ctx, workspace, backend).metrics().revisions(day, category)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in found], indent=2))
        return
    if not found:
        click.echo(f"no revisions of {day}{f' ({category})' if category else ''}")
        return
    for r in found:
        at = datetime.fromtimestamp(r.at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        row = "order_metrics" if r.category is None else f"category {_printable(r.category)}"
        changes = ", ".join(
            f"{name}: {'-' if was is None else was} -> {'-' if now is None else now}"
            for name, was, now in r.changes()
        )
        click.echo(f"{at}  {r.execution_id}  {row}  {changes}")


@main.command()
@workspace_option
@backend_option("the curated store")
@click.option("--json", "as_json", is_flag=True, help="JSON: root, state, datasets.")
def curated(workspace: Path | None, backend: str, as_json: bool) -> None:
    """Show the curated store: where its current state is (the latest version of each
    key, Parquet files any tool reads: docs/CURATED.md), rows, partitions and batches."""
    summary = _ports(workspace, backend).store().curated_log(uri=True).summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    state = summary["state"]
    log = summary["log_batches"]
    held = f"{len(log)} batches" + (f" ({log[0]}..{log[-1]})" if log else "")
    click.echo(f"curated store: {summary['root']} (batch log: {held})")
    if state is None:
        click.echo("current state: none yet (the next run builds it from the log)")
    else:
        lag = f"; not folded yet: batches {state['lags']}" if state["lags"] else ""
        stale = "; STALE (holds a withdrawn batch: the next run rebuilds it)" * state["stale"]
        click.echo(
            f"current state: {state['path']} (holds {len(state['batches'])} batches{lag}{stale})"
        )
    rows = [
        {
            "dataset": ds,
            "rows": "-" if d["rows"] is None else d["rows"],
            "partitions": len(d["partitions"]),
            "files": len(d["files"]),
            "log batches": len(d["log_batches"]),
            "latest batch": d["log_batches"][-1] if d["log_batches"] else "-",
        }
        for ds, d in summary["datasets"].items()
    ]
    _print_table("datasets", rows)


RECOMPUTE_EXIT_CODES_HELP = """
\b
Exit codes:
  0  success (also when the curated store is empty: nothing to recompute, nothing written)
  2  operational or usage error (lock busy, bad dates, missing workspace, I/O; or metric
     rows exist while the curated store is empty: they are kept)
  141  the reader of the output went away (`| head`): stopped quietly, as on SIGPIPE
"""


@main.command(epilog=RECOMPUTE_EXIT_CODES_HELP)
@workspace_option
@date_range_options
@pipeline_options("the curated store, lock and metrics")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def recompute(
    workspace: Path | None,
    date_from: date | None,
    date_to: date | None,
    backend: str,
    engine: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Rebuild the metrics tables from the curated store: every date, or --from/--to.

    For after metric rows were deleted, a table was lost or restored from an old backup, or
    a KPI definition changed. Runs under the pipeline lock (it waits for a run, as a run
    waits for another). Idempotent: rows of dates in the range that no longer have orders
    are deleted, rows outside the range are not touched.
    """
    if date_from is not None and date_to is not None and date_from > date_to:
        raise click.UsageError(f"--from {date_from} is after --to {date_to}")
    from ecompipe.pipeline.messages import revised
    from ecompipe.wiring import new_pipeline

    ws = workspace_from(workspace)
    settings = _settings(ws, engine=engine)
    started = time.monotonic()
    pipeline = _closed_at_end(new_pipeline(backend, settings, ws, quiet=True))
    with _status("recomputing", quiet=quiet) as update:
        result = pipeline.recompute(date_from, date_to, progress=update)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "exit_code": 0,
                    "seconds": round(time.monotonic() - started, 3),
                    "from": None if date_from is None else date_from.isoformat(),
                    "to": None if date_to is None else date_to.isoformat(),
                    "curated_empty": result.curated_empty,
                    "dates_recomputed": len(result.dates),
                    "first_date": result.dates[0].isoformat() if result.dates else None,
                    "last_date": result.dates[-1].isoformat() if result.dates else None,
                    "order_rows_written": result.order_rows,
                    "category_rows_written": result.category_rows,
                    "rows_changed": result.changed,
                    "rows_deleted": result.deleted,
                    "revision_id": result.revision_id,
                    "revisions": result.revisions.as_dict(),
                },
                indent=2,
            )
        )
    elif quiet:
        return
    elif result.curated_empty:
        click.echo("nothing to recompute: the curated store is empty (no batch was run yet)")
    else:
        span = f" ({result.dates[0]} to {result.dates[-1]})" if result.dates else ""
        click.echo(
            f"recomputed {_count(len(result.dates), 'date')}{span}: "
            f"{_count(result.order_rows, 'order row')} and "
            f"{_count(result.category_rows, 'category row')} written ({result.changed} changed), "
            f"{_count(result.deleted, 'row')} deleted"
            f"{revised({'revisions': result.revisions.as_dict()})}"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _print_table(title: str, rows: list[dict[str, Any]], limit: int = 40) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        # Piped: no terminal width to fit, so never cut a header or a value short.
        console = Console(width=1000)
    table = Table(title=title, title_justify="left")
    if not rows:
        console.print(f"{title}: empty")
        return
    for key in rows[0]:
        justify: Literal["left", "right"] = "left" if key in ("category", "order_date") else "right"
        table.add_column(key, justify=justify, min_width=len(key), no_wrap=True)
    shown = rows if len(rows) <= limit else rows[: limit // 2] + rows[-limit // 2 :]
    for r in shown:
        table.add_row(*(v.isoformat() if isinstance(v, date) else str(v) for v in r.values()))
    console.print(table)
    if len(rows) > limit:
        console.print(f"({len(rows) - limit} rows not shown; use --from/--to, --json or --csv)")


@main.group(invoke_without_command=True)
@workspace_option
@backend_option("the executions")
@click.option("--limit", default=20, show_default=True, help="How many, latest first.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def executions(
    ctx: click.Context, workspace: Path | None, backend: str, limit: int, as_json: bool
) -> None:
    """List executions, latest first (`executions show ID` for one)."""
    ctx.ensure_object(dict)
    ctx.obj.update(workspace=workspace, backend=backend)
    if ctx.invoked_subcommand is not None:
        return
    from ecompipe.console.documents import shown_state

    log = _ports(workspace, backend).log()
    records = log.recent(limit)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in records], default=str, indent=2))
        return
    if not records:
        click.echo("no executions yet")
        return
    for r in records:
        started = datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M:%S")
        took = f"{r.finished_at - r.started_at:.1f}s" if r.finished_at else "-"
        validation = r.summary.get("validation", {})
        click.echo(
            f"{r.execution_id}  {r.status:<9} {shown_state(r):<28} {started}  {took:>7}  "
            f"files {validation.get('files_accepted', '-')}/{len(validation.get('files', []))}"
            f"  rejected rows {validation.get('rejected_rows', '-')}"
        )


def _printable(text: str) -> str:
    """``text`` with control characters escaped: a landing key may hold any (ESC sequences
    would drive the operator's terminal)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _closed_at_end(resource: Closed) -> Closed:
    """``resource`` (ports, a backend, a pipeline), closed when the command ends however it
    ends: its database connections are not left to the garbage collector."""
    click.get_current_context().call_on_close(resource.close)
    return resource


def _ports(workspace: Path | None, backend: str) -> Ports:
    """One backend's ports, for the commands that read one (metrics, executions, lock).

    Local: the workspace's, its settings read only when a port needs them (the execution log
    needs none). AWS: from the settings (environment over the workspace's file, if any).
    """
    from ecompipe.wiring import LocalPorts, open_ports

    ws = workspace_from(workspace)
    if backend == "local":
        return _closed_at_end(LocalPorts(ws))
    return _closed_at_end(open_ports(backend, _settings(ws)))


def _group_ports(ctx: click.Context, workspace: Path | None, backend: str | None) -> Ports:
    """A subcommand's ports: its own --workspace/--backend, else its group's."""
    return _ports(
        workspace or ctx.obj.get("workspace"), backend or ctx.obj.get("backend") or "local"
    )


@executions.command("show")
@click.argument("execution_id")
@workspace_option
@backend_option("the executions", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def executions_show(
    ctx: click.Context,
    execution_id: str,
    workspace: Path | None,
    backend: str | None,
    as_json: bool,
) -> None:
    """State history, manifest and validation report of one execution (id or unique prefix)."""
    log = _group_ports(ctx, workspace, backend).log()
    matches = log.find(execution_id)
    if len(matches) != 1:
        what = "no execution" if not matches else f"{len(matches)} executions"
        raise _usage(f"{what} matching {execution_id!r}; see `ecompipe executions`")
    record = matches[0]
    events = log.events(record.execution_id)
    manifest = [asdict(e) for e in log.manifest(record.execution_id)]
    if as_json:
        click.echo(
            json.dumps(
                {**asdict(record), "events": events, "manifest": manifest}, default=str, indent=2
            )
        )
        return
    click.echo(f"{record.execution_id}  {record.status}  batch #{record.seq}")
    if record.summary.get("replay_of"):
        click.echo(f"replay of {record.summary['replay_of']} (its quarantined files)")
    for key, by in record.summary.get("replays", {}).items():
        click.echo(f"  {_printable(key)} replayed by {by}")
    for ev in events:
        at = datetime.fromtimestamp(ev["at"]).strftime("%H:%M:%S.%f")[:-3]
        detail = f"  {json.dumps(ev['detail'])}" if ev["detail"] else ""
        click.echo(f"  {at}  {ev['state']:<28} {ev['event']}{detail}")
    click.echo("manifest:")
    for e in manifest:
        where = _printable(e["location"] or "")
        click.echo(f"  {_printable(e['key'])}  {e['size']:,} bytes  {e['status']}  {where}")
    validation = record.summary.get("validation")
    if validation:
        click.echo("validation report:")
        for f in validation["files"]:
            verdict = "accepted" if f["accepted"] else f"REJECTED ({f['reason']}: {f['detail']})"
            click.echo(
                f"  {_printable(f['key'])}: {verdict}; rows {f['rows']}, "
                f"rejected {f['rejected_rows']}, "
                f"duplicates dropped {f['duplicates_dropped']}"
            )
    if record.summary.get("transform"):
        kpi = record.summary["transform"]
        click.echo("kpis: " + json.dumps(kpi))
        click.echo(
            f"waiting for parent: {kpi.get('waiting_for_order', 0)} items for their order, "
            f"{kpi.get('waiting_for_product', 0)} for their product (counted when it arrives)"
        )


def rejects_filters(func: F) -> F:
    """The filters of `rejects` and `rejects summary`."""
    for option in reversed(
        (
            click.option("--execution", default=None, help="Only this execution (id or prefix)."),
            click.option("--dataset", default=None, help="Only this dataset."),
            click.option("--reason", default=None, help="Only this reason (bad_int, ...)."),
            click.option("--file", "file_", default=None, help="Only this file (key or glob)."),
        )
    ):
        func = option(func)
    return func


def _rejects(ctx: click.Context, workspace: Path | None, backend: str | None) -> Rejects:
    from ecompipe.pipeline.rejects import Rejects

    ports = _group_ports(ctx, workspace, backend)
    return Rejects(ports.store(), ports.log())


@main.group(invoke_without_command=True)
@workspace_option
@backend_option("the quarantine and the executions")
@rejects_filters
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="At most this many (0: all).",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array (written by DuckDB).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header (written by DuckDB).")
@click.pass_context
def rejects(
    ctx: click.Context,
    workspace: Path | None,
    backend: str,
    execution: str | None,
    dataset: str | None,
    reason: str | None,
    file_: str | None,
    limit: int,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List rejected rows and files of every execution (`rejects summary` counts them):
    execution, day, dataset, file, line, column, reason, original text. A file rejected
    whole has no line: its reason is the file's."""
    from ecompipe.pipeline.rejects import RejectsQuery

    ctx.ensure_object(dict)
    ctx.obj.update(workspace=workspace, backend=backend)
    if ctx.invoked_subcommand is not None:
        return
    if as_json and as_csv:
        raise _usage("--json and --csv exclude each other: choose one")
    query = RejectsQuery(execution, dataset, reason, file_, limit)
    store = _rejects(ctx, workspace, backend)
    if as_json or as_csv:
        sys.stdout.flush()
        total = store.write(query, "json" if as_json else "csv", sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        rows, total = store.rows(query)
        for r in rows:
            where = f"{r['file']}:{r['line']}" if r["line"] is not None else f"{r['file']} (file)"
            column = f" {r['column']}" if r["column"] else ""
            text = _printable(r["text"] or "")
            click.echo(
                f"{r['execution']}  {_printable(where)}{column}  {r['reason']}  "
                f"{text if len(text) <= 80 else text[:77] + '...'}"
            )
        if not total:
            click.echo("no rejects")
    if limit and total > limit:
        click.echo(f"({total - limit} more not shown: --limit 0 shows all)", err=True)


@rejects.command("summary")
@workspace_option
@backend_option("the quarantine and the executions", default=None)
@rejects_filters
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rejects_summary(
    ctx: click.Context,
    workspace: Path | None,
    backend: str | None,
    execution: str | None,
    dataset: str | None,
    reason: str | None,
    file_: str | None,
    as_json: bool,
) -> None:
    """Rejects counted per day (of the execution, UTC), dataset and reason: rejected values
    and files, the files they are in, and the executions."""
    from ecompipe.pipeline.rejects import RejectsQuery

    rows = _rejects(ctx, workspace, backend).summary(
        RejectsQuery(execution, dataset, reason, file_)
    )
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    if not rows:
        click.echo("no rejects")
    for r in rows:
        click.echo(
            f"{r['day']}  {r['dataset']:<12} {r['reason']:<22} {r['rejects']:>9,}  "
            f"in {_count(r['files'], 'file')}, {_count(r['executions'], 'execution')}"
        )


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("execution_id")
@workspace_option
@pipeline_options("the bucket, lock and metrics")
@click.option(
    "--file", "keys", multiple=True, help="Only this quarantined file (its key); repeatable."
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No notification line on stderr.")
def replay(
    execution_id: str,
    workspace: Path | None,
    backend: str,
    engine: str | None,
    keys: tuple[str, ...],
    as_json: bool,
    quiet: bool,
) -> None:
    """Put an execution's quarantined files (fixed in place, or judged by a changed contract
    or max_error_rate) through the whole pipeline as a new execution, once: the originals
    stay in quarantine, and a file already replayed is left out (exit 0, nothing done)."""
    from ecompipe.wiring import new_pipeline

    ws = workspace_from(workspace)
    settings = _settings(ws, engine=engine)
    matches = _ports(workspace, backend).log().find(execution_id)
    if len(matches) != 1:
        what = "no execution" if not matches else f"{len(matches)} executions"
        raise _usage(f"{what} matching {execution_id!r}; see `ecompipe executions`")
    pipeline = _closed_at_end(
        new_pipeline(backend, settings, ws, quiet or as_json or logs.is_json())
    )
    result = pipeline.replay(matches[0].execution_id, list(keys) or None)
    if as_json:
        outcomes = [asdict(o) for o in result.outcomes]
        click.echo(
            json.dumps(
                {"exit_code": result.exit_code, "message": result.message, "executions": outcomes},
                default=str,
                indent=2,
            )
        )
    elif not result.outcomes:
        click.echo(result.message)
    sys.exit(result.exit_code)


@main.group(invoke_without_command=True)
@workspace_option
@backend_option("the lock")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def lock(ctx: click.Context, workspace: Path | None, backend: str, as_json: bool) -> None:
    """Show who holds the pipeline lock (`lock release --force` for operators)."""
    ctx.ensure_object(dict)
    ctx.obj.update(workspace=workspace, backend=backend)
    if ctx.invoked_subcommand is not None:
        return
    from ecompipe.stores.host import process_gone

    ports = _ports(workspace, backend)
    holders = ports.lock().holders()
    if as_json:
        click.echo(json.dumps([asdict(h) for h in holders], indent=2))
        return
    s = ports.settings
    click.echo(f"lock '{s.lock_id}': {len(holders)} of {s.lock_limit} slot(s) held")
    critical = ports.lock(critical=True)
    now = time.time()
    for name, group in (("", holders), (" (claim/transform section)", critical.holders())):
        for h in group:
            state = "expired" if h.expires_at <= now else f"expires in {h.expires_at - now:.0f}s"
            if process_gone(h.host, h.pid):
                state = "dead: its process is gone, the next run reaps it at once"
            click.echo(f"  {h.holder}{name}  pid {h.pid} on {h.host}  {state}")


@lock.command("release")
@workspace_option
@backend_option("the lock", default=None)
@click.option("--force", is_flag=True, required=True, help="Required: you know it is stuck.")
@click.option("--holder", default=None, help="Only this holder (default: all).")
@click.pass_context
def lock_release(
    ctx: click.Context,
    workspace: Path | None,
    backend: str | None,
    force: bool,
    holder: str | None,
) -> None:
    """Drop lock holders by force. Leases expire by themselves; use this only when sure."""
    if not force:
        raise click.UsageError("--force is required")
    click.echo(
        "warning: releasing by force; a run still working will notice at its next heartbeat "
        "and stop, and its work is resumed by the next run",
        err=True,
    )
    ports = _group_ports(ctx, workspace, backend)
    n = ports.lock().force_release(holder) + ports.lock(critical=True).force_release(holder)
    click.echo(f"released {n} holder(s)")


@main.command("config")
@workspace_option
def show_config(workspace: Path | None) -> None:
    """Print every setting: its value now, its env var and file key."""
    ws = workspace_from(workspace).require()
    settings = _settings(ws)
    shown = {s["name"]: s["value"] for s in redacted_settings(settings)}
    for name, env, _default, doc in setting_docs():
        click.echo(f"{name} = {shown[name]}    [{env}] {doc}")


@main.command()
@workspace_option
@click.option("--orders", "n_orders", default=20_000, show_default=True, help="Orders to generate.")
@click.option("--seed", default=42, show_default=True)
def demo(workspace: Path | None, n_orders: int, seed: int) -> None:
    """Create a workspace, generate sample data, run the pipeline, print the KPIs."""
    from ecompipe.engines import require_engine
    from ecompipe.sample import generate_sample
    from ecompipe.wiring import init_workspace, new_pipeline

    ws = workspace_from(workspace)
    # The demo wrote its files itself, whole: they need not settle.
    settings = _settings(ws, settle_seconds=0)
    require_engine(settings)
    init_workspace(ws.root, settings)
    click.echo(f"workspace: {ws.root}")
    stem = f"demo_{time.strftime('%Y%m%dT%H%M%S')}"
    with _status(f"generating {n_orders:,} orders"):
        summary = generate_sample(ws.landing, n_orders, seed=seed, name=stem)
    click.echo("generated " + ", ".join(f"{summary.rows[d]:,} {d}" for d in DATASET_NAMES))
    with _status("running the pipeline") as update:
        pipeline = new_pipeline(
            "local",
            settings,
            ws,
            quiet=logs.is_json(),
            on_state=lambda eid, state: update(f"{eid}: {state}"),
        )
        _closed_at_end(pipeline)
        result = pipeline.run()
    orders = [asdict(m) for m in pipeline.b.metrics.order_metrics()]
    categories = [asdict(m) for m in pipeline.b.metrics.category_metrics()]
    _print_table(f"{settings.order_metrics_table} ({len(orders)} rows)", orders, limit=10)
    _print_table(f"{settings.category_metrics_table} ({len(categories)} rows)", categories, 10)
    click.echo(f"next: ecompipe metrics --workspace {ws.root} --from 2024-01-01 --to 2024-01-31")
    click.echo(
        f"dashboard: ecompipe serve --workspace {ws.root}  then open {CONSOLE_URL} in a browser"
    )
    sys.exit(result.exit_code)


# ------------------------------------------------------------------ operator console (issue 20)
# `serve` and `report` import the console (and `serve` the web framework) only when run.

CONSOLE_PORT = 8765
CONSOLE_URL = f"http://127.0.0.1:{CONSOLE_PORT}/"


@main.command()
@workspace_option
@backend_option("the metrics, executions and lock")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback shows the console to the network.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=CONSOLE_PORT,
    show_default=True,
    help="Port (0: any free one; the URL is printed).",
)
def serve(workspace: Path | None, backend: str, host: str, port: int) -> None:
    """Serve the read-only web dashboard: KPIs, executions, the lock. Ctrl-C stops.

    It reads the backend's metrics, execution log, lock and quarantine as the pipeline
    does, and never writes. Its JSON API: /api/metrics (from, to, category),
    /api/executions, /api/executions/ID, /api/lock; OpenAPI at /api/openapi.json.
    """
    from ecompipe.console.app import serve as serve_console

    def announce(url: str, loopback: bool) -> None:
        if not loopback:
            click.echo(
                f"warning: listening on {host}: anyone who can reach this machine sees the "
                "console (read-only, no login); the default 127.0.0.1 keeps it to this machine",
                err=True,
            )
        click.echo(f"ecompipe console at {url} (read-only; Ctrl-C stops)")

    serve_console(_ports(workspace, backend), backend, host, port, announce)


@main.command()
@workspace_option
@date_range_options
@backend_option("the metrics, executions and quarantine")
@click.option(
    "--html",
    "html_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The HTML file to write (replaced if it exists).",
)
@click.option("--limit", default=50, show_default=True, help="Executions: the latest N.")
def report(
    workspace: Path | None,
    date_from: date | None,
    date_to: date | None,
    backend: str,
    html_file: Path,
    limit: int,
) -> None:
    """Write one self-contained HTML report: the KPIs of the period (charts and tables), the
    latest executions and the data-quality summary. It opens offline (an e-mail attachment)."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise click.UsageError(f"--from {date_from} is after --to {date_to}")
    from ecompipe.console.report import report_data, write_report

    ports = _ports(workspace, backend)
    size = write_report(html_file, report_data(ports, backend, date_from, date_to, limit))
    click.echo(f"wrote {html_file} ({size:,} bytes)")


# AWS commands live in their own module (it imports boto3 only inside the commands).
from ecompipe.aws.cli import aws as _aws_group  # noqa: E402
from ecompipe.aws.cli import task as _task_group  # noqa: E402

main.add_command(_aws_group)
main.add_command(_task_group)
