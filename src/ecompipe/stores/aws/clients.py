"""AWS clients (boto3, imported lazily) and what their errors mean to the pipeline.

The leaf of the AWS backend: every adapter (s3.py, dynamodb.py, sns.py) imports this and
nothing else of the backend. Clients read boto3's standard configuration, AWS_ENDPOINT_URL
included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecompipe import extras
from ecompipe.errors import ConfigError, PermanentStoreError, StoreError, TerminalError

if TYPE_CHECKING:
    # Types only: an adapter that needs no settings (sns.py) does not load the config module.
    from ecompipe.config import Settings

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
