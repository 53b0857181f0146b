"""`ecompipe watch`: start a run when a complete set has landed and landing is quiet.

File-system events (watchdog: inotify on Linux) only say *when to look*; what to run is
decided from a fresh listing, exactly as `ecompipe run` decides it: candidates exclude files an
unfinished execution owns, so a file is never given to a second execution. A run that finds
files landed meanwhile is followed by another once landing is quiet again. The first Ctrl-C
(SIGINT) or SIGTERM stops after the current run; a second one interrupts that run (its lease is
released on the way out and its execution is resumed by the next run, like after a crash).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from ecompipe import trigger
from ecompipe.errors import EcompipeError, IncompleteSetError, TransientError
from ecompipe.pipeline import Pipeline, RunResult

log = logging.getLogger("ecompipe")

#: Seconds between two deadline checks: a deadline is hours, so a minute late is on time,
#: and the listing it takes stays cheap.
CHECK_EVERY = 60.0


@dataclass
class WatchResult:
    """What a watch session did."""

    runs: int
    last_exit_code: int
    reason: str


class _Changes:
    """The time of the latest event under landing/ (monotonic clock)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.wake = threading.Event()

    def touch(self, *_args: Any) -> None:
        self.last = time.monotonic()
        self.wake.set()


def _observer(landing: Path, changes: _Changes, poll: bool, interval: float) -> Any:
    """A started watchdog observer; the polling one when asked or when inotify fails."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            changes.touch()

    if not poll:
        observer = Observer()
        observer.schedule(Handler(), str(landing), recursive=True)
        try:
            observer.start()
            return observer
        except OSError as exc:  # inotify limits reached, or no inotify at all
            log.warning("file-system events unavailable (%s): polling instead", exc)
    observer = PollingObserver(timeout=interval)
    observer.schedule(Handler(), str(landing), recursive=True)
    observer.start()
    return observer


def watch(
    landing: Path,
    new_pipeline: Callable[[], Pipeline],
    debounce: float,
    poll: bool = False,
    max_runs: int | None = None,
    timeout: float | None = None,
    echo: Callable[[str], None] = print,
    check: Callable[[], None] | None = None,
    check_every: float = CHECK_EVERY,
) -> WatchResult:
    """Watch ``landing`` and run a fresh pipeline for every complete set, until stopped;
    call ``check`` (the deadline check) at start and every ``check_every`` seconds."""
    changes = _Changes()
    stop = threading.Event()
    running = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and running.is_set():
            raise KeyboardInterrupt  # second signal: interrupt the run in progress
        stop.set()
        changes.wake.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    observer = _observer(landing, changes, poll, max(0.1, min(1.0, debounce)))
    deadline = None if timeout is None else time.monotonic() + timeout
    runs, code, reason = 0, 0, "stopped"
    echo(f"watching {landing} (quiet period {debounce:g}s); Ctrl-C stops")
    try:
        checked_at = float("-inf")  # look once at start: files may have landed unwatched
        again = False
        next_check = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                reason = "timeout"
                break
            if check is not None and now >= next_check:
                next_check = now + check_every
                _check(check)
            pending = again or changes.last > checked_at
            quiet_for = now - changes.last
            if pending and quiet_for >= debounce:
                checked_at, again = now, False
                with closing(new_pipeline()) as pipeline:
                    if not _ready(pipeline):
                        continue
                    running.set()
                    try:
                        result = _run(pipeline)
                    finally:
                        running.clear()
                if result is None:
                    continue
                runs, code = runs + 1, result.exit_code
                echo(f"run {runs}: exit {code}: {result.message}")
                again = True  # look again: files may have landed during the run
                if max_runs is not None and runs >= max_runs:
                    reason = "max-runs"
                    break
                continue
            wait = debounce - quiet_for if pending else 1.0
            if deadline is not None:
                wait = min(wait, deadline - now)
            changes.wake.wait(max(0.05, wait))
            changes.wake.clear()
    finally:
        observer.stop()
        observer.join(timeout=10)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo(f"watch ends ({reason}) after {runs} run(s)")
    return WatchResult(runs, code, reason)


def _ready(pipeline: Pipeline) -> bool:
    """A complete set no execution owns, or an interrupted execution to finish.

    Files still settling count here: the run waits for them (Pipeline.run), and if one is
    still being written it starts nothing; that writer's next event brings watch back.
    """
    landing = pipeline.landing()
    keys = [o.key for o in landing.ready + landing.settling]
    return not trigger.missing_datasets(keys, pipeline.settings) or bool(
        pipeline.b.log.unfinished()
    )


def _check(check: Callable[[], None]) -> None:
    """One deadline check; a failure is said and watch goes on (the next one retries)."""
    try:
        check()
    except EcompipeError as exc:
        log.warning("deadline check failed: %s", exc)


def _run(pipeline: Pipeline) -> RunResult | None:
    try:
        return pipeline.run()
    except IncompleteSetError:
        return None  # another process took the files first
    except TransientError as exc:  # lock busy for too long, a busy store: try again later
        log.warning("run did not start: %s", exc)
        return None
