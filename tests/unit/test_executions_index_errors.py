"""What `ecompipe executions --backend aws` says when AWS refuses to read the records' index
(ValidationException; moto answers another code, tested in tests/aws): missing on a table an
older version made, or still being built after a stack update."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from ecompipe.errors import StoreError
from ecompipe.stores.aws.dynamodb import DynamoDBExecutionLog

pytestmark = [pytest.mark.fast, pytest.mark.aws]


class Refusing:
    """A DynamoDB client whose index queries fail with ValidationException ``message``."""

    def __init__(self, message: str) -> None:
        self.message = message

    def get_paginator(self, name: str) -> Any:
        assert name == "query"
        return self

    def paginate(self, **kwargs: Any) -> Any:
        error = {"Error": {"Code": "ValidationException", "Message": self.message}}
        raise ClientError(error, "Query")


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ("The table does not have the specified index: by_seq", "run `ecompipe aws bootstrap`"),
        ("Cannot read from backfilling global secondary index: by_seq", "still being built"),
    ],
    ids=["missing", "backfilling"],
)
def test_an_unreadable_index_says_what_to_do(message: str, says: str) -> None:
    log = DynamoDBExecutionLog(Refusing(message), "ecompipe_executions")
    with pytest.raises(StoreError, match=says) as raised:
        log.recent()
    assert "ecompipe_executions" in str(raised.value)
