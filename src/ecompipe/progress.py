"""Progress of long steps, as the work reports it: "step, done of total, unit".

The application and the adapters call :func:`report` once per file, step or chunk (never per
row); what shows it is installed around a command by the entry point with :func:`reporting`
(the CLI's rich bars, on a terminal only). With nothing installed a report goes nowhere: when
output is piped, with ``--quiet``, in the ECS tasks, in tests.

The reporter is a context variable rather than a parameter of every port and engine method:
progress is the caller's concern, not part of what a store or an engine promises, and the
signatures the three backends and two engines share stay as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``(step, done, total, unit)``: ``total`` None when unknown; ``unit`` "files", "bytes"...
Reporter = Callable[[str, int, int | None, str], None]

_reporter: ContextVar[Reporter | None] = ContextVar("ecompipe_progress", default=None)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Send the reports made inside to ``reporter``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


def report(step: str, done: int, total: int | None, unit: str = "") -> None:
    """``done`` of ``total`` ``unit`` of ``step`` are done (to whoever shows progress)."""
    reporter = _reporter.get()
    if reporter is not None:
        reporter(step, done, total, unit)


def bytes_callback(step: str, total: int) -> Callable[[int], None] | None:
    """For a transfer whose library calls back with each chunk's byte count, possibly from
    its own threads (boto3's ``Callback``): adds them up and reports ``step`` in bytes.
    None when nothing shows progress (the library then does no callbacks at all)."""
    reporter = _reporter.get()  # here: the library's threads do not see this context
    if reporter is None:
        return None
    lock, done = threading.Lock(), [0]
    reporter(step, 0, total, "bytes")

    def add(n: int) -> None:
        with lock:
            done[0] += n
            reporter(step, done[0], total, "bytes")

    return add
