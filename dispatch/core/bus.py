"""The message bus: one registry of command handlers, dependencies injected by name.

A handler is `async def handle(cmd, *, store, clock, ...)`; the bus passes the
keyword arguments the handler declares, from the dependencies it was built with.

A command that names no `expected_version` asks for a decision on the stream
as it is: when another writer got there between the handler's read and its
append (`StaleVersion`), the bus runs the handler again on the newer state, up
to `ATTEMPTS` times. A command that names the version it was decided on (an
agent's click on a case she saw) gets the conflict back instead (409).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from dispatch.core.errors import DispatchError, StaleVersion

log = structlog.get_logger(__name__)

Handler = Callable[..., Awaitable[object]]
"""`async def handle(cmd, *, store, clock, ...)`: keyword-only parameters name its dependencies."""
Send = Callable[[object], Awaitable[object]]
"""How policies and workers send a command: the bus's `handle`."""
ATTEMPTS = 5
"""How often a command without an expected version is decided again after losing a race."""


class UnknownCommand(DispatchError):
    """No handler is registered for a command type."""


class MessageBus:
    """Sends each command to its one handler with the dependencies it asks for."""

    def __init__(self, handlers: Mapping[type, Handler], dependencies: Mapping[str, object]) -> None:
        self._handlers = dict(handlers)
        self._deps = dict(dependencies)
        self._kwargs: dict[type, tuple[str, ...]] = {}

    def provide(self, name: str, value: object) -> None:
        """Add or replace a dependency (for adapters created after the bus)."""
        self._deps[name] = value

    def _names(self, cmd_type: type, handler: Handler) -> tuple[str, ...]:
        names = self._kwargs.get(cmd_type)
        if names is None:
            params = inspect.signature(handler).parameters.values()
            # a keyword-only parameter with a default is optional: given when provided
            names = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY
                          and (p.name in self._deps or p.default is inspect.Parameter.empty))
            missing = [n for n in names if n not in self._deps]
            if missing:
                raise TypeError(f"{handler.__qualname__} needs {missing}, not provided")
            self._kwargs[cmd_type] = names
        return names

    async def handle(self, cmd: object) -> Any:
        """Run the command's handler and return what it returns; errors propagate.

        The result is typed by the command's handler, which the caller knows.
        """
        handler = self._handlers.get(type(cmd))
        if handler is None:
            raise UnknownCommand(f"no handler for {type(cmd).__name__}")
        kwargs = {n: self._deps[n] for n in self._names(type(cmd), handler)}
        attempt = 1
        while True:
            try:
                return await handler(cmd, **kwargs)
            except StaleVersion as exc:
                if getattr(cmd, "expected_version", None) is not None or attempt == ATTEMPTS:
                    raise
                log.info("command_decided_again", command=type(cmd).__name__, stream=exc.stream,
                         attempt=attempt)
                attempt += 1
