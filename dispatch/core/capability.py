"""The capability type: what one domain capability adds to a running process.

Each capability package exports one `Capability` (its command handlers and the
factories of its projections, reactors, workers and listeners); the gateway's
bootstrap imports those objects by name and wires them. A factory takes the
narrow dependency object the capability declares (`Deps`, or a Protocol
extending it); the gateway's services object satisfies every one of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Never, Protocol, TypeVar

import asyncpg

from dispatch.core.bus import Handler, MessageBus
from dispatch.core.clock import Clock
from dispatch.core.messages import Command
from dispatch.core.texts import Texts
from eventstore.postgres import PostgresEventStore
from eventstore.subscriptions import Change, Projection, Reactor

Task = Callable[[], Awaitable[None]]
"""A long-running background task (a worker or a listener)."""


class SettingsView(Protocol):
    """The configuration, as hooks see it: a capability that reads a section narrows this
    in the dependency protocol it declares (e.g. `settings.sla: SlaConfig` for cases)."""


class Deps(Protocol):
    """What capability hooks may use of the process they run in."""

    @property
    def store(self) -> PostgresEventStore:
        """The event store."""
        ...

    @property
    def pool(self) -> asyncpg.Pool:
        """The PostgreSQL pool of read models and work queues."""
        ...

    @property
    def clock(self) -> Clock:
        """The clock every decision takes the time from."""
        ...

    @property
    def bus(self) -> MessageBus:
        """The message bus policies and workers send their commands through."""
        ...

    @property
    def texts(self) -> Texts:
        """The messages people are sent (SMS, WeChat), in the configured language."""
        ...

    @property
    def settings(self) -> SettingsView:
        """The configuration."""
        ...

    async def publish(self, changes: Sequence[Change]) -> None:
        """Fan read-model changes out to live views."""
        ...


D = TypeVar("D", contravariant=True)
T = TypeVar("T")

Factory = Callable[[D], Sequence[T]]
"""Makes a capability's projections, reactors or tasks from its dependencies."""


@dataclass(frozen=True, slots=True)
class Capability(Generic[D]):
    """One capability's handlers, and the factories of its background parts.

    `D` is the dependency object its factories take. Projections, reactors and
    `workers` run in the `worker` role; `listeners` (channel listeners and the
    in-process indexes views read) in the `gateway` role. A new part joins by
    one factory in the matching tuple.
    """

    name: str
    handlers: Mapping[type[Command], Handler] = field(default_factory=dict)
    projections: tuple[Factory[D, Projection], ...] = ()
    reactors: tuple[Factory[D, Reactor], ...] = ()
    workers: tuple[Factory[D, Task], ...] = ()
    listeners: tuple[Factory[D, Task], ...] = ()


def build(factories: Iterable[Factory[D, T]], deps: D) -> list[T]:
    """Everything the given factories make from `deps`, in order."""
    return [made for factory in factories for made in factory(deps)]


def collect_handlers(capabilities: Iterable[Capability[Never]]) -> dict[type[Command], Handler]:
    """Merge the handlers of the given capabilities; a command has exactly one."""
    handlers: dict[type[Command], Handler] = {}
    for capability in capabilities:
        for cmd_type, handler in capability.handlers.items():
            if cmd_type in handlers:
                raise TypeError(f"two handlers for {cmd_type.__name__}")
            handlers[cmd_type] = handler
    return handlers
