"""End to end on moto with state-machine execution on: S3 upload -> Lambda handler ->
Step Functions (the generated ASL; AcquireLock invokes the lock Lambda, run in-process by the
conftest's patch) -> the ECS tasks, played by this test with the real task entry points and
the task tokens moto hands the (never started) containers -> DynamoDB metrics, archive,
SNS -> SQS. Moto never runs a container or the trigger Lambda: the test calls them, with the
S3 and EventBridge events AWS would deliver.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import EVENTS, HAND, TESTS, Aws, local_metrics, wait_for
from tests.conftest import ecompipe

pytestmark = [
    pytest.mark.aws,
    pytest.mark.duckdb,
    pytest.mark.slow,
    pytest.mark.xdist_group("moto"),
]

CONTAINER = "ecompipe"
LAMBDA_ENTRY = ["python", "-m", "awslambdaric"]


def deploy_lock_function(aws: Aws) -> str:
    """The template's LockFunction: the image, with acquire_lock as its command."""
    iam = aws.client("iam")
    role = iam.create_role(
        RoleName="ecompipe-lock",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    arn: str = aws.client("lambda").create_function(
        FunctionName="ecompipe-lock",
        PackageType="Image",
        Code={"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ecompipe:test"},
        ImageConfig={
            "EntryPoint": LAMBDA_ENTRY,
            "Command": ["ecompipe.aws.lambda_handler.acquire_lock"],
        },
        Role=role,
        Timeout=30,
    )["FunctionArn"]
    return arn


def deploy_state_machine(aws: Aws) -> str:
    """What the template does: network, cluster, task definition, lock Lambda, the state
    machine."""
    from ecompipe.aws.state_machine import render, substitute

    ec2, ecs = aws.client("ec2"), aws.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto's RunTask needs DNS hostnames on the VPC to describe the task's network interface.
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName="ecompipe")["cluster"]["clusterArn"]
    task_def = ecs.register_task_definition(
        family="ecompipe",
        containerDefinitions=[{"name": CONTAINER, "image": "ecompipe:test", "memory": 2048}],
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
    )["taskDefinition"]["taskDefinitionArn"]
    settings = aws.settings()
    asl = substitute(
        render(),
        {
            "LockTable": settings.lock_table,
            "LockId": settings.lock_id,
            "LockFunctionArn": deploy_lock_function(aws),
            "ClusterArn": cluster,
            "TaskDefinitionArn": task_def,
            "ContainerName": CONTAINER,
            "SubnetIds": subnet,
            "SecurityGroupIds": group,
            "AssignPublicIp": "DISABLED",
            "TopicArn": aws.env["SNS_TOPIC_ARN"],
        },
    )
    arn: str = aws.client("stepfunctions").create_state_machine(
        name="ecompipe", definition=asl, roleArn="arn:aws:iam::123456789012:role/ecompipe-sfn"
    )["stateMachineArn"]
    aws.setenv("STATE_MACHINE_ARN", arn)
    return arn


def s3_event(aws: Aws) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "s3_put_orders.json").read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = aws.env["BUCKET_NAME"]
    return event


def play_containers(
    aws: Aws,
    execution_arn: str,
    timeout: float = 150,
    engine_factory: Callable[[str, int], Any] | None = None,
    stop_after: str | None = None,
) -> list[dict[str, Any]]:
    """Run the real task entry point for every task the state machine starts for this
    execution, until it ends (or until the ``stop_after`` worker has run). Returns what each
    task reported. ``engine_factory(worker, n)`` may give the n-th task its engine (to inject
    faults). Each report also names the task's worker and the task token it was given.
    Tasks of other executions are left alone (as if their containers never ran)."""
    from ecompipe.aws.tasks import run_task

    sfn, ecs = aws.client("stepfunctions"), aws.client("ecs")
    name = execution_arn.rsplit(":", 1)[-1]
    done: set[str] = set()
    reports: list[dict[str, Any]] = []

    def step() -> bool:
        if sfn.describe_execution(executionArn=execution_arn)["status"] != "RUNNING":
            return True
        if stop_after is not None and any(r["worker"] == stop_after for r in reports):
            return True
        arns = [a for a in ecs.list_tasks(cluster="ecompipe")["taskArns"] if a not in done]
        for task in ecs.describe_tasks(cluster="ecompipe", tasks=arns)["tasks"] if arns else []:
            done.add(task["taskArn"])
            worker, env = container(aws, task)
            if env["EXECUTION_ID"] != name:
                continue
            factory = None
            if engine_factory is not None:
                n = len(reports)
                factory = functools.partial(_engine_for, engine_factory, worker, n)
            report = run_task(worker, env=env, heartbeat_every=0.5, engine_factory=factory)
            reports.append({**report, "worker": worker, "token": env["TASK_TOKEN"]})
        return False

    wait_for(step, timeout=timeout, what="the execution to end")
    return reports


