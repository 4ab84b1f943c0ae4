"""Read model of the registry and of callers' contacts: `customers`, `caller_contacts`, `openid_phones`.

One projection over `customer-`, `call-` and `case-` streams, in log order, so
that "was this number blacklisted when it made contact" is decided by the log
alone and a rebuild gives the same harassment counters. It also tells the
live views when a call is offered to or answered by an agent (topic `ring`),
which puts the caller card on that agent's console.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from dispatch.core.capability import Deps
from dispatch.core.messages import Json
from dispatch.intake.sms import callable_number
from eventstore import RecordedEvent
from eventstore.subscriptions import Change

TEXT_EXCERPT = 200
RING_TYPES = {"CallOffered": "offered", "CallAnswered": "answered"}
_CALL_TYPES = frozenset({"CallOffered", "CallAnswered", "CallAbandoned", "CallEnded"})
_MESSAGE_CHANNELS = frozenset({"sms", "wechat"})


@dataclass(frozen=True, slots=True)
class _Contact:
    """A contact to record (once per `row_id`); counted when its number is blacklisted then."""

    row_id: str
    phone: str | None
    openid: str | None
    channel: str
    kind: str
    at: datetime
    case_id: str | None = None
    call_id: str | None = None
    text: str = ""


@dataclass(frozen=True, slots=True)
class _Link:
    """An OpenID's phone number, as a registration gave both."""

    openid: str
    phone: str


@dataclass(frozen=True, slots=True)
class _CaseCall:
    """A call added to a case from the caller card."""

    case_id: str
    call_id: str
    by: str | None
    at: datetime


_Write = _Contact | _Link | _CaseCall | Change
"""What one event asks of the tables (a `Change` is told to live views as it is)."""


def _writes(event: RecordedEvent) -> list[_Write]:
    """What a contact-making event writes, in order (not `CustomerTierSet`, `CallerPhoneGiven`)."""
    d: dict[str, Any] = event.data
    if event.type in _CALL_TYPES:
        contact = d["contact"]
        phone = callable_number(contact["caller"].get("phone"))
        at = datetime.fromisoformat(contact["occurred_at"])
        call_id = d["call_id"]
        out: list[_Write] = [_Contact(f"call/{call_id}", phone, None, "phone", "call", at, call_id=call_id)]
        status = RING_TYPES.get(event.type)
        if status is not None and d.get("agent"):
            out.append(Change("ring", {"agent": d["agent"], "call_id": call_id, "phone": phone,
                                       "status": status, "at": at.isoformat()}))
        return out
    case_id = d.get("case_id")
    if event.type == "CaseRegistered":
        caller = d.get("caller") or {}
        phone, openid = callable_number(caller.get("phone")), caller.get("openid")
        link: list[_Write] = [_Link(openid, phone)] if openid and phone else []
        return [*link, _Contact(f"case/{case_id}", phone, openid, d["channel"], "case",
                                datetime.fromisoformat(d["accepted_at"]), case_id=case_id,
                                text=d.get("description") or "")]
    if event.type == "CallAddedToCase":
        return [_CaseCall(str(case_id), d["call_id"], d["by"], datetime.fromisoformat(d["at"])),
                Change("call", {"call_id": d["call_id"], "case_id": case_id})]
    if event.type == "CaseMessageReceived":
        contact = d["contact"]
        return [_Contact(f"{event.stream}/{event.version}", callable_number(d.get("phone")),
                         contact["caller"].get("openid"), d["channel"], "message",
                         datetime.fromisoformat(contact["occurred_at"]), case_id=case_id,
                         text=d.get("text") or "")]
    return []


