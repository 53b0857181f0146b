"""Rebuilding the metrics tables from the curated store (`ecompipe recompute`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from ecompipe.engines.base import Engine
from ecompipe.errors import TerminalError, TransientError, from_os_error
from ecompipe.pipeline.leases import Leases
from ecompipe.pipeline.results import RecomputeResult, new_execution_id
from ecompipe.stores.base import Backend


def recompute(
    backend: Backend,
    leases: Leases,
    engine: Callable[[], Engine],
    date_from: date | None,
    date_to: date | None,
    say: Callable[[str], None],
) -> RecomputeResult:
    """Rebuild the metrics of every order date in [date_from, date_to] (None: open on that
    side) from the curated store; rows of dates in the range without orders now are deleted.
    Idempotent. ``say`` hears what it is doing (for a spinner).

    Holds a slot of the lock and the critical section, waiting as a run does (bounded by
    ECOMPIPE_LOCK_WAIT_SECONDS): a transform publishes a batch and writes its dates there,
    and a recompute from the snapshot before it must not overwrite them. Both leases are
    given back on every way out, Ctrl-C included.
    """
    say(f"waiting for lock '{leases.settings.lock_id}'")
    leases.take()
    try:
        with leases.renewing(leases.settings.lease_seconds), leases.critical():
            try:
                return _rebuild(backend, leases, engine(), date_from, date_to, say)
            except OSError as exc:
                raise from_os_error(exc, "recompute") from exc
    finally:
        leases.release()


def _rebuild(
    backend: Backend,
    leases: Leases,
    engine: Engine,
    date_from: date | None,
    date_to: date | None,
    say: Callable[[str], None],
) -> RecomputeResult:
    """The body of ``recompute``, run inside the critical section."""
    metrics = backend.metrics
    before_orders = {m.order_date: m for m in metrics.order_metrics(date_from, date_to)}
    before_cats = {
        (m.category, m.order_date): m for m in metrics.category_metrics(date_from, date_to)
    }
    say("reading the curated store")
    curated = backend.store.curated_log(uri=engine.reads_uris)
    if curated.empty:
        if before_orders or before_cats:
            # Rebuilding from nothing would delete every row: more likely the wrong
            # workspace or bucket than data that was never there.
            raise TerminalError(
                f"the curated store is empty but {len(before_orders) + len(before_cats)} "
                "metric rows exist in the range: kept, nothing to rebuild them from "
                "(is this the right workspace / BUCKET_NAME?)"
            )
        return RecomputeResult([], 0, 0, 0, 0, curated_empty=True)
    say("computing KPIs")
    result = engine.recompute(curated, date_from, date_to)
    dates = sorted({*result.affected_dates, *before_orders, *(day for _cat, day in before_cats)})
    after_orders = {m.order_date: m for m in result.order_metrics}
    after_cats = {(m.category, m.order_date): m for m in result.category_metrics}
    if leases.lost:
        # Another holder may be in the critical section now, writing newer rows.
        raise TransientError("the lock lease was lost: nothing written; recompute again")
    say(f"writing the metrics of {len(dates)} dates")
    # A recompute restates past KPIs as a late batch does (a KPI definition changed, a
    # table restored from an old backup): its revisions are recorded under an id of its own.
    revision_id = new_execution_id("recompute")
    revised = metrics.replace_dates(
        dates, result.order_metrics, result.category_metrics, revision_of=revision_id
    )
    return RecomputeResult(
        dates=dates,
        order_rows=len(after_orders),
        category_rows=len(after_cats),
        changed=sum(before_orders.get(k) != m for k, m in after_orders.items())
        + sum(before_cats.get(k) != m for k, m in after_cats.items()),
        deleted=len(before_orders.keys() - after_orders.keys())
        + len(before_cats.keys() - after_cats.keys()),
        revision_id=revision_id,
        revisions=revised,
    )
