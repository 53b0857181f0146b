"""The Step Functions definition (Amazon States Language), generated from workflow.WORKFLOW.

What each kind of state becomes:
- AcquireLock: a Lambda task (lambda_handler.acquire_lock) that takes a lease for this
  execution (its name is the holder) with DynamoDBLock.try_acquire, the rule every Python
  acquirer follows: expired holders are reaped first, then a conditional UpdateItem takes a
  free slot OR succeeds when the execution already holds one (a retried acquire that had
  succeeded does not wait on itself). Busy raises LockBusyError, retried with the workflow's
  LOCK_RETRY; a lease left by a stopped execution expires and the next acquire reaps it, so
  nothing ever needs a manual reset (and the EventBridge rule releases it at once).
- a state with work (ValidateFiles, TransformData, ArchiveFiles): ecs:runTask.waitForTaskToken
  running ``ecompipe task <name>`` in the one task image, with HeartbeatSeconds (the task
  sends heartbeats); Retry on the transient error codes (errors.TransientError family),
  Catch everything else into the failure branch.
- the choice: on the validate task's ``usable``; a set another execution already took ends
  in NothingToDo (release, no notification).
- the two endings release the lock, then publish the notification (SNS). The failure
  ending is reached from every Catch, so the lock is always released.

Names in ``${...}`` are filled by CloudFormation's DefinitionSubstitutions (deploy/template.yaml).
"""

from __future__ import annotations

import json
from typing import Any

from ecompipe.errors import EcompipeError, LockBusyError, TransientError
from ecompipe.workflow import (
    LOCK_RETRY,
    SPECS,
    START,
    TRANSIENT_RETRY,
    WORKFLOW,
    RetryPolicy,
    State,
)

#: Lease the state machine takes; a task renews it while it works. Long enough to cover
#: the gap between two tasks (a Fargate task can take a minute or two to start).
SFN_LEASE_SECONDS = 900
#: A task must send a heartbeat this often (it sends one every HEARTBEAT_EVERY seconds).
HEARTBEAT_SECONDS = 300
HEARTBEAT_EVERY = 60
TASK_TIMEOUT_SECONDS = 4 * 3600
NOTHING_TO_DO = "NothingToDo"
EXECUTION_FAILED = "ExecutionFailed"
#: The error of that Fail state: the execution went through our failure ending (released,
#: notified), which the Lambda tells apart from an execution stopped from outside.
EXECUTION_FAILED_ERROR = "Ecompipe.ExecutionFailed"

#: The substitutions the template provides.
SUBSTITUTIONS = (
    "LockTable",
    "LockId",
    "LockFunctionArn",
    "ClusterArn",
    "TaskDefinitionArn",
    "ContainerName",
    "SubnetIds",
    "SecurityGroupIds",
    "AssignPublicIp",
    "TopicArn",
)

DYNAMODB_TRANSIENT = [
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.ThrottlingException",
    "DynamoDB.RequestLimitExceeded",
    "DynamoDB.InternalServerErrorException",
]


#: Lambda could not run the function (throttled, service trouble): the invoke may pass later.
LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


def _family(cls: type[EcompipeError]) -> list[type[EcompipeError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_family(sub))
    return found


def transient_codes() -> list[str]:
    """Error names the tasks send for errors worth retrying (TransientError and subclasses)."""
    return sorted({c.code for c in _family(TransientError)})


def lambda_error_name(cls: type[Exception]) -> str:
    """How Step Functions names an exception a Python Lambda raised: the Lambda runtime
    reports the exception's class name as ``errorType``, which becomes the error name."""
    return cls.__name__


def lambda_transient_names() -> list[str]:
    """Error names of a Lambda task worth retrying: the TransientError family raised by our
    handler (the lock being busy has its own policy) and Lambda's own service failures."""
    ours = {lambda_error_name(c) for c in _family(TransientError) if c is not LockBusyError}
    return sorted(ours) + LAMBDA_TRANSIENT


def _retry(errors: list[str], policy: RetryPolicy) -> dict[str, Any]:
    return {
        "ErrorEquals": errors,
        "IntervalSeconds": max(1, int(policy.interval_seconds)),
        "MaxAttempts": policy.max_attempts,
        "BackoffRate": policy.backoff_rate,
        "MaxDelaySeconds": int(policy.max_delay_seconds),
        "JitterStrategy": "FULL",
    }


def _catch() -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": State.FAILURE}]


def _lock_key() -> dict[str, Any]:
    return {"TableName": "${LockTable}", "Key": {"LockId": {"S": "${LockId}"}}}


def acquire_state(next_state: str) -> dict[str, Any]:
    """AcquireLock: the lock Lambda takes a lease for this execution, or raises busy."""
    return {
        "Type": "Task",
        "Comment": SPECS[State.ACQUIRE_LOCK].doc,
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": "${LockFunctionArn}",
            "Payload": {"execution_name.$": "$$.Execution.Name"},
        },
        "ResultPath": None,
        "Retry": [
            _retry([lambda_error_name(LockBusyError)], LOCK_RETRY),
            _retry(lambda_transient_names(), TRANSIENT_RETRY),
        ],
        "Catch": _catch(),
        "Next": next_state,
    }


