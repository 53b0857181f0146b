"""The image the stack deploys (deploy/Dockerfile, DuckDB target), built and run here.

No Docker daemon and no registry: podman builds it (tests/aws/podman.py) on a base made by
debootstrap, and the RUN steps of a test stage (tests/aws/image/Containerfile) run inside
the built image, as its user: the console script and the Lambda handlers import, the user is
not root, and `ecompipe task validate` runs the ValidateFiles state of a real execution that
waits on the moto server on the host's loopback. The host then sees the state machine go on.
The Spark target is not built: its jar stage resolves hadoop-aws from Maven Central, which is
not reachable here (docs/AWS.md, "The image").
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import Aws, wait_for
from tests.aws.podman import Podman, base_tarball, missing_tools
from tests.aws.test_step_functions_e2e import (
    deploy_state_machine,
    history_states,
    s3_event,
    waiting_task,
)

pytestmark = [
    pytest.mark.aws,
    pytest.mark.duckdb,
    pytest.mark.slow,
    # Its own group: about a minute of building that needs no other moto test to wait.
    pytest.mark.xdist_group("image"),
]

ROOT = Path(__file__).parent.parent.parent
IMAGE = "localhost/ecompipe:test"
#: The user deploy/Dockerfile creates (useradd --uid 10001 ecompipe).
IMAGE_USER = "uid 10001 (ecompipe)"


@pytest.fixture
def podman() -> Iterator[Podman]:
    missing = missing_tools()
    assert not missing, f"the image test needs {', '.join(missing)}: run scripts/setup-podman"
    builder = Podman()
    try:
        yield builder
    finally:
        builder.close()


def reported(build_output: str) -> dict[str, Any]:
    """What `ecompipe task ...` printed in the build: its report to Step Functions."""
    lines = [line for line in build_output.splitlines() if line.startswith('{"status"')]
    assert len(lines) == 1, build_output[-4000:]
    report: dict[str, Any] = json.loads(lines[0])
    return report


@pytest.mark.timeout(1200)
def test_image_builds_and_runs_a_task_as_its_user(aws: Aws, podman: Podman, tmp_path: Path) -> None:
    from ecompipe.aws.lambda_handler import handler
    from ecompipe.wiring import AwsPorts
    from ecompipe.workflow import State

    podman.import_base(base_tarball())
    podman.build(ROOT / "deploy" / "Dockerfile", ROOT, IMAGE, "--target=duckdb")

    # An execution waiting in ValidateFiles for its container, built only now: the task
    # token must not wait for the image build (HeartbeatSeconds).
    deploy_state_machine(aws)
    aws.land_hand()
    started = handler(s3_event(aws), None, clients=aws.clients())
    assert started["started"] is True
    name = started["execution_name"]
    env = wait_for(lambda: waiting_task(aws, name, "validate"), 60, "the ValidateFiles task")
    mounted = tmp_path / "task"
    mounted.mkdir()
    (mounted / "task.env").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
    context = tmp_path / "context"
    context.mkdir()

    output = podman.build(
        ROOT / "tests" / "aws" / "image" / "Containerfile",
        context,
        "localhost/ecompipe-test-stage:test",
        f"--build-arg=IMAGE={IMAGE}",
        f"--volume={mounted}:/run/ecompipe:ro",
        timeout=300,
    )

    assert f"runs as {IMAGE_USER}" in output
    assert reported(output) == {"status": "success", "output": {"usable": True}}
    # The host side: Step Functions took the task's success and went on to TransformData,
    # and the execution log holds ValidateFiles as done by the container.
    sfn = aws.client("stepfunctions")
    arn = sfn.list_executions(stateMachineArn=aws.env["STATE_MACHINE_ARN"])["executions"][0][
        "executionArn"
    ]
    try:
        wait_for(lambda: waiting_task(aws, name, "transform"), 60, "the TransformData task")
        states = history_states(aws, arn)
        assert states.index("CheckValidationResult") < states.index("TransformData")
        log = AwsPorts(aws.settings(), aws.clients()).log()
        assert State.VALIDATE_FILES in log.completed_states(name)
        landed = [f"{d}/hand {d}.csv" for d in ("orders", "order_items", "products")]
        assert sorted(e.key for e in log.manifest(name)) == sorted(landed)
    finally:
        sfn.stop_execution(executionArn=arn)
