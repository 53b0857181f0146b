"""A Spark standalone cluster on 127.0.0.1: a master and two workers of one core and 1 GiB
each, started from the installed pyspark with ``spark-class`` (one cluster per test process,
on free ports), stopped at the end of the session, even when a test or the start failed.

The fixture ``spark_cluster`` is registered in tests/conftest.py. Executors run on the
workers, in JVMs of their own, as on a real cluster; the folders a run shares with them (the
workspace, the engine's scratch folder in it) are on this machine's disk, which stands for
the shared storage a real cluster needs (docs/ENGINES.md, "Spark on a cluster").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.moto_server import _free_port

WORKERS = 2
#: Bounded waits: a JVM starts in seconds, but the test machine is shared and slow.
START_SECONDS = 180.0
STOP_SECONDS = 30.0


@dataclass(frozen=True)
class SparkCluster:
    """A running standalone cluster: its master URL and what a driver process needs."""

    url: str
    #: Environment for a driver: the master, the loopback address, the same Python.
    env: dict[str, str]


def _spark_home() -> str:
    import pyspark  # noqa: TID251 (tests; lazy: only Spark tests start a cluster)

    return os.path.dirname(pyspark.__file__)


def _alive_workers(webui: int) -> int:
    """Workers the master lists as ALIVE (0 while its web UI does not answer yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{webui}/json/", timeout=5) as answer:
            state = json.loads(answer.read())
    except (OSError, urllib.error.URLError, ValueError):
        return 0
    return sum(w.get("state") == "ALIVE" for w in state.get("workers", []))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (Spark's daemons shut down on it), then SIGKILL if it is still there."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_SECONDS)


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkCluster]:
    """Start the master and the workers, wait until every worker has registered, and stop
    them all after the session."""
    root = tmp_path_factory.mktemp("spark-cluster")
    home = _spark_home()
    port, webui = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    driver = {
        "SPARK_MASTER": url,
        "SPARK_LOCAL_IP": "127.0.0.1",
        # Executors start Python workers only for Python code, which the engine has none
        # of; should one be needed, it must be the driver's Python (same version, same
        # packages).
        "PYSPARK_PYTHON": sys.executable,
    }
    env = {
        **os.environ,
        **driver,
        "SPARK_HOME": home,
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_WORKER_DIR": str(root / "work"),
        # The REST submission server listens on a fixed port (6066): not needed here.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }
    spark_class = str(Path(home) / "bin" / "spark-class")
    commands = [
        [
            spark_class,
            "org.apache.spark.deploy.master.Master",
            *("--host", "127.0.0.1", "--port", str(port), "--webui-port", str(webui)),
        ]
    ] + [
        [
            spark_class,
            "org.apache.spark.deploy.worker.Worker",
            url,
            *("--host", "127.0.0.1", "--cores", "1", "--memory", "1g"),
            *("--webui-port", str(_free_port())),
        ]
        for _ in range(WORKERS)
    ]
    with ExitStack() as stack:
        procs = []
        for n, command in enumerate(commands):
            log = stack.enter_context((root / f"daemon{n}.log").open("wb"))
            # spark-class execs the JVM: the process started is the daemon itself.
            proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            stack.callback(_stop, proc)
            procs.append(proc)
        deadline = time.monotonic() + START_SECONDS
        while _alive_workers(webui) < WORKERS:
            exited = [p.args[1] for p in procs if p.poll() is not None]
            if exited or time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                    for p in sorted(root.glob("daemon*.log"))
                )
                pytest.fail(f"the Spark cluster did not start (exited: {exited})\n{logs}")
            time.sleep(0.5)
        yield SparkCluster(url, driver)
