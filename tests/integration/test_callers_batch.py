"""The callers projection applies a batch in a few statements and as event by event it would."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from dispatch.customers.read_model import CallersProjection
from eventstore import RecordedEvent
from eventstore.subscriptions import Change

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
A, B, C, D = "13911110001", "13911110002", "13911110003", "13911110004"
TABLES = ("customers", "caller_contacts", "openid_phones", "case_calls")


class Log:
    """Recorded events in log order, one stream version per event."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def add(self, stream: str, type_: str, **data: Any) -> None:
        self.events.append(RecordedEvent(len(self.events) + 1, stream, len(self.events), type_, 1, data, {},
                                         T0))


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def tier(log: Log, phone: str, expires: int | None) -> None:
    log.add(f"customer-{phone}", "CustomerTierSet", phone=phone, tier="blacklisted", reason="骚扰",
            set_by="admin:A1", at=_at(0), expires_at=None if expires is None else _at(expires))


def registered(log: Log, case_id: str, channel: str, minute: int, phone: str | None = None,
               openid: str | None = None) -> None:
    log.add(f"case-{case_id}", "CaseRegistered", case_id=case_id, channel=channel, accepted_at=_at(minute),
            description=f"{case_id} 停电了", caller={"phone": phone, "openid": openid})


def message(log: Log, case_id: str, minute: int, openid: str, text: str) -> None:
    log.add(f"case-{case_id}", "CaseMessageReceived", case_id=case_id, channel="wechat", phone=None,
            text=text, contact={"caller": {"openid": openid}, "occurred_at": _at(minute)})


def call(log: Log, type_: str, call_id: str, phone: str, minute: int, agent: str | None = None) -> None:
    log.add(f"call-{call_id}", type_, call_id=call_id, agent=agent,
            contact={"caller": {"phone": phone}, "occurred_at": _at(minute)})


def storm() -> list[RecordedEvent]:
    """Contacts of blacklisted, lapsed and plain numbers by SMS, WeChat and phone."""
    log = Log()
    tier(log, A, 60)                                   # A barred for an hour
    tier(log, B, 10)                                   # B barred for ten minutes
    registered(log, "C1", "sms", 1, phone=A)           # counted
    registered(log, "C2", "wechat", 2, phone=C, openid="o-1")  # links o-1 to C
    message(log, "C2", 3, "o-1", "还没来电")             # by OpenID alone: C's
    call(log, "CallOffered", "K1", A, 4, agent="agent-7")  # counted, rings agent-7
    call(log, "CallAnswered", "K1", A, 5, agent="agent-7")  # the same call: recorded once
    registered(log, "C3", "phone", 20, phone=B)        # B's bar lapsed: a plain phone case, not kept
    log.add("case-C3", "CallAddedToCase", case_id="C3", call_id="K2", by="agent-7", at=_at(21))
    registered(log, "C4", "sms", 22, phone=D)          # a plain SMS: kept, not counted
    registered(log, "C5", "wechat", 23, openid="o-2")  # no number yet
    log.add("case-C5", "CallerPhoneGiven", case_id="C5", phone=B)  # links o-2 to B
    message(log, "C5", 24, "o-2", "电话是这个")          # B's, not barred any more
    tier(log, C, None)                                 # C barred for good
    message(log, "C2", 25, "o-1", "又停了")              # C's, now counted
    registered(log, "C6", "sms", 26, phone=A)          # counted again
    return log.events


async def _tables(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY 1, 2")] for t in TABLES}


async def _run(pool: asyncpg.Pool, batches: Sequence[Sequence[RecordedEvent]]
               ) -> tuple[dict[str, list[tuple[Any, ...]]], list[Change], list[str]]:
    """Apply `batches` in one transaction (rolled back): the tables, the changes, the last batch's
    statements."""
    projection = CallersProjection()
    statements: list[str] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(lambda record: statements.append(record.query))
        tr = conn.transaction()
        await tr.start()
        try:
            changes: list[Change] = []
            for batch in batches:
                await asyncio.sleep(0)  # the logger is called soon after each statement
                statements.clear()
                changes.extend(await projection.apply_batch(conn, batch))
            await asyncio.sleep(0)
            last = [" ".join(q.split()[:3]) for q in statements]
            return await _tables(conn), changes, last
        finally:
            await tr.rollback()


async def test_a_batch_leaves_what_event_by_event_leaves(pg_pool: asyncpg.Pool) -> None:
    events = storm()
    one_by_one = await _run(pg_pool, [[e] for e in events])
    whole = await _run(pg_pool, [events])
    halves = await _run(pg_pool, [events[:5], events[5:11], events[11:]])
    assert whole[:2] == one_by_one[:2] == halves[:2]

    tables, changes, _ = whole
    customers = {r[0]: r for r in tables["customers"]}
    assert customers[A][6] == 3 and customers[A][7] == T0 + timedelta(minutes=26)  # C1, K1, C6
    assert customers[B][6] == 0 and customers[C][6] == 1
    contacts = {r[0]: r for r in tables["caller_contacts"]}
    assert set(contacts) == {"case/C1", "case/C2", "case-C2/4", "call/K1", "case/C4", "case/C5",
                             "case-C5/12", "case-C2/14", "case/C6"}
    assert contacts["case-C2/4"][1] == C and not contacts["case-C2/4"][9]  # by OpenID: C's, not barred yet
    assert contacts["case-C2/14"][9] and contacts["case-C5/12"][1] == B and not contacts["case-C5/12"][9]
    assert tables["openid_phones"] == [("o-1", C), ("o-2", B)]
    assert [r[:2] for r in tables["case_calls"]] == [("C3", "K2")]
    assert [(c.topic, c.data.get("phone")) for c in changes if c.topic != "customer"] == [
        ("harassment", A), ("harassment", A), ("ring", A), ("ring", A), ("call", None),
        ("harassment", C), ("harassment", A)]


async def test_a_batch_of_contacts_takes_a_few_statements_not_a_few_per_contact(
        pg_pool: asyncpg.Pool) -> None:
    log = Log()
    tier(log, A, None)
    for n in range(60):
        registered(log, f"S{n}", "sms", n, phone=A if n % 10 == 0 else f"1380000{n:04d}")
    # the first ten warm the connection up (asyncpg asks the server about each array type once)
    _, changes, statements = await _run(pg_pool, [log.events[:1], log.events[1:11], log.events[11:]])
    assert len(statements) <= 3, statements  # the bar, the contacts, the counters
    assert sum(c.topic == "harassment" for c in changes) == 6
