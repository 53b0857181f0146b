"""Bursts of S3 events on the trigger, through Step Functions on moto: 1,000 events of one
complete set, handled by 32 threads at once as concurrent Lambda invocations would be,
start exactly one execution; a second set landing while that execution holds the lock
starts exactly one more, which takes the lock once the first one gave it back."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.aws.conftest import HAND, Aws, upload_event
from tests.aws.test_step_functions_e2e import (
    acquire_attempts,
    deploy_state_machine,
    play_containers,
)
from tests.support import DATASETS

pytestmark = [
    pytest.mark.aws,
    pytest.mark.duckdb,
    pytest.mark.slow,
    pytest.mark.xdist_group("moto"),
]

THREADS = 32
#: Events of the second set (the first set's burst has 1,000).
SECOND_BURST = 200


def burst(aws: Aws, keys: list[str], events: int) -> list[dict[str, Any]]:
    """``events`` S3 events of ``keys`` (each key's event again and again, as S3 re-delivers
    and writers re-upload), handled at once by THREADS threads, each with clients of its
    own as each Lambda instance has. Returns what each invocation decided."""
    from ecompipe.aws.lambda_handler import handler

    local = threading.local()

    def invoke(n: int) -> dict[str, Any]:
        if not hasattr(local, "clients"):
            local.clients = aws.clients()
        return handler(upload_event(aws, keys[n % len(keys)]), None, clients=local.clients)

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(invoke, range(events)))


def land(aws: Aws, name: str) -> list[str]:
    keys = [f"{d}/{name}.csv" for d in DATASETS]
    for key, dataset in zip(keys, DATASETS, strict=True):
        aws.put(key, HAND / f"{dataset}.csv")
    return keys


def executions(aws: Aws) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = aws.client("stepfunctions").list_executions(
        stateMachineArn=aws.env["STATE_MACHINE_ARN"]
    )["executions"]
    return listed


def shorten_lock_retry(aws: Aws) -> None:
    """AcquireLock retries a busy lock every 2 s at most (up to 60 s deployed), for as long
    as the test lasts: the second execution takes the lock soon after the first gave it."""
    sfn, arn = aws.client("stepfunctions"), aws.env["STATE_MACHINE_ARN"]
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
    busy = definition["States"]["AcquireLock"]["Retry"][0]
    assert busy["ErrorEquals"] == ["LockBusyError"]
    busy.update(IntervalSeconds=1, MaxDelaySeconds=2, MaxAttempts=300)
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(definition))


def the_one_started(aws: Aws, decided: list[dict[str, Any]], before: int) -> str:
    """The name of the one execution a burst started (Step Functions lists one more than
    ``before``); every invocation named it. More than one invocation may have said it
    started it: concurrent StartExecution calls with the same name and input all succeed,
    for one execution."""
    names = {d.get("execution_name") for d in decided}
    assert len(names) == 1, f"the events named {len(names)} executions: {names}"
    (name,) = names
    assert any(d["started"] for d in decided) and {d["files"] for d in decided} == {3}
    listed = executions(aws)
    assert len(listed) == before + 1, [e["name"] for e in listed]
    assert name in {e["name"] for e in listed}
    return str(name)


@pytest.mark.timeout(420)
def test_bursts_start_one_execution_per_set(aws: Aws) -> None:
    from ecompipe.config import load_settings
    from ecompipe.engines import create_engine
    from ecompipe.stores.aws.dynamodb import DynamoDBLock

    deploy_state_machine(aws)
    shorten_lock_retry(aws)
    settings = aws.settings()
    lock = DynamoDBLock(aws.client("dynamodb"), settings.lock_table, settings.lock_id, 1)
    first_keys = land(aws, "first")

    first = the_one_started(aws, burst(aws, first_keys, 1000), before=0)

    (listed,) = executions(aws)
    first_arn = listed["executionArn"]
    second: list[str] = []
    second_keys: list[str] = []

    def engines(worker: str, n: int) -> Any:
        if worker == "transform":
            # The first execution took its files and holds the lock: the second set lands
            # now, and its events arrive in a burst too.
            assert [h.holder for h in lock.holders()] == [first]
            second_keys.extend(land(aws, "second"))
            second.append(the_one_started(aws, burst(aws, second_keys, SECOND_BURST), before=1))
        return create_engine(load_settings())

    reports = play_containers(aws, first_arn, engine_factory=engines)

    assert [(r["worker"], r["status"]) for r in reports] == [
        ("validate", "success"),
        ("transform", "success"),
        ("archive", "success"),
    ]
    sfn = aws.client("stepfunctions")
    assert sfn.describe_execution(executionArn=first_arn)["status"] == "SUCCEEDED"
    (second_name,) = second
    assert second_name != first
    second_arn = next(e["executionArn"] for e in executions(aws) if e["name"] == second_name)
    reports = play_containers(aws, second_arn)
    assert [(r["worker"], r["status"]) for r in reports] == [
        ("validate", "success"),
        ("transform", "success"),
        ("archive", "success"),
    ]
    assert sfn.describe_execution(executionArn=second_arn)["status"] == "SUCCEEDED"
    # It waited for the lock while the first one held it, then took it.
    attempts = acquire_attempts(aws, second_arn)
    assert attempts[0] == "LockBusyError" and attempts[-1] == "ok", attempts
    archived = aws.keys(aws.env["S3_ARCHIVE_BUCKET"])
    assert archived == sorted(
        [f"archive/{first}/{k}" for k in first_keys]
        + [f"archive/{second_name}/{k}" for k in second_keys]
    )
    assert len(executions(aws)) == 2 and lock.holders() == []
