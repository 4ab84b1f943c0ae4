"""The demo storm rings agents' phones: the demo agent's caller card comes alive, the demo's
blacklisted number is counted and its missed calls are never handed out for call-back."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.cli.demo import AGENTS, HARASSER, Storm, demo_files
from gateway.cli.loader import catch_up_reference, load_paths
from gateway.services import SERVICES
from tests.conftest import auth


async def _eventually(client: Any, path: str, enough: Any) -> Any:
    async with asyncio.timeout(20):
        while True:
            response = await client.get(path, headers=auth("t-dispatcher"))
            body = await response.json() if response.status == 200 else None
            if body is not None and enough(body):
                return body
            await asyncio.sleep(0.1)


async def test_the_storm_rings_the_demo_agent_and_the_harasser_is_counted(client: Any, services: Any) -> None:
    stats = await load_paths(services, demo_files())
    assert not stats.errors and stats.outcomes["recorded"] > 0
    await catch_up_reference(services)
    tokens = {"channel": "t-channel", "dispatcher": "t-dispatcher", "admin": "t-admin"}
    await Storm(str(client.make_url("")).rstrip("/"), tokens, None, pace=0.05, waves=4).play()

    listed = await _eventually(client, "/api/v1/customers?tier=blacklisted",
                               lambda b: b["items"] and b["items"][0]["contacts"] >= 1)
    assert listed["items"][0]["phone"] == HARASSER
    pool = client.server.app[SERVICES].pool
    async with pool.acquire() as conn:
        rung = await conn.fetch("SELECT DISTINCT caller FROM calls WHERE agent = $1", AGENTS[0])
    assert len(rung) >= 2  # the repeat callers ring the demo agent
    card = await (await client.get(f"/api/v1/callers/{rung[0]['caller']}", headers=auth("t-agent"))).json()
    assert card["calls"] and all(c["agent"] for c in card["calls"] if c["status"] != "abandoned")

    # call-back tasks are handed out to the agents the storm put online, never the harasser's
    tasks = await _eventually(client, "/api/v1/missed-calls?status=open", lambda b: any(
        t["caller"] == HARASSER for t in b["items"]) and all(
        t["assigned_to"] for t in b["items"] if t["caller"] != HARASSER))
    harasser = [t for t in tasks["items"] if t["caller"] == HARASSER]
    assert harasser and harasser[0]["assigned_to"] is None
