"""A moto server on 127.0.0.1 (one per test process) with Step Functions execution on.

The fixtures ``moto_url`` and ``aws`` are registered in tests/conftest.py, so that the AWS
tests (tests/aws/) and the contract tests (tests/contract/) share one server. Every AWS test
uses the ``aws`` fixture: a clean moto state, the env vars the original system
uses (BUCKET_NAME, ...), AWS_ENDPOINT_URL pointing at the server, and the resources
`ecompipe aws bootstrap` creates.

Moto gaps patched here, on the in-process server only (moto 5.2.x):
- issue #10076: its Step Functions interpreter sends the ``ecs:runTask`` parameters to boto3
  in Step Functions' PascalCase without normalising them, so RunTask fails. We install the
  normalisation (map each key to the boto3 shape's member, both ways).
- SendTaskFailure drops ``cause`` (only ``error`` reaches the execution); we pass it on.
- A retried waitForTaskToken state keeps the first attempt's task token, and with it that
  attempt's outcome: the retry's first heartbeat ends it with the failure that caused the
  retry. Step Functions gives each attempt a token of its own; we do too.
- StopExecution does not wake a state waiting for its task token (it notices the stop only
  at its next heartbeat, or after HeartbeatSeconds), and the error the woken state then
  raises overrides the stop (the execution ends FAILED); on AWS it is ABORTED at once. We
  wake the waiting states when an execution is stopped, and a stopped execution stays so.
- Moto never runs Lambda code (it would need Docker), so the state machine's
  ``lambda:invoke`` (AcquireLock) could not run. We run the real Python handler in-process
  instead: the one the function's configuration names (ImageConfig Command, as the template
  deploys it, or Handler), with the invoke's payload. A raised exception becomes what the
  Python runtime (awslambdaric) reports, FunctionError with ``errorType`` = the exception's
  class name, which moto's interpreter turns into the state's error name, as AWS does.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
EVENTS = TESTS / "events"
HAND = TESTS / "fixtures" / "hand"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _patch_moto_gaps() -> None:
    import botocore.session
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_ecs as ecs_service,
    )

    model = botocore.session.get_session().get_service_model("ecs")

    def operation(self: Any, action: str | None) -> Any:
        name = action or self.resource.api_action
        return model.operation_model("".join(p[:1].upper() + p[1:] for p in name.split("_")))

    def parameters(self: Any, parameters: dict[str, Any], *_: Any, **kw: Any) -> None:
        shape = operation(self, kw.get("service_action_name")).input_shape
        self._to_boto_request(parameters, shape)

    def response(self: Any, response: Any, *_: Any, **kw: Any) -> None:
        shape = operation(self, kw.get("service_action_name")).output_shape
        self._from_boto_response(response, shape)

    cls = ecs_service.StateTaskServiceEcs
    cls._normalise_parameters = parameters  # type: ignore[method-assign]
    cls._normalise_response = response  # type: ignore[method-assign]

    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"),
            error=self._get_param("error"),
            cause=self._get_param("cause"),
        )
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure  # type: ignore[method-assign]

    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback_service,
    )

    callback = callback_service.StateTaskServiceCallback
    evaluate = callback._eval_execution

    def eval_execution(self: Any, env: Any) -> None:
        context = env.states.context_object
        if "Task" in context.context_object_data and context.context_object_data["State"].get(
            "RetryCount"
        ):
            env.callback_pool_manager.add(context.update_task_token())
        evaluate(self, env)

    callback._eval_execution = eval_execution  # type: ignore[method-assign]

    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    lambda_eval_utils._invoke_lambda_function = _invoke_in_process

    from moto.stepfunctions.parser.backend.execution import Execution

    stop = Execution.stop

    def stop_and_wake(self: Any, *args: Any, **kw: Any) -> None:
        stop(self, *args, **kw)
        if self.exec_worker is not None:
            for endpoint in list(self.exec_worker.env.callback_pool_manager._pool.values()):
                endpoint.interrupt_all()

    Execution.stop = stop_and_wake  # type: ignore[method-assign]

    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped

    set_error = Environment.set_error

    def set_error_unless_stopped(self: Any, error: Any) -> None:
        if not isinstance(self._program_state, ProgramStopped):
            set_error(self, error)

    Environment.set_error = set_error_unless_stopped  # type: ignore[method-assign]


def _invoke_in_process(
    parameters: dict[str, Any], region: str, state_credentials: Any = None
) -> dict[str, Any]:
    """Lambda Invoke as the Python runtime does it, in this process (see the module doc)."""
    import boto3  # noqa: TID251 (tests)

    functions = boto3.client(
        "lambda", region_name=region, endpoint_url=f"http://127.0.0.1:{os.environ['MOTO_PORT']}"
    )
    config = functions.get_function_configuration(FunctionName=parameters["FunctionName"])
    command = config.get("ImageConfigResponse", {}).get("ImageConfig", {}).get("Command")
    module, _, name = (command[0] if command else config["Handler"]).rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    try:
        result = handler(json.loads(parameters.get("Payload") or b"{}"), None)
    except Exception as exc:
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": error}
    return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": result}


def start_moto_server() -> tuple[Any, str]:
    """An in-process moto server (127.0.0.1, a free port) with the gaps patched: the server
    (``stop()`` it) and its URL. The fixture's, and bench/sizing.py's."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    # Moto's Step Functions interpreter calls the services back at localhost:MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    _patch_moto_gaps()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One in-process moto server for the whole session."""
    server, url = start_moto_server()
    yield url
    server.stop()