async def _resolved(conn: asyncpg.Connection, writes: Sequence[_Write]) -> list[tuple[_Contact, bool]]:
    """Each contact of `writes` in order with its number (by its OpenID, as linked before it) and
    whether that number was blacklisted at its time: two statements at most for all."""
    unknown = sorted({w.openid for w in writes if isinstance(w, _Contact) and w.phone is None and w.openid})
    phones: dict[str, str] = {}
    if unknown:
        phones = {r["openid"]: r["phone"] for r in await conn.fetch(
            "SELECT openid, phone FROM openid_phones WHERE openid = ANY($1::text[])", unknown)}
    contacts: list[_Contact] = []
    for w in writes:
        if isinstance(w, _Link):
            phones[w.openid] = w.phone
        elif isinstance(w, _Contact):
            contacts.append(w if w.phone is not None or w.openid is None
                            else dataclasses.replace(w, phone=phones.get(w.openid)))
    numbers = sorted({c.phone for c in contacts if c.phone})
    barred: dict[str, datetime | None] = {}
    if numbers:
        barred = {r["phone"]: r["expires_at"] for r in await conn.fetch(
            "SELECT phone, expires_at FROM customers WHERE phone = ANY($1::text[]) AND tier = 'blacklisted'",
            numbers)}
    return [(c, c.phone in barred and ((until := barred[c.phone]) is None or until > c.at))
            for c in contacts]


async def _links_and_calls(conn: asyncpg.Connection, writes: Sequence[_Write]) -> None:
    """The OpenIDs' numbers (the last one given wins) and the calls added to cases."""
    links = {w.openid: w.phone for w in writes if isinstance(w, _Link)}
    if links:
        await conn.execute("""INSERT INTO openid_phones (openid, phone)
                              SELECT * FROM unnest($1::text[], $2::text[])
                              ON CONFLICT (openid) DO UPDATE SET phone = EXCLUDED.phone""",
                           list(links), list(links.values()))
    calls = {(w.case_id, w.call_id): w for w in reversed(writes) if isinstance(w, _CaseCall)}
    if calls:
        await conn.execute("""INSERT INTO case_calls (case_id, call_id, by, at)
                              SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                              ON CONFLICT DO NOTHING""",
                           [w.case_id for w in calls.values()], [w.call_id for w in calls.values()],
                           [w.by for w in calls.values()], [w.at for w in calls.values()])


async def _recorded(conn: asyncpg.Connection, contacts: Sequence[tuple[_Contact, bool]]) -> list[_Contact]:
    """Record the contacts the card shows (messages, and any contact of a blacklisted number),
    once per id; the ones recorded now, in order."""
    kept: dict[str, tuple[_Contact, bool]] = {}
    for contact, barred in contacts:
        # cases and calls have read models of their own; only what the card lacks is kept
        if (contact.channel in _MESSAGE_CHANNELS or barred) and contact.row_id not in kept:
            kept[contact.row_id] = (contact, barred)
    if not kept:
        return []
    rows = [(c.row_id, c.phone, c.openid, c.channel, c.kind, c.case_id, c.call_id, c.text[:TEXT_EXCERPT],
             c.at, barred) for c, barred in kept.values()]
    inserted = {r["id"] for r in await conn.fetch(
        """INSERT INTO caller_contacts (id, phone, openid, channel, kind, case_id, call_id, text, at,
               blacklisted)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                $7::text[], $8::text[], $9::timestamptz[], $10::bool[])
           ON CONFLICT (id) DO NOTHING RETURNING id""", *map(list, zip(*rows, strict=True)))}
    return [c for c, _ in kept.values() if c.row_id in inserted]


async def _write(conn: asyncpg.Connection, writes: Sequence[_Write]) -> list[Change]:
    """Do the writes of a run of events in a few statements, as one by one they would be done;
    each contact recorded while its number was blacklisted is counted (a `harassment` change)."""
    contacts = await _resolved(conn, writes)
    await _links_and_calls(conn, writes)
    counted = {id(c) for c in await _recorded(conn, contacts) if c.phone is not None}
    changes: list[Change] = []
    tally: dict[str, tuple[int, datetime]] = {}
    pending = iter(contacts)
    for w in writes:
        if isinstance(w, Change):
            changes.append(w)
        elif isinstance(w, _Contact):
            contact, barred = next(pending)
            if barred and id(contact) in counted and contact.phone is not None:
                n, last = tally.get(contact.phone, (0, contact.at))
                tally[contact.phone] = (n + 1, max(last, contact.at))
                changes.append(Change("harassment", {"phone": contact.phone, "kind": contact.kind}))
    if tally:
        await conn.execute(
            """UPDATE customers c SET contacts = c.contacts + u.n,
                   last_contact_at = greatest(c.last_contact_at, u.at)
               FROM unnest($1::text[], $2::int[], $3::timestamptz[]) AS u(phone, n, at)
               WHERE c.phone = u.phone""",
            list(tally), [n for n, _ in tally.values()], [at for _, at in tally.values()])
    return changes


