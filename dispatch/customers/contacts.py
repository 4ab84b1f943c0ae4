"""Adding a call to a case from the caller card ("add to this case"): an event on the case.

The agent answering a caller with an open case records the call as one more
contact on that case (`CallAddedToCase`), so the case's history shows each
time the citizen called about it and the call's recording is found from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dispatch.cases.state import case_stream, load_case
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import NotFound
from dispatch.core.messages import Command, Event, event, metadata, to_new_event
from dispatch.core.personal import PERSONAL, phone_subject
from dispatch.intake.calls import call_stream
from eventstore import ANY, EventStore


@event
@dataclass(frozen=True, slots=True)
class CallAddedToCase(Event):
    """A call (`call_id`, from `phone`) was recorded as a contact on the case by `by`."""

    case_id: str
    call_id: str
    phone: str | None = field(metadata=PERSONAL)
    by: str
    at: datetime

    def data_subject(self) -> str | None:
        """The caller's."""
        return phone_subject(self.phone)


@dataclass(frozen=True, slots=True)
class AddCallToCase(Command):
    """Record a call as a contact on a case (idempotent on the pair)."""

    case_id: str
    call_id: str
    actor: str


@dataclass(frozen=True, slots=True)
class CallAdded:
    """What adding did: the case's version after it, and whether it was already recorded."""

    case_id: str
    call_id: str
    version: int
    duplicate: bool


async def add_call_to_case(cmd: AddCallToCase, *, store: EventStore, clock: Clock) -> CallAdded:
    """Append `CallAddedToCase` to the case; the case and the call must exist."""
    await load_case(store, cmd.case_id)  # NotFound for an unknown case
    calls = await store.read_stream(call_stream(cmd.call_id))
    if not calls:
        raise NotFound(f"call {cmd.call_id} not found")
    contact = calls[0].data.get("contact", {})
    phone = contact.get("caller", {}).get("phone") if isinstance(contact, dict) else None
    evt = CallAddedToCase(cmd.case_id, cmd.call_id, phone, cmd.actor, clock.now())
    meta = metadata(actor=cmd.actor, channel="phone", correlation_id=call_stream(cmd.call_id))
    result = await store.append(case_stream(cmd.case_id), [to_new_event(evt, meta)], ANY,
                                idempotency_key=f"call-added:{cmd.case_id}:{cmd.call_id}")
    return CallAdded(cmd.case_id, cmd.call_id, result.last_version, result.duplicate)


HANDLERS: dict[type[Command], Handler] = {AddCallToCase: add_call_to_case}
