"""Fault injection for crash tests: ``ECOMPIPE_CRASH_AT=<point>`` kills the process there.

Points: ``after:<State>`` (a state has recorded its completion; also after the success
ending, before the lease is released), ``acquire:after-create``, ``validate:after-claim``,
``transform:after-publish``, ``success:after-notify`` and ``move:after-copy-before-delete``
(every verified move).
``ECOMPIPE_CRASH_AT`` may list several, comma-separated; ``ECOMPIPE_CRASH_SKIP=N`` lets the
first N hits pass (to kill the Nth move, for instance).
SIGKILL, not an exception: nothing gets to clean up, exactly as when a machine dies.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``name`` is an armed crash point."""
    armed = os.environ.get("ECOMPIPE_CRASH_AT")
    if not armed or name not in {p.strip() for p in armed.split(",")}:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] > int(os.environ.get("ECOMPIPE_CRASH_SKIP", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
