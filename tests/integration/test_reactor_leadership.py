"""One active runner per reactor across processes (`eventstore/leadership.py`), on PostgreSQL.

Each `Leadership` holds its locks on a connection of its own, as one worker
process would; killing that connection's backend is the process dying.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import asyncpg

from eventstore import ANY, NewEvent, RecordedEvent
from eventstore.leadership import LOCK_SPACE, Leadership
from eventstore.postgres import PostgresEventStore
from tests.steps import CountedReactorRunner


class Tally:
    """Counts reactions per event, and which worker made them."""

    name = "tally"
    categories = frozenset({"case"})

    def __init__(self, reacted: Counter[int], by: Counter[str], worker: str) -> None:
        self._reacted, self._by, self._worker = reacted, by, worker

    async def react(self, event: RecordedEvent) -> None:
        self._reacted[int(event.data["n"])] += 1
        self._by[self._worker] += 1


async def append(store: PostgresEventStore, numbers: range) -> None:
    for n in numbers:
        await store.append(f"case-{n % 7}", [NewEvent("Noted", {"n": n})], ANY)


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (the reactions land from other tasks)
            await asyncio.sleep(0.02)


async def leader_pid(pool: asyncpg.Pool) -> int | None:
    """The backend holding a reactor lead in this database, if any."""
    pid = await pool.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        LOCK_SPACE)
    return None if pid is None else int(pid)


async def test_one_worker_reacts_and_a_standby_takes_over_when_it_dies(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    reacted: Counter[int] = Counter()
    by: Counter[str] = Counter()
    leads = {w: Leadership(pg_pool, check_every=0.2) for w in ("a", "b")}
    runners = {w: CountedReactorRunner(pg_store, Tally(reacted, by, w), poll_interval=0.1,
                                       leadership=leads[w]) for w in ("a", "b")}
    tasks = {w: asyncio.create_task(r.run()) for w, r in runners.items()}
    try:
        await append(pg_store, range(60))
        await until(lambda: len(reacted) == 60)
        # Both runners, the standby too, complete a step begun after every event was readable.
        await asyncio.gather(*(r.steps.one_more() for r in runners.values()))
        assert set(reacted.values()) == {1}  # every event once: one worker reacted
        [(first, _)] = by.items()
        assert leads[first].held == {"tally"}

        pid = await leader_pid(pg_pool)  # the active worker dies: its session ends
        assert await pg_pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        await append(pg_store, range(60, 120))
        await until(lambda: len(reacted) == 120)
        second = "b" if first == "a" else "a"
        assert by[second] > 0 and leads[second].held == {"tally"}
        assert set(reacted) == set(range(120))  # none lost across the takeover
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        for lead in leads.values():
            await lead.close()


async def test_a_worker_that_stops_hands_its_reactors_over(
    pg_store: PostgresEventStore, pg_pool: asyncpg.Pool
) -> None:
    first, second = Leadership(pg_pool), Leadership(pg_pool)
    try:
        assert await first.holds("tally")
        assert not await second.holds("tally")
        await first.close()
        assert await second.holds("tally")
        assert await leader_pid(pg_pool) is not None
    finally:
        await first.close()
        await second.close()
    assert await leader_pid(pg_pool) is None  # closing gives the locks back
