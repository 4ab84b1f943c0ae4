"""The caller card (来电弹屏): a number's history across every channel, from the read models.

Cases (open first, then newest), calls, call-back tasks, SMS and WeChat
messages (WeChat through the known links of an OpenID to the number), and the
number's tier in the customer registry.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import asyncpg

from dispatch.cases.read_model import LIGHT_SQL
from dispatch.cases.status import DONE
from dispatch.core.messages import Json
from dispatch.customers.read_model import entry_json
from dispatch.customers.registry import CustomerEntry, effective_tier

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
"""Where a query runs: the pool, or a connection already in a transaction."""

_DONE_SQL = ", ".join(f"'{s.value}'" for s in sorted(DONE))
ELDER_PHONE_SQL = r"regexp_replace(regexp_replace(phone, '[\s\-()]', '', 'g'), '^(\+86|0086)', '')"
"""An elder's phone as loaded, in the canonical form of `dispatch.core.phone` for Chinese numbers."""


async def elder_of_phone(db: Db, phone: str) -> asyncpg.Record | None:
    """The elder whose registered phone is this canonical number, if any."""
    return await db.fetchrow(f"SELECT id, name FROM ref_elders WHERE {ELDER_PHONE_SQL} = $1 LIMIT 1", phone)


def _entry(row: asyncpg.Record | None, phone: str) -> CustomerEntry | None:
    if row is None:
        return None
    return CustomerEntry(phone, row["tier"], row["reason"], row["set_by"], row["set_at"], row["expires_at"],
                         row["version"])


async def tier_of(db: Db, phone: str, now: datetime) -> tuple[str, Json | None, asyncpg.Record | None]:
    """(effective tier, registry entry as the API shows it, elder row) of a canonical number."""
    row = await db.fetchrow("SELECT * FROM customers WHERE phone = $1", phone)
    elder = await elder_of_phone(db, phone)
    return effective_tier(_entry(row, phone), now, elderly=elder is not None), entry_json(row, now), elder


async def caller_card(db: Db, phone: str, now: datetime, *, limit: int = 20) -> Json:
    """The card of a canonical number: `{phone, tier, customer, elder, cases, calls, missed_calls,
    messages}`."""
    tier, entry, elder = await tier_of(db, phone, now)
    links = await db.fetch("SELECT openid FROM openid_phones WHERE phone = $1", phone)
    openids = [r["openid"] for r in links]
    cases = await db.fetch(
        f"""SELECT case_id, status, category, priority, channel, {LIGHT_SQL} AS light, accepted_at,
                   deadline, assigned_to, address, description, status IN ({_DONE_SQL}) AS done,
                   (SELECT count(*) FROM calls k WHERE k.case_id = cases.case_id)
                   + (SELECT count(*) FROM case_calls a WHERE a.case_id = cases.case_id) AS calls
            FROM cases WHERE caller_phone = $2 OR caller_openid = ANY($3::text[])
            ORDER BY done, accepted_at DESC, case_id DESC LIMIT $4""", now, phone, openids, limit)
    calls = await db.fetch(
        """SELECT call_id, status, queue, agent, source, offered_at, answered_at, abandoned_at, ended_at,
                  recording, coalesce(case_id, (SELECT a.case_id FROM case_calls a WHERE a.call_id = c.call_id
                                                ORDER BY a.at DESC LIMIT 1)) AS case_id,
                  coalesce(offered_at, answered_at, abandoned_at, ended_at) AS at
           FROM calls c WHERE caller = $1 ORDER BY at DESC NULLS LAST, call_id DESC LIMIT $2""", phone, limit)
    missed = await db.fetch(
        """SELECT task_id, status, attempts, first_missed_at, last_missed_at, assigned_to, outcome,
                  close_reason
           FROM missed_calls WHERE caller = $1 ORDER BY last_missed_at DESC LIMIT $2""", phone, limit)
    messages = await db.fetch(
        """SELECT channel, kind, case_id, text, at FROM caller_contacts
           WHERE channel IN ('sms', 'wechat') AND (phone = $1 OR openid = ANY($2::text[]))
           ORDER BY at DESC, id DESC LIMIT $3""", phone, openids, limit)
    return {
        "phone": phone, "tier": tier, "customer": entry,
        "elder": None if elder is None else {"id": elder["id"], "name": elder["name"]},
        "cases": [{k: v for k, v in dict(r).items() if k != "done"} | {"open": not r["done"]} for r in cases],
        "calls": [{k: v for k, v in dict(r).items() if k != "at"} for r in calls],
        "missed_calls": [dict(r) for r in missed],
        "messages": [dict(r) for r in messages],
    }


CustomerKey: TypeAlias = tuple[int, datetime | None, str]
"""Where a page of the registry ends: (contacts, set_at, phone) of its last entry."""
ContactKey: TypeAlias = tuple[datetime, str]
"""Where a page of the blacklist queue ends: (at, id) of its last contact."""


async def customers(
    db: Db, now: datetime, tier: str | None, limit: int, after: CustomerKey | None = None,
) -> tuple[list[Json], CustomerKey | None]:
    """Registry entries (of a tier set and holding now, when `tier` is given), most contacts first
    (then the latest set), from after `after`; and the key to continue from when there are more."""
    contacts, set_at, phone = after if after is not None else (None, None, None)
    rows = await db.fetch(
        """SELECT * FROM customers
           WHERE ($1::text IS NULL OR (tier = $1 AND (expires_at IS NULL OR expires_at > $2)))
             AND ($4::int IS NULL OR (contacts, coalesce(set_at, '-infinity'), phone)
                                     < ($4, coalesce($5::timestamptz, '-infinity'), $6::text))
           ORDER BY contacts DESC, coalesce(set_at, '-infinity') DESC, phone DESC LIMIT $3""",
        tier, now, limit + 1, contacts, set_at, phone)
    more, rows = len(rows) > limit, rows[:limit]
    items = [e for r in rows if (e := entry_json(r, now)) is not None]
    last = rows[-1] if more else None
    return items, None if last is None else (last["contacts"], last["set_at"], last["phone"])


async def blacklist_queue(db: Db, limit: int, after: ContactKey | None = None
                          ) -> tuple[list[Json], ContactKey | None]:
    """The separate queue: contacts made by blacklisted numbers, newest first, from after `after`;
    and the key to continue from when there are more."""
    at, id_ = after if after is not None else (None, None)
    rows = await db.fetch(
        """SELECT id, phone, channel, kind, case_id, call_id, text, at FROM caller_contacts
           WHERE blacklisted AND ($2::timestamptz IS NULL OR (at, id) < ($2, $3::text))
           ORDER BY at DESC, id DESC LIMIT $1""", limit + 1, at, id_)
    more, rows = len(rows) > limit, rows[:limit]
    last = rows[-1] if more else None
    return ([{k: v for k, v in r.items() if k != "id"} for r in rows],
            None if last is None else (last["at"], last["id"]))