def container(aws: Aws, task: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """What the container of an ECS task the state machine started runs: its worker
    (command ``task <worker>``) and its environment (the task definition's, which is the
    test's ``aws.env`` here, plus the state's overrides: TASK_TOKEN, EXECUTION_ID)."""
    override = task["overrides"]["containerOverrides"][0]
    assert override["command"][0] == "task"
    env = {e["name"]: e["value"] for e in override["environment"]}
    return override["command"][1], {**aws.env, **env}


def waiting_task(aws: Aws, execution: str, worker: str) -> dict[str, str] | None:
    """The environment of the ECS task the state machine started for ``worker`` of
    ``execution`` (moto never starts its container), or None while there is none."""
    ecs = aws.client("ecs")
    arns = ecs.list_tasks(cluster="ecompipe")["taskArns"]
    for task in ecs.describe_tasks(cluster="ecompipe", tasks=arns)["tasks"] if arns else []:
        name, env = container(aws, task)
        if name == worker and env["EXECUTION_ID"] == execution:
            return env
    return None


def _engine_for(factory: Callable[[str, int], Any], worker: str, n: int, _settings: Any) -> Any:
    return factory(worker, n)


def history_states(aws: Aws, execution_arn: str) -> list[str]:
    events = aws.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    entered = [e.get("stateEnteredEventDetails") for e in events]
    return [e["name"] for e in entered if e]


@pytest.mark.timeout(240)
def test_upload_to_metrics_through_step_functions(aws: Aws, workspace: Path) -> None:
    from ecompipe.aws.lambda_handler import handler

    expected = local_metrics(workspace)
    deploy_state_machine(aws)
    queue = aws.subscribe_queue()
    aws.put("orders/hand orders.csv", HAND / "orders.csv")
    # One file: no complete set, nothing starts.
    first = handler(s3_event(aws), None, clients=aws.clients())
    assert first["started"] is False and first["missing"] == ["order_items", "products"]
    aws.land_hand()  # the same orders file again, and the other two
    started = handler(s3_event(aws), None, clients=aws.clients())
    assert started["started"] is True
    # A re-delivered event (and a burst of them) starts nothing more.
    again = handler(s3_event(aws), None, clients=aws.clients())
    assert again["started"] is False and again["execution_name"] == started["execution_name"]
    sfn = aws.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=aws.env["STATE_MACHINE_ARN"])["executions"]
    assert len(executions) == 1
    arn = executions[0]["executionArn"]

    reports = play_containers(aws, arn)

    assert [r["status"] for r in reports] == ["success"] * 3, reports
    assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    states = history_states(aws, arn)
    for name in ("AcquireLock", "ValidateFiles", "CheckValidationResult", "TransformData"):
        assert name in states
    assert "ArchiveFiles" in states and "ReleaseLockAndNotifySuccess" in states
    assert "ReleaseLockAndNotifyFailure" not in states
    got = ecompipe("metrics", "--backend", "aws", "--json")
    assert json.loads(got.stdout) == expected
    name = started["execution_name"]
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == sorted(
        f"archive/{name}/{d}/hand {d}.csv" for d in ("orders", "order_items", "products")
    )
    messages = aws.messages(queue)
    assert len(messages) == 1 and "SUCCEEDED" in messages[0]["Subject"]
    body = json.loads(messages[0]["Message"])
    assert body["status"] == "SUCCEEDED" and body["files_accepted"] == 3
    assert json.loads(ecompipe("lock", "--backend", "aws", "--json").stdout) == []


