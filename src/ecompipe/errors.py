"""One error hierarchy for the whole package.

Every error a user can cause derives from :class:`EcompipeError` and carries a message written
for that user (what is wrong, what to do). Two marker mixins say whether retrying can help: the
local runner, the AWS task entry points and the Step Functions Retry/Catch blocks all ask the
class, never the message.
"""

from __future__ import annotations


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


class WorkspaceError(TerminalError):
    """The workspace is missing or damaged."""

    code = "Ecompipe.WorkspaceError"


class IncompleteSetError(TerminalError):
    """Not every dataset has a file in landing, so there is nothing to run."""

    code = "Ecompipe.IncompleteSet"

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__("no complete set in landing: missing " + ", ".join(missing))


class DataRejectedError(TerminalError):
    """Validation rejected the batch: no dataset kept a usable file."""

    code = "Ecompipe.DataRejected"


class LockBusyError(TransientError):
    """Every lock slot is held by a live holder."""

    code = "Ecompipe.LockBusy"


class StoreError(TransientError):
    """A storage backend failed in a way that may pass (I/O, throttling, network)."""

    code = "Ecompipe.StoreError"


class EngineError(TerminalError):
    """The engine failed on the data in a way that retrying will not fix."""

    code = "Ecompipe.EngineError"
