"""Reading the audit feed does not feed it; who read which range when is kept in the access record.

Bugs these catch: a read of `/api/v1/audit/events` appended to the log (main
appended an `AuditRead` per poll, so a tailing reader never reached the head);
reads not recorded at all, or one row per read (not coalesced), or ranges lost;
the access record's chain not checked by verify (a rewritten or deleted row
passing as intact); history reads no longer recorded as events.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatch.core.clock import FakeClock
from gateway.app import create_app
from tests.conftest import auth
from tests.integration.test_audit import _case_with_two_events


@pytest.fixture
async def audit_client(aiohttp_client: Any, settings: Any, services: Any) -> Any:
    """The app on a fake clock (the minute reads are coalesced in), without background runners."""
    fake = FakeClock(datetime(2026, 11, 23, 8, 0, 5, tzinfo=UTC))
    services.clock = fake
    services.bus.provide("clock", fake)
    return await aiohttp_client(create_app(settings, services=services, background=False))


async def tail(client: Any, after: int, limit: int) -> tuple[list[dict[str, Any]], int, int]:
    """Read pages until one comes back short; the items, the position reached, the reads made."""
    seen: list[dict[str, Any]] = []
    reads = 0
    while True:
        reads += 1
        response = await client.get(f"/api/v1/audit/events?after={after}&limit={limit}",
                                    headers=auth("t-auditor"))
        assert response.status == 200
        page = (await response.json())["items"]
        seen += page
        if page:
            after = page[-1]["position"]
        if len(page) < limit:
            return seen, after, reads


async def access_rows(services: Any) -> list[asyncpg.Record]:
    return list(await services.pool.fetch("SELECT * FROM access_log ORDER BY seq"))


async def test_a_tailing_reader_reaches_the_head_and_it_stays_still(audit_client: Any, services: Any) -> None:
    for n in range(2):
        await _case_with_two_events(audit_client, n)  # each also reads a history: recorded as events
    count = await services.pool.fetchval("SELECT count(*) FROM events")
    items, head, reads = await tail(audit_client, 0, 2)
    assert len(items) == count
    assert [e["type"] for e in items].count("AuditRead") == 2  # the two history reads, nothing else
    for _ in range(3):  # the reader polls at the head: nothing new, and its polls add nothing
        again, reached, _ = await tail(audit_client, head, 2)
        assert again == [] and reached == head
    assert await services.pool.fetchval("SELECT count(*) FROM events") == count
    # Who read what: the minute's first read at once, the rest when the minute is over.
    rows = await access_rows(services)
    assert [(r["reader"], r["via"], r["reads"], r["ranges"]) for r in rows] == [
        ("auditor:AU01", "api:events", 1, [[0, items[1]["position"]]])]
    services.clock.advance(timedelta(minutes=1))
    await audit_client.get(f"/api/v1/audit/events?after={head}", headers=auth("t-auditor"))
    rows = await access_rows(services)
    assert [(r["minute"], r["reads"]) for r in rows] == [
        (datetime(2026, 11, 23, 8, 0, tzinfo=UTC), 1),
        (datetime(2026, 11, 23, 8, 0, tzinfo=UTC), reads + 3 - 1),  # the tail's reads and 3 polls
        (datetime(2026, 11, 23, 8, 1, tzinfo=UTC), 1)]
    assert rows[1]["ranges"] == [[items[1]["position"], head]]  # one range, tailed to the head
    assert rows[2]["ranges"] == [[head, head]]
    verified = await (await audit_client.get("/api/v1/audit/verify", headers=auth("t-auditor"))).json()
    assert verified["ok"] is True and verified["access_checked"] == 3


async def test_verify_names_a_rewritten_or_deleted_access_row(audit_client: Any, services: Any) -> None:
    for _ in range(3):
        await audit_client.get("/api/v1/audit/events", headers=auth("t-auditor"))
        services.clock.advance(timedelta(minutes=1))
    assert len(await access_rows(services)) == 3
    async with services.pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")  # past the append-only guard
        await conn.execute("UPDATE access_log SET reads = 5 WHERE seq = 2")
        await conn.execute("RESET session_replication_role")
    report = await (await audit_client.get("/api/v1/audit/verify", headers=auth("t-auditor"))).json()
    assert report["ok"] is False
    assert report["first_bad"] == {"stream": "access_log", "position": 2,
                                   "reason": "access record row 2 does not match its hash (rewritten)"}
    async with services.pool.acquire() as conn:
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("DELETE FROM access_log WHERE seq = 2")
        await conn.execute("RESET session_replication_role")
    report = await (await audit_client.get("/api/v1/audit/verify", headers=auth("t-auditor"))).json()
    assert report["first_bad"]["reason"] == "access record row 2 is missing (deleted)"


async def test_the_access_record_is_append_only(services: Any) -> None:
    await services.access.record("auditor:AU01", "api:events", datetime.now(UTC), (0, 0))
    async with services.pool.acquire() as conn:
        for statement in ("UPDATE access_log SET reads = 2", "DELETE FROM access_log", "TRUNCATE access_log"):
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(statement)


async def test_keyed_access_rows_are_checked_with_the_key_and_flagged_without_it(services: Any) -> None:
    """Rows written with INTAKE_SEAL_KEY are authenticated by it; checked without it they are
    counted and named in a warning, not passed silently."""
    from eventstore.access import AccessRecorder
    from eventstore.tamper import verify

    key = b"k" * 32
    recorder = AccessRecorder(services.pool, key=key)
    at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    for minute in range(3):
        await recorder.record("auditor:a1", "audit_events", at + timedelta(minutes=minute), (1, 5))
    keyed = await verify(services.pool, key=key)
    assert (keyed.ok, keyed.access_checked, keyed.warnings) == (True, 3, ())
    unkeyed = await verify(services.pool)
    assert unkeyed.access_checked == 3
    assert "3 keyed access record rows not authenticated: INTAKE_SEAL_KEY is not set" in unkeyed.warnings