@pytest.mark.timeout(240)
def test_rejected_files_end_in_failure_branch_with_lock_free(aws: Aws) -> None:
    from ecompipe.aws.lambda_handler import handler

    deploy_state_machine(aws)
    queue = aws.subscribe_queue()
    dirty = TESTS / "fixtures" / "hand_dirty"
    aws.put("orders/bad.csv", dirty / "missing_column" / "orders.csv")
    aws.put("order_items/bad.csv", dirty / "error_rate" / "order_items.csv")
    aws.put("products/bad.csv", dirty / "no_rows" / "products.csv")
    assert handler(s3_event(aws), None, clients=aws.clients())["started"] is True
    sfn = aws.client("stepfunctions")
    arn = sfn.list_executions(stateMachineArn=aws.env["STATE_MACHINE_ARN"])["executions"][0][
        "executionArn"
    ]

    reports = play_containers(aws, arn)

    assert [r["status"] for r in reports] == ["success"]  # validate ran, found nothing usable
    assert reports[0]["output"]["usable"] is False
    assert sfn.describe_execution(executionArn=arn)["status"] == "FAILED"
    states = history_states(aws, arn)
    assert "ReleaseLockAndNotifyFailure" in states and "TransformData" not in states
    assert json.loads(ecompipe("lock", "--backend", "aws", "--json").stdout) == []
    name = arn.rsplit(":", 1)[-1]
    quarantined = aws.keys(aws.env["BUCKET_NAME"], f"quarantine/{name}/")
    assert f"quarantine/{name}/orders/bad.csv" in quarantined
    assert f"quarantine/{name}/validation_report.json" in quarantined
    messages = aws.messages(queue)
    assert len(messages) == 1 and "FAILED" in messages[0]["Subject"]
    assert json.loads(messages[0]["Message"])["files_rejected"] == 3


class FailingEngine:
    """The real engine, except ``transform`` raises ``error`` (once, or every time)."""

    def __init__(self, error: Exception) -> None:
        from ecompipe.config import load_settings
        from ecompipe.engines import create_engine

        self.real, self.error = create_engine(load_settings()), error
        self.name = "failing"
        self.reads_uris = False

    def validate(self, *args: Any) -> Any:
        return self.real.validate(*args)

    def transform(self, *args: Any) -> Any:
        raise self.error

    def close(self) -> None:
        self.real.close()


class SlowTransformEngine(FailingEngine):
    """The real engine, except ``transform`` first outlasts a few leases, then tries to take
    the critical-section lock as another run would (``intruded`` says whether it could)."""

    def __init__(self, aws: Aws, pause: float) -> None:
        super().__init__(RuntimeError("unused"))
        self.aws, self.pause = aws, pause
        self.intruded: bool | None = None

    def transform(self, *args: Any) -> Any:
        from ecompipe.config import load_settings
        from ecompipe.stores.aws.dynamodb import DynamoDBLock

        time.sleep(self.pause)
        settings = load_settings()
        critical = DynamoDBLock(
            self.aws.client("dynamodb"), settings.lock_table, f"{settings.lock_id}-transform", 1
        )
        self.intruded = critical.try_acquire("another-run", None, 60)
        if self.intruded:
            critical.release("another-run")
        return self.real.transform(*args)


def _start_hand_set(aws: Aws) -> str:
    from ecompipe.aws.lambda_handler import handler

    deploy_state_machine(aws)
    aws.land_hand()
    assert handler(s3_event(aws), None, clients=aws.clients())["started"] is True
    sfn = aws.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=aws.env["STATE_MACHINE_ARN"])["executions"]
    return str(executions[0]["executionArn"])


