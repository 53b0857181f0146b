"""Wiring: every backend, engine and pipeline is built here, from Settings.

The entry points (cli.py, aws/lambda_handler.py, aws/tasks.py, aws/cli.py) get what they
run on from this module; nothing else constructs an adapter. Backends:

  local  the workspace: a folder as the bucket, SQLite for lock, metrics and executions
  aws    S3, DynamoDB, SNS (boto3 is imported when the first client is made)
  memory everything in one process's memory (stores/memory.py): tests, the demo mode

Imports only go down (the import-linter contract in pyproject.toml): this module imports
the application and the adapters, and neither imports it.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import weakref
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ecompipe.config import Settings, load_settings
from ecompipe.contracts import DATASET_NAMES
from ecompipe.engines import create_engine, require_engine
from ecompipe.engines.base import Engine
from ecompipe.errors import ConfigError, WorkspaceError
from ecompipe.pipeline import Pipeline
from ecompipe.stores.aws.clients import AwsClients, require_settings
from ecompipe.stores.aws.conditions import DynamoDBConditions
from ecompipe.stores.aws.dynamodb import (
    DynamoDBExecutionLog,
    DynamoDBLock,
    DynamoDBMetricsStore,
)
from ecompipe.stores.aws.s3 import S3ObjectStore
from ecompipe.stores.aws.sns import SNSNotifier
from ecompipe.stores.base import (
    Backend,
    Conditions,
    ExecutionLog,
    Lock,
    MetricsStore,
    Notifier,
    ObjectStore,
)
from ecompipe.stores.local.folder import FolderObjectStore
from ecompipe.stores.local.notifier import LocalNotifier
from ecompipe.stores.local.sqlite import (
    SQLiteConditions,
    SQLiteExecutionLog,
    SQLiteLock,
    SQLiteMetricsStore,
    create_schema,
)
from ecompipe.stores.memory import (
    CollectingNotifier,
    MemoryConditions,
    MemoryExecutionLog,
    MemoryLock,
    MemoryMetricsStore,
    MemoryObjectStore,
    MemoryState,
)
from ecompipe.stores.webhook import WebhookAlert
from ecompipe.workflow import critical_lock_id
from ecompipe.workspace import Workspace, default_config_text


class Ports(Protocol):
    """One backend's adapters, each built on demand: a command that reads one port (the
    lock, the metrics) opens only that one."""

    @property
    def settings(self) -> Settings:
        """The settings the adapters are built from."""
        ...

    def require(self, notifier: bool) -> None:
        """Raise ConfigError now for a setting the ports need, before anything is made;
        ``notifier``: the backend's own notifier is wanted too."""
        ...

    def store(self) -> ObjectStore:
        """The object store (landing, archive, quarantine, working data)."""
        ...

    def lock(self, critical: bool = False) -> Lock:
        """A handle on the pipeline lock; ``critical``: on its critical section."""
        ...

    def metrics(self) -> MetricsStore:
        """The two metrics tables."""
        ...

    def log(self) -> ExecutionLog:
        """The execution log."""
        ...

    def notifier(self, quiet: bool) -> Notifier:
        """The backend's notifier; ``quiet``: no line on stderr."""
        ...

    def conditions(self) -> Conditions:
        """The conditions the deadline checks raised."""
        ...

    def close(self) -> None:
        """Close every connection the ports opened (the local backend's SQLite handles);
        nothing made from them is used after it."""
        ...


class Closable(Protocol):
    """What holds something to close: ports, a backend, a pipeline, an SQLite handle."""

    def close(self) -> None: ...


Closed = TypeVar("Closed", bound=Closable)


def _lock_slot(settings: Settings, critical: bool) -> tuple[str, int]:
    """The id and limit of the pipeline lock, or of its critical section: limit 1 whatever
    the lock limit, so claiming and transforming never interleave."""
    if critical:
        return critical_lock_id(settings.lock_id), 1
    return settings.lock_id, settings.lock_limit


