"""Phone calls as event streams `call-<call_id>` (CTI, Twilio voice, Asterisk AMI).

Every channel adapter turns its wire format into a `RecordCall` command carrying
the normalised contact (with the raw payload); the handler appends one event
per channel event, idempotent on the channel's own key.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.core.bus import Handler
from dispatch.core.errors import InvalidCommand, NotAllowed
from dispatch.core.messages import Command, Event, event, metadata, to_new_event
from dispatch.intake.contact import InboundContact
from eventstore import ANY, AppendResult, EventStore
from eventstore.errors import IdempotencyConflict

CALL_KINDS: tuple[str, ...] = ("offered", "answered", "abandoned", "ended")


@dataclass(frozen=True, slots=True)
class CallEvent(Event):
    """What every call event carries: the call, its queue and agent, the contact."""

    call_id: str
    contact: InboundContact
    queue: str | None = None
    agent: str | None = None
    reason: str | None = None
    recording: str | None = None
    answered: bool = False


@event
@dataclass(frozen=True, slots=True)
class CallOffered(CallEvent):
    """A call arrived and waits in a queue."""


@event
@dataclass(frozen=True, slots=True)
class CallAnswered(CallEvent):
    """An agent (or the IVR) answered the call: the caller got through."""


@event
@dataclass(frozen=True, slots=True)
class CallAbandoned(CallEvent):
    """The caller hung up (or the call failed) before anyone answered: a missed call."""


@event
@dataclass(frozen=True, slots=True)
class CallEnded(CallEvent):
    """The call is over; `answered` says whether the caller talked to someone."""


EVENT_BY_KIND: dict[str, type[CallEvent]] = {
    "offered": CallOffered,
    "answered": CallAnswered,
    "abandoned": CallAbandoned,
    "ended": CallEnded,
}


@dataclass(frozen=True, slots=True)
class RecordCall(Command):
    """Record one call event a channel delivered."""

    kind: str
    call_id: str
    contact: InboundContact
    queue: str | None = None
    agent: str | None = None
    reason: str | None = None
    recording: str | None = None
    answered: bool = False


def call_stream(call_id: str) -> str:
    """The stream name of a call."""
    return f"call-{call_id}"


async def record_call(cmd: RecordCall, *, store: EventStore) -> AppendResult:
    """Append the call event; a repeated channel key changes nothing."""
    cls = EVENT_BY_KIND.get(cmd.kind)
    if cls is None:
        raise InvalidCommand(f"call event type must be one of {', '.join(CALL_KINDS)}", field="type")
    evt = cls(
        call_id=cmd.call_id,
        contact=cmd.contact,
        queue=cmd.queue,
        agent=cmd.agent,
        reason=cmd.reason,
        recording=cmd.recording,
        answered=cmd.answered or cmd.kind == "answered",
    )
    meta = metadata(
        actor=f"channel:{cmd.contact.extra.get('source', cmd.contact.channel)}",
        channel=cmd.contact.channel,
        correlation_id=call_stream(cmd.call_id),
        received_at=cmd.contact.received_at,
    )
    try:
        return await store.append(
            call_stream(cmd.call_id),
            [to_new_event(evt, meta)],
            ANY,
            idempotency_key=cmd.contact.idempotency_key,
        )
    except IdempotencyConflict as exc:
        raise NotAllowed(f"event key already used for another call ({exc.stored_stream})") from exc


HANDLERS: dict[type[Command], Handler] = {RecordCall: record_call}