@pytest.mark.timeout(240)
def test_transient_task_failure_is_retried_by_the_state_machine(aws: Aws, workspace: Path) -> None:
    from ecompipe.config import load_settings
    from ecompipe.engines import create_engine
    from ecompipe.errors import StoreError

    expected = local_metrics(workspace)
    arn = _start_hand_set(aws)

    def engines(worker: str, n: int) -> Any:
        if worker == "transform" and n == 1:  # the first transform attempt
            return FailingEngine(StoreError("DynamoDB throttled (injected)"))
        if worker == "transform":  # the retry heartbeats a few times before it reports
            return SlowTransformEngine(aws, pause=2.0)
        return create_engine(load_settings())

    reports = play_containers(aws, arn, engine_factory=engines)

    assert [(r["worker"], r["status"], r.get("error")) for r in reports] == [
        ("validate", "success", None),
        ("transform", "failure", "Ecompipe.StoreError"),
        ("transform", "success", None),
        ("archive", "success", None),
    ]
    # Each attempt has a token of its own: the failed attempt's cannot end the retry.
    assert len({r["token"] for r in reports}) == 4
    assert aws.client("stepfunctions").describe_execution(executionArn=arn)["status"] == (
        "SUCCEEDED"
    )
    assert json.loads(ecompipe("metrics", "--backend", "aws", "--json").stdout) == expected


@pytest.mark.timeout(240)
def test_a_transform_longer_than_its_lease_keeps_the_critical_section(aws: Aws) -> None:
    """The ECS task renews the critical-section lease while its transform runs: three lease
    lengths in, another run still cannot enter (it could before the task renewed it)."""
    from ecompipe.config import load_settings
    from ecompipe.engines import create_engine

    aws.setenv("ECOMPIPE_LEASE_SECONDS", "1")
    arn = _start_hand_set(aws)
    slow = SlowTransformEngine(aws, pause=3.0)

    def engines(worker: str, n: int) -> Any:
        return slow if worker == "transform" else create_engine(load_settings())

    reports = play_containers(aws, arn, engine_factory=engines)

    assert [r["status"] for r in reports] == ["success"] * 3
    assert slow.intruded is False
    assert aws.client("stepfunctions").describe_execution(executionArn=arn)["status"] == (
        "SUCCEEDED"
    )


@pytest.mark.timeout(240)
def test_terminal_task_failure_releases_the_lock_and_leaves_the_files_in_landing(aws: Aws) -> None:
    from ecompipe.config import load_settings
    from ecompipe.engines import create_engine
    from ecompipe.errors import EngineError

    queue = aws.subscribe_queue()
    arn = _start_hand_set(aws)

    def engines(worker: str, n: int) -> Any:
        if worker == "transform":
            return FailingEngine(EngineError("the engine cannot read this (injected)"))
        return create_engine(load_settings())

    reports = play_containers(aws, arn, engine_factory=engines)

    assert [(r["status"], r.get("error")) for r in reports] == [
        ("success", None),
        ("failure", "Ecompipe.EngineError"),
    ]
    sfn = aws.client("stepfunctions")
    assert sfn.describe_execution(executionArn=arn)["status"] == "FAILED"
    assert "ReleaseLockAndNotifyFailure" in history_states(aws, arn)
    assert json.loads(ecompipe("lock", "--backend", "aws", "--json").stdout) == []
    name = arn.rsplit(":", 1)[-1]
    # Not in the data: no verdict. The files stay in landing untouched, for the next run,
    # and the batch published before the failure is withdrawn from the curated log.
    bucket = aws.env["BUCKET_NAME"]
    assert aws.keys(bucket, f"quarantine/{name}/orders/") == []
    assert [k for k in aws.keys(bucket) if not k.startswith(("quarantine/", "_ecompipe/"))] == [
        f"{d}/hand {d}.csv" for d in ("order_items", "orders", "products")
    ]
    assert aws.keys(bucket, "_ecompipe/curated/") == []
    (message,) = aws.messages(queue)
    assert "FAILED" in message["Subject"]
    error = json.loads(message["Message"])
    assert error["Error"] == "Ecompipe.EngineError"
    assert json.loads(error["Cause"])["status"] == "FAILED"