class LocalPorts:
    """The embedded backend's adapters, on a workspace that must exist.

    ``settings``: default, the workspace's own (the environment over its config file), read
    when a port first needs them: the execution log and the notifier do not.
    """

    def __init__(self, workspace: Workspace, settings: Settings | None = None) -> None:
        self.workspace, self._settings = workspace.require(), settings
        # Weak: a handle its user dropped (the console opens one per request) goes with it;
        # close() closes the rest at once, so the database's write-ahead log is folded in
        # when the command ends, not whenever a garbage collection comes by.
        self._made: weakref.WeakSet[Closable] = weakref.WeakSet()

    def _keep(self, handle: Closed) -> Closed:
        self._made.add(handle)
        return handle

    def close(self) -> None:
        """Close every SQLite handle these ports made that is still alive."""
        for handle in list(self._made):
            handle.close()
        self._made.clear()

    @property
    def settings(self) -> Settings:
        """The settings the adapters are built from."""
        if self._settings is None:
            self._settings = load_settings(self.workspace.config_file)
        return self._settings

    def require(self, notifier: bool) -> None:
        """Nothing more to check: opening checked the workspace."""

    def store(self) -> FolderObjectStore:
        """The workspace's folders as the bucket."""
        return FolderObjectStore(self.workspace, self.settings)

    def lock(self, critical: bool = False) -> SQLiteLock:
        """A handle on the lock in the workspace database."""
        return self._keep(SQLiteLock(self.workspace.db, *_lock_slot(self.settings, critical)))

    def metrics(self) -> SQLiteMetricsStore:
        """The metrics tables in the workspace database."""
        s = self.settings
        return self._keep(
            SQLiteMetricsStore(self.workspace.db, s.order_metrics_table, s.category_metrics_table)
        )

    def log(self) -> SQLiteExecutionLog:
        """The execution log in the workspace database."""
        return self._keep(SQLiteExecutionLog(self.workspace.db))

    def notifier(self, quiet: bool) -> LocalNotifier:
        """Console and notifications.jsonl."""
        return LocalNotifier(self.workspace.notifications, sys.stderr, quiet=quiet)

    def conditions(self) -> SQLiteConditions:
        """The raised conditions in the workspace database."""
        return self._keep(SQLiteConditions(self.workspace.db))


class AwsPorts:
    """The AWS backend's adapters, sharing one set of clients.

    ``clients`` maps a service name to a client (default: boto3 clients made on first use;
    tests point them at a moto server). ``work_dir``: where the object store keeps local
    working files (default: a new temporary folder per store).
    """

    def __init__(
        self,
        settings: Settings,
        clients: Callable[[str], Any] | None = None,
        work_dir: Path | None = None,
    ) -> None:
        self.settings, self.work_dir = settings, work_dir
        # Made first: without boto3 nothing else is worth reporting.
        self.clients = clients or AwsClients(settings)

    def require(self, notifier: bool) -> None:
        """BUCKET_NAME, and SNS_TOPIC_ARN when the SNS notifier is wanted."""
        require_settings(self.settings, "bucket_name")
        if notifier:
            require_settings(self.settings, "sns_topic_arn")

    def store(self) -> S3ObjectStore:
        """S3 (BUCKET_NAME, S3_ARCHIVE_BUCKET)."""
        root = self.work_dir or Path(tempfile.mkdtemp(prefix="ecompipe-aws-"))
        return S3ObjectStore(self.clients("s3"), self.settings, root)

    def lock(self, critical: bool = False, for_executions: bool = False) -> DynamoDBLock:
        """A handle on the lock item in LOCK_TABLE; ``for_executions``: its leases belong to
        Step Functions executions, not to this process (AcquireLock)."""
        lock_id, limit = _lock_slot(self.settings, critical)
        ddb, table = self.clients("dynamodb"), self.settings.lock_table
        return DynamoDBLock(ddb, table, lock_id, limit, for_executions=for_executions)

    def metrics(self) -> DynamoDBMetricsStore:
        """The two metrics tables in DynamoDB."""
        s = self.settings
        return DynamoDBMetricsStore(
            self.clients("dynamodb"),
            s.order_metrics_table,
            s.category_metrics_table,
            s.executions_table,
            s.dynamodb_batch_size,
            s.dynamodb_max_retries,
        )

    def log(self) -> DynamoDBExecutionLog:
        """The execution log in EXECUTIONS_TABLE."""
        return DynamoDBExecutionLog(self.clients("dynamodb"), self.settings.executions_table)

    def notifier(self, quiet: bool) -> SNSNotifier:
        """SNS_TOPIC_ARN (one line on stderr too unless ``quiet``)."""
        sns, topic = self.clients("sns"), self.settings.sns_topic_arn
        return SNSNotifier(sns, topic, sys.stderr, quiet=quiet)

    def conditions(self) -> DynamoDBConditions:
        """The raised conditions, as items of EXECUTIONS_TABLE."""
        return DynamoDBConditions(self.clients("dynamodb"), self.settings.executions_table)

    def close(self) -> None:
        """Nothing to close: the clients are shared (their pooled connections go with them)."""


