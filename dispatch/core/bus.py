"""The message bus: one registry of command handlers, dependencies injected by name.

A handler is `async def handle(cmd, *, store, clock, ...)`; the bus passes the
keyword arguments the handler declares, from the dependencies it was built with.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog

from dispatch.core.errors import DispatchError

log = structlog.get_logger(__name__)

Handler = Callable[..., Awaitable[Any]]

HANDLER_MODULES: tuple[str, ...] = (
    "dispatch.elderly.alarms",
    "dispatch.cases.registration",
    "dispatch.cases.actions",
    "dispatch.supervision.chasing",
    "dispatch.gis.reference",
    "dispatch.intake.calls",
    "dispatch.intake.sms",
    "dispatch.intake.wechat",
    "dispatch.intake.rejected",
    "dispatch.missed_calls.policy",
    "dispatch.missed_calls.presence",
    "dispatch.notify.outbox",
    "dispatch.linking.clustering",
    "dispatch.linking.incidents",
)
"""Modules that export `HANDLERS: dict[type[Command], Handler]`; one line each."""


class UnknownCommand(DispatchError):
    """No handler is registered for a command type."""


def collect_handlers(modules: Iterable[str] = HANDLER_MODULES) -> dict[type, Handler]:
    """Merge the `HANDLERS` registries of the given modules."""
    handlers: dict[type, Handler] = {}
    for name in modules:
        module = importlib.import_module(name)
        for cmd_type, handler in getattr(module, "HANDLERS", {}).items():
            if cmd_type in handlers:
                raise TypeError(f"two handlers for {cmd_type.__name__}")
            handlers[cmd_type] = handler
    return handlers


class MessageBus:
    """Sends each command to its one handler with the dependencies it asks for."""

    def __init__(self, handlers: Mapping[type, Handler], dependencies: Mapping[str, Any]) -> None:
        self._handlers = dict(handlers)
        self._deps = dict(dependencies)
        self._kwargs: dict[type, tuple[str, ...]] = {}

    def provide(self, name: str, value: Any) -> None:
        """Add or replace a dependency (for adapters created after the bus)."""
        self._deps[name] = value

    def _names(self, cmd_type: type, handler: Handler) -> tuple[str, ...]:
        names = self._kwargs.get(cmd_type)
        if names is None:
            params = inspect.signature(handler).parameters.values()
            names = tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
            missing = [n for n in names if n not in self._deps]
            if missing:
                raise TypeError(f"{handler.__qualname__} needs {missing}, not provided")
            self._kwargs[cmd_type] = names
        return names

    async def handle(self, cmd: object) -> Any:
        """Run the command's handler and return what it returns; errors propagate."""
        handler = self._handlers.get(type(cmd))
        if handler is None:
            raise UnknownCommand(f"no handler for {type(cmd).__name__}")
        kwargs = {n: self._deps[n] for n in self._names(type(cmd), handler)}
        return await handler(cmd, **kwargs)