@pytest.mark.timeout(240)
def test_a_retried_acquire_that_had_succeeded_is_recognised(aws: Aws) -> None:
    """The lock already lists this execution (its first AcquireLock succeeded but the answer
    was lost): with limit 1 the acquire must succeed again, not wait on itself."""
    from ecompipe.stores.aws.dynamodb import DynamoDBLock

    deploy_state_machine(aws)
    aws.land_hand()
    settings = aws.settings()
    lock = DynamoDBLock(aws.client("dynamodb"), settings.lock_table, settings.lock_id, 1)
    assert lock.try_acquire("set-retried", "set-retried", 900)
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=aws.env["STATE_MACHINE_ARN"], name="set-retried")[
        "executionArn"
    ]
    reports = play_containers(aws, arn)
    assert [r["status"] for r in reports] == ["success"] * 3
    assert sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    assert lock.holders() == []


def history(aws: Aws, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = aws.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    return events


def acquire_attempts(aws: Aws, execution_arn: str) -> list[str]:
    """How each AcquireLock attempt (a lock Lambda invoke) ended: "ok" or its error name."""
    outcomes = []
    for event in history(aws, execution_arn):
        if event["type"] == "TaskSucceeded":
            details = event["taskSucceededEventDetails"]
            outcome = "ok"
        elif event["type"] == "TaskFailed":
            details = event["taskFailedEventDetails"]
            outcome = details["error"]
        else:
            continue
        if details["resourceType"] == "lambda":
            outcomes.append(outcome)
    return outcomes


def status_event(aws: Aws, execution_arn: str) -> dict[str, Any]:
    """The EventBridge event AWS sends when the execution ended (tests/events sample)."""
    event: dict[str, Any] = json.loads((EVENTS / "sfn_status_aborted.json").read_text())
    described = aws.client("stepfunctions").describe_execution(executionArn=execution_arn)
    failed = [e for e in history(aws, execution_arn) if e["type"] == "ExecutionFailed"]
    error = failed[0]["executionFailedEventDetails"].get("error") if failed else None
    event["resources"] = [execution_arn]
    event["detail"].update(
        executionArn=execution_arn,
        stateMachineArn=aws.env["STATE_MACHINE_ARN"],
        name=described["name"],
        status=described["status"],
        input=described["input"],
        error=error,
    )
    return event


def _lock_holders(aws: Aws) -> list[Any]:
    from ecompipe.stores.aws.dynamodb import DynamoDBLock

    settings = aws.settings()
    return DynamoDBLock(aws.client("dynamodb"), settings.lock_table, settings.lock_id, 1).holders()


def _stop_mid_run(aws: Aws, arn: str) -> None:
    """Play the execution's validate task, wait until it waits for its transform task (so
    it holds the lock mid-run), then stop it as an operator would."""
    sfn, ecs = aws.client("stepfunctions"), aws.client("ecs")
    reports = play_containers(aws, arn, stop_after="validate")
    assert [(r["worker"], r["status"]) for r in reports] == [("validate", "success")]
    wait_for(
        lambda: len(ecs.list_tasks(cluster="ecompipe")["taskArns"]) == 2,
        what="the transform task to be started",
    )
    sfn.stop_execution(executionArn=arn, error="Operator", cause="stopped by hand (test)")
    wait_for(
        lambda: sfn.describe_execution(executionArn=arn)["status"] == "ABORTED",
        what="the execution to be aborted",
    )


@pytest.mark.timeout(240)
def test_a_stopped_execution_frees_its_lease_and_its_files_run_again(
    aws: Aws, workspace: Path
) -> None:
    """An operator stops an execution mid-run. The EventBridge event frees its lease and
    closes its record at once, and its files, still in landing, start a run without any
    new upload; that run takes the lock at its first attempt and computes the metrics."""
    from ecompipe.aws.lambda_handler import handler
    from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog

    expected = local_metrics(workspace)
    queue = aws.subscribe_queue()
    first = _start_hand_set(aws)
    first_name = first.rsplit(":", 1)[-1]
    _stop_mid_run(aws, first)
    # What the issue is about: nothing released the stopped execution's lease.
    assert [(h.holder, h.host, h.pid) for h in _lock_holders(aws)] == [
        (first_name, "stepfunctions", 0)
    ]
    event = status_event(aws, first)
    assert event["detail"]["status"] == "ABORTED"

    decided = handler(event, None, clients=aws.clients())

    assert decided["released"] is True and decided["closed"] is True
    assert decided["started"] is True and decided["execution_name"] != first_name
    executions = DynamoDBExecutionLog(aws.client("dynamodb"), aws.settings().executions_table)
    record = executions.get(first_name)
    assert record is not None and record.status == "FAILED"
    assert record.summary["error"]["type"] == "Ecompipe.Stopped"
    # EventBridge delivers at least once: the same event again changes nothing.
    again = handler(event, None, clients=aws.clients())
    assert (again["released"], again["closed"], again["started"]) == (False, False, False)
    assert again["execution_name"] == decided["execution_name"]
    sfn = aws.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=aws.env["STATE_MACHINE_ARN"])["executions"]
    assert len(listed) == 2
    second = next(e["executionArn"] for e in listed if e["name"] == decided["execution_name"])
    restart = json.loads(sfn.describe_execution(executionArn=second)["input"])
    assert restart == {"files": 3, "restart_of": first_name, "restarts": 1}

    reports = play_containers(aws, second)

    assert [r["status"] for r in reports] == ["success"] * 3, reports
    assert sfn.describe_execution(executionArn=second)["status"] == "SUCCEEDED"
    assert acquire_attempts(aws, second) == ["ok"], "the lock was free at the first attempt"
    assert json.loads(ecompipe("metrics", "--backend", "aws", "--json").stdout) == expected
    assert aws.keys(aws.env["S3_ARCHIVE_BUCKET"]) == sorted(
        f"archive/{decided['execution_name']}/{d}/hand {d}.csv"
        for d in ("orders", "order_items", "products")
    )
    assert _lock_holders(aws) == []
    bodies = [json.loads(m["Message"]) for m in aws.messages(queue)]
    assert sorted((b["execution_id"], b["status"]) for b in bodies) == sorted(
        [(first_name, "FAILED"), (decided["execution_name"], "SUCCEEDED")]
    ), "one failure notification for the stop (not two), one success"
    (stop_message,) = [b for b in bodies if b["execution_id"] == first_name]
    assert stop_message["error"]["type"] == "Ecompipe.Stopped"