class MemoryPorts:
    """The in-memory backend's adapters, every one a handle on the same MemoryState.

    ``state``: the one to use (tests land objects in it and read it back), default a new,
    empty one. ``work_dir``: where the object store keeps local working files (default: a
    temporary folder each store owns).
    """

    def __init__(
        self, settings: Settings, state: MemoryState | None = None, work_dir: Path | None = None
    ) -> None:
        self.settings, self.work_dir = settings, work_dir
        self.state = state if state is not None else MemoryState()

    def require(self, notifier: bool) -> None:
        """Nothing to check: memory needs no setting."""

    def store(self) -> MemoryObjectStore:
        """The object areas of the state."""
        return MemoryObjectStore(self.state, self.settings, self.work_dir)

    def lock(self, critical: bool = False) -> MemoryLock:
        """A handle on the lock in the state."""
        return MemoryLock(self.state, *_lock_slot(self.settings, critical))

    def metrics(self) -> MemoryMetricsStore:
        """The metrics tables in the state."""
        s = self.settings
        return MemoryMetricsStore(self.state, s.order_metrics_table, s.category_metrics_table)

    def log(self) -> MemoryExecutionLog:
        """The execution log in the state."""
        return MemoryExecutionLog(self.state)

    def notifier(self, quiet: bool) -> CollectingNotifier:
        """Keeps every message in the state's ``notifications``."""
        return CollectingNotifier(self.state.notifications)

    def conditions(self) -> MemoryConditions:
        """The raised conditions in the state."""
        return MemoryConditions(self.state)

    def close(self) -> None:
        """Nothing to close: the state lives on in memory."""


def open_ports(
    name: str,
    settings: Settings,
    workspace: Workspace | None = None,
    *,
    clients: Callable[[str], Any] | None = None,
    work_dir: Path | None = None,
    memory: MemoryState | None = None,
) -> Ports:
    """The adapters of backend ``name`` ("local", "aws" or "memory"), each built on demand.
    ``workspace``: the local backend's; ``clients`` and ``work_dir``: see AwsPorts and
    MemoryPorts; ``memory``: the state of the memory backend (default: a new one)."""
    if name == "local":
        if workspace is None:
            raise ValueError("the local backend needs a workspace")
        return LocalPorts(workspace, settings)
    if name == "aws":
        return AwsPorts(settings, clients, work_dir)
    if name == "memory":
        return MemoryPorts(settings, memory, work_dir)
    raise ConfigError([f"unknown backend {name!r}: choose local, aws or memory"])


