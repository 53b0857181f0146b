"""Run a command and measure it: wall time and peak RSS of its whole process tree.

Peak RSS is sampled every 0.1 s over the process and all its descendants (a JVM started by
PySpark included) and summed; the sum's maximum is reported. Shared by every benchmark.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Measurement:
    """One measured command."""

    label: str
    seconds: float
    peak_rss_mb: float
    returncode: int


def measure(
    label: str,
    argv: list[str],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> Measurement:
    """Run ``argv`` to completion; return wall seconds and peak tree RSS in MiB."""
    out = log.open("w") if log else subprocess.DEVNULL
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                rss = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):  # a child that just exited
                        rss += p.memory_info().rss
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)
        seconds = time.perf_counter() - started
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    return Measurement(label, seconds, peak / 2**20, proc.returncode)


def median(runs: list[Measurement]) -> Measurement:
    """The run with the median wall time (peak RSS is that run's own)."""
    ordered = sorted(runs, key=lambda m: m.seconds)
    return ordered[len(ordered) // 2]


def table(rows: list[Measurement], floor: Measurement, title: str) -> str:
    """A markdown table with ratios against ``floor``."""
    lines = [
        f"### {title}",
        "",
        "| run | wall s | x floor | peak RSS MiB | exit |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in rows:
        lines.append(
            f"| {m.label} | {m.seconds:.1f} | {m.seconds / floor.seconds:.2f} | "
            f"{m.peak_rss_mb:,.0f} | {m.returncode} |"
        )
    return "\n".join(lines)
