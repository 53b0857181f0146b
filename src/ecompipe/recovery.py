"""Closing executions whose Step Functions execution ended without finishing them.

Two places find them: the trigger Lambda, told by EventBridge that an execution was stopped,
timed out or failed; and the ValidateFiles task, which closes RUNNING records whose holder no
longer holds the lock (their execution ended and nobody said so). Both close them the same
way: the record becomes FAILED with the reason, and its files, still in landing on S3 (a claim
moves nothing there), become candidates again.
"""

from __future__ import annotations

from ecompipe.stores.base import ExecutionLog
from ecompipe.workflow import State, Status

#: The execution's state machine ended without finishing it (retries of a transient error
#: ran out, or it ended while nobody was told).
ABANDONED = "Ecompipe.Abandoned"
#: Its Step Functions execution was stopped, timed out, or failed outside a Catch.
STOPPED = "Ecompipe.Stopped"


def close_running(log: ExecutionLog, execution_id: str, error_type: str, message: str) -> bool:
    """Close the execution as FAILED when it is still RUNNING; False when there was nothing
    to close (no record, or already finished), so a repeated call changes nothing."""
    record = log.get(execution_id)
    if record is None or record.status != Status.RUNNING:
        return False
    error = {"type": error_type, "message": message}
    log.record_event(execution_id, State.FAILURE, "closed", {"error": error})
    log.finish(execution_id, Status.FAILED, {"error": error})
    return True


def abandon_orphans(log: ExecutionLog, live_holders: set[str], keep: str) -> list[str]:
    """Close every RUNNING execution but ``keep`` whose holder is not among the live lock
    holders; returns their ids."""
    return [
        record.execution_id
        for record in log.unfinished()
        if record.execution_id != keep
        and record.holder not in live_holders
        and close_running(log, record.execution_id, ABANDONED, "its run ended unfinished")
    ]
