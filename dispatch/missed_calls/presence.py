"""Agent presence changes on record: who came online, went busy or left, and when.

The live board (who is present now) is kept outside the log with a heartbeat
TTL; the call-back assigner reads it. A change of an agent's status is
recorded here for audit, on the stream `presence-<agent_id>`.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.messages import Command, Event, event, metadata, to_new_event
from eventstore import ANY, EventStore

OFFLINE = "offline"


@event
@dataclass(frozen=True, slots=True)
class AgentPresenceChanged(Event):
    """An agent's status changed (`online`, `busy`, `offline`) from `previous`."""

    agent_id: str
    status: str
    previous: str


@dataclass(frozen=True, slots=True)
class RecordPresence(Command):
    """An agent's status was set; `previous` is its live status before (None: absent)."""

    agent_id: str
    status: str
    previous: str | None
    actor: str


async def record_presence(cmd: RecordPresence, *, store: EventStore, clock: Clock) -> bool:
    """Record the change, if the status did change; answer whether it did."""
    previous = cmd.previous or OFFLINE
    if previous == cmd.status:
        return False
    evt = AgentPresenceChanged(cmd.agent_id, cmd.status, previous)
    meta = metadata(actor=cmd.actor, received_at=clock.now())
    await store.append(f"presence-{cmd.agent_id}", [to_new_event(evt, meta)], ANY)
    return True


HANDLERS: dict[type, Handler] = {RecordPresence: record_presence}
