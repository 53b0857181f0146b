"""A webhook receiver on 127.0.0.1 for the alert tests: answers each POST with the next
status of a script (the last one repeats) and keeps every body it was sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """What the server was sent, and the statuses it answers with."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses, self.headers = list(statuses), headers or {}
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str] = []
        self.url = ""
        self._guard = threading.Lock()

    def answer(self, body: bytes, content_type: str) -> int:
        with self._guard:
            self.bodies.append(json.loads(body))
            self.content_types.append(content_type)
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@contextmanager
def webhook_server(
    statuses: list[int], headers: dict[str, str] | None = None
) -> Iterator[Receiver]:
    """A running receiver answering ``statuses`` in turn (``headers`` on every answer); its
    URL holds a path like a Slack hook's secret one. Stopped on exit."""
    receiver = Receiver(statuses, headers)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.answer(body, self.headers.get("Content-Type", ""))
            self.send_response(status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: Any) -> None:
            pass  # quiet: the test output stays the test's

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/services/T0SECRET/B0HOOK/xyzzy"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
