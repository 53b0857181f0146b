"""This host, whether a process on it still lives, and the one lease rule of every lock.

A lease names the host and pid that took it. Every lock adapter (SQLite, DynamoDB, memory)
reaps a holder on this host whose process is gone at once, and any other holder only once
its lease has expired: another host's pids mean nothing here.
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


def process_gone(host: str, pid: int) -> bool:
    """Whether a lease names a process on this host that is gone (its holder is dead). Pid 0
    names no process (a Step Functions execution's lease), another host's pids nothing
    here: neither is known dead."""
    return host == HOST and pid > 0 and not pid_alive(pid)


def lease_over(host: str, pid: int, expires_at: float, now: float) -> bool:
    """Whether the next acquirer may reap this lease: it has expired, or it names a process
    on this host that is gone (process_gone): only its expiry ends any other."""
    return expires_at <= now or process_gone(host, pid)
