"""The Lambda functions (one image): the trigger, and the state machine's AcquireLock.

``handler`` (the trigger) takes two kinds of event:
- an S3 event: start the state machine once a complete set landed. The execution's name is
  derived from the set (a hash of its keys, ETags and upload times), so a re-delivered event or
  a burst of uploads of the same set maps to one name, and ExecutionAlreadyExists is success:
  no duplicate executions. Files already owned by a running execution are not counted, so a
  single upload during a run starts nothing.
- an EventBridge "Step Functions Execution Status Change" (ABORTED, TIMED_OUT, FAILED) of our
  state machine: release that execution's lease, close its record if still RUNNING (notifying
  when it was stopped from outside), and re-check landing for a complete set, which then
  starts without a new upload. Idempotent: EventBridge delivers at least once.

- an EventBridge "Scheduled Event" (the DeadlineCheckRule): the deadline check of
  `ecompipe check` (pipeline.check), each condition notified once.

``acquire_lock`` is AcquireLock: a lease for the execution with the one lease rule of
DynamoDBLock.try_acquire (reap expired holders, then a conditional acquire), or LockBusyError,
which the state machine retries with the workflow's LOCK_RETRY.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import urllib.parse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ecompipe import logs, recovery, trigger
from ecompipe.aws.state_machine import EXECUTION_FAILED_ERROR, SFN_LEASE_SECONDS
from ecompipe.config import Settings, load_settings
from ecompipe.errors import ConfigError, LockBusyError
from ecompipe.stores.aws.clients import AwsClients, require_settings
from ecompipe.workflow import Status

log = logging.getLogger("ecompipe")

#: EventBridge's detail-type for Step Functions status changes.
STATUS_CHANGE = "Step Functions Execution Status Change"
#: EventBridge's detail-type for a schedule rule's events.
SCHEDULED = "Scheduled Event"
#: How many times in a row an execution ended by a stop is started again for its files
#: without a new upload: a failure outside any Catch would fail every restart the same way.
MAX_RESTARTS = 3


def event_keys(event: dict[str, Any]) -> list[str]:
    """The object keys of an S3 event, URL-decoded (``+`` is a space): the one place keys
    are decoded; everything else uses keys as S3 lists them."""
    return [
        urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        for record in event.get("Records", [])
        if "s3" in record
    ]


def execution_name(versions: list[tuple[str, str, str]], after: str = "") -> str:
    """A Step Functions execution name for a set: <= 80 chars of [A-Za-z0-9-].

    ``after``: the stopped execution a restart follows, so the same set gets a new name once
    (names of finished executions cannot be reused) and a re-delivered event the same one.
    """
    digest = hashlib.sha256()
    for key, etag, modified in sorted(versions):
        digest.update(f"{key}\0{etag}\0{modified}\n".encode())
    if after:
        digest.update(f"after\0{after}".encode())
    return "set-" + digest.hexdigest()[:48]


def handler(
    event: dict[str, Any], context: Any = None, clients: AwsClients | None = None
) -> dict[str, Any]:
    """The trigger's entry point. Returns what it decided (also logged, for CloudWatch)."""
    logs.configure(default_format=logs.JSON)
    settings = load_settings()
    require_settings(settings, "bucket_name", "state_machine_arn")
    clients = clients or AwsClients(settings)
    if event.get("source") == "aws.states" and event.get("detail-type") == STATUS_CHANGE:
        return _decided(after_execution(event["detail"], settings, clients))
    if event.get("source") == "aws.events" and event.get("detail-type") == SCHEDULED:
        return _decided(check_deadlines(settings, clients))
    keys = event_keys(event)
    if keys and not any(settings.dataset_of_key(k) and trigger.is_csv_key(k) for k in keys):
        return _decided({"started": False, "reason": "no landing CSV in the event", "keys": keys})
    return _decided(start_if_complete(settings, clients))


def start_if_complete(
    settings: Settings, clients: AwsClients, after: str = "", restarts: int = 0
) -> dict[str, Any]:
    """Start the state machine when landing holds a complete set of files no running
    execution owns (once per set: see execution_name)."""
    from ecompipe.wiring import AwsPorts

    ports = AwsPorts(settings, clients, work_dir=_no_local_files())
    store, owned = ports.store(), ports.log().owned_keys()
    objects = [
        o for o in store.landing_objects() if o["Key"] not in owned and trigger.is_csv_key(o["Key"])
    ]
    missing = trigger.missing_datasets([o["Key"] for o in objects], settings)
    if missing:
        return {"started": False, "reason": "incomplete set", "missing": missing}
    name = execution_name(
        [(o["Key"], str(o["ETag"]).strip('"'), str(o["LastModified"])) for o in objects], after
    )
    sfn = clients("stepfunctions")
    execution_input: dict[str, Any] = {"files": len(objects)}
    if after:
        execution_input.update(restart_of=after, restarts=restarts)
    started = not _exists(sfn, settings.state_machine_arn, name) and _start(
        sfn, settings.state_machine_arn, name, execution_input
    )
    return {"started": started, "execution_name": name, "files": len(objects)}


