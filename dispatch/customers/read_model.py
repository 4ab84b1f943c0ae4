"""Read model of the registry and of callers' contacts: `customers`, `caller_contacts`, `openid_phones`.

One projection over `customer-`, `call-` and `case-` streams, in log order, so
that "was this number blacklisted when it made contact" is decided by the log
alone and a rebuild gives the same harassment counters. It also tells the
live views when a call is offered to or answered by an agent (topic `ring`),
which puts the caller card on that agent's console.
"""

from __future__ import annotations

from collections.abc import Sequence
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


async def _blacklisted_at(conn: asyncpg.Connection, phone: str | None, at: datetime) -> bool:
    if phone is None:
        return False
    return bool(await conn.fetchval(
        """SELECT true FROM customers WHERE phone = $1 AND tier = 'blacklisted'
           AND (expires_at IS NULL OR expires_at > $2)""", phone, at))


async def _contact(conn: asyncpg.Connection, row_id: str, phone: str | None, openid: str | None,
                   channel: str, kind: str, at: datetime, *, case_id: str | None = None,
                   call_id: str | None = None, text: str = "") -> list[Change]:
    """Record one contact (once per id); count it when the number is blacklisted then."""
    if phone is None and openid is not None:
        phone = await conn.fetchval("SELECT phone FROM openid_phones WHERE openid = $1", openid)
    blacklisted = await _blacklisted_at(conn, phone, at)
    if channel not in _MESSAGE_CHANNELS and not blacklisted:
        return []  # cases and calls have read models of their own; only what the card lacks is kept
    inserted = await conn.fetchval(
        """INSERT INTO caller_contacts (id, phone, openid, channel, kind, case_id, call_id, text, at,
               blacklisted)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING RETURNING true""",
        row_id, phone, openid, channel, kind, case_id, call_id, text[:TEXT_EXCERPT], at, blacklisted)
    if not (inserted and blacklisted):
        return []
    await conn.execute(
        """UPDATE customers SET contacts = contacts + 1,
               last_contact_at = greatest(last_contact_at, $2) WHERE phone = $1""", phone, at)
    return [Change("harassment", {"phone": phone, "kind": kind})]


async def _tier_set(conn: asyncpg.Connection, event: RecordedEvent) -> list[Change]:
    d = event.data
    await conn.execute(
        """INSERT INTO customers (phone, tier, reason, set_by, set_at, expires_at, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (phone) DO UPDATE SET tier = $2, reason = $3, set_by = $4, set_at = $5,
               expires_at = $6, version = $7""",
        d["phone"], d["tier"], d["reason"], d["set_by"], datetime.fromisoformat(d["at"]),
        datetime.fromisoformat(d["expires_at"]) if d.get("expires_at") else None, event.version)
    return [Change("customer", {"phone": d["phone"], "tier": d["tier"]})]


async def _call(conn: asyncpg.Connection, event: RecordedEvent) -> list[Change]:
    d = event.data
    contact = d["contact"]
    phone = callable_number(contact["caller"].get("phone"))
    at = datetime.fromisoformat(contact["occurred_at"])
    call_id = d["call_id"]
    changes = await _contact(conn, f"call/{call_id}", phone, None, "phone", "call", at, call_id=call_id)
    status = RING_TYPES.get(event.type)
    if status is not None and d.get("agent"):
        changes.append(Change("ring", {"agent": d["agent"], "call_id": d["call_id"], "phone": phone,
                                       "status": status, "at": at.isoformat()}))
    return changes


async def _link(conn: asyncpg.Connection, openid: str | None, phone: str | None) -> None:
    if openid and phone:
        await conn.execute("""INSERT INTO openid_phones (openid, phone) VALUES ($1, $2)
                              ON CONFLICT (openid) DO UPDATE SET phone = $2""", openid, phone)


async def _case(conn: asyncpg.Connection, event: RecordedEvent) -> list[Change]:
    d: dict[str, Any] = event.data
    case_id = d.get("case_id")
    if event.type == "CaseRegistered":
        caller = d.get("caller") or {}
        phone, openid = callable_number(caller.get("phone")), caller.get("openid")
        await _link(conn, openid, phone)
        return await _contact(conn, f"case/{case_id}", phone, openid, d["channel"], "case",
                              datetime.fromisoformat(d["accepted_at"]), case_id=case_id,
                              text=d.get("description") or "")
    if event.type == "CallerPhoneGiven":
        # this projection's own record of the case's OpenID first: the cases read model is
        # another projection's and may not have the case yet
        openid = await conn.fetchval(
            """SELECT coalesce((SELECT openid FROM caller_contacts WHERE case_id = $1 AND openid IS NOT NULL
                                LIMIT 1), (SELECT caller_openid FROM cases WHERE case_id = $1))""", case_id)
        await _link(conn, openid, callable_number(d.get("phone")))
        return []
    if event.type == "CallAddedToCase":
        await conn.execute("""INSERT INTO case_calls (case_id, call_id, by, at) VALUES ($1, $2, $3, $4)
                              ON CONFLICT DO NOTHING""", case_id, d["call_id"], d["by"],
                           datetime.fromisoformat(d["at"]))
        return [Change("call", {"call_id": d["call_id"], "case_id": case_id})]
    if event.type == "CaseMessageReceived":
        contact = d["contact"]
        return await _contact(conn, f"{event.stream}/{event.version}", callable_number(d.get("phone")),
                              contact["caller"].get("openid"), d["channel"], "message",
                              datetime.fromisoformat(contact["occurred_at"]), case_id=case_id,
                              text=d.get("text") or "")
    return []


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
        if event.type == "CustomerTierSet":
            return await _tier_set(conn, event)
        if event.type in _CALL_TYPES:
            return await _call(conn, event)
        if event.category == "case":
            return await _case(conn, event)
        return None


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