def release_state(next_state: str | None = None) -> dict[str, Any]:
    """Remove the execution from the holders map (a missing holder is no error)."""
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::dynamodb:updateItem",
        "Parameters": {
            **_lock_key(),
            "UpdateExpression": "REMOVE holders.#me",
            "ExpressionAttributeNames": {"#me.$": "$$.Execution.Name"},
        },
        "ResultPath": None,
        "Retry": [_retry([*DYNAMODB_TRANSIENT, "States.TaskFailed"], RetryPolicy())],
    }
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def task_state(name: State, worker: str, next_state: str) -> dict[str, Any]:
    """An ECS task running ``ecompipe task <worker>`` that reports with its task token."""
    spec = SPECS[name]
    retry = spec.retry or RetryPolicy()
    return {
        "Type": "Task",
        "Comment": spec.doc,
        "Resource": "arn:aws:states:::ecs:runTask.waitForTaskToken",
        "HeartbeatSeconds": HEARTBEAT_SECONDS,
        "TimeoutSeconds": TASK_TIMEOUT_SECONDS,
        "Parameters": {
            "Cluster": "${ClusterArn}",
            "TaskDefinition": "${TaskDefinitionArn}",
            "LaunchType": "FARGATE",
            "NetworkConfiguration": {
                "AwsvpcConfiguration": {
                    "Subnets.$": "States.StringSplit('${SubnetIds}', ',')",
                    "SecurityGroups.$": "States.StringSplit('${SecurityGroupIds}', ',')",
                    "AssignPublicIp": "${AssignPublicIp}",
                }
            },
            "Overrides": {
                "ContainerOverrides": [
                    {
                        "Name": "${ContainerName}",
                        "Command": ["task", worker],
                        "Environment": [
                            {"Name": "TASK_TOKEN", "Value.$": "$$.Task.Token"},
                            {"Name": "EXECUTION_ID", "Value.$": "$$.Execution.Name"},
                        ],
                    }
                ]
            },
        },
        "ResultPath": "$.result",
        "Retry": [
            # A heartbeat timeout means the container died: every task is idempotent.
            _retry([*transient_codes(), "States.HeartbeatTimeout", "ECS.AmazonECSException"], retry)
        ],
        "Catch": _catch(),
        "Next": next_state,
    }


def _publish(message_path: str, status: str, next_state: str | None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish",
        "Parameters": {
            "TopicArn": "${TopicArn}",
            "Subject.$": f"States.Format('ecompipe {{}} {status}', $$.Execution.Name)",
            "Message.$": f"States.JsonToString({message_path})",
        },
        "ResultPath": None,
        "Retry": [_retry(["States.TaskFailed"], RetryPolicy())],
    }
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": None, "Next": next_state}]
    return state


def endings() -> dict[str, Any]:
    """ReleaseLockAndNotify{Success,Failure}: release first (so nothing can skip it; a
    release that keeps failing still goes on, the lease then simply expires), then publish."""
    notify_success, notify_failure = "NotifySuccess", "NotifyFailure"

    def release_then(name: State, notify: str) -> dict[str, Any]:
        state = release_state(notify)
        state["Comment"] = SPECS[name].doc
        state["Catch"] = [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.release_error", "Next": notify}
        ]
        return state

    return {
        State.SUCCESS: release_then(State.SUCCESS, notify_success),
        notify_success: _publish("$.result.notification", "SUCCEEDED", None),
        State.FAILURE: release_then(State.FAILURE, notify_failure),
        notify_failure: {
            "Type": "Choice",
            "Comment": "A caught error, or validation that rejected every file.",
            "Choices": [{"Variable": "$.error", "IsPresent": True, "Next": "PublishError"}],
            "Default": "PublishRejected",
        },
        "PublishError": _publish("$.error", "FAILED", EXECUTION_FAILED),
        "PublishRejected": _publish("$.result.notification", "FAILED", EXECUTION_FAILED),
    }


def definition() -> dict[str, Any]:
    """The whole state machine as a dict."""
    states: dict[str, Any] = {}
    for spec in WORKFLOW:
        if spec.name == State.ACQUIRE_LOCK:
            assert spec.next is not None
            states[spec.name] = acquire_state(spec.next)
        elif spec.kind == "task":
            assert spec.next is not None
            assert spec.worker is not None, f"{spec.name} names no worker"
            states[spec.name] = task_state(spec.name, spec.worker, spec.next)
        elif spec.kind == "choice":
            assert spec.if_usable is not None and spec.next is not None
            states[spec.name] = {
                "Type": "Choice",
                "Comment": spec.doc,
                "Choices": [
                    {"Variable": "$.result.skipped", "IsPresent": True, "Next": NOTHING_TO_DO},
                    {"Variable": "$.result.usable", "BooleanEquals": True, "Next": spec.if_usable},
                ],
                "Default": spec.next,
            }
        else:
            continue  # the endings come next, release then notify
    states.update(endings())
    states[NOTHING_TO_DO] = {
        **release_state(),
        "Comment": "Another execution already took these files: release, no notification.",
    }
    states[EXECUTION_FAILED] = {
        "Type": "Fail",
        "Error": EXECUTION_FAILED_ERROR,
        "Cause": "see the notification and the execution history",
    }
    return {
        "Comment": "ecompipe: validate e-commerce CSV batches, compute daily KPIs (generated "
        "from ecompipe.workflow by `ecompipe aws state-machine`; do not edit by hand)",
        "StartAt": START.value,
        "States": states,
    }


def render() -> str:
    """The definition as the JSON text committed in deploy/stepfunction.json."""
    return json.dumps(definition(), indent=2) + "\n"


def substitute(text: str, values: dict[str, str]) -> str:
    """Fill ``${Name}`` placeholders as CloudFormation's DefinitionSubstitutions does."""
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text
