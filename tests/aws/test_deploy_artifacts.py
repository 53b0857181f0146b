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
from ecompipe.workflow import WORKFLOW, State

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
    params = acquire["Parameters"]
    # The execution itself is the holder: a retried acquire that had succeeded succeeds.
    assert "attribute_exists(holders.#me)" in params["ConditionExpression"]
    assert params["ExpressionAttributeNames"]["#me.$"] == "$$.Execution.Name"
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
    ):
        assert needed in types
    lock = resources["LockTable"]["Properties"]
    assert lock["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    subs = resources["StateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert set(subs) == set(SUBSTITUTIONS)
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
