"""AWS backend wiring: boto3 clients (imported lazily) and the five ports on S3, DynamoDB, SNS.

One module per adapter: aws_s3.py (object store), aws_dynamodb.py (lock, metrics, execution
log), aws_sns.py (notifier). Every adapter gets its client passed in, so tests point them at
a moto server. Clients read boto3's standard configuration, AWS_ENDPOINT_URL included.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecompipe import extras
from ecompipe.config import Settings
from ecompipe.errors import ConfigError, PermanentStoreError, StoreError, TerminalError
from ecompipe.stores.base import Backend, Notifier
from ecompipe.workflow import critical_lock_id
from ecompipe.workspace import Workspace

#: AWS error codes that may pass when retried (throttling, server side trouble).
TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "TransactionConflictException",
    }
)
#: Codes that mean a bucket, table or topic is missing: bootstrap or deploy first.
MISSING_CODES = frozenset(
    {"NoSuchBucket", "ResourceNotFoundException", "NotFound", "NotFoundException"}
)
#: Codes that mean we may not do it (permissions, credentials, a disabled account): no retry
#: can change them, an operator must.
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AllAccessDisabled",
        "AuthorizationError",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "AccountProblem",
        "KMS.AccessDeniedException",
    }
)


def translate(exc: Exception, doing: str) -> Exception:
    """A botocore error as an EcompipeError: transient (retry), permanent (access denied,
    bad credentials: an operator must act), missing (ConfigError), or terminal."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        ParamValidationError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = exc.response.get("Error", {}).get("Message")
        if code in TRANSIENT_CODES or status >= 500:
            return StoreError(f"{doing}: {code or status} (transient; retried)")
        if code in MISSING_CODES:
            return ConfigError(
                [f"{doing}: {code}: run `ecompipe aws bootstrap` or deploy the stack first"]
            )
        if code in DENIED_CODES:
            return PermanentStoreError(
                f"{doing}: {code}: {message}; check the credentials and the role's permissions"
            )
        return TerminalError(f"{doing}: {code}: {message}")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return ConfigError([f"{doing}: {exc}: configure AWS credentials (or the task's role)"])
    if isinstance(exc, ParamValidationError):
        return TerminalError(f"{doing}: {exc}")
    if isinstance(exc, BotoCoreError):
        # Connection errors, read timeouts: the network, worth another try.
        return StoreError(f"{doing}: {exc}")
    return exc


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def new_client(service: str, settings: Settings) -> Any:
    """A boto3 client for ``service`` in AWS_REGION (AWS_ENDPOINT_URL honoured by boto3)."""
    extras.require(extras.AWS)
    import boto3  # noqa: TID251 (lazy: only the aws backend gets here)
    from botocore.config import Config

    # botocore owns the retries of ONE request (throttling, 5xx, connection errors): standard
    # mode, 4 attempts, full-jitter backoff capped at 20 s. What it gives up on, translate()
    # classes for the state's owner (Step Functions or the local runner), which retries the
    # whole state: see docs/AWS.md, "Who retries what".
    config = Config(retries={"mode": "standard", "max_attempts": 4})
    return boto3.session.Session().client(service, region_name=settings.aws_region, config=config)


@dataclass
class AwsClients:
    """Clients created on first use, shared by the adapters of one backend."""

    settings: Settings
    made: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every AWS path builds these first: a missing boto3 is the first thing it reports,
        # before settings that would only matter once boto3 is there.
        extras.require(extras.AWS)

    def __call__(self, service: str) -> Any:
        if service not in self.made:
            self.made[service] = new_client(service, self.settings)
        return self.made[service]


def require_settings(settings: Settings, *names: str) -> None:
    """Raise one ConfigError listing every required AWS setting that is empty."""
    env = {"bucket_name": "BUCKET_NAME", "sns_topic_arn": "SNS_TOPIC_ARN"}
    env.update(state_machine_arn="STATE_MACHINE_ARN")
    missing = [n for n in names if not getattr(settings, n)]
    if missing:
        raise ConfigError(
            [
                f"{env.get(n, n.upper())} is not set (needed by the aws backend); "
                "`ecompipe aws bootstrap` prints the values to export"
                for n in missing
            ]
        )


def open_aws_backend(
    settings: Settings,
    workspace: Workspace,
    quiet: bool,
    clients: AwsClients | None = None,
    notifier: Notifier | None = None,
    work_dir: Path | None = None,
) -> Backend:
    """The five ports on S3, DynamoDB and SNS. ``workspace`` is unused: AWS holds the state.

    Local working files (downloads for the engine, staged and curated Parquet) go to a
    temporary folder, ``work_dir`` when given.
    """
    from ecompipe.stores.aws_dynamodb import (
        DynamoDBExecutionLog,
        DynamoDBLock,
        DynamoDBMetricsStore,
    )
    from ecompipe.stores.aws_s3 import S3ObjectStore
    from ecompipe.stores.aws_sns import SNSNotifier

    del workspace
    clients = clients or AwsClients(settings)
    require_settings(settings, "bucket_name")
    if notifier is None:
        require_settings(settings, "sns_topic_arn")
    root = work_dir or Path(tempfile.mkdtemp(prefix="ecompipe-aws-"))
    ddb = clients("dynamodb")

    def new_lock() -> DynamoDBLock:
        return DynamoDBLock(ddb, settings.lock_table, settings.lock_id, settings.lock_limit)

    def new_critical_lock() -> DynamoDBLock:
        # Limit 1 whatever the lock limit: claiming and transforming never interleave.
        return DynamoDBLock(ddb, settings.lock_table, critical_lock_id(settings.lock_id), 1)

    return Backend(
        store=S3ObjectStore(clients("s3"), settings, root),
        lock=new_lock(),
        metrics=DynamoDBMetricsStore(
            ddb,
            settings.order_metrics_table,
            settings.category_metrics_table,
            settings.dynamodb_batch_size,
            settings.dynamodb_max_retries,
        ),
        log=DynamoDBExecutionLog(ddb, settings.executions_table),
        notifier=notifier
        or SNSNotifier(clients("sns"), settings.sns_topic_arn, sys.stderr, quiet=quiet),
        new_lock=new_lock,
        new_critical_lock=new_critical_lock,
    )
