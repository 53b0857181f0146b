"""SNS notifier (SNS_TOPIC_ARN).

On Step Functions the state machine publishes (its sns:publish states); the ECS tasks collect
their message (stores.memory.CollectingNotifier) and hand it over in their result, so every
notification is sent exactly by one place.
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from ecompipe.stores.aws.clients import translate


def subject_line(subject: str) -> str:
    """An SNS Subject: ASCII, one line, at most 100 characters."""
    line = " ".join(subject.split()).encode("ascii", "replace").decode("ascii")
    return line if len(line) <= 100 else line[:97] + "..."


class SNSNotifier:
    """Publishes each notification as JSON to the topic; one line on the console too."""

    def __init__(
        self, client: Any, topic_arn: str, console: TextIO | None = None, quiet: bool = False
    ) -> None:
        self.sns, self.topic_arn = client, topic_arn
        self._console, self._quiet = console, quiet

    def notify(self, message: dict[str, Any]) -> None:
        """Publish one message (Subject: its subject line; Message: the JSON document)."""
        message = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **message}
        # The severity as an attribute too: a subscription's filter policy can pick by it.
        attributes = {}
        if message.get("severity"):
            attributes["severity"] = {"DataType": "String", "StringValue": str(message["severity"])}
        try:
            self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=subject_line(str(message.get("subject", "ecompipe"))),
                Message=json.dumps(message, default=str, sort_keys=True),
                MessageAttributes=attributes,
            )
        except Exception as exc:
            raise translate(exc, f"publishing to {self.topic_arn}") from None
        if not self._quiet and self._console is not None:
            print(f"ecompipe: {message.get('subject', '')}", file=self._console)
