"""The notification an execution's ending sends: one message, built from what the execution
log holds (no I/O here)."""

from __future__ import annotations

from typing import Any

from ecompipe.errors import EcompipeError
from ecompipe.stores.base import ManifestEntry
from ecompipe.validation import ValidationReport


def message(
    execution_id: str,
    status: str,
    report: ValidationReport,
    summary: dict[str, Any],
    manifest: list[ManifestEntry],
    error: EcompipeError | None,
) -> dict[str, Any]:
    """The notification of an execution that ended with ``status`` (``error`` on failure)."""
    return {
        "subject": subject(execution_id, report, summary, error),
        "execution_id": execution_id,
        "status": status,
        "severity": severity(report, summary, error),
        "files": len(manifest),
        "files_accepted": sum(f.accepted for f in report.files),
        "files_rejected": sum(not f.accepted for f in report.files),
        "verdicts": [
            {"key": f.key, "accepted": f.accepted, "reason": f.reason, "detail": f.detail}
            for f in report.files
        ],
        "rejected_rows": report.rejected_rows,
        "duplicates_dropped": report.duplicates_dropped,
        "kpis": summary.get("transform"),
        "revisions": summary.get("revisions"),
        "error": None if error is None else {"type": error.code, "message": str(error)},
    }


def severity(report: ValidationReport, summary: dict[str, Any], error: EcompipeError | None) -> str:
    """``failure`` when the execution failed; ``warning`` when it succeeded with something
    to look at (rows or files rejected, items waiting for their order or product, statuses
    the KPIs do not know); else ``success``. One of config.SEVERITIES."""
    if error is not None:
        return "failure"
    kpi = summary.get("transform") or {}
    flagged = (
        report.rejected_rows,
        sum(not f.accepted for f in report.files),
        sum(f.unknown_status for f in report.files),
        kpi.get("waiting_for_order", 0),
        kpi.get("waiting_for_product", 0),
    )
    return "warning" if any(flagged) else "success"


def subject(
    execution_id: str,
    report: ValidationReport,
    summary: dict[str, Any],
    error: EcompipeError | None,
) -> str:
    """The notification's one line: the outcome, file counts, rejected rows, KPI headline."""
    files = f"{sum(f.accepted for f in report.files)}/{len(report.files)} files accepted"
    rows = f"{report.rejected_rows} rows rejected"
    if error is not None:
        return f"{execution_id} FAILED: {error} ({files}, {rows})"
    kpi = summary.get("transform") or {}
    return (
        f"{execution_id} SUCCEEDED: {files}, {rows}, {kpi.get('dates_recomputed', 0)} dates "
        f"recomputed, {kpi.get('waiting_for_order', 0)} items waiting for their order, "
        f"{kpi.get('waiting_for_product', 0)} for their product{revised(summary)}"
    )


def revised(summary: dict[str, Any]) -> str:
    """The subject's words on KPI revisions: "", or ", 3 past dates revised, largest revenue
    change -12.50 on 2024-03-02" (revisions.RevisionSummary in the summary)."""
    revisions = summary.get("revisions") or {}
    dates = revisions.get("dates_changed", 0)
    if not dates:
        return ""
    words = f", {dates} past date{'' if dates == 1 else 's'} revised"
    largest = revisions.get("largest_revenue_change")
    if largest is None:
        return f"{words} (revenue unchanged)"
    return f"{words}, largest revenue change {largest['delta']} on {largest['date']}"
