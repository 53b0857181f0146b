"""SQLite adapters for the embedded default: lock (leases), metrics tables, execution log.

One database file in the workspace. WAL mode lets readers (``ecompipe metrics``) work while a
run writes; every write that must be atomic runs in a ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from ecompipe.errors import StoreError, WorkspaceError
from ecompipe.kpis import (
    CATEGORY_TABLE,
    ORDER_TABLE,
    CategoryMetrics,
    Kind,
    MetricTable,
    OrderMetrics,
    R,
)
from ecompipe.revisions import Revision, RevisionSummary, history_order, revise, summarize
from ecompipe.stores.base import ExecutionRecord, LockHolder, ManifestEntry, RaisedCondition
from ecompipe.stores.host import HOST, lease_over

SCHEMA_VERSION = 1
#: Dates per DELETE of ``replace_dates``: below SQLite's oldest limit of 999 parameters.
_DATES_PER_DELETE = 500


def connect(path: Path, owner: object) -> sqlite3.Connection:
    """Open the workspace database (it must exist: ``ecompipe init`` creates it).

    ``owner``: the connection is closed when it is dropped. sqlite3's statement cache holds
    a connection in a reference cycle, so without this a dropped handle's connection stays
    open, its write-ahead log not folded in, until a garbage collection comes by.
    """
    if not path.exists():
        raise WorkspaceError(f"{path} is missing: run `ecompipe init` to create the workspace")
    try:
        con = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = FULL")
        con.execute("PRAGMA busy_timeout = 60000")
    except sqlite3.Error as exc:
        raise WorkspaceError(f"{path}: cannot open database ({exc})") from None
    weakref.finalize(owner, con.close)
    return con


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def create_schema(path: Path, order_table: str, category_table: str) -> None:
    """Create every table (idempotent)."""
    con = sqlite3.connect(path, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.executescript(
            f"""
            BEGIN;
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
            CREATE TABLE IF NOT EXISTS lock_holders (
                lock_id TEXT NOT NULL, holder TEXT NOT NULL, execution_id TEXT,
                host TEXT NOT NULL, pid INTEGER NOT NULL,
                acquired_at REAL NOT NULL, expires_at REAL NOT NULL,
                PRIMARY KEY (lock_id, holder));
            CREATE TABLE IF NOT EXISTS executions (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                execution_id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, state TEXT,
                holder TEXT, started_at REAL NOT NULL, finished_at REAL,
                summary TEXT NOT NULL DEFAULT '{{}}');
            CREATE TABLE IF NOT EXISTS execution_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT, execution_id TEXT NOT NULL,
                state TEXT NOT NULL, event TEXT NOT NULL, at REAL NOT NULL, detail TEXT);
            CREATE INDEX IF NOT EXISTS execution_events_by_execution
                ON execution_events (execution_id, id);
            {_CONDITIONS_DDL}
            {_REVISIONS_DDL}
            CREATE TABLE IF NOT EXISTS manifest (
                execution_id TEXT NOT NULL, key TEXT NOT NULL, dataset TEXT,
                size INTEGER NOT NULL, etag TEXT NOT NULL, regular INTEGER NOT NULL,
                status TEXT NOT NULL, location TEXT,
                PRIMARY KEY (execution_id, key));
            {_metrics_ddl(order_table, ORDER_TABLE)}
            {_metrics_ddl(category_table, CATEGORY_TABLE)}
            COMMIT;
            """
        )
    finally:
        con.close()


#: The conditions the deadline checks raised (SQLiteConditions); also created on first use,
#: for a workspace made before they existed.
_CONDITIONS_DDL = """CREATE TABLE IF NOT EXISTS conditions (
    condition_id TEXT PRIMARY KEY, raised_at REAL NOT NULL, detail TEXT NOT NULL);"""


#: KPI revisions (SQLiteMetricsStore): one row per (date, row, execution); ``category`` is
#: '' for the date's order_metrics row. Also created on first use, as the conditions are.
_REVISIONS_DDL = """CREATE TABLE IF NOT EXISTS metric_revisions (
    order_date TEXT NOT NULL, category TEXT NOT NULL, execution_id TEXT NOT NULL,
    at REAL NOT NULL, before TEXT, after TEXT,
    PRIMARY KEY (order_date, category, execution_id));
