"""Errors of the domain; `DispatchError` is the package root."""

from __future__ import annotations


class DispatchError(Exception):
    """Root of every error the domain raises."""

    code = "dispatch_error"


class InvalidCommand(DispatchError):
    """A command's content breaks a rule (missing field, bad value)."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DispatchError):
    """The case, task, agent or provider named does not exist."""

    code = "not_found"


class StaleVersion(DispatchError):
    """The command was decided on an older version than the stream has now."""

    code = "stale_version"

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"{stream}: expected version {expected}, actual {actual}")
        self.stream = stream
        self.expected = expected
        self.actual = actual


class NotAllowed(DispatchError):
    """The action is not allowed in the aggregate's current state or for this actor."""

    code = "not_allowed"
