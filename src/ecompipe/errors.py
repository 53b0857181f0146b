"""One error hierarchy for the whole package.

Every error a user can cause derives from :class:`EcompipeError` and carries a message written
for that user (what is wrong, what to do). Two marker mixins say whether retrying can help: the
local runner, the AWS task entry points and the Step Functions Retry/Catch blocks all ask the
class, never the message.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence


class EcompipeError(Exception):
    """Base of every error ecompipe raises on purpose."""

    #: Name used for the error in Step Functions (``States`` error matching) and in reports.
    code = "Ecompipe.Error"


class TransientError(EcompipeError):
    """Retrying later may succeed (throttling, network, a busy lock)."""

    code = "Ecompipe.Transient"


class TerminalError(EcompipeError):
    """Retrying cannot help (bad data, bad configuration): fail fast."""

    code = "Ecompipe.Terminal"


class ConfigError(TerminalError):
    """A setting is missing or invalid. ``problems`` holds one line per problem."""

    code = "Ecompipe.ConfigError"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class MissingExtraError(ConfigError):
    """An optional extra (boto3 for AWS, pyspark for Spark) is not installed or not
    importable; the message names the pip command that installs it."""

    code = "Ecompipe.MissingExtra"


class WorkspaceError(TerminalError):
    """The workspace is missing or damaged."""

    code = "Ecompipe.WorkspaceError"


class IncompleteSetError(TerminalError):
    """Not every dataset has a file in landing, so there is nothing to run.

    ``settling`` names files that would complete the set but are still being written
    (changed within the last ``settle_seconds``), each as "<key> (changed N s ago)".
    """

    code = "Ecompipe.IncompleteSet"

    def __init__(self, missing: list[str], settling: Sequence[str] = ()) -> None:
        self.missing = missing
        self.settling = list(settling)
        text = "no complete set in landing: missing " + ", ".join(missing)
        if self.settling:
            text += "; still being written: " + ", ".join(self.settling)
        super().__init__(text)


class ReturnedToLandingError(TerminalError):
    """A claimed file changed after its claim (a writer still held it open), so the
    execution gave its set back to landing untouched: nothing was processed, nothing is lost,
    and the next run takes the files once they are complete."""

    code = "Ecompipe.Returned"


class DataRejectedError(TerminalError):
    """Validation rejected the batch: no dataset kept a usable file."""

    code = "Ecompipe.DataRejected"


class StalledError(TerminalError):
    """An execution was resumed ``max_resumes`` times without a state succeeding."""

    code = "Ecompipe.Stalled"


class LockBusyError(TransientError):
    """Every lock slot is held by a live holder."""

    code = "Ecompipe.LockBusy"


class StoreError(TransientError):
    """A storage backend failed in a way that may pass (I/O, throttling, network)."""

    code = "Ecompipe.StoreError"


class PermanentStoreError(TerminalError):
    """A storage condition that retrying cannot change: refusing to overwrite an object that
    holds other bytes, access denied, a read-only file system. An operator must act."""

    code = "Ecompipe.StorePermanent"


class ResourceError(TransientError):
    """The machine ran short: engine memory, disk, open files, a lost Spark executor.

    Resources are not data: no file ever gets a verdict for it, everything stays for the next
    run, and the message names the setting to change. Transient on AWS (Step Functions
    retries the task); the local runner does not retry it in-process, where the same limits
    would fail the same way, so the run ends with exit 2 and the next run resumes.
    """

    code = "Ecompipe.ResourceExhausted"


class EngineError(TerminalError):
    """The engine failed on the data in a way that retrying will not fix."""

    code = "Ecompipe.EngineError"


#: What to do when the operating system says the machine ran short, by errno.
_RESOURCE_ADVICE = {
    errno.ENOSPC: "free disk space there (or point the workspace at a larger disk)",
    errno.EDQUOT: "free disk space there or raise the disk quota",
    errno.EMFILE: "raise the open-files limit (`ulimit -n`)",
    errno.ENFILE: "raise the system's open-files limit (fs.file-max)",
    errno.ENOMEM: "give the process more memory, or lower ECOMPIPE_DUCKDB_MEMORY_LIMIT",
}
#: The errno values that mean the machine ran short (an engine's error text is matched
#: against their strerror: engines/base.py resource_errno).
RESOURCE_ERRNOS = frozenset(_RESOURCE_ADVICE)
#: Conditions of the file system that retrying cannot change.
_PERMANENT_ADVICE = {
    errno.EACCES: "check the owner and mode of that path",
    errno.EPERM: "check the owner and mode of that path",
    errno.EROFS: "the file system is read-only: remount it read-write",
}


def from_os_error(exc: OSError, doing: str) -> EcompipeError:
    """``exc`` as the error its cause deserves, with what to do: a resource shortage
    (ResourceError), a permanent condition (PermanentStoreError), else a StoreError.

    Never a data verdict: an OSError says something about the machine, not the file's rows.
    """
    where = f" ({exc.filename})" if exc.filename else ""
    what = exc.strerror or str(exc)
    if exc.errno in _RESOURCE_ADVICE:
        return ResourceError(f"{doing}: {what}{where}: {_RESOURCE_ADVICE[exc.errno]}")
    if exc.errno in _PERMANENT_ADVICE:
        return PermanentStoreError(f"{doing}: {what}{where}: {_PERMANENT_ADVICE[exc.errno]}")
    return StoreError(f"{doing}: {what}{where}")