async def _tier_set(conn: asyncpg.Connection, event: RecordedEvent) -> list[Change]:
    d = event.data
    if callable_number(d["phone"]) is None:
        return []  # an erased number ("[erased]", met by a rebuild): no one's entry any more
    await conn.execute(
        """INSERT INTO customers (phone, tier, reason, set_by, set_at, expires_at, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (phone) DO UPDATE SET tier = $2, reason = $3, set_by = $4, set_at = $5,
               expires_at = $6, version = $7""",
        d["phone"], d["tier"], d["reason"], d["set_by"], datetime.fromisoformat(d["at"]),
        datetime.fromisoformat(d["expires_at"]) if d.get("expires_at") else None, event.version)
    return [Change("customer", {"phone": d["phone"], "tier": d["tier"]})]


async def _phone_given(conn: asyncpg.Connection, event: RecordedEvent) -> list[Change]:
    """A caller's number given later links the case's OpenID to it."""
    case_id = event.data.get("case_id")
    # this projection's own record of the case's OpenID first: the cases read model is
    # another projection's and may not have the case yet
    openid = await conn.fetchval(
        """SELECT coalesce((SELECT openid FROM caller_contacts WHERE case_id = $1 AND openid IS NOT NULL
                            LIMIT 1), (SELECT caller_openid FROM cases WHERE case_id = $1))""", case_id)
    phone = callable_number(event.data.get("phone"))
    if openid and phone:
        await _links_and_calls(conn, [_Link(openid, phone)])
    return []


_ON_THEIR_OWN = {"CustomerTierSet": _tier_set, "CallerPhoneGiven": _phone_given}
"""Events applied one at a time: they change what later contacts of a batch are decided on."""


class CallersProjection:
    """Projects the registry and callers' contacts; tells live views who is ringing whom."""

    name = "callers"
    categories: frozenset[str] | None = frozenset({"customer", "call", "case"})
    types = frozenset({"CustomerTierSet", *_CALL_TYPES, "CaseRegistered", "CallerPhoneGiven",
                       "CallAddedToCase", "CaseMessageReceived"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""
    tables: tuple[str, ...] = ("customers", "caller_contacts", "openid_phones", "case_calls")

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Update the rows the event concerns."""
        return await self.apply_batch(conn, [event])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
    ) -> Sequence[Change]:
        """The events in log order: each run of contacts in a few statements (`_write`), a tier
        set or a number given on its own."""
        changes: list[Change] = []
        run: list[_Write] = []
        for event in events:
            own = _ON_THEIR_OWN.get(event.type)
            if own is None:
                run.extend(_writes(event))
                continue
            changes.extend(await _write(conn, run))
            run = []
            changes.extend(await own(conn, event))
        changes.extend(await _write(conn, run))
        return changes


def projections(deps: Deps) -> list[CallersProjection]:
    """The callers projection."""
    return [CallersProjection()]


def entry_json(row: asyncpg.Record | None, now: datetime) -> Json | None:
    """A registry row as the API shows it (`active`: whether its tier holds now)."""
    if row is None:
        return None
    expires = row["expires_at"]
    return {"phone": row["phone"], "tier": row["tier"], "reason": row["reason"], "set_by": row["set_by"],
            "set_at": row["set_at"], "expires_at": expires,
            "active": row["tier"] != "none" and (expires is None or expires > now),
            "contacts": row["contacts"], "last_contact_at": row["last_contact_at"]}
