"""What a command shows on the terminal while it works: a spinner line saying what it does
and a rich progress bar for each step the work reports (progress.report), on stderr.

Only on a terminal: when stderr is piped (or the command is ``--quiet``) nothing is drawn and
no reporter is installed, so the work's reports go nowhere.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ecompipe import progress


def _no_update(_text: str) -> None:
    return None


@contextmanager
def working(text: str, quiet: bool = False) -> Iterator[Callable[[str], None]]:
    """Show ``text`` with a spinner and the work's progress bars while inside; yields a
    function that changes the text. Silent when stderr is no terminal or ``quiet``."""
    if quiet or not sys.stderr.isatty():
        yield _no_update
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, ProgressColumn, SpinnerColumn
    from rich.progress import Task as RichTask
    from rich.text import Text

    class Bar(BarColumn):
        def render(self, task: RichTask) -> Any:
            return Text("") if task.fields.get("status") else super().render(task)

    class Count(ProgressColumn):
        def render(self, task: RichTask) -> Text:
            unit = str(task.fields.get("unit", ""))
            if task.fields.get("status"):
                return Text("")
            if unit == "bytes":
                return DownloadColumn().render(task)
            total = "?" if task.total is None else f"{int(task.total):,}"
            return Text(f"{int(task.completed):,}/{total} {unit}".rstrip())

    bars = Progress(
        SpinnerColumn(),
        "{task.description}",
        Bar(),
        Count(),
        console=Console(stderr=True),
        transient=True,
    )
    lock = threading.Lock()
    tasks: dict[str, Any] = {}
    status = bars.add_task(text, total=None, status=True)

    def show(step: str, done: int, total: int | None, unit: str) -> None:
        with lock:
            if step not in tasks:
                tasks[step] = bars.add_task(step, total=total, unit=unit)
            bars.update(tasks[step], completed=done, total=total)
            if unit == "bytes" and total is not None and done >= total:
                # One bar per object moved: a finished transfer makes room for the next.
                bars.remove_task(tasks.pop(step))

    with bars, progress.reporting(show):
        yield lambda new: bars.update(status, description=new)
