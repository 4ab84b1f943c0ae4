"""End to end over HTTP: 500 abandoned calls from 200 callers, 20 agents whose presence churns.

Some callers get through later. Afterwards exactly one task per caller still
waiting, spread fairly over the agents present, and no missed call lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import auth

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
AGENTS = [f"A{n:03d}" for n in range(1, 21)]
CALLERS = [f"139{n:08d}" for n in range(10_000_000, 10_000_200)]


async def cti(client: Any, event_id: str, kind: str, caller: str, at: datetime) -> None:
    body = {"event_id": event_id, "type": kind, "call_id": event_id, "caller": caller,
            "queue": random.choice(["fault", "consult"]), "at": at.isoformat()}
    response = await client.post("/channels/cti/events", json=body, headers=auth("t-channel"))
    assert response.status == 201, await response.text()


async def presence(client: Any, agent: str, status: str) -> None:
    response = await client.put(f"/api/v1/agents/{agent}/presence", json={"status": status},
                                headers=auth("t-dispatcher"))
    assert response.status == 200


async def all_tasks(client: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        body = await (await client.get(f"/api/v1/missed-calls?limit=1000{cursor}",
                                       headers=auth("t-dispatcher"))).json()
        items.extend(body["items"])
        if body["next"] is None:
            return items
        cursor = f"&cursor={body['next']}"


async def test_storm_of_missed_calls_with_presence_churn(client: Any) -> None:
    random.seed(3)
    online = set(AGENTS)
    await asyncio.gather(*(presence(client, a, "online") for a in AGENTS))
    callers = CALLERS + [random.choice(CALLERS) for _ in range(300)]
    random.shuffle(callers)
    last_miss: dict[str, datetime] = {}
    for start in range(0, 500, 50):
        batch = list(enumerate(callers[start:start + 50], start))
        await asyncio.gather(*(cti(client, f"m{i}", "abandoned", c, T0 + timedelta(seconds=i))
                               for i, c in batch))
        last_miss.update({c: T0 + timedelta(seconds=i) for i, c in batch})
        leaving = random.sample(sorted(online), 3)
        coming = random.sample(sorted(set(AGENTS) - online), min(3, len(set(AGENTS) - online)))
        await asyncio.gather(*(presence(client, a, "offline") for a in leaving),
                             *(presence(client, a, "online") for a in coming))
        online = (online - set(leaving)) | set(coming)
    through = random.sample(CALLERS, 60)
    await asyncio.gather(*(cti(client, f"ok{n}", "answered", c, last_miss[c] + timedelta(minutes=5))
                           for n, c in enumerate(through)))

    deadline = time.monotonic() + 30
    while True:
        tasks = await all_tasks(client)
        open_tasks = [t for t in tasks if t["status"] == "open"]
        counts = Counter(t["assigned_to"] for t in open_tasks)
        loads = [counts.get(a, 0) for a in online]
        settled = (len(open_tasks) == 140 and set(counts) <= online
                   and max(loads) - min(loads) <= 1)
        if settled or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)

    waiting = set(CALLERS) - set(through)
    assert sorted(t["caller"] for t in open_tasks) == sorted(waiting)  # exactly one per caller
    assert set(counts) <= online, counts  # nobody offline holds a task
    assert max(loads) - min(loads) <= 1, counts  # spread fairly
    assert sum(t["attempts"] for t in tasks) == 500  # no missed call lost
    closed = [t for t in tasks if t["status"] == "closed"]
    assert sorted(t["caller"] for t in closed) == sorted(through)
    assert {t["close_reason"] for t in closed} == {"got_through"}
    expected_attempts = Counter(callers)
    assert all(t["attempts"] == expected_attempts[t["caller"]] for t in tasks)