def open_backend(
    name: str,
    settings: Settings,
    workspace: Workspace | None = None,
    quiet: bool = False,
    *,
    clients: Callable[[str], Any] | None = None,
    notifier: Notifier | None = None,
    work_dir: Path | None = None,
    memory: MemoryState | None = None,
) -> Backend:
    """The five ports of backend ``name`` ("local", "aws" or "memory").

    ``workspace``: the local backend's (AWS and memory hold their own state and need
    none). ``quiet``: the notifier prints no line on stderr. ``notifier`` replaces the
    backend's own (the ECS tasks collect messages for the state machine to publish);
    ``clients``, ``work_dir`` and ``memory``: see open_ports.
    """
    ports = open_ports(name, settings, workspace, clients=clients, work_dir=work_dir, memory=memory)
    ports.require(notifier=notifier is None)
    return Backend(
        store=ports.store(),
        lock=ports.lock(),
        metrics=ports.metrics(),
        log=ports.log(),
        notifier=notifier or ports.notifier(quiet),
        new_lock=ports.lock,
        new_critical_lock=partial(ports.lock, critical=True),
        conditions=ports.conditions(),
        alert=webhook(settings),
        closer=ports.close,
    )


def webhook(settings: Settings) -> WebhookAlert | None:
    """The webhook alert channel ``webhook_url`` asks for (None: no URL set); it goes with
    every backend's own notifier."""
    if not settings.webhook_url:
        return None
    return WebhookAlert(
        settings.webhook_url, settings.webhook_format, settings.notify_on.split(",")
    )


def engine_factory(settings: Settings, temp_dir: str | None = None) -> Callable[[], Engine]:
    """Starts the engine ``settings.engine`` names when called (heavy engines are imported
    only then); it spills into ``temp_dir`` (default: the system's temporary folder)."""
    return partial(create_engine, settings, temp_dir=temp_dir)


def new_pipeline(
    backend: str,
    settings: Settings,
    workspace: Workspace | None = None,
    quiet: bool = False,
    *,
    on_state: Callable[[str, str], None] | None = None,
    retry_in_process: bool = True,
    engine: Callable[[Settings], Engine] | None = None,
    check_engine: bool = True,
    clients: Callable[[str], Any] | None = None,
    notifier: Notifier | None = None,
    work_dir: Path | None = None,
    memory: MemoryState | None = None,
) -> Pipeline:
    """A Pipeline on ``backend``'s ports (see open_backend) and ``settings.engine``.

    The engine starts only inside ValidateFiles; ``check_engine`` first makes sure its
    extra is installed, before anything is claimed. It spills into the workspace's tmp/
    (local), ``work_dir``/tmp (aws, when given), else the system's temporary folder.
    ``engine`` builds another engine instead (tests). ``on_state`` and
    ``retry_in_process``: see Pipeline; ``memory``: see open_ports.
    """
    if check_engine and engine is None:
        require_engine(settings)
    ports = open_backend(
        backend,
        settings,
        workspace,
        quiet,
        clients=clients,
        notifier=notifier,
        work_dir=work_dir,
        memory=memory,
    )
    make_engine: Callable[[], Engine] = (
        partial(engine, settings)
        if engine is not None
        else engine_factory(settings, _spill_dir(backend, workspace, work_dir))
    )
    return Pipeline(
        settings, ports, make_engine, on_state=on_state, retry_in_process=retry_in_process
    )


def _spill_dir(backend: str, workspace: Workspace | None, work_dir: Path | None) -> str | None:
    if backend == "local" and workspace is not None:
        return str(workspace.tmp)
    return str(work_dir / "tmp") if work_dir is not None else None


def init_workspace(root: Path, settings: Settings) -> Workspace:
    """Create (or complete) a local backend's workspace: its folders, a config file listing
    every setting, and the database; existing data and settings are kept."""
    ws = Workspace(root)
    try:
        for sub in ("archive", "quarantine", "inflight", "staging", "curated", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for dataset in DATASET_NAMES:
            (ws.landing / settings.prefix_of(dataset)).mkdir(parents=True, exist_ok=True)
        if not ws.config_file.exists():
            ws.config_file.write_text(default_config_text(), encoding="utf-8")
        create_schema(ws.db, settings.order_metrics_table, settings.category_metrics_table)
    except OSError as exc:
        raise WorkspaceError(f"cannot create workspace at {root}: {exc.strerror or exc}") from None
    except sqlite3.Error as exc:
        raise WorkspaceError(
            f"{ws.db} is not a usable ecompipe database ({exc}): move it away and run "
            "`ecompipe init` again"
        ) from None
    return ws
