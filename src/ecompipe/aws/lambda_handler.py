"""The Lambda aggregator: on an S3 event, start the state machine once a complete set landed.

The execution's name is derived from the set (a hash of its keys, ETags and upload times), so
a re-delivered event or a burst of uploads of the same set maps to one name, and
ExecutionAlreadyExists is success: no duplicate executions. Files already owned by a running
execution are not counted, so a single upload during a run starts nothing. Before starting,
the handler makes sure the lock item exists and reaps expired leases (no manual reset).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from ecompipe import trigger
from ecompipe.config import load_settings
from ecompipe.stores.aws import AwsClients, require_settings

log = logging.getLogger("ecompipe")


def event_keys(event: dict[str, Any]) -> list[str]:
    """The object keys of an S3 event, URL-decoded (``+`` is a space): the one place keys
    are decoded; everything else uses keys as S3 lists them."""
    return [
        urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        for record in event.get("Records", [])
        if "s3" in record
    ]


def execution_name(versions: list[tuple[str, str, str]]) -> str:
    """A Step Functions execution name for a set: <= 80 chars of [A-Za-z0-9-]."""
    digest = hashlib.sha256()
    for key, etag, modified in sorted(versions):
        digest.update(f"{key}\0{etag}\0{modified}\n".encode())
    return "set-" + digest.hexdigest()[:48]


def handler(
    event: dict[str, Any], context: Any = None, clients: AwsClients | None = None
) -> dict[str, Any]:
    """Lambda entry point. Returns what it decided (also logged, for CloudWatch)."""
    from ecompipe.stores.aws_dynamodb import DynamoDBExecutionLog, DynamoDBLock
    from ecompipe.stores.aws_s3 import S3ObjectStore

    settings = load_settings()
    require_settings(settings, "bucket_name", "state_machine_arn")
    clients = clients or AwsClients(settings)
    keys = event_keys(event)
    if keys and not any(settings.dataset_of_key(k) and trigger.is_csv_key(k) for k in keys):
        return _decided({"started": False, "reason": "no landing CSV in the event", "keys": keys})
    store = S3ObjectStore(clients("s3"), settings, root=_no_local_files())
    owned = DynamoDBExecutionLog(clients("dynamodb"), settings.executions_table).owned_keys()
    objects = [
        o for o in store.landing_objects() if o["Key"] not in owned and trigger.is_csv_key(o["Key"])
    ]
    missing = trigger.missing_datasets([o["Key"] for o in objects], settings)
    if missing:
        return _decided({"started": False, "reason": "incomplete set", "missing": missing})
    lock = DynamoDBLock(
        clients("dynamodb"), settings.lock_table, settings.lock_id, settings.lock_limit
    )
    lock.ensure_item()
    reaped = lock.reap()
    name = execution_name(
        [(o["Key"], str(o["ETag"]).strip('"'), str(o["LastModified"])) for o in objects]
    )
    sfn = clients("stepfunctions")
    started = not _exists(sfn, settings.state_machine_arn, name) and _start(
        sfn, settings.state_machine_arn, name, len(objects)
    )
    return _decided(
        {"started": started, "execution_name": name, "files": len(objects), "reaped": reaped}
    )


def _exists(sfn: Any, state_machine_arn: str, name: str) -> bool:
    """True when this set's execution exists already (running or finished)."""
    arn = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name
    try:
        sfn.describe_execution(executionArn=arn)
    except sfn.exceptions.ExecutionDoesNotExist:
        return False
    return True


def _start(sfn: Any, state_machine_arn: str, name: str, files: int) -> bool:
    """StartExecution; False when a concurrent invocation started it first."""
    try:
        sfn.start_execution(
            stateMachineArn=state_machine_arn, name=name, input=json.dumps({"files": files})
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
