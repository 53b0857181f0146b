"""The raised conditions on DynamoDB (the Conditions port): items ``pk CONDITION``,
``sk <condition id>`` in EXECUTIONS_TABLE, so no new table is needed. A conditional put
makes ``raise_once`` atomic: two scheduled checks running at once notify once."""

from __future__ import annotations

import json
import time
from typing import Any

from ecompipe.stores.aws.clients import error_code, translate
from ecompipe.stores.base import RaisedCondition

#: The partition of the raised conditions: one Query reads them all.
PARTITION = "CONDITION"


class DynamoDBConditions:
    """Raised conditions as items of the execution log's table."""

    def __init__(self, client: Any, table: str) -> None:
        self.ddb, self.table = client, table

    def raise_once(self, condition_id: str, detail: dict[str, Any]) -> bool:
        """Put the condition's item unless it exists; True when this call put it."""
        item = {
            "pk": {"S": PARTITION},
            "sk": {"S": condition_id},
            "raised_at": {"N": repr(time.time())},
            "detail": {"S": json.dumps(detail, default=str)},
        }
        try:
            self.ddb.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise translate(exc, f"raising condition {condition_id}") from None
        return True

    def raised(self) -> list[RaisedCondition]:
        """Every raised condition, oldest first."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {}
        try:
            while True:
                page = self.ddb.query(
                    TableName=self.table,
                    ConsistentRead=True,
                    KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": {"S": PARTITION}},
                    **kwargs,
                )
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
        except Exception as exc:
            raise translate(exc, "reading the raised conditions") from None
        found = [
            RaisedCondition(i["sk"]["S"], float(i["raised_at"]["N"]), json.loads(i["detail"]["S"]))
            for i in items
        ]
        return sorted(found, key=lambda c: c.raised_at)

    def clear(self, condition_id: str) -> None:
        """Delete the condition's item, if there."""
        try:
            self.ddb.delete_item(
                TableName=self.table, Key={"pk": {"S": PARTITION}, "sk": {"S": condition_id}}
            )
        except Exception as exc:
            raise translate(exc, f"clearing condition {condition_id}") from None
