"""The customer registry: a phone number's tier (VIP, important, blacklisted), set by people as events.

Each number has its stream `customer-<caller key>`; `CustomerTierSet` records
the tier, the reason, who set it and when it expires (`tier: none` clears it).
The tier a number has at an instant (`effective_tier`) is the one set, while
it has not expired; otherwise `elderly` when the number is in the elders'
registry (derived, never set by hand); otherwise `none`. A blacklisted
(harassing) number's contacts are still recorded, but never called back
automatically and counted on the supervisor's harassment list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import Command, Event, event, from_recorded, metadata, to_new_event
from dispatch.core.personal import PERSONAL, phone_subject, pseudonym
from dispatch.core.phone import normalise_phone
from eventstore import EventStore, WrongExpectedVersion

SETTABLE: tuple[str, ...] = ("vip", "important", "blacklisted", "none")
"""Tiers a person may set (`none` clears the number's tier)."""
TIERS: tuple[str, ...] = ("vip", "important", "elderly", "blacklisted", "none")
"""Every tier a caller card can show (`elderly` is derived from the elders' registry)."""
MAX_REASON = 500


def customer_stream(phone: str) -> str:
    """The stream of a canonical phone number's registry entry."""
    return f"customer-{pseudonym(phone)}"


@event
@dataclass(frozen=True, slots=True)
class CustomerTierSet(Event):
    """A number's tier was set (or cleared with `none`) by `set_by`, until `expires_at` if given."""

    phone: str = field(metadata=PERSONAL)
    tier: str
    reason: str = field(metadata=PERSONAL)
    set_by: str
    at: datetime
    expires_at: datetime | None = None
    source: str = "api"

    def data_subject(self) -> str | None:
        """The customer's."""
        return phone_subject(self.phone)


@dataclass(frozen=True, slots=True)
class SetCustomerTier(Command):
    """Set a number's tier: `phone` in any format; `expires_at` None means until changed."""

    phone: str
    tier: str
    reason: str
    actor: str
    expires_at: datetime | None = None
    source: str = "api"


@dataclass(frozen=True, slots=True)
class CustomerEntry:
    """A number's registry entry as set: what the latest `CustomerTierSet` says."""

    phone: str
    tier: str = "none"
    reason: str = ""
    set_by: str | None = None
    set_at: datetime | None = None
    expires_at: datetime | None = None
    version: int = -1


def fold(phone: str, events: list[tuple[Event | None, int]]) -> CustomerEntry:
    """The entry after these (event, version) pairs."""
    entry = CustomerEntry(phone)
    for evt, version in events:
        if isinstance(evt, CustomerTierSet):
            entry = CustomerEntry(phone, evt.tier, evt.reason, evt.set_by, evt.at, evt.expires_at, version)
        else:
            entry = CustomerEntry(phone, entry.tier, entry.reason, entry.set_by, entry.set_at,
                                  entry.expires_at, version)
    return entry


def active(entry: CustomerEntry, now: datetime) -> bool:
    """Whether the entry's tier holds at `now` (set, and not expired)."""
    return entry.tier != "none" and (entry.expires_at is None or entry.expires_at > now)


def effective_tier(entry: CustomerEntry | None, now: datetime, *, elderly: bool) -> str:
    """The tier a number has at `now`: the one set while it holds, else `elderly` or `none`."""
    if entry is not None and active(entry, now):
        return entry.tier
    return "elderly" if elderly else "none"


def decide_set_tier(entry: CustomerEntry, cmd: SetCustomerTier, now: datetime) -> list[Event]:
    """The event setting the tier, or nothing when the entry already says exactly that."""
    if cmd.tier not in SETTABLE:
        raise InvalidCommand(f"tier must be one of {', '.join(SETTABLE)}", field="tier")
    reason = cmd.reason.strip()
    if cmd.tier in ("blacklisted", "vip", "important") and not reason:
        raise InvalidCommand("a reason is required", field="reason")
    if len(reason) > MAX_REASON:
        raise InvalidCommand(f"reason must be at most {MAX_REASON} characters", field="reason")
    if cmd.expires_at is not None:
        if cmd.expires_at.tzinfo is None:
            raise InvalidCommand("expires_at needs a timezone", field="expires_at")
        if cmd.expires_at <= now:
            raise InvalidCommand("expires_at must lie in the future", field="expires_at")
    if (entry.tier, entry.reason, entry.expires_at) == (cmd.tier, reason, cmd.expires_at):
        return []
    return [CustomerTierSet(entry.phone, cmd.tier, reason, cmd.actor, now, cmd.expires_at, cmd.source)]


async def load_entry(store: EventStore, phone: str) -> CustomerEntry:
    """A canonical number's entry, folded from its stream."""
    records = await store.read_stream(customer_stream(phone))
    return fold(phone, [(from_recorded(r), r.version) for r in records])


async def set_customer_tier(cmd: SetCustomerTier, *, store: EventStore, clock: Clock) -> list[Event]:
    """Record the tier (idempotent on content); answers the events written."""
    phone = normalise_phone(cmd.phone)
    for _ in range(5):
        entry = await load_entry(store, phone)
        events = decide_set_tier(entry, cmd, clock.now())
        if not events:
            return []
        meta = metadata(actor=cmd.actor, channel="registry", correlation_id=customer_stream(phone))
        try:
            await store.append(customer_stream(phone), [to_new_event(e, meta) for e in events], entry.version)
        except WrongExpectedVersion:
            continue
        return events
    raise InvalidCommand(f"{customer_stream(phone)} changed concurrently, try again")


HANDLERS: dict[type[Command], Handler] = {SetCustomerTier: set_customer_tier}
