"""The `sms-intake` policy on PostgreSQL while the `cases` read model lags behind the log.

The policy runs here without the projection (or before it), so every decision
that depends on the read model having caught up would show.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from dispatch.cases.actions import CloseCase
from dispatch.cases.read_model import CasesProjection
from dispatch.cases.registration import CallerInfo
from dispatch.cases.sla import SlaConfig
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from dispatch.intake.contact import InboundContact
from dispatch.intake.sms import ReceiveSms, SmsIntakePolicy, receive_sms
from eventstore import RecordedEvent
from eventstore.postgres import PostgresEventStore
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from gateway.bootstrap import DOMAIN

SENDER = "+8613911112222"


def sms(sid: str, text: str, sender: str = SENDER) -> ReceiveSms:
    at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    return ReceiveSms(InboundContact(
        channel="sms", kind="sms", idempotency_key=f"twilio:sms:{sid}", caller=CallerInfo(phone=sender),
        occurred_at=at, received_at=at, text=text, raw={"MessageSid": sid},
        extra={"source": "twilio", "message_sid": sid}))


def intake(store: PostgresEventStore, pool: asyncpg.Pool, clock: FakeClock) -> ReactorRunner:
    """A fresh policy runner, as a worker process that has just started would build it."""
    bus = MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": clock, "pool": pool,
                                          "sla": SlaConfig()})
    return ReactorRunner(store, SmsIntakePolicy(bus.handle))


async def case_messages(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """Case id -> the MessageSids in it (the registering SMS first), from the log."""
    async with pool.acquire() as conn:
        streams = [r["stream"] for r in await conn.fetch(
            "SELECT DISTINCT stream FROM events WHERE type IN ('CaseRegistered', 'CaseMessageReceived')"
            " ORDER BY stream")]
    read = await PostgresEventStore(pool).read_streams(streams)  # the raw SMS is sealed: read it opened
    found: dict[str, list[str]] = {}
    for stream in streams:
        for e in read[stream]:
            if e.type in ("CaseRegistered", "CaseMessageReceived"):
                raw = e.data.get("raw") or e.data["contact"]["raw"]
                sid = raw.get("MessageSid")
                found.setdefault(stream.split("-", 1)[1], []).append(sid)
    return found


async def test_two_sms_back_to_back_make_one_case(pg_store: PostgresEventStore,
                                                  pg_pool: asyncpg.Pool, clock: FakeClock) -> None:
    await receive_sms(sms("SM1", "我家停电了"), store=pg_store)
    await receive_sms(sms("SM2", "整栋楼都没电"), store=pg_store)
    assert await intake(pg_store, pg_pool, clock).run_until_caught_up() == 2  # cases not projected

    [(case_id, sids)] = (await case_messages(pg_pool)).items()
    assert sids == ["SM1", "SM2"]
    await ProjectionRunner(pg_store, CasesProjection(clock)).run_until_caught_up()
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT array_agg(case_id) FROM cases") == [case_id]


async def test_a_restarted_worker_still_sees_the_case_it_opened(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, clock: FakeClock
) -> None:
    await receive_sms(sms("SM1", "停电了"), store=pg_store)
    await intake(pg_store, pg_pool, clock).run_until_caught_up()
    await receive_sms(sms("SM2", "还没来电"), store=pg_store)
    await intake(pg_store, pg_pool, clock).run_until_caught_up()  # a new process, nothing in memory

    assert list((await case_messages(pg_pool)).values()) == [["SM1", "SM2"]]


async def test_two_workers_take_a_burst_into_one_case_per_sender(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, clock: FakeClock
) -> None:
    other = "+8613800138000"
    sids = [f"SM{i:02d}" for i in range(12)]
    for i, sid in enumerate(sids):
        await receive_sms(sms(sid, f"第{i}条", SENDER if i % 3 else other), store=pg_store)
    cases = ProjectionRunner(pg_store, CasesProjection(clock))
    await asyncio.gather(intake(pg_store, pg_pool, clock).run_until_caught_up(),
                         intake(pg_store, pg_pool, clock).run_until_caught_up(),
                         cases.run_until_caught_up())

    found = sorted((await case_messages(pg_pool)).values())
    assert found == sorted([[s for i, s in enumerate(sids) if i % 3 == 0],
                            [s for i, s in enumerate(sids) if i % 3]])


async def test_a_closed_case_gets_a_new_case_and_repeats_change_nothing(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, clock: FakeClock
) -> None:
    bus = MessageBus(collect_handlers(DOMAIN), {"store": pg_store, "clock": clock, "sla": SlaConfig()})
    await receive_sms(sms("SM1", "停电了"), store=pg_store)
    await intake(pg_store, pg_pool, clock).run_until_caught_up()
    await ProjectionRunner(pg_store, CasesProjection(clock)).run_until_caught_up()
    [first] = await case_messages(pg_pool)
    await bus.handle(CloseCase(case_id=first, reason="answered", actor="agent:A001"))
    clock.advance(60)
    # The read model still shows the first case open; the log says it is closed.
    await receive_sms(sms("SM2", "又停电了"), store=pg_store)
    await receive_sms(sms("SM3", "还是没电"), store=pg_store)
    await receive_sms(sms("SM1", "停电了"), store=pg_store)  # a redelivery: no new event
    await intake(pg_store, pg_pool, clock).run_until_caught_up()

    taken = await case_messages(pg_pool)
    assert taken[first] == ["SM1"]
    [second] = set(taken) - {first}
    assert taken[second] == ["SM2", "SM3"]

    async def count() -> int:
        async with pg_pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM events"))

    before = await count()
    async with pg_pool.acquire() as conn:  # every reaction repeated (as after a lost checkpoint)
        await conn.execute(  # every partition's (eventstore/partitions.py)
            "DELETE FROM checkpoints WHERE name = 'sms-intake' OR name LIKE 'sms-intake/%'")
    assert await intake(pg_store, pg_pool, clock).run_until_caught_up() == 3
    assert (await count(), await case_messages(pg_pool)) == (before, taken)


async def test_one_batch_takes_in_each_sender_in_order_as_one_at_a_time_would(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool, clock: FakeClock
) -> None:
    known = "+8613700000001"
    await receive_sms(sms("SK0", "停电了", known), store=pg_store)
    await intake(pg_store, pg_pool, clock).run_until_caught_up()
    await ProjectionRunner(pg_store, CasesProjection(clock)).run_until_caught_up()
    [open_case] = await case_messages(pg_pool)
    plan = [("SA1", SENDER), ("SK1", known), ("SN1", "unknown"), ("SA2", SENDER), ("SN2", "unknown"),
            ("SK2", known), ("SA3", SENDER)]
    for sid, sender in plan:
        await receive_sms(sms(sid, "没电", sender), store=pg_store)
    runner = intake(pg_store, pg_pool, clock)
    batches: list[int] = []
    policy = runner._reactor  # counts the batches it is given
    react_batch = policy.react_batch  # type: ignore[attr-defined]

    async def counted(events: Sequence[RecordedEvent]) -> None:
        batches.append(len(events))
        await react_batch(events)

    policy.react_batch = counted  # type: ignore[attr-defined]
    assert await runner.run_until_caught_up() == len(plan)

    assert batches == [len(plan)]
    found = await case_messages(pg_pool)
    assert found.pop(open_case) == ["SK0", "SK1", "SK2"]
    assert sorted(found.values()) == [["SA1", "SA2", "SA3"], ["SN1"], ["SN2"]]
    async with pg_pool.acquire() as conn:
        opened = await conn.fetchval("SELECT count(*) FROM events WHERE type = 'SmsCaseOpened'")
    assert opened == 2  # SK0's case and SA1's; an SMS without a number opens a case of its own