CREATE INDEX IF NOT EXISTS metric_revisions_by_execution
    ON metric_revisions (execution_id);"""


@contextmanager
def _immediate(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StoreError(f"workspace database is busy ({exc}); try again") from None
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


class SQLiteLock:
    """A semaphore of leases: ``limit`` slots, each with an expiry renewed by heartbeat.

    A holder whose process is gone on this host is reaped at once; any other holder is
    reaped once its lease has expired. No manual reset is ever needed.
    """

    def __init__(self, db: Path, lock_id: str, limit: int) -> None:
        self._con = connect(db, owner=self)
        self._lock_id = lock_id
        self._limit = limit

    @property
    def lock_id(self) -> str:
        """The lock item's id."""
        return self._lock_id

    @property
    def limit(self) -> int:
        """How many holders it admits at once."""
        return self._limit

    def _reap(self, now: float) -> None:
        rows = self._con.execute(
            "SELECT holder, host, pid, expires_at FROM lock_holders WHERE lock_id = ?",
            (self._lock_id,),
        ).fetchall()
        for holder, host, pid, expires_at in rows:
            if lease_over(host, int(pid), expires_at, now):
                self._con.execute(
                    "DELETE FROM lock_holders WHERE lock_id = ? AND holder = ?",
                    (self._lock_id, holder),
                )

    def try_acquire(self, holder: str, execution_id: str | None, lease_seconds: float) -> bool:
        """Take a slot if one is free; a holder that already has one keeps it (renewed)."""
        now = time.time()
        with _immediate(self._con) as con:
            self._reap(now)
            mine = con.execute(
                "SELECT 1 FROM lock_holders WHERE lock_id = ? AND holder = ?",
                (self._lock_id, holder),
            ).fetchone()
            if mine:
                con.execute(
                    "UPDATE lock_holders SET expires_at = ? WHERE lock_id = ? AND holder = ?",
                    (now + lease_seconds, self._lock_id, holder),
                )
                return True
            (count,) = con.execute(
                "SELECT count(*) FROM lock_holders WHERE lock_id = ?", (self._lock_id,)
            ).fetchone()
            if count >= self._limit:
                return False
            con.execute(
                "INSERT INTO lock_holders VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self._lock_id, holder, execution_id, HOST, os.getpid(), now, now + lease_seconds),
            )
            return True

    def renew(self, holder: str, lease_seconds: float) -> bool:
        """Extend the lease; False when the holder has lost it."""
        cur = self._con.execute(
            "UPDATE lock_holders SET expires_at = ? WHERE lock_id = ? AND holder = ? "
            "AND expires_at > ?",
            (time.time() + lease_seconds, self._lock_id, holder, time.time()),
        )
        return cur.rowcount == 1

    def release(self, holder: str) -> None:
        """Give the slot back."""
        self._con.execute(
            "DELETE FROM lock_holders WHERE lock_id = ? AND holder = ?", (self._lock_id, holder)
        )

    def holders(self) -> list[LockHolder]:
        """Current holders (expired ones included until someone reaps them)."""
        rows = self._con.execute(
            "SELECT holder, execution_id, host, pid, acquired_at, expires_at FROM lock_holders "
            "WHERE lock_id = ? ORDER BY acquired_at",
            (self._lock_id,),
        ).fetchall()
        return [LockHolder(*r) for r in rows]

    def force_release(self, holder: str | None = None) -> int:
        """Drop one holder, or all of them."""
        if holder is None:
            cur = self._con.execute("DELETE FROM lock_holders WHERE lock_id = ?", (self._lock_id,))
        else:
            cur = self._con.execute(
                "DELETE FROM lock_holders WHERE lock_id = ? AND holder = ?",
                (self._lock_id, holder),
            )
        return cur.rowcount

    def close(self) -> None:
        """Close the connection."""
        self._con.close()