def _post(url: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@dataclass
class Aws:
    """What a test needs: env, settings, boto3 clients on moto, helpers."""

    url: str
    env: dict[str, str]
    monkeypatch: pytest.MonkeyPatch

    def setenv(self, name: str, value: str) -> None:
        """Set a variable for this test, in os.environ and in ``env``."""
        self.env[name] = value
        self.monkeypatch.setenv(name, value)

    def settings(self) -> Any:
        from ecompipe.config import load_settings

        return load_settings(env=self.env)

    def client(self, service: str) -> Any:
        import boto3  # noqa: TID251 (tests)

        return boto3.client(service, region_name=REGION, endpoint_url=self.url)

    def clients(self) -> Any:
        from ecompipe.stores.aws.clients import AwsClients

        return AwsClients(self.settings())

    def put(self, key: str, source: Path | bytes) -> None:
        body = source if isinstance(source, bytes) else source.read_bytes()
        self.client("s3").put_object(Bucket=self.env["BUCKET_NAME"], Key=key, Body=body)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client("s3")
            .get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))

    def land_hand(self) -> None:
        for dataset in ("orders", "order_items", "products"):
            self.put(f"{dataset}/hand {dataset}.csv", HAND / f"{dataset}.csv")

    def subscribe_queue(self) -> str:
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.client("sns").subscribe(
            TopicArn=self.env["SNS_TOPIC_ARN"], Protocol="sqs", Endpoint=arn
        )
        return str(url)

    def messages(self, queue_url: str) -> list[dict[str, Any]]:
        got = self.client("sqs").receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """A clean moto account with the buckets, tables and topic bootstrap creates."""
    return clean_account(moto_url, monkeypatch)


def clean_account(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """Reset the moto server; bootstrap's resources, and the env the original system uses
    (set through ``monkeypatch``: undo it to restore the environment)."""
    _post(f"{moto_url}/moto-api/reset")
    _post(f"{moto_url}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_url,
        "BUCKET_NAME": "ecs-data-landing",
        "S3_ARCHIVE_BUCKET": "ecs-data-archive",
        "ECOMPIPE_LOCK_WAIT_SECONDS": "20",
    }
    aws = Aws(moto_url, {}, monkeypatch)
    for name, value in env.items():
        aws.setenv(name, value)
    from ecompipe.aws.cli import bootstrap_resources

    lines = bootstrap_resources(aws.settings(), aws.clients())
    aws.setenv("SNS_TOPIC_ARN", lines[-1].split("=", 1)[1])
    return aws
