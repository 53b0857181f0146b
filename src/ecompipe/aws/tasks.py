"""ECS task entry points: `ecompipe task validate | transform | archive`.

Each runs ONE workflow state of the execution named by EXECUTION_ID through the same
Pipeline code the local runner uses (Pipeline.run_state), sends SendTaskHeartbeat while it
works (and renews the execution's lock lease, and the critical-section lease while the
transform holds it), and ends with SendTaskSuccess (a JSON result)
or SendTaskFailure whose error is the EcompipeError's ``code``: the state machine retries the
TransientError family and catches everything else.

Results (the state machine keeps them at ``$.result``):
  validate:  {"usable": bool} (+ "notification" when every file was rejected; + "skipped"
             when another execution had already taken the files)
  transform: {"usable": true, "transform": {...headline KPIs...}}
  archive:   {"usable": true, "notification": {...}}  (the success message to publish)
A terminal failure first runs the pipeline's failure ending (files kept in quarantine, the
execution closed) and sends that notification as the failure's cause (JSON).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ecompipe import logs, recovery
from ecompipe.aws.state_machine import HEARTBEAT_EVERY, SFN_LEASE_SECONDS
from ecompipe.config import Settings, load_settings
from ecompipe.engines import require_engine
from ecompipe.engines.base import Engine
from ecompipe.errors import (
    ConfigError,
    EcompipeError,
    TransientError,
)
from ecompipe.pipeline import Pipeline, everything_rejected
from ecompipe.stores.aws.clients import AwsClients
from ecompipe.stores.memory import CollectingNotifier
from ecompipe.wiring import new_pipeline
from ecompipe.workflow import WORKERS, State, Status

log = logging.getLogger("ecompipe")

#: SendTaskFailure limits (characters).
MAX_ERROR, MAX_CAUSE = 256, 32_768


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError([f"{name} is not set: the state machine passes it to the task"])
    return value


def run_task(
    worker: str,
    env: Mapping[str, str] | None = None,
    clients: AwsClients | None = None,
    engine_factory: Callable[[Settings], Engine] | None = None,
    heartbeat_every: float = HEARTBEAT_EVERY,
) -> dict[str, Any]:
    """Run ``worker``'s state for EXECUTION_ID and report to Step Functions with TASK_TOKEN.

    Returns what was reported: {"status": "success", "output": {...}} or
    {"status": "failure", "error": code, "cause": text}.
    """
    env = os.environ if env is None else env
    settings = load_settings(env=env)
    clients = clients or AwsClients(settings)  # first: without boto3 nothing can be reported
    token = _required(env, "TASK_TOKEN")
    sfn = clients("stepfunctions")
    # The ECS task's log lines say which execution and state they are for (CloudWatch).
    with logs.context(execution_id=env.get("EXECUTION_ID", ""), state=WORKERS.get(worker, "")):
        try:
            output = _run(
                worker, env, settings, clients, engine_factory, sfn, token, heartbeat_every
            )
        except EcompipeError as exc:
            cause = getattr(exc, "cause", None) or json.dumps(
                {"error": {"type": exc.code, "message": str(exc)}, "retryable": _transient(exc)}
            )
            sfn.send_task_failure(
                taskToken=token, error=exc.code[:MAX_ERROR], cause=cause[:MAX_CAUSE]
            )
            return {"status": "failure", "error": exc.code, "cause": cause}
        except Exception as exc:
            # A bug, not bad data: report it (not retried) rather than leave the state hanging.
            log.exception("task %s crashed", worker)
            cause = f"{type(exc).__name__}: {exc}"
            sfn.send_task_failure(taskToken=token, error="Ecompipe.Error", cause=cause[:MAX_CAUSE])
            return {"status": "failure", "error": "Ecompipe.Error", "cause": cause}
    sfn.send_task_success(taskToken=token, output=json.dumps(output, default=str))
    return {"status": "success", "output": output}


def _transient(exc: EcompipeError) -> bool:
    return isinstance(exc, TransientError)


def _run(
    worker: str,
    env: Mapping[str, str],
    settings: Settings,
    clients: AwsClients,
    engine_factory: Callable[[Settings], Engine] | None,
    sfn: Any,
    token: str,
    heartbeat_every: float,
) -> dict[str, Any]:
    if worker not in WORKERS:
        raise ConfigError([f"unknown task {worker!r}: choose {', '.join(WORKERS)}"])
    execution_id = _required(env, "EXECUTION_ID")
    if engine_factory is None and WORKERS[worker] != State.ARCHIVE_FILES:
        # Before the execution is opened: a missing pyspark must not end it with its files
        # quarantined (the engine starts only after they are claimed).
        require_engine(settings)
    work = Path(tempfile.mkdtemp(prefix="ecompipe-task-"))
    notifier = CollectingNotifier()
    # Step Functions retries a failed state (the ASL Retry): retrying here too would multiply
    # the attempts, so each transient failure has exactly one owner. The engine's extra was
    # checked above, for the workers that start one.
    pipeline = new_pipeline(
        "aws",
        settings,
        quiet=True,
        retry_in_process=False,
        engine=engine_factory,
        check_engine=False,
        clients=clients,
        notifier=notifier,
        work_dir=work,
    )
    # The state machine took the lease under the execution's name: the task works as it.
    pipeline.holder = execution_id

    def beat() -> None:
        sfn.send_task_heartbeat(taskToken=token)

    state = WORKERS[worker]
    lease = max(SFN_LEASE_SECONDS, settings.lease_seconds)
    try:
        with pipeline.leases.renewing(lease, beat=beat, beat_every=heartbeat_every):
            return _work(pipeline, execution_id, state, notifier)
    except EcompipeError as exc:
        if isinstance(exc, TransientError):
            raise  # the state machine retries the task; the execution stays open
        outcome = _end(pipeline, execution_id, exc, notifier)
        exc.cause = json.dumps(outcome, default=str)  # type: ignore[attr-defined]
        raise
    finally:
        pipeline.close()


def _end(
    pipeline: Pipeline,
    execution_id: str,
    error: EcompipeError | None,
    notifier: CollectingNotifier,
) -> dict[str, Any]:
    """The pipeline's ending (success or failure); returns the notification it produced."""
    record = pipeline.b.log.get(execution_id)
    if record is not None and record.status == Status.RUNNING:
        pipeline.end(execution_id, error)
    if notifier.messages:
        return notifier.messages[-1]
    status = record.status if record else Status.FAILED
    return {"execution_id": execution_id, "status": status, "subject": f"{execution_id} {status}"}


