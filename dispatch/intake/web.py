"""Web reports (Open311 GeoReport v2, the citizen form): the web channel's one command.

A web report can be answered when it says where (the channel checks GeoReport's
"lat & long, or an address"); how to reach the reporter is optional. It is never
refused for a missing business field: what a power-fault intake lacks is listed
in the case's `missing_fields` for an agent to complete (only an agent's hand
registration enforces those fields).
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.cases.events import Fault
from dispatch.cases.registration import RegisterCase, Registered, register_case
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.messages import Command
from dispatch.intake.classify import life_priority
from dispatch.intake.contact import InboundContact, repeat_key
from eventstore import EventStore


@dataclass(frozen=True, slots=True)
class ReceiveWebRequest(Command):
    """Register a citizen's web report as a case (the contact's text is its description).

    With `repeat_window` the contact's key names the request's content (the client
    sent no `Idempotency-Key`): the same request within `REPEAT_WINDOW` answers the
    first case, as a client's retry after a lost answer must.
    """

    contact: InboundContact
    category: str
    address: str | None = None
    account_number: str | None = None
    customer_type: str | None = None
    fault: Fault | None = None
    service_time: str | None = None
    special_needs: str | None = None
    repeat_window: bool = False
    actor: str | None = None


async def receive_web_request(cmd: ReceiveWebRequest, *, store: EventStore, clock: Clock) -> Registered:
    """Register the report, lenient on business fields; a repeat answers the first case."""
    contact = cmd.contact
    key = contact.idempotency_key
    if cmd.repeat_window:
        key = await repeat_key(store, key, contact.received_at)
    registration = RegisterCase(
        category=cmd.category, priority=life_priority(contact.text), channel=contact.channel,
        description=contact.text or "",
        caller=contact.caller, location=contact.location, address=cmd.address,
        account_number=cmd.account_number, customer_type=cmd.customer_type, fault=cmd.fault,
        service_time=cmd.service_time, special_needs=cmd.special_needs, idempotency_key=key,
        actor=cmd.actor, received_at=contact.received_at, raw=contact.raw, client_key=not cmd.repeat_window,
    )
    return await register_case(registration, store=store, clock=clock)


HANDLERS: dict[type, Handler] = {ReceiveWebRequest: receive_web_request}