class SQLiteMetricsStore:
    """The two metrics tables. Money and rates are stored as exact decimal text."""

    def __init__(self, db: Path, order_table: str, category_table: str) -> None:
        self._con = connect(db, owner=self)
        self._orders = _quote(order_table)
        self._categories = _quote(category_table)
        for table in (order_table, category_table):
            found = self._con.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if not found:
                raise WorkspaceError(
                    f"metrics table '{table}' does not exist in {db}: run `ecompipe init` "
                    "(it creates tables named by ORDER_METRICS_TABLE / CATEGORY_METRICS_TABLE)"
                )
        try:
            self._con.executescript(_REVISIONS_DDL)
        except sqlite3.Error as exc:
            raise StoreError(f"{db}: cannot create the revisions table ({exc})") from None

    def replace_dates(
        self,
        dates: Sequence[date],
        order_rows: Sequence[OrderMetrics],
        category_rows: Sequence[CategoryMetrics],
        revision_of: str | None = None,
    ) -> RevisionSummary:
        """Delete every row of ``dates`` and insert the new ones, in one transaction, with
        the revisions of ``revision_of`` (a retry finds its rows already written: no new
        revision, and the summary read back is the first attempt's)."""
        keys = [d.isoformat() for d in dates]
        summary = RevisionSummary()
        with _immediate(self._con) as con:
            if revision_of is not None:
                summary = self._revise(con, keys, revision_of, order_rows, category_rows)
            # A few hundred dates a statement, not one: the category table's key starts with
            # the category, so every delete by date scans the whole table (a recompute of
            # 2,557 dates over 62,700 rows took 4 s one by one).
            for start in range(0, len(keys), _DATES_PER_DELETE):
                chunk = keys[start : start + _DATES_PER_DELETE]
                marks = ", ".join("?" * len(chunk))
                con.execute(f"DELETE FROM {self._orders} WHERE order_date IN ({marks})", chunk)
                con.execute(f"DELETE FROM {self._categories} WHERE order_date IN ({marks})", chunk)
            _insert(con, ORDER_TABLE, self._orders, order_rows)
            _insert(con, CATEGORY_TABLE, self._categories, category_rows)
        return summary

    def _revise(
        self,
        con: sqlite3.Connection,
        keys: list[str],
        execution_id: str,
        order_rows: Sequence[OrderMetrics],
        category_rows: Sequence[CategoryMetrics],
    ) -> RevisionSummary:
        """Record the revisions of replacing the rows of ``keys`` (dates), inside the
        replace's transaction; the summary of every revision recorded under the id."""
        before_orders: list[tuple[Any, ...]] = []
        before_cats: list[tuple[Any, ...]] = []
        for start in range(0, len(keys), _DATES_PER_DELETE):
            chunk = keys[start : start + _DATES_PER_DELETE]
            where = f"WHERE order_date IN ({', '.join('?' * len(chunk))})"
            before_orders += _select(con, ORDER_TABLE, self._orders, where, chunk)
            before_cats += _select(con, CATEGORY_TABLE, self._categories, where, chunk)
        found = revise(
            execution_id, time.time(), (before_orders, before_cats), (order_rows, category_rows)
        )
        con.executemany(
            "INSERT OR IGNORE INTO metric_revisions VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    r.order_date.isoformat(),
                    r.category or "",
                    r.execution_id,
                    r.at,
                    None if r.before is None else json.dumps(r.before),
                    None if r.after is None else json.dumps(r.after),
                )
                for r in found
            ],
        )
        # One transaction: either this attempt recorded every revision of the id, or an
        # earlier one did and left nothing to find.
        if found:
            return summarize(found)
        return summarize(self._revisions("WHERE execution_id = ?", [execution_id]))

    def revisions(self, order_date: date, category: str | None = None) -> list[Revision]:
        """The revisions of ``order_date`` (of ``category``'s row only), oldest first."""
        where, args = "WHERE order_date = ?", [order_date.isoformat()]
        if category is not None:
            where += " AND category = ?"
            args.append(category)
        return history_order(self._revisions(where, args))

    def _revisions(self, where: str, args: list[Any]) -> list[Revision]:
        rows = self._con.execute(
            "SELECT execution_id, at, order_date, category, before, after "
            f"FROM metric_revisions {where}",
            args,
        ).fetchall()
        return [
            Revision(
                eid,
                at,
                date.fromisoformat(day),
                category or None,
                None if before is None else json.loads(before),
                None if after is None else json.loads(after),
            )
            for eid, at, day, category, before, after in rows
        ]

    def order_metrics(
        self, date_from: date | None = None, date_to: date | None = None
    ) -> list[OrderMetrics]:
        """Order metrics in date order."""
        where, args = _date_filter(date_from, date_to)
        return _read(self._con, ORDER_TABLE, self._orders, where, args, "order_date")

    def category_metrics(
        self,
        date_from: date | None = None,
        date_to: date | None = None,
        category: str | None = None,
    ) -> list[CategoryMetrics]:
        """Category metrics by date then category."""
        where, args = _date_filter(date_from, date_to)
        if category is not None:
            where += (" AND " if where else "WHERE ") + "category = ?"
            args.append(category)
        return _read(
            self._con, CATEGORY_TABLE, self._categories, where, args, "order_date, category"
        )

    def close(self) -> None:
        """Close the connection."""
        self._con.close()


