"""What the operator surfaces show, as JSON-ready documents read through a backend's ports.

The web API (`ecompipe serve`), the HTML report and the CLI's `metrics --json` all give these
same documents. Only the ports are read (Ports of ecompipe.wiring: metrics, execution log,
lock, object store), whichever backend they are on; nothing here writes. Rejected rows are
listed and counted by DuckDB (pipeline/rejects.py): what Python handles here grows with the
executions and files shown, never with the rejected rows.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ecompipe.config import Settings, redacted_settings
from ecompipe.kpis import CATEGORY_TABLE, ORDER_TABLE
from ecompipe.stores.host import process_gone
from ecompipe.workflow import WORKFLOW, State, Status

if TYPE_CHECKING:
    from ecompipe.stores.base import ExecutionLog, ExecutionRecord, MetricsStore, ObjectStore
    from ecompipe.wiring import Ports


def plain(value: Any) -> Any:
    """A metric value as JSON has it: money and rates as numbers (two or four decimals print
    exactly), dates as ISO text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def metrics_rows(
    store: MetricsStore,
    date_from: date | None = None,
    date_to: date | None = None,
    category: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Order and category metrics rows within [date_from, date_to]; with ``category``, its
    category rows and the order rows of the dates it has."""
    orders = [asdict(m) for m in store.order_metrics(date_from, date_to)]
    categories = [asdict(m) for m in store.category_metrics(date_from, date_to, category)]
    if category is not None:
        dates = {c["order_date"] for c in categories}
        orders = [o for o in orders if o["order_date"] in dates]
    return orders, categories


def metrics_document(
    orders: Sequence[dict[str, Any]], categories: Sequence[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """The document of `ecompipe metrics --json` and /api/metrics."""
    return {
        "order_metrics": [{k: plain(v) for k, v in o.items()} for o in orders],
        "category_metrics": [{k: plain(v) for k, v in c.items()} for c in categories],
    }


def columns_document() -> dict[str, list[dict[str, str]]]:
    """Each metrics table's columns and their kind (date, text, count, money, rate): how a
    page formats them (money two decimals, rates four)."""
    return {
        "order_metrics": [{"name": n, "kind": k.value} for n, k in ORDER_TABLE.columns],
        "category_metrics": [{"name": n, "kind": k.value} for n, k in CATEGORY_TABLE.columns],
    }


def settings_document(settings: Settings) -> list[dict[str, str]]:
    """Every setting with its env var, secrets redacted (config.redacted_settings)."""
    return redacted_settings(settings)


def shown_state(record: ExecutionRecord) -> str:
    """The state to show for an execution: a finished one shows its ending (bookkeeping
    events such as the lease release come after it in the log)."""
    ending: dict[str, State] = {Status.SUCCEEDED: State.SUCCESS, Status.FAILED: State.FAILURE}
    return str(ending.get(record.status, record.state or "-"))


def execution_row(record: ExecutionRecord) -> dict[str, Any]:
    """One line of the executions list: status, start, duration, files accepted and
    rejected, rows rejected, dates recomputed (None where the execution did not get there)."""
    validation = record.summary.get("validation") or {}
    transform = record.summary.get("transform") or {}
    finished = record.finished_at
    return {
        "execution_id": record.execution_id,
        "seq": record.seq,
        "status": record.status,
        "state": shown_state(record),
        "started_at": record.started_at,
        "finished_at": finished,
        "duration_seconds": None if finished is None else round(finished - record.started_at, 3),
        "files_accepted": validation.get("files_accepted"),
        "files_rejected": validation.get("files_rejected"),
        "rows_rejected": validation.get("rejected_rows"),
        "dates_recomputed": transform.get("dates_recomputed"),
        "waiting_for_order": transform.get("waiting_for_order"),
        "waiting_for_product": transform.get("waiting_for_product"),
        "message": record.summary.get("notification"),
    }


def executions_document(log: ExecutionLog, limit: int) -> list[dict[str, Any]]:
    """The latest ``limit`` executions, latest first."""
    return [execution_row(r) for r in log.recent(limit)]


def state_spans(
    events: Sequence[dict[str, Any]], record: ExecutionRecord, now: float
) -> list[dict[str, Any]]:
    """Each attempt at a state, as the Step Functions console draws it: from its ``entered``
    event to its ``succeeded`` or ``failed`` one. An attempt never closed ends where the next
    one starts (``interrupted``: its process was killed and the execution resumed), or, the
    last one, now (``running``) or when the execution finished."""
    spans: list[dict[str, Any]] = []
    open_spans: dict[str, dict[str, Any]] = {}
    for event in events:
        state, kind, at = event["state"], event["event"], float(event["at"])
        if kind == "entered":
            span = {"state": state, "start": at, "end": None, "outcome": "running"}
            spans.append(span)
            open_spans[state] = span
        elif kind in ("succeeded", "failed") and state in open_spans:
            span = open_spans.pop(state)
            span["end"], span["outcome"] = at, kind
    for i, span in enumerate(spans):
        if span["end"] is not None:
            continue
        if i + 1 < len(spans):
            span["end"], span["outcome"] = spans[i + 1]["start"], "interrupted"
        elif record.status == Status.RUNNING:
            span["end"] = now
        else:
            span["end"], span["outcome"] = record.finished_at or now, "interrupted"
    return spans


def execution_document(
    log: ExecutionLog,
    store: ObjectStore,
    execution_id: str,
    rejects_limit: int = 1000,
    now: float | None = None,
) -> dict[str, Any] | None:
    """One execution: its row, state timeline and events, manifest, quarantined files,
    validation report, summary, and its rejected rows (the first ``rejects_limit``, with the
    total); None when the log has no such execution."""
    # Imported here: `ecompipe executions` and `metrics --json` read this module and need
    # neither DuckDB nor the pipeline (~0.1 s to import).
    from ecompipe.pipeline.rejects import Rejects

    record = log.get(execution_id)
    if record is None:
        return None
    events = log.events(execution_id)
    manifest = [asdict(e) for e in log.manifest(execution_id)]
    rows, total = Rejects(store, log).execution_rows(record, rejects_limit)
    return {
        **execution_row(record),
        "holder": record.holder,
        "workflow": [str(spec.name) for spec in WORKFLOW],
        "timeline": state_spans(events, record, time.time() if now is None else now),
        "events": events,
        "manifest": manifest,
        "quarantined": [e for e in manifest if e["status"] == "quarantined"],
        "validation": record.summary.get("validation"),
        "summary": record.summary,
        # An empty column or text reads as NULL: the page has always had "" there.
        "rejects": {
            "total": total,
            "rows": [{k: "" if v is None else v for k, v in r.items()} for r in rows],
        },
    }


def lock_document(ports: Ports, now: float | None = None) -> dict[str, Any]:
    """The lock's holders (and its critical section's): who, since when, until when, whether
    the lease has expired and whether its process is known dead (gone from this host)."""
    now = time.time() if now is None else now
    settings = ports.settings
    holders = []
    for section, lock in (("lock", ports.lock()), ("critical", ports.lock(critical=True))):
        for h in lock.holders():
            holders.append(
                {
                    **asdict(h),
                    "section": section,
                    "expired": h.expires_at <= now,
                    "dead": process_gone(h.host, h.pid),
                }
            )
    return {
        "lock_id": settings.lock_id,
        "limit": settings.lock_limit,
        "now": now,
        "holders": holders,
    }


def quality_document(
    log: ExecutionLog, store: ObjectStore, records: Sequence[ExecutionRecord]
) -> dict[str, Any]:
    """Data quality over ``records`` (of ``log``, latest first): files rejected by reason,
    rejected rows' problems by reason (a row with several problems counts under each), and
    the items waiting for a parent as the latest transform left them."""
    from ecompipe.pipeline.rejects import Rejects  # as in execution_document

    files: Counter[str] = Counter()
    waiting: dict[str, Any] | None = None
    for record in records:
        validation = record.summary.get("validation") or {}
        for f in validation.get("files", []):
            if not f.get("accepted"):
                files[str(f.get("reason"))] += 1
        transform = record.summary.get("transform")
        if waiting is None and transform:
            waiting = {
                "execution_id": record.execution_id,
                "waiting_for_order": transform.get("waiting_for_order", 0),
                "waiting_for_product": transform.get("waiting_for_product", 0),
            }
    return {
        "executions": len(records),
        "files_rejected_by_reason": dict(files.most_common()),
        "rows_rejected_by_reason": Rejects(store, log).problems(records),
        "waiting_for_parent": waiting,
    }
