"""Wiring: build the five ports for a backend ("local" or "aws")."""

from __future__ import annotations

import sys

from ecompipe.config import Settings
from ecompipe.errors import ConfigError
from ecompipe.stores.base import Backend
from ecompipe.workflow import critical_lock_id
from ecompipe.workspace import Workspace


def open_backend(name: str, settings: Settings, workspace: Workspace, quiet: bool) -> Backend:
    """The ports of backend ``name``; AWS adapters (and boto3) are imported only for "aws"."""
    if name == "local":
        from ecompipe.stores.local import FolderObjectStore, LocalNotifier
        from ecompipe.stores.sqlite import SQLiteExecutionLog, SQLiteLock, SQLiteMetricsStore

        workspace.require()

        def new_lock() -> SQLiteLock:
            return SQLiteLock(workspace.db, settings.lock_id, settings.lock_limit)

        def new_critical_lock() -> SQLiteLock:
            # Limit 1 whatever the lock limit: claiming and transforming never interleave.
            return SQLiteLock(workspace.db, critical_lock_id(settings.lock_id), 1)

        return Backend(
            store=FolderObjectStore(workspace, settings),
            lock=new_lock(),
            metrics=SQLiteMetricsStore(
                workspace.db, settings.order_metrics_table, settings.category_metrics_table
            ),
            log=SQLiteExecutionLog(workspace.db),
            notifier=LocalNotifier(workspace.notifications, sys.stderr, quiet=quiet),
            new_lock=new_lock,
            new_critical_lock=new_critical_lock,
        )
    if name == "aws":
        from ecompipe.stores.aws import open_aws_backend

        return open_aws_backend(settings, workspace, quiet=quiet)
    raise ConfigError([f"unknown backend {name!r}: choose local or aws"])
