"""The local notifier: one line on the console, the full message in notifications.jsonl."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO


class LocalNotifier:
    """Notifications to the console (one line) and to notifications.jsonl (full message)."""

    def __init__(self, path: Path, console: TextIO | None = None, quiet: bool = False) -> None:
        self._path = path
        self._console = console if console is not None else sys.stderr
        self._quiet = quiet

    def notify(self, message: dict[str, Any]) -> None:
        """Append the message to the JSON-lines file and print a one-line summary."""
        message = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **message}
        line = json.dumps(message, default=str, sort_keys=True)
        with self._path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if not self._quiet:
            print(f"ecompipe: {message.get('subject', '')}", file=self._console)