def _work(
    pipeline: Pipeline, execution_id: str, state: State, notifier: CollectingNotifier
) -> dict[str, Any]:
    log_ = pipeline.b.log
    if state == State.VALIDATE_FILES:
        # Executions whose state machine ended without finishing them (retries of a
        # transient error ran out, or stopped with no EventBridge rule to tell us).
        live = {h.holder for h in pipeline.b.lock.holders()}
        recovery.abandon_orphans(pipeline.b.log, live, keep=execution_id)
        if not pipeline.open_execution(execution_id):
            return {"usable": False, "skipped": True}
    if log_.get(execution_id) is None:
        raise ConfigError([f"execution {execution_id} has no record: ValidateFiles opens it"])
    if state not in log_.completed_states(execution_id):
        pipeline.run_state(execution_id, state)
    if state == State.VALIDATE_FILES:
        if pipeline.run_state(execution_id, State.CHECK_VALIDATION_RESULT):
            return {"usable": True}
        error = everything_rejected()
        return {"usable": False, "notification": _end(pipeline, execution_id, error, notifier)}
    if state == State.TRANSFORM_DATA:
        record = log_.get(execution_id)
        return {"usable": True, "transform": record.summary.get("transform") if record else None}
    return {"usable": True, "notification": _end(pipeline, execution_id, None, notifier)}