def after_execution(
    detail: dict[str, Any], settings: Settings, clients: AwsClients
) -> dict[str, Any]:
    """An execution ended ABORTED, TIMED_OUT or FAILED: free its lease, close its record,
    then start the files it leaves in landing again (bounded by MAX_RESTARTS).

    The critical-section lease (``<lock_id>-transform``) is left alone: the execution's ECS
    task may still be mid-transform; it renews that lease or lets it expire. An execution
    that went through our own failure ending (error Ecompipe.ExecutionFailed) was notified
    and had its retries: its record is closed quietly and nothing restarts.
    """
    from ecompipe.wiring import AwsPorts, webhook

    if detail.get("stateMachineArn") != settings.state_machine_arn:
        return {"started": False, "reason": "another state machine's execution"}
    name, status = str(detail["name"]), str(detail["status"])
    own_ending = status == "FAILED" and detail.get("error") == EXECUTION_FAILED_ERROR
    ports = AwsPorts(settings, clients)
    lock = ports.lock()
    released = any(h.holder == name for h in lock.holders())
    lock.release(name)
    executions = ports.log()
    record = executions.get(name)
    closed = False
    if record is not None and record.status == Status.RUNNING:
        if own_ending:
            message = "its state machine ended without finishing it (retries ran out)"
            closed = recovery.close_running(executions, name, recovery.ABANDONED, message)
        else:
            require_settings(settings, "sns_topic_arn")
            message = f"its Step Functions execution ended {status}"
            if detail.get("error"):
                message += f" ({detail['error']})"
            message += "; its files stay in landing for the next run"
            stopped = {
                "subject": f"{name} FAILED: {message}",
                "execution_id": name,
                "status": "FAILED",
                "severity": "failure",
                "error": {"type": recovery.STOPPED, "message": message},
            }
            # Notify first: a crash before the close then notifies again on the re-delivered
            # event (at least once), never not at all. The webhook, best effort, after.
            ports.notifier(quiet=True).notify(stopped)
            closed = recovery.close_running(executions, name, recovery.STOPPED, message)
            alert = webhook(settings)
            if alert is not None:
                alert.send(stopped)
    result: dict[str, Any] = {
        "execution": name,
        "execution_status": status,
        "released": released,
        "closed": closed,
    }
    if own_ending:
        return {**result, "started": False, "reason": "ended through the failure ending"}
    restarts = int(json.loads(detail.get("input") or "{}").get("restarts", 0))
    if restarts >= MAX_RESTARTS:
        reason = f"{restarts} restarts in a row already: the files wait for the next upload"
        return {**result, "started": False, "reason": reason}
    return {**result, **start_if_complete(settings, clients, after=name, restarts=restarts + 1)}


def check_deadlines(settings: Settings, clients: AwsClients) -> dict[str, Any]:
    """The scheduled deadline check: what ``ecompipe check --backend aws`` does once."""
    from ecompipe.pipeline import check
    from ecompipe.wiring import open_backend

    backend = open_backend("aws", settings, quiet=True, clients=clients, work_dir=_no_local_files())
    found = asdict(check(backend, settings))
    return {"started": False, "reason": "deadline check", **found}


def acquire_lock(
    event: dict[str, Any], context: Any = None, clients: AwsClients | None = None
) -> dict[str, Any]:
    """AcquireLock: a lease for the execution named in the event (its name is the holder),
    with the same rule as every Python acquirer; LockBusyError when every slot is held."""
    from ecompipe.wiring import AwsPorts

    logs.configure(default_format=logs.JSON)
    name = str(event.get("execution_name") or "")
    if not name:
        raise ConfigError(["acquire_lock needs the event's execution_name"])
    settings = load_settings()
    lock = AwsPorts(settings, clients).lock(for_executions=True)
    if not lock.try_acquire(name, name, SFN_LEASE_SECONDS):
        holders = ", ".join(h.holder for h in lock.holders()) or "none"
        raise LockBusyError(f"lock '{settings.lock_id}' busy (holders: {holders})")
    return {"holder": name, "lease_seconds": SFN_LEASE_SECONDS}


def _exists(sfn: Any, state_machine_arn: str, name: str) -> bool:
    """True when this set's execution exists already (running or finished)."""
    arn = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name
    try:
        sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return False
    return True


def _start(sfn: Any, state_machine_arn: str, name: str, execution_input: dict[str, Any]) -> bool:
    """StartExecution; False when a concurrent invocation started it first."""
    try:
        sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps(execution_input)
        )
    except sfn.exceptions.ExecutionAlreadyExists:
        return False  # this set already has its execution: success
    return True


def _no_local_files() -> Path:
    # The handler only lists; nothing is downloaded there.
    return Path(tempfile.gettempdir()) / "ecompipe-lambda"


def _decided(result: dict[str, Any]) -> dict[str, Any]:
    log.warning("ecompipe trigger: %s", json.dumps(result))
    return result
