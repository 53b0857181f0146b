"""Fault injection for crash and resource tests.

``ECOMPIPE_CRASH_AT=<point>`` kills the process there. Points: ``after:<State>`` (a state has
recorded its completion; also after the success ending, before the lease is released),
``acquire:after-create``, ``validate:after-claim``, ``transform:after-publish``,
``transform:after-metrics`` (metrics and KPI revisions written, the state not done),
``success:after-notify``, ``replay:after-restore`` (a replay's copies made, its manifest not
yet recorded) and ``move:after-copy-before-delete`` (every verified move).
``ECOMPIPE_CRASH_AT`` may list several, comma-separated; ``ECOMPIPE_CRASH_SKIP=N`` lets the
first N hits pass (to kill the Nth move, for instance).
SIGKILL, not an exception: nothing gets to clean up, exactly as when a machine dies.

``ECOMPIPE_FAULT_AT=<errno>:<point>`` makes a write fail there with that OSError, as the
operating system would (``enospc:staging`` is a full disk under the staging folder). The
errno is any name of the :mod:`errno` module, in any case (``enospc``, ``edquot``,
``emfile``...). Write points:

- ``staging``: an engine about to write a dataset's staged Parquet file
  (``staging/<execution>/<dataset>.parquet``; DuckDB and Spark engines);
- ``publish``: the local store about to move a staged file into the curated log
  (``curated/<dataset>/<seq>.parquet``), once per dataset with rows.

``ECOMPIPE_FAULT_AT`` may list several, comma-separated; ``ECOMPIPE_FAULT_SKIP=N`` lets the
first N hits pass (to fail the second publish, for instance). An exception, not a kill: what
the code does with a failed write is what is under test.
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``name`` is an armed crash point."""
    if name in _listed("ECOMPIPE_CRASH_AT") and _past_skip(f"crash:{name}", "ECOMPIPE_CRASH_SKIP"):
        os.kill(os.getpid(), signal.SIGKILL)


def fault_point(name: str, path: Path) -> None:
    """Raise the OSError armed for write point ``name`` (``<errno>:<name>`` in
    ECOMPIPE_FAULT_AT), naming ``path`` as the file being written."""
    for entry in _listed("ECOMPIPE_FAULT_AT"):
        kind, _, point = entry.partition(":")
        if point == name and _past_skip(f"fault:{name}", "ECOMPIPE_FAULT_SKIP"):
            code = getattr(errno, kind.upper(), None)
            if not isinstance(code, int):
                raise ValueError(f"ECOMPIPE_FAULT_AT: {kind!r} is not an errno name")
            raise OSError(code, os.strerror(code), str(path))


def _listed(variable: str) -> set[str]:
    return {p.strip() for p in os.environ.get(variable, "").split(",") if p.strip()}


def _past_skip(hit: str, skip_variable: str) -> bool:
    """Count a hit; True once more than ``skip_variable`` hits of it have been let through."""
    _hits[hit] = _hits.get(hit, 0) + 1
    return _hits[hit] > int(os.environ.get(skip_variable, "0"))
