"""Errors of the domain; `DispatchError` is the package root."""

from __future__ import annotations

import math


class DispatchError(Exception):
    """Root of every error the domain raises."""

    code = "dispatch_error"


class InvalidCommand(DispatchError):
    """A command's content breaks a rule (missing field, bad value)."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownAssignee(InvalidCommand):
    """A dispatch names a unit or provider that is not in its register."""

    code = "unknown_assignee"


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


class AgentNotPresent(NotAllowed):
    """A call-back task given by hand to an agent who is not present (offline, or silent past the
    heartbeat): it would never be called back there, and the assigner deals it out again at once."""

    code = "agent_not_present"


class KeyReused(NotAllowed):
    """A client's idempotency key (a channel's message or event id, an `Idempotency-Key`) came
    again with other content: an earlier, different request, not a retry of it."""

    code = "idempotency_conflict"


class InvalidConfig(ValueError):
    """A configuration value breaks its type's rule; `field` names the attribute.

    Not a `DispatchError`: configuration is checked once at start, so it never
    reaches a caller as a 4xx. The settings module names the variable it came from.
    """

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(rule)
        self.field = field


def check_number(field: str, value: float, low: float, high: float = math.inf, *,
                 above_low: bool = False, whole: bool = False) -> None:
    """Raise `InvalidConfig` unless `value` is a finite number from `low` (or above it) to `high`."""
    kind = "a whole number" if whole else "a number"
    if math.isfinite(high):
        rule = f"must be {kind} from {low:g} to {high:g}"
    else:
        rule = f"must be {kind} {'>' if above_low else '>='} {low:g}"
    fits = isinstance(value, int) if whole else isinstance(value, int | float)
    if not fits or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidConfig(field, rule)
    if value > high or value < low or (above_low and value == low):
        raise InvalidConfig(field, rule)
