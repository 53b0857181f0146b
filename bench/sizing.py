"""Sizing of the trigger Lambda and the ECS tasks, measured on the moto server (docs/AWS.md,
"Sizing": the template's defaults come from these figures).

    python bench/sizing.py lambda [--objects 10000] [--repeat 3]
    python bench/sizing.py tasks [--items 1M,10M] [--repeat 1]

lambda: landing holds OBJECTS objects (orders/ all but two, one each in order_items/ and
products/: a complete set, so the handler goes all the way to StartExecution). Each repeat
adds one object (a new set, so a new execution) and invokes the trigger handler in a fresh
process, as a cold Lambda: seconds of the imports (the init), wall and CPU seconds of the
invocation, RSS after the init and the process's peak RSS (what Lambda reports as Max Memory
Used), and the AWS calls it made.

tasks: for each size, the landing set of bench/pipeline_vs_floor.py's dataset() uploaded to
moto, one execution of the generated state machine (deployed as the end-to-end test deploys
it), and each ECS task, `ecompipe task validate|transform|archive`, run as a process of its
own with the environment the state machine gives its container: wall and CPU seconds, peak
RSS, and the temp disk it left (downloads, staged Parquet). The bare DuckDB floor
(bench/floor_duckdb.py, same files) runs in the same run: a yardstick for the machine's load.
Each repeat starts from a clean moto account. DuckDB runs with ecompipe's defaults
(ECOMPIPE_DUCKDB_MEMORY_LIMIT=2GB, one thread per core: 2 here).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from measure import Measurement, measure, median
from pipeline_vs_floor import OUT, dataset

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # tests/: the moto server and the state machine as deployed

WORKERS = ("validate", "transform", "archive")
PASS_MACHINE = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
ROLE = "arn:aws:iam::123456789012:role/ecompipe-sfn"


def cpu_of_children() -> float:
    """CPU seconds (user + system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def folder_mib(folder: Path) -> float:
    """Bytes under ``folder``, in MiB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


class Moto:
    """The tests' moto server (gaps patched) with a clean account per ``account()``."""

    def __enter__(self) -> Moto:
        import pytest

        from tests.moto_server import start_moto_server

        self.server, self.url = start_moto_server()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
        self.patch = pytest.MonkeyPatch()
        return self

    def account(self) -> Any:
        """A reset moto account with bootstrap's resources (tests.moto_server.Aws)."""
        from tests.moto_server import clean_account

        return clean_account(self.url, self.patch)

    def __exit__(self, *exc: object) -> None:
        self.patch.undo()
        self.server.stop()


# ------------------------------------------------------------------ the trigger Lambda


def lambda_sizing(objects: int, repeat: int) -> str:
    """Invoke the trigger on a landing of ``objects`` objects ``repeat`` times; a table."""
    with Moto() as moto:
        aws = moto.account()
        arn = aws.client("stepfunctions").create_state_machine(
            name="sizing", definition=PASS_MACHINE, roleArn=ROLE
        )["stateMachineArn"]
        aws.setenv("STATE_MACHINE_ARN", arn)
        started = time.perf_counter()
        keys = [f"orders/part-{n:05d}.csv" for n in range(objects - 2)]
        keys += ["order_items/part-0.csv", "products/part-0.csv"]
        s3, bucket = aws.client("s3"), aws.env["BUCKET_NAME"]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"id\n"), keys))
        print(f"landed {objects:,} objects in {time.perf_counter() - started:.0f} s", flush=True)
        runs = []
        for n in range(repeat):
            s3.put_object(Bucket=bucket, Key=f"products/extra-{n}.csv", Body=b"id\n")
            done = subprocess.run(
                [sys.executable, __file__, "_invoke"],
                env={**os.environ, **aws.env},
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
            runs.append(json.loads(done.stdout.splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    runs.sort(key=lambda r: r["invoke_s"])
    mid = runs[len(runs) // 2]
    lines = [
        f"### Trigger Lambda, landing of {objects + 1:,}..{objects + repeat:,} objects "
        f"({repeat} cold invocations; the median one's figures)",
        "",
        "| init s | invocation wall s | invocation CPU s | RSS after init MiB | peak RSS MiB |",
        "|---:|---:|---:|---:|---:|",
        f"| {mid['init_s']:.2f} | {mid['invoke_s']:.2f} | {mid['invoke_cpu_s']:.2f} | "
        f"{mid['init_rss_mib']:.0f} | {mid['peak_rss_mib']:.0f} |",
        "",
        f"started: {mid['result'].get('started')}, files: {mid['result'].get('files')}; "
        "wall s of all runs: " + ", ".join(f"{r['invoke_s']:.2f}" for r in runs),
        "",
        "| AWS call | count |",
        "|---|---:|",
        *(f"| {call} | {count} |" for call, count in sorted(mid["calls"].items())),
    ]
    return "\n".join(lines)


def _invoke() -> None:
    """In a fresh process (a cold Lambda): import, invoke the trigger once, print figures."""
    started, cpu = time.perf_counter(), time.process_time()
    from ecompipe.aws.lambda_handler import handler
    from ecompipe.config import load_settings
    from ecompipe.stores.aws.clients import AwsClients

    init_s = time.perf_counter() - started
    init_rss = _status_mib("VmRSS")
    calls: Counter[str] = Counter()

    class CountingClients(AwsClients):
        """The handler's clients, each counting the API calls it makes."""

        def __call__(self, service: str) -> Any:
            new = service not in self.made
            client = super().__call__(service)
            if new:
                client.meta.events.register(
                    "before-call", lambda model, **_: calls.update([f"{service}:{model.name}"])
                )
            return client

    event = json.loads((ROOT / "tests" / "events" / "s3_put_orders.json").read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = os.environ["BUCKET_NAME"]
    started, cpu = time.perf_counter(), time.process_time()
    result = handler(event, None, clients=CountingClients(load_settings()))
    figures = {
        "init_s": init_s,
        "invoke_s": time.perf_counter() - started,
        "invoke_cpu_s": time.process_time() - cpu,
        "init_rss_mib": init_rss,
        # Not ru_maxrss: Linux carries the parent's high-water mark over fork + exec.
        "peak_rss_mib": _status_mib("VmHWM"),
        "calls": dict(calls),
        "result": {k: v for k, v in result.items() if k in ("started", "files", "reason")},
    }
    print(json.dumps(figures))


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM: peak RSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


# ------------------------------------------------------------------ the ECS tasks


def task_sizing(label: str, repeat: int) -> str:
    """Run the three tasks on the ``label`` data set ``repeat`` times; a table."""
    landing = dataset(label)
    size = sum(p.stat().st_size for p in landing.rglob("*.csv")) / 2**20
    rows: dict[str, list[tuple[Measurement, float, float]]] = {w: [] for w in WORKERS}
    floors = []
    with Moto() as moto:
        for _ in range(repeat):
            floors.append(
                measure(
                    "bare DuckDB script (floor)",
                    [sys.executable, str(HERE / "floor_duckdb.py"), str(landing), "2GB"],
                    log=OUT / f"sizing_floor_{label}.log",
                )
            )
            for worker, row in one_execution(moto, landing, label).items():
                rows[worker].append(row)
    floor = median(floors)
    lines = [
        f"### ECS tasks, {label} order items ({size:,.0f} MiB of CSV; {repeat} run(s), "
        "median by wall time)",
        "",
        "| task | wall s | x floor | CPU s | peak RSS MiB | temp disk MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for worker, runs in rows.items():
        runs.sort(key=lambda r: r[0].seconds)
        m, cpu, disk = runs[len(runs) // 2]
        lines.append(
            f"| `ecompipe task {worker}` | {m.seconds:.1f} | {m.seconds / floor.seconds:.2f} | "
            f"{cpu:.1f} | {m.peak_rss_mb:,.0f} | {disk:,.0f} |"
        )
    lines.append(
        f"| bare DuckDB floor (local files) | {floor.seconds:.1f} | 1.00 | | "
        f"{floor.peak_rss_mb:,.0f} | |"
    )
    return "\n".join(lines)


def one_execution(
    moto: Moto, landing: Path, label: str
) -> dict[str, tuple[Measurement, float, float]]:
    """Upload the set, start the execution, run its tasks as the containers would."""
    from ecompipe.aws.lambda_handler import handler
    from tests.aws.conftest import wait_for
    from tests.aws.test_step_functions_e2e import deploy_state_machine, s3_event, waiting_task

    aws = moto.account()
    deploy_state_machine(aws)
    s3 = aws.client("s3")
    started = time.perf_counter()
    for path in sorted(landing.rglob("*.csv")):
        s3.upload_file(str(path), aws.env["BUCKET_NAME"], str(path.relative_to(landing)))
    print(f"{label}: uploaded in {time.perf_counter() - started:.0f} s", flush=True)
    name = handler(s3_event(aws), None, clients=aws.clients())["execution_name"]
    exe = str(Path(sys.executable).with_name("ecompipe"))
    figures = {}
    for worker in WORKERS:
        env = wait_for(lambda w=worker: waiting_task(aws, name, w), 120, f"the {worker} task")
        work = Path(tempfile.mkdtemp(prefix=f"sizing-{worker}-", dir=OUT))
        try:
            cpu = cpu_of_children()
            m = measure(
                f"task {worker}",
                [exe, "task", worker],
                env={**os.environ, **env, "TMPDIR": str(work)},
                cwd=work,
                log=OUT / f"sizing_{label}_{worker}.log",
            )
            cpu = cpu_of_children() - cpu
            disk = folder_mib(work)
        finally:
            shutil.rmtree(work)
        report = (OUT / f"sizing_{label}_{worker}.log").read_text()
        if m.returncode != 0 or '"status": "success"' not in report:
            raise SystemExit(f"task {worker} failed ({m.returncode}):\n{report[-3000:]}")
        print(f"{label} {worker}: {m.seconds:.1f} s, {m.peak_rss_mb:,.0f} MiB", flush=True)
        figures[worker] = (m, cpu, disk)
    arn = aws.env["STATE_MACHINE_ARN"].replace(":stateMachine:", ":execution:") + ":" + name
    sfn = aws.client("stepfunctions")
    wait_for(lambda: sfn.describe_execution(executionArn=arn)["status"] != "RUNNING", 60, "end")
    assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    return figures


def main() -> None:
    """Measure what the arguments ask for; print markdown tables (and keep them in OUT)."""
    if sys.argv[1:] == ["_invoke"]:
        _invoke()
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["lambda", "tasks"])
    parser.add_argument("--objects", type=int, default=10_000, help="lambda: landing objects")
    parser.add_argument("--items", default="1M,10M", help="tasks: sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=0, help="default: 3 (lambda), 1 (tasks)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.what == "lambda":
        report = [lambda_sizing(args.objects, args.repeat or 3)]
    else:
        report = [task_sizing(label, args.repeat or 1) for label in args.items.split(",")]
    text = "\n\n".join(report)
    print(text, flush=True)
    (OUT / f"sizing_{args.what}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
