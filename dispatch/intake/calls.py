"""Phone calls as event streams `call-<call_id>` (CTI, Twilio voice, Asterisk AMI).

Every channel adapter turns its wire format into a `RecordCall` command carrying
the normalised contact (with the raw payload); the handler appends one event
per channel event, idempotent on the channel's own key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlsplit

from dispatch.core.bus import Handler
from dispatch.core.errors import InvalidCommand, KeyReused
from dispatch.core.messages import Command, Event, event, metadata, to_new_event
from dispatch.core.personal import ERASED
from dispatch.core.phone import normalise_phone
from dispatch.intake.contact import InboundContact
from eventstore import ANY, AppendResult, EventStore, RecordedEvent
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
    one_event_per_key: bool = False
    """The channel's key names one event (CTI `event_id`): the same key with another event's
    content (type, caller, queue, agent, time, recording) is refused, not taken as a repeat.
    AMI keys name an event kind of a call (`Uniqueid` + event), whose replays may differ."""


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
        result = await store.append(
            call_stream(cmd.call_id),
            [to_new_event(evt, meta)],
            ANY,
            idempotency_key=cmd.contact.idempotency_key,
        )
    except IdempotencyConflict as exc:
        raise KeyReused("this event id was already used for another call") from exc
    if result.duplicate and cmd.one_event_per_key:
        [stored] = await store.read_stream(result.stream, after_version=result.first_version - 1, limit=1)
        if not _same_event(stored, evt):
            raise KeyReused("this event id was already used for another event of the call")
    return result


def _number(phone: str | None) -> str | None:
    """A caller's number as compared: canonical when it is one (any format of it is the same)."""
    try:
        return normalise_phone(phone) if phone else None
    except InvalidCommand:
        return phone


def _same_event(stored: RecordedEvent, evt: CallEvent) -> bool:
    """Whether a stored call event says what `evt` says: its type, queue, agent, recording, time
    and caller (an erased number matches any)."""
    data, contact = stored.data, stored.data["contact"]
    phone = contact["caller"]["phone"]
    return (
        (stored.type, data.get("queue"), data.get("agent"), data.get("recording"))
        == (type(evt).__name__, evt.queue, evt.agent, evt.recording)
        and datetime.fromisoformat(contact["occurred_at"]) == evt.contact.occurred_at
        and (phone == ERASED or _number(phone) == _number(evt.contact.caller.phone))
    )


RECORDING_FIELDS: tuple[str, ...] = ("call_id", "recording")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def check_recording_template(template: str) -> str:
    """A recording-URL template as configured (`https://pbx.example/rec/{call_id}.wav`): an
    http(s) URL naming `{call_id}` and/or `{recording}` (the recording the PBX reported) and no
    other placeholder; empty means no links. Raise `InvalidCommand` saying what is wrong."""
    if not template:
        return template
    parts = urlsplit(template.replace("{", "").replace("}", ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidCommand("must be an http:// or https:// URL template")
    names = set(_PLACEHOLDER.findall(template))
    if not names or not names <= set(RECORDING_FIELDS):
        raise InvalidCommand("must name {call_id} and/or {recording}, and no other placeholder")
    return template


def recording_url(template: str, call_id: str, recording: str | None) -> str | None:
    """The link to a call's recording from the configured template, or None (no template, or the
    template names `{recording}` and the PBX reported none). Values are percent-encoded."""
    if not template or ("{recording}" in template and not recording):
        return None
    values = {"call_id": quote(call_id, safe=""), "recording": quote(recording or "", safe="")}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


HANDLERS: dict[type[Command], Handler] = {RecordCall: record_call}