def _metrics_ddl(name: str, table: MetricTable[Any]) -> str:
    """CREATE TABLE for a metrics table, its columns from the KPI definitions: counts as
    integers, money and rates as exact decimal text, dates as ISO text."""
    columns = ", ".join(
        f"{column} {'INTEGER' if kind is Kind.COUNT else 'TEXT'} NOT NULL"
        for column, kind in table.columns
    )
    keys = ", ".join(column for column, _kind in table.keys)
    return f"CREATE TABLE IF NOT EXISTS {_quote(name)} ({columns}, PRIMARY KEY ({keys}));"


def _insert(con: sqlite3.Connection, table: MetricTable[R], name: str, rows: Sequence[R]) -> None:
    """Insert metrics rows, each column as the KPI definitions store it."""
    columns = [c for c, _kind in table.columns]
    con.executemany(
        f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [table.stored_values(row) for row in rows],
    )


def _read(
    con: sqlite3.Connection,
    table: MetricTable[R],
    name: str,
    where: str,
    args: list[Any],
    order: str,
) -> list[R]:
    """The rows of a metrics table that ``where`` selects, in ``order``."""
    columns = [c for c, _kind in table.columns]
    rows = _select(con, table, name, f"{where} ORDER BY {order}", args)
    return [table.from_stored(dict(zip(columns, r, strict=True))) for r in rows]


def _select(
    con: sqlite3.Connection, table: MetricTable[Any], name: str, where: str, args: list[Any]
) -> list[tuple[Any, ...]]:
    """The rows ``where`` selects as stored (MetricTable.stored_values), in column order."""
    columns = ", ".join(c for c, _kind in table.columns)
    rows: list[tuple[Any, ...]] = con.execute(
        f"SELECT {columns} FROM {name} {where}", args
    ).fetchall()
    return rows


def _date_filter(date_from: date | None, date_to: date | None) -> tuple[str, list[Any]]:
    clauses, args = [], []
    if date_from is not None:
        clauses.append("order_date >= ?")
        args.append(date_from.isoformat())
    if date_to is not None:
        clauses.append("order_date <= ?")
        args.append(date_to.isoformat())
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