def _expire_lease(aws: Aws, holder: str) -> None:
    """What fifteen minutes without renewal do to a lease: its expiry is in the past."""
    settings = aws.settings()
    aws.client("dynamodb").update_item(
        TableName=settings.lock_table,
        Key={"LockId": {"S": settings.lock_id}},
        UpdateExpression="SET holders.#h.expires_at = :past",
        ConditionExpression="attribute_exists(holders.#h)",
        ExpressionAttributeNames={"#h": holder},
        ExpressionAttributeValues={":past": {"N": str(time.time() - 1)}},
    )


@pytest.mark.timeout(240)
def test_without_eventbridge_acquire_lock_reaps_the_expired_lease_of_a_stopped_execution(
    aws: Aws, workspace: Path
) -> None:
    """No EventBridge event at all: the stopped execution's lease stays until it expires.
    The next execution's AcquireLock is busy (LockBusyError, retried by the ASL) while the
    lease lives, then reaps it itself once expired, with the Python lock's rule; its
    validate task closes the abandoned record and the files are processed."""
    from ecompipe.aws.lambda_handler import acquire_lock
    from ecompipe.errors import LockBusyError
    from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog

    expected = local_metrics(workspace)
    first = _start_hand_set(aws)
    first_name = first.rsplit(":", 1)[-1]
    _stop_mid_run(aws, first)
    with pytest.raises(LockBusyError, match=first_name):
        acquire_lock({"execution_name": "intruder"})  # the lease is live: busy
    sfn = aws.client("stepfunctions")
    second = sfn.start_execution(
        stateMachineArn=aws.env["STATE_MACHINE_ARN"], name="after-the-stop"
    )["executionArn"]
    wait_for(lambda: "LockBusyError" in acquire_attempts(aws, second), what="a busy AcquireLock")
    assert [h.holder for h in _lock_holders(aws)] == [first_name]
    _expire_lease(aws, first_name)

    reports = play_containers(aws, second)

    assert [r["status"] for r in reports] == ["success"] * 3, reports
    assert sfn.describe_execution(executionArn=second)["status"] == "SUCCEEDED"
    attempts = acquire_attempts(aws, second)
    assert attempts[-1] == "ok" and set(attempts[:-1]) == {"LockBusyError"}, attempts
    executions = DynamoDBExecutionLog(aws.client("dynamodb"), aws.settings().executions_table)
    record = executions.get(first_name)
    assert record is not None and record.status == "FAILED"
    assert record.summary["error"]["type"] == "Ecompipe.Abandoned"
    assert json.loads(ecompipe("metrics", "--backend", "aws", "--json").stdout) == expected
    assert _lock_holders(aws) == []


