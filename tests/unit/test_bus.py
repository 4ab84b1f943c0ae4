"""The bus decides a command again when it lost a race, unless it named the version it was decided on."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dispatch.core.bus import ATTEMPTS, MessageBus
from dispatch.core.errors import StaleVersion


@dataclass(frozen=True)
class Touch:
    case_id: str
    expected_version: int | None = None


@dataclass(frozen=True)
class Ping:
    """A command with no version at all."""


class Racer:
    """A handler that loses the race `losses` times, then decides on the version it reads."""

    def __init__(self, losses: int) -> None:
        self.losses, self.calls = losses, 0

    async def __call__(self, cmd: object, *, store: object) -> int:
        self.calls += 1
        if self.calls <= self.losses:
            raise StaleVersion("case-1", self.calls - 1, self.calls)
        return self.calls


async def test_a_command_without_a_version_is_decided_again_on_the_newer_state() -> None:
    racer = Racer(losses=2)
    bus = MessageBus({Touch: racer, Ping: Racer(losses=1)}, {"store": object()})
    assert await bus.handle(Touch("1")) == 3
    assert await bus.handle(Ping()) == 2


async def test_a_command_decided_on_a_version_gets_the_conflict_back() -> None:
    racer = Racer(losses=1)
    bus = MessageBus({Touch: racer}, {"store": object()})
    with pytest.raises(StaleVersion):
        await bus.handle(Touch("1", expected_version=0))
    assert racer.calls == 1


async def test_a_command_that_keeps_losing_gives_up_after_the_attempts() -> None:
    racer = Racer(losses=ATTEMPTS)
    bus = MessageBus({Touch: racer}, {"store": object()})
    with pytest.raises(StaleVersion):
        await bus.handle(Touch("1"))
    assert racer.calls == ATTEMPTS