class SQLiteExecutionLog:
    """Executions, manifests and state events."""

    def __init__(self, db: Path) -> None:
        self._con = connect(db, owner=self)

    def _record(self, row: tuple[Any, ...] | None) -> ExecutionRecord | None:
        if row is None:
            return None
        seq, eid, status, state, holder, started, finished, summary = row
        return ExecutionRecord(
            eid, seq, status, state, started, finished, json.loads(summary), holder
        )

    _COLUMNS = "seq, execution_id, status, state, holder, started_at, finished_at, summary"

    def create(self, execution_id: str, holder: str | None) -> ExecutionRecord:
        """Insert a RUNNING execution; its rowid is the batch sequence number."""
        with _immediate(self._con) as con:
            con.execute(
                "INSERT INTO executions (execution_id, status, holder, started_at) "
                "VALUES (?, 'RUNNING', ?, ?)",
                (execution_id, holder, time.time()),
            )
        record = self.get(execution_id)
        assert record is not None
        return record

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """One execution, or None."""
        return self._record(
            self._con.execute(
                f"SELECT {self._COLUMNS} FROM executions WHERE execution_id = ?", (execution_id,)
            ).fetchone()
        )

    def find(self, prefix: str) -> list[ExecutionRecord]:
        """Executions whose id starts with ``prefix``, oldest first (a whole id: only its own)."""
        exact = self.get(prefix) if prefix else None
        if exact is not None:
            return [exact]
        # Compared as text: LIKE would take ``_`` and ``%`` for wildcards, and ignore case.
        rows = self._con.execute(
            f"SELECT {self._COLUMNS} FROM executions "
            "WHERE substr(execution_id, 1, length(?1)) = ?1 ORDER BY seq",
            (prefix,),
        ).fetchall()
        return [r for r in (self._record(x) for x in rows) if r is not None]

    def recent(self, limit: int = 50) -> list[ExecutionRecord]:
        """Latest first."""
        rows = self._con.execute(
            f"SELECT {self._COLUMNS} FROM executions ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [r for r in (self._record(x) for x in rows) if r is not None]

    def last_started_at(self) -> float | None:
        """When the newest execution started (the seq's primary-key index, one row)."""
        row = self._con.execute(
            "SELECT started_at FROM executions ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return float(row[0]) if row else None

    def unfinished(self) -> list[ExecutionRecord]:
        """RUNNING executions, oldest first."""
        rows = self._con.execute(
            f"SELECT {self._COLUMNS} FROM executions WHERE status = 'RUNNING' ORDER BY seq"
        ).fetchall()
        return [r for r in (self._record(x) for x in rows) if r is not None]

    def set_holder(self, execution_id: str, holder: str) -> None:
        """Record the lock holder now running the execution."""
        self._con.execute(
            "UPDATE executions SET holder = ? WHERE execution_id = ?", (holder, execution_id)
        )

    def record_event(
        self, execution_id: str, state: str, event: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append a state event and move the execution's current state."""
        with _immediate(self._con) as con:
            con.execute(
                "INSERT INTO execution_events (execution_id, state, event, at, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                (execution_id, state, event, time.time(), json.dumps(detail) if detail else None),
            )
            con.execute(
                "UPDATE executions SET state = ? WHERE execution_id = ?", (state, execution_id)
            )

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        """State history in order."""
        rows = self._con.execute(
            "SELECT state, event, at, detail FROM execution_events WHERE execution_id = ? "
            "ORDER BY id",
            (execution_id,),
        ).fetchall()
        return [
            {"state": s, "event": e, "at": at, "detail": json.loads(d) if d else None}
            for s, e, at, d in rows
        ]

    def completed_states(self, execution_id: str) -> set[str]:
        """States with a 'succeeded' event."""
        rows = self._con.execute(
            "SELECT DISTINCT state FROM execution_events WHERE execution_id = ? "
            "AND event = 'succeeded'",
            (execution_id,),
        ).fetchall()
        return {r[0] for r in rows}

    def save_manifest(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Record the manifest once (a resumed execution keeps its first one)."""
        with _immediate(self._con) as con:
            con.executemany(
                "INSERT OR IGNORE INTO manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        execution_id,
                        e.key,
                        e.dataset,
                        e.size,
                        e.etag,
                        int(e.regular),
                        e.status,
                        e.location,
                    )
                    for e in entries
                ],
            )

    def manifest(self, execution_id: str) -> list[ManifestEntry]:
        """The manifest in key order."""
        rows = self._con.execute(
            "SELECT key, dataset, size, etag, regular, status, location FROM manifest "
            "WHERE execution_id = ? ORDER BY key",
            (execution_id,),
        ).fetchall()
        return [ManifestEntry(k, d, s, e, bool(r), st, loc) for k, d, s, e, r, st, loc in rows]

    def update_entries(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Persist entries' status, location and claimed version (size, etag) in one
        transaction: a commit is a sync to disk, one a file would cost more than the move."""
        with _immediate(self._con) as con:
            con.executemany(
                "UPDATE manifest SET status = ?, location = ?, size = ?, etag = ? "
                "WHERE execution_id = ? AND key = ?",
                [(e.status, e.location, e.size, e.etag, execution_id, e.key) for e in entries],
            )

    def owned_keys(self) -> set[str]:
        """Keys still held (claimed) by RUNNING executions."""
        rows = self._con.execute(
            "SELECT m.key FROM manifest m JOIN executions e USING (execution_id) "
            "WHERE e.status = 'RUNNING' AND m.status = 'claimed'"
        ).fetchall()
        return {r[0] for r in rows}

    def finish(self, execution_id: str, status: str, summary: dict[str, Any]) -> None:
        """Close the execution."""
        self.save_summary(execution_id, summary)
        self._con.execute(
            "UPDATE executions SET status = ?, finished_at = ? WHERE execution_id = ?",
            (status, time.time(), execution_id),
        )

    def save_summary(self, execution_id: str, summary: dict[str, Any]) -> None:
        """Merge keys into the stored summary."""
        with _immediate(self._con) as con:
            row = con.execute(
                "SELECT summary FROM executions WHERE execution_id = ?", (execution_id,)
            ).fetchone()
            merged = {**json.loads(row[0]), **summary} if row else summary
            con.execute(
                "UPDATE executions SET summary = ? WHERE execution_id = ?",
                (json.dumps(merged, default=str), execution_id),
            )

    def close(self) -> None:
        """Close the connection."""
        self._con.close()


class SQLiteConditions:
    """The raised conditions, in the workspace database (the Conditions port)."""

    def __init__(self, db: Path) -> None:
        self._con = connect(db, owner=self)
        try:
            self._con.execute(_CONDITIONS_DDL)
        except sqlite3.Error as exc:
            raise StoreError(f"{db}: cannot create the conditions table ({exc})") from None

    def raise_once(self, condition_id: str, detail: dict[str, Any]) -> bool:
        """Insert the condition unless it is there; True when this call inserted it."""
        with _immediate(self._con) as con:
            cursor = con.execute(
                "INSERT OR IGNORE INTO conditions VALUES (?, ?, ?)",
                (condition_id, time.time(), json.dumps(detail, default=str)),
            )
            return cursor.rowcount == 1

    def raised(self) -> list[RaisedCondition]:
        """Every raised condition, oldest first."""
        rows = self._con.execute(
            "SELECT condition_id, raised_at, detail FROM conditions ORDER BY raised_at"
        ).fetchall()
        return [RaisedCondition(c, at, json.loads(d)) for c, at, d in rows]

    def clear(self, condition_id: str) -> None:
        """Delete the condition, if raised."""
        with _immediate(self._con) as con:
            con.execute("DELETE FROM conditions WHERE condition_id = ?", (condition_id,))

    def close(self) -> None:
        """Close the connection."""
        self._con.close()