class CountingThrottledEngine(FailingEngine):
    """The real engine, except every ``transform`` is throttled (a transient StoreError);
    ``calls`` counts the transforms of every instance."""

    calls: list[int] = []

    def transform(self, *args: Any) -> Any:
        self.calls.append(1)
        raise self.error


@pytest.mark.timeout(240)
def test_a_transient_task_failure_is_attempted_as_often_as_the_asl_retry_says(aws: Aws) -> None:
    """One owner per retry: the state machine retries the task MaxAttempts times; the task
    itself does not retry in-process (else each attempt would run the transform 1 + 3
    times). After the failure ending, EventBridge's FAILED event closes the record the
    transient failure left RUNNING, without a second notification and without a restart."""
    from ecompipe.aws.lambda_handler import handler
    from ecompipe.aws.state_machine import definition
    from ecompipe.config import load_settings
    from ecompipe.engines import create_engine
    from ecompipe.errors import StoreError
    from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog

    (retry,) = definition()["States"]["TransformData"]["Retry"]
    assert "Ecompipe.StoreError" in retry["ErrorEquals"]
    attempts = 1 + retry["MaxAttempts"]
    queue = aws.subscribe_queue()
    arn = _start_hand_set(aws)
    calls: list[int] = []

    def engines(worker: str, n: int) -> Any:
        if worker == "transform":
            engine = CountingThrottledEngine(StoreError("DynamoDB throttled (injected)"))
            engine.calls = calls
            return engine
        return create_engine(load_settings())

    reports = play_containers(aws, arn, engine_factory=engines)

    assert [(r["worker"], r["status"], r.get("error")) for r in reports] == [
        ("validate", "success", None),
        *[("transform", "failure", "Ecompipe.StoreError")] * attempts,
    ]
    assert len(calls) == attempts, "each task attempt ran the transform exactly once"
    sfn = aws.client("stepfunctions")
    assert sfn.describe_execution(executionArn=arn)["status"] == "FAILED"
    assert "ReleaseLockAndNotifyFailure" in history_states(aws, arn)
    name = arn.rsplit(":", 1)[-1]
    executions = DynamoDBExecutionLog(aws.client("dynamodb"), aws.settings().executions_table)
    assert executions.owned_keys(), "the transient failure left the execution RUNNING"
    event = status_event(aws, arn)
    assert event["detail"]["error"] == "Ecompipe.ExecutionFailed"

    decided = handler(event, None, clients=aws.clients())

    assert (decided["released"], decided["closed"], decided["started"]) == (False, True, False)
    record = executions.get(name)
    assert record is not None and record.summary["error"]["type"] == "Ecompipe.Abandoned"
    assert executions.owned_keys() == set(), "its files are candidates for the next upload"
    (message,) = aws.messages(queue)
    assert json.loads(message["Message"])["Error"] == "Ecompipe.StoreError"
