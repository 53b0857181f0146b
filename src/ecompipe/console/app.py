"""`ecompipe serve`: the read-only web dashboard and its JSON API (FastAPI on uvicorn).

Imported only by `ecompipe serve` (the web framework costs ~0.3 s to import; `ecompipe run`
never loads it). Every answer is read through the backend's ports at request time
(documents.py); nothing here writes. The page and its assets are the package's own files
(static/): the Content-Security-Policy lets the page load nothing from anywhere else.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable
from datetime import date
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ecompipe.console import documents
from ecompipe.errors import ConfigError
from ecompipe.stores.base import ObjectStore
from ecompipe.wiring import Ports

STATIC = Path(__file__).parent / "static"
#: The page may load scripts, styles, images and data from its own server only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def create_app(ports: Ports, backend: str, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The dashboard on ``ports`` (of backend ``backend``); ``allowed_hosts``: the Host
    headers answered (default: loopback names only, so that a page elsewhere cannot reach
    the API by pointing a name of its own at 127.0.0.1)."""

    @cache
    def store() -> ObjectStore:
        # One for the app's life: on AWS each store makes a working folder. The other ports
        # are opened per request: an SQLite handle is one connection, and requests run in
        # worker threads.
        return ports.store()

    app = FastAPI(
        title="ecompipe console",
        version=version("ecompipe"),
        description="Read-only: KPIs, executions and the lock of one ecompipe backend.",
        openapi_url="/api/openapi.json",
        # Swagger UI and ReDoc load their scripts from a CDN: the console works offline.
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or list(LOOPBACK_NAMES))

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/metrics", response_model=None)
    def metrics(
        date_from: Annotated[date | None, Query(alias="from", description="First date")] = None,
        date_to: Annotated[date | None, Query(alias="to", description="Last date")] = None,
        category: Annotated[str | None, Query(description="Only this category")] = None,
    ) -> JSONResponse:
        """The KPIs, as `ecompipe metrics --json`: {order_metrics, category_metrics}; with a
        category, its category rows and the order rows of the dates it has."""
        if date_from is not None and date_to is not None and date_from > date_to:
            raise HTTPException(400, f"from {date_from} is after to {date_to}")
        rows = documents.metrics_rows(ports.metrics(), date_from, date_to, category)
        return JSONResponse(documents.metrics_document(*rows))

    @app.get("/api/executions", response_model=None)
    def executions(
        limit: Annotated[int, Query(ge=1, le=1000, description="How many, latest first")] = 50,
    ) -> JSONResponse:
        """The latest executions: status, start, duration, files accepted and rejected, rows
        rejected, dates recomputed."""
        return JSONResponse(documents.executions_document(ports.log(), limit))

    @app.get("/api/executions/{execution_id}", response_model=None)
    def execution(
        execution_id: str,
        rejects_limit: Annotated[int, Query(ge=0, le=100_000)] = 1000,
    ) -> JSONResponse:
        """One execution: state timeline and events, manifest, quarantined files, validation
        report and rejected rows (the first ``rejects_limit``, with their total)."""
        document = documents.execution_document(ports.log(), store(), execution_id, rejects_limit)
        if document is None:
            raise HTTPException(404, f"no execution {execution_id!r}")
        return JSONResponse(document)

    @app.get("/api/lock", response_model=None)
    def lock() -> JSONResponse:
        """Who holds the lock and its critical section, since and until when; expired and
        dead (process gone from this host) holders marked."""
        return JSONResponse(documents.lock_document(ports))

    @app.get("/api/quality", response_model=None)
    def quality(
        limit: Annotated[int, Query(ge=1, le=1000, description="Over the latest executions")] = 50,
    ) -> JSONResponse:
        """Files rejected by reason, rejected rows' problems by reason, items waiting for a
        parent, over the latest executions."""
        log = ports.log()
        return JSONResponse(documents.quality_document(log, store(), log.recent(limit)))

    @app.get("/api/meta", response_model=None)
    def meta() -> JSONResponse:
        """The backend, the metrics tables' columns and kinds, every setting (secrets
        redacted)."""
        return JSONResponse(
            {
                "backend": backend,
                "version": version("ecompipe"),
                "columns": documents.columns_document(),
                "settings": documents.settings_document(ports.settings),
            }
        )

    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (port 0: a free one); a ConfigError saying
    which option to change when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError([f"--host {host}: {exc.strerror}"]) from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            [f"cannot listen on {host}:{port} ({exc.strerror}): pass another --port"]
        ) from None
    return sock


def serve(
    ports: Ports,
    backend: str,
    host: str,
    port: int,
    announce: Callable[[str, bool], None],
) -> None:
    """Serve the dashboard until interrupted; once it listens, ``announce`` gets its URL and
    whether the address is loopback (else the whole network may reach it)."""
    import uvicorn

    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    loopback = is_loopback(host)
    allowed = list(LOOPBACK_NAMES) if loopback else ["*"]
    app = create_app(ports, backend, allowed_hosts=allowed)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    announce(f"http://{shown}:{bound_port}/", loopback)
    uvicorn.Server(config).run(sockets=[sock])
