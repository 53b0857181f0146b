"""The operator console: `ecompipe serve` (a read-only web dashboard) and `ecompipe report
--html` (one self-contained HTML file).

documents.py reads what they show through a backend's ports, as JSON-ready documents (no web
framework: the CLI uses it too); app.py is the web app (FastAPI, imported only by `serve`);
report.py writes the HTML file; static/ holds the page, its script and style, and the
vendored chart library (Chart.js), all shipped in the wheel: nothing comes from a CDN.
"""
