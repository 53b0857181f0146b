"""This host and whether a process on it still lives: the one liveness rule of every lock.

A lease names the host and pid that took it. Both lock adapters (SQLite, DynamoDB) reap a
holder on this host whose process is gone at once, and any other holder only once its lease
has expired: another host's pids mean nothing here.
"""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
