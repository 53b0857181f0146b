"""`ecompipe report --html FILE`: the console's page as one self-contained HTML file.

The dashboard's own page (static/index.html), its style, script and the chart library
inlined, and the documents it shows embedded as JSON: it opens offline (an e-mail
attachment), and draws with the same code as `ecompipe serve`. Its Content-Security-Policy
forbids every network load, so the file cannot call anywhere when opened.
"""

from __future__ import annotations

import json
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

from ecompipe.console import documents
from ecompipe.wiring import Ports

STATIC = Path(__file__).parent / "static"
#: Inline scripts and styles only, images as data: URLs; nothing fetched.
REPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
)
#: The page's links to its assets, and the static file each one is replaced with.
_ASSETS = {
    '<link rel="stylesheet" href="static/console.css">': ("style", "console.css"),
    '<script src="static/vendor/chart.umd.min.js" defer></script>': (
        "script",
        "vendor/chart.umd.min.js",
    ),
    '<script src="static/console.js" defer></script>': ("script", "console.js"),
}


def report_data(
    ports: Ports,
    backend: str,
    date_from: date | None,
    date_to: date | None,
    limit: int,
    now: float | None = None,
) -> dict[str, Any]:
    """What the report shows: the KPIs of the period, the latest ``limit`` executions and
    the data-quality summary over them."""
    now = time.time() if now is None else now
    orders, categories = documents.metrics_rows(ports.metrics(), date_from, date_to)
    log = ports.log()
    records = log.recent(limit)
    span = f"order dates {date_from or '…'} to {date_to or '…'}"
    return {
        "backend": backend,
        "generated_at": now,
        "generated_at_text": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(now)),
        "period": {
            "from": date_from.isoformat() if date_from else None,
            "to": date_to.isoformat() if date_to else None,
        },
        "period_text": span if date_from or date_to else "every order date",
        "columns": documents.columns_document(),
        "metrics": documents.metrics_document(orders, categories),
        "executions": [documents.execution_row(r) for r in records],
        "quality": documents.quality_document(log, ports.store(), records),
    }


def _script_json(data: Any) -> str:
    """JSON that cannot end its <script> element early (any ``</script>`` or ``<!--`` in a
    landing key or a rejected row's text stays data)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report(data: dict[str, Any]) -> str:
    """The self-contained HTML page showing ``data`` (report_data's)."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    for tag, (element, name) in _ASSETS.items():
        if tag not in page:
            raise RuntimeError(f"static/index.html no longer links {name} as {tag!r}")
        body = (STATIC / name).read_text(encoding="utf-8")
        # An asset holding its own end tag would end the element early: vendored code is
        # checked, not trusted.
        if f"</{element}" in body.lower():
            raise RuntimeError(f"{name} holds </{element}>: it cannot be inlined")
        inline = f"<{element}>\n{body}\n</{element}>"
        page = page.replace(tag, "" if element == "script" else inline)
        if element == "script":
            # Scripts run at the end of the body, in order, once the page exists (as the
            # served page's deferred ones do).
            page = page.replace("</body>", f"{inline}\n</body>")
    head = (
        f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">\n'
        f'<script type="application/json" id="ecompipe-report">{_script_json(data)}</script>\n'
    )
    return page.replace("<head>\n", f"<head>\n{head}", 1)


def write_report(path: Path, data: dict[str, Any]) -> int:
    """Write the report to ``path`` whole (a temporary file renamed over it); its size."""
    html = render_report(data).encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(html)
    os.replace(tmp, path)
    return len(html)
