"""Subject access (PIPL Art. 45): everything held about one person, as JSON.

The subject is widened to the person's other identifiers as the erasure widens it. The export
holds, read as any reader reads them (opened with the person's keys, or shown erased):
- `identifiers` and, for each, whether its key is `held` or `none` (erased, or never used);
- `erasures` of the person (found by the keyed pseudonyms they recorded), with their cases;
- `cases`: each case's view (the read model's state, legal hold included) and every event
  of its stream;
- `streams`: every other stream about the person - calls, SMS and WeChat contacts, call-back
  tasks, the registry entry's history, the self-service answers, the messages sent to them or
  about their cases;
- `caller_cards` (per number) and `registry` (registry entries, the elders' registry and
  devices, number-OpenID links).
After an erasure the read models no longer link the identifiers, so only the identifier asked
about is found, with its erased cases and its streams' events showing `[erased]` fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from dispatch.cases.state import case_stream
from dispatch.core.messages import Json
from dispatch.core.personal import parse_subject, pseudonym
from dispatch.customers.card import caller_card
from dispatch.knowledge.self_service import answer_stream
from dispatch.personal.erasure import Person, cases_of, person_of, widen
from eventstore import RecordedEvent
from eventstore.postgres import read_streams_on
from eventstore.shredding import is_erased

_PER_PHONE = ("callback", "customer", "smssender")
_PER_OPENID = ("wechat",)


def plain(value: Any) -> Any:
    """`value` with instants, dates and ids as text, records and tuples as JSON containers."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping | asyncpg.Record):
        return {str(k): plain(v) for k, v in dict(value).items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _event(record: RecordedEvent) -> Json:
    return {"stream": record.stream, "version": record.version, "type": record.type,
            "recorded_at": plain(record.recorded_at), "data": plain(record.data),
            "actor": record.metadata.get("actor"), "erased": is_erased(record)}


async def _streams(conn: asyncpg.Connection, person: Person, case_ids: Sequence[str]) -> list[str]:
    """The names of the person's streams other than their cases'."""
    phones, openids, _, _, _ = person.args()
    names = [f"{kind}-{pseudonym(p)}" for p in phones for kind in _PER_PHONE]
    names += [f"{kind}-{pseudonym(o)}" for o in openids for kind in _PER_OPENID]
    names += [answer_stream("sms", p) for p in phones] + [answer_stream("wechat", o) for o in openids]
    rows = await conn.fetch(
        """SELECT split_part(id, '/', 1) AS stream FROM caller_contacts
             WHERE phone = ANY($1::text[]) OR openid = ANY($2::text[])
           UNION SELECT 'call-' || call_id FROM calls
             WHERE caller = ANY($1::text[]) OR case_id = ANY($3::text[])
           UNION SELECT stream FROM missed_calls WHERE caller = ANY($1::text[])
           UNION SELECT stream FROM notification_outbox
             WHERE to_addr = ANY($1::text[]) OR to_addr = ANY($2::text[]) OR case_id = ANY($3::text[])""",
        phones, openids, list(case_ids))
    names += [r["stream"] for r in rows if not r["stream"].startswith("case-")]
    return sorted(set(names))


async def export_subject(conn: asyncpg.Connection, subject: str, now: datetime) -> Json:
    """Everything held about the person `subject` names (a phone number, `openid:...`...)."""
    person = await widen(conn, person_of(parse_subject(subject)))
    phones, openids, elders, devices, _ = person.args()
    erasures = await conn.fetch(
        "SELECT erasure_id, case_ids, legal_basis, at FROM erasures WHERE subjects && $1::text[] ORDER BY at",
        [pseudonym(s) for s in person.subjects])
    case_ids = sorted({*await cases_of(conn, person), *(c for r in erasures for c in r["case_ids"])})
    found = await read_streams_on(conn, [case_stream(c) for c in case_ids])
    views = {r["case_id"]: r["data"] for r in await conn.fetch(
        "SELECT case_id, data FROM cases WHERE case_id = ANY($1::text[])", case_ids)}
    others = await read_streams_on(conn, await _streams(conn, person, case_ids))
    keys = {r["subject"] for r in await conn.fetch(
        "SELECT subject FROM subject_keys WHERE subject = ANY($1::text[])", person.subjects)}
    registry = {
        "customers": await conn.fetch("SELECT * FROM customers WHERE phone = ANY($1::text[])", phones),
        "elders": await conn.fetch("SELECT * FROM ref_elders WHERE id = ANY($1::text[])", elders),
        "devices": await conn.fetch("SELECT * FROM ref_devices WHERE account = ANY($1::text[]) "
                                    "OR elder_id = ANY($2::text[])", devices, elders),
        "openid_links": await conn.fetch("SELECT * FROM openid_phones WHERE phone = ANY($1::text[]) "
                                         "OR openid = ANY($2::text[])", phones, openids),
    }
    return {
        "subject": parse_subject(subject), "exported_at": now.isoformat(),
        "identifiers": person.subjects,
        "keys": {s: "held" if s in keys else "none" for s in person.subjects},
        "erasures": [plain(r) for r in erasures],
        "cases": [{"case_id": c, "view": plain(views.get(c)),
                   "events": [_event(r) for r in found[case_stream(c)]]} for c in case_ids],
        "streams": {name: [_event(r) for r in records] for name, records in others.items() if records},
        "caller_cards": {p: plain(await caller_card(conn, p, now)) for p in phones},
        "registry": {k: plain(rows) for k, rows in registry.items()},
    }
