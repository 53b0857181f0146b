"""Static checks of what is deployed: the ASL (committed = generated, statelint) and the
CloudFormation template (cfn-lint, least privilege). All offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ecompipe.aws.state_machine import SUBSTITUTIONS, definition, render, transient_codes
from ecompipe.workflow import LOCK_RETRY, WORKFLOW, State

ROOT = Path(__file__).parent.parent.parent
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.aws]


@pytest.mark.fast
def test_committed_definition_equals_generated() -> None:
    assert (DEPLOY / "stepfunction.json").read_text() == render(), (
        "regenerate: ecompipe aws state-machine > deploy/stepfunction.json"
    )


@pytest.mark.fast
def test_cli_prints_the_definition() -> None:
    from tests.conftest import ecompipe

    result = ecompipe("aws", "state-machine")
    assert result.exit_code == 0 and result.stdout == render()


@pytest.mark.timeout(60)
def test_statelint_accepts_the_definition() -> None:
    done = subprocess.run(
        [str(BIN / "statelint"), str(DEPLOY / "stepfunction.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.timeout(60)
def test_statelint_catches_a_broken_definition(tmp_path: Path) -> None:
    broken = definition()
    broken["StartAt"] = "NoSuchState"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken))
    done = subprocess.run([str(BIN / "statelint"), str(path)], capture_output=True, timeout=60)
    assert done.returncode != 0


@pytest.mark.fast
def test_definition_follows_the_workflow() -> None:
    states = definition()["States"]
    assert definition()["StartAt"] == State.ACQUIRE_LOCK
    for spec in WORKFLOW:
        assert spec.name in states
    acquire = states[State.ACQUIRE_LOCK]
    # The lock Lambda takes the lease with the Python lock's rule; the execution itself is
    # the holder, so a retried acquire that had succeeded succeeds.
    assert acquire["Resource"] == "arn:aws:states:::lambda:invoke"
    assert acquire["Parameters"]["FunctionName"] == "${LockFunctionArn}"
    assert acquire["Parameters"]["Payload"] == {"execution_name.$": "$$.Execution.Name"}
    busy, transient = acquire["Retry"]
    assert (
        busy["ErrorEquals"] == ["LockBusyError"] and busy["MaxAttempts"] == LOCK_RETRY.max_attempts
    )
    # Every transient error the handler can raise is retried; Lambda's own failures too.
    assert {"StoreError", "TransientError", "Lambda.TooManyRequestsException"} <= set(
        transient["ErrorEquals"]
    )
    assert "TerminalError" not in transient["ErrorEquals"]
    for name in (State.VALIDATE_FILES, State.TRANSFORM_DATA, State.ARCHIVE_FILES):
        task = states[name]
        assert task["Resource"] == "arn:aws:states:::ecs:runTask.waitForTaskToken"
        assert task["HeartbeatSeconds"] > 0
        (retry,) = task["Retry"]
        assert set(transient_codes()) <= set(retry["ErrorEquals"])
        assert "Ecompipe.Terminal" not in retry["ErrorEquals"]
        assert retry["MaxDelaySeconds"] > 0
        assert task["Catch"][0]["Next"] == State.FAILURE
    assert {"Ecompipe.Transient", "Ecompipe.StoreError", "Ecompipe.LockBusy"} <= set(
        transient_codes()
    )
    # Every path to the failure ending releases the lock.
    for ending in (State.FAILURE, State.SUCCESS):
        assert states[ending]["Parameters"]["UpdateExpression"] == "REMOVE holders.#me"
        assert states[ending]["Catch"][0]["Next"] == states[ending]["Next"]
    for task in (State.ACQUIRE_LOCK, State.VALIDATE_FILES, State.TRANSFORM_DATA):
        assert states[task]["Catch"][0]["Next"] == State.FAILURE
    text = render()
    for name in SUBSTITUTIONS:
        assert "${" + name + "}" in text


def _template() -> dict[str, Any]:
    from cfnlint.decode import decode_str

    template, problems = decode_str((DEPLOY / "template.yaml").read_text())
    assert not problems and template is not None
    return dict(template)


@pytest.mark.timeout(120)
def test_cfn_lint_passes() -> None:
    done = subprocess.run(
        [str(BIN / "cfn-lint"), str(DEPLOY / "template.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.fast
def test_template_is_least_privilege_and_complete() -> None:
    template = _template()
    resources = template["Resources"]
    for name, res in resources.items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                assert "*" not in actions and not any(a.endswith(":*") for a in actions), name
    types = {r["Type"] for r in resources.values()}
    for needed in (
        "AWS::S3::Bucket",
        "AWS::DynamoDB::Table",
        "AWS::SNS::Topic",
        "AWS::ECS::Cluster",
        "AWS::ECS::TaskDefinition",
        "AWS::StepFunctions::StateMachine",
        "AWS::Lambda::Function",
        "AWS::Logs::LogGroup",
        "AWS::Events::Rule",
        "AWS::Lambda::Permission",
    ):
        assert needed in types
    lock = resources["LockTable"]["Properties"]
    assert lock["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    subs = resources["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert set(subs) == set(SUBSTITUTIONS)
    # AcquireLock: the state machine may invoke the lock function, and nothing else.
    sfn_statements = resources["StateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    (invoke,) = [st for st in sfn_statements if "lambda:InvokeFunction" in st["Action"]]
    assert invoke["Action"] == ["lambda:InvokeFunction"]
    assert invoke["Resource"] == {"Fn::GetAtt": ["LockFunction", "Arn"]}
    assert resources["LockFunction"]["Properties"]["ImageConfig"]["Command"] == [
        "ecompipe.aws.lambda_handler.acquire_lock"
    ]
    assert subs["LockFunctionArn"] == {"Fn::GetAtt": ["LockFunction", "Arn"]}
    # Executions that end without succeeding reach the trigger through EventBridge.
    rule = resources["ExecutionStatusRule"]["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": "StateMachine"}]
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["TriggerFunction", "Arn"]}
    permission = resources["ExecutionStatusPermission"]["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": ["ExecutionStatusRule", "Arn"]}
    trigger_env = resources["TriggerFunction"]["Properties"]["Environment"]["Variables"]
    assert "SNS_TOPIC_ARN" in trigger_env
    notifications = resources["LandingBucket"]["Properties"]["NotificationConfiguration"]
    prefixes = {
        c["Filter"]["S3Key"]["Rules"][0]["Value"] for c in notifications["LambdaConfigurations"]
    }
    assert prefixes == {"orders/", "order_items/", "products/"}


@pytest.mark.fast
@pytest.mark.spark
def test_spark_image_pairs_hadoop_aws_with_pyspark_hadoop() -> None:
    """The image's hadoop-aws jar must be the Hadoop version its pyspark ships (a mismatch
    fails only at run time, with NoSuchMethodError), and its pyspark the one tested here."""
    import re
    from importlib.metadata import version
    from importlib.util import find_spec

    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, re.M))
    spec = find_spec("pyspark")
    assert spec is not None and spec.origin is not None
    jars = Path(spec.origin).parent / "jars"
    [client] = jars.glob("hadoop-client-api-*.jar")
    assert args["PYSPARK_VERSION"] == version("pyspark")
    assert args["HADOOP_VERSION"] == client.stem.removeprefix("hadoop-client-api-")
    assert "org.apache.hadoop:hadoop-aws:${HADOOP_VERSION}" in dockerfile
    # The final (default) stage is the DuckDB image; Spark is the named target.
    stages = re.findall(r"^FROM \S+ AS (\w+)$", dockerfile, re.M)
    assert stages[-1] == "duckdb" and "spark" in stages


@pytest.mark.fast
def test_the_sample_status_change_event_matches_the_rule() -> None:
    """tests/events/sfn_status_aborted.json is what the rule delivers (matched with moto's
    EventBridge pattern engine); a SUCCEEDED execution or another state machine is not."""
    from moto.events.models import EventPattern

    event = json.loads((ROOT / "tests" / "events" / "sfn_status_aborted.json").read_text())
    pattern = _template()["Resources"]["ExecutionStatusRule"]["Properties"]["EventPattern"]
    pattern["detail"]["stateMachineArn"] = [event["detail"]["stateMachineArn"]]
    rule = EventPattern.load(json.dumps(pattern))
    assert rule.matches_event(event)
    for status in ("TIMED_OUT", "FAILED"):
        assert rule.matches_event({**event, "detail": {**event["detail"], "status": status}})
    assert not rule.matches_event({**event, "detail": {**event["detail"], "status": "SUCCEEDED"}})
    other = {**event["detail"], "stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:x"}
    assert not rule.matches_event({**event, "detail": other})


@pytest.mark.fast
def test_template_tables_are_those_bootstrap_creates_and_no_role_may_scan() -> None:
    """Keys, TTL and indexes of every table as `ecompipe aws bootstrap` makes them (one
    spec, aws.cli.table_specs); the task and trigger roles cannot Scan: a run and an S3
    event read DynamoDB by key only, whatever the history holds."""
    from ecompipe.aws.cli import table_specs
    from ecompipe.config import load_settings

    resources = _template()["Resources"]
    declared = {}
    for res in resources.values():
        if res["Type"] != "AWS::DynamoDB::Table":
            continue
        props = res["Properties"]
        keys = [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]]
        ttl = props.get("TimeToLiveSpecification", {}).get("AttributeName")
        indexes = {
            i["IndexName"]: [(k["AttributeName"], k["KeyType"]) for k in i["KeySchema"]]
            for i in props.get("GlobalSecondaryIndexes", [])
        }
        for index in props.get("GlobalSecondaryIndexes", []):
            assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
        declared[props["TableName"]] = (keys, ttl, indexes)
    assert declared == table_specs(load_settings(env={}))
    for role in ("TaskRole", "TriggerRole", "LockRole"):
        for policy in resources[role]["Properties"]["Policies"]:
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                assert "dynamodb:Scan" not in actions, role


def test_both_buckets_abort_incomplete_multipart_uploads_as_bootstrap_does() -> None:
    """A task killed mid multipart copy cannot abort it: the template gives both buckets the
    lifecycle rule `ecompipe aws bootstrap` adds (one rule, aws.cli.abort_uploads_rule)."""
    from ecompipe.aws.cli import abort_uploads_rule

    rule = abort_uploads_rule()
    expected = {
        "Id": rule["ID"],
        "Status": rule["Status"],
        "AbortIncompleteMultipartUpload": rule["AbortIncompleteMultipartUpload"],
    }
    resources = _template()["Resources"]
    buckets = [r for r in resources.values() if r["Type"] == "AWS::S3::Bucket"]
    assert len(buckets) == 2
    for bucket in buckets:
        assert bucket["Properties"]["LifecycleConfiguration"]["Rules"] == [expected]
