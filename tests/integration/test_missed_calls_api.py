"""Call-back tasks on the real app: presence in Redis, fair assignment, reassignment, outcomes."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from typing import Any

import pytest
import redis.asyncio as aioredis

from dispatch.missed_calls.policy import AssignCallbackTask, Assigner, RecordCallbackOutcome
from gateway.presence import PresenceBoard
from gateway.services import SERVICES
from gateway.settings import ConsoleSettings, Settings
from tests.conftest import auth, until
from tests.integration.tcp_proxy import TcpProxy

TTL = 1.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short heartbeat TTL so that a silent agent goes offline within the test."""
    return dataclasses.replace(settings, console=ConsoleSettings(presence_ttl=TTL))


async def presence(client: Any, agent: str, status: str, token: str = "t-dispatcher") -> int:
    response = await client.put(f"/api/v1/agents/{agent}/presence", json={"status": status},
                                headers=auth(token))
    return int(response.status)


async def heartbeat(client: Any, *agents: str) -> None:
    for agent in agents:
        assert await presence(client, agent, "online") == 200


async def abandon(client: Any, n: int, caller: str) -> None:
    body = {"event_id": f"e{n}", "type": "abandoned", "call_id": f"c{n}", "caller": caller,
            "queue": "95598", "at": f"2026-11-23T08:{n % 60:02d}:00Z"}
    assert (await client.post("/channels/cti/events", json=body, headers=auth("t-channel"))).status == 201


async def tasks(client: Any, query: str = "status=open") -> list[dict[str, Any]]:
    body = await (await client.get(f"/api/v1/missed-calls?{query}", headers=auth("t-dispatcher"))).json()
    return list(body["items"])




def spread(items: list[dict[str, Any]]) -> Counter[str | None]:
    return Counter(t["assigned_to"] for t in items)


async def test_presence_rights(client: Any) -> None:
    assert await presence(client, "A001", "online", "t-agent") == 200
    assert await presence(client, "A002", "online", "t-agent") == 403
    assert await presence(client, "A002", "busy", "t-dispatcher") == 200
    assert await presence(client, "A003", "sleeping") == 400
    listed = await (await client.get("/api/v1/agents/presence", headers=auth("t-dispatcher"))).json()
    assert listed["items"] == [{"agent_id": "A001", "status": "online"},
                               {"agent_id": "A002", "status": "busy"}]


async def test_fair_spread_offline_reassignment_and_outcomes(client: Any) -> None:
    for agent in ("A001", "A002", "A003"):
        assert await presence(client, agent, "online") == 200
    for n in range(7):
        await abandon(client, n, f"1390000{n:04d}")
    await abandon(client, 7, "13900000000")  # the first caller again: one task, two attempts

    async def all_assigned() -> Any:
        await heartbeat(client, "A001", "A002", "A003")  # agents keep sending heartbeats (TTL 1 s)
        found = await tasks(client)
        return found if len(found) == 7 and all(t["assigned_to"] for t in found) else None

    found = await until(all_assigned)
    counts = spread(found)
    assert max(counts.values()) - min(counts.values()) <= 1 and len(counts) == 3
    assert next(t for t in found if t["caller"] == "13900000000")["attempts"] == 2

    assert await presence(client, "A001", "offline") == 200

    async def away_from_a001() -> Any:
        await heartbeat(client, "A002", "A003")
        found = await tasks(client)
        return found if not any(t["assigned_to"] == "A001" for t in found) else None

    counts = spread(await until(away_from_a001))
    assert set(counts) == {"A002", "A003"} and max(counts.values()) - min(counts.values()) <= 1

    task = (await tasks(client, "status=open&agent_id=A002"))[0]["task_id"]
    await heartbeat(client, "A002", "A003")  # a task goes by hand to a present agent only
    moved = await client.post(f"/api/v1/missed-calls/{task}/reassign", json={"agent_id": "A003"},
                              headers=auth("t-dispatcher"))
    assert moved.status == 200
    await until(lambda: tasks(client, "status=open&agent_id=A003"))
    forbidden = await client.post(f"/api/v1/missed-calls/{task}/reassign", json={"agent_id": "A002"},
                                  headers=auth("t-agent"))
    assert forbidden.status == 403

    for attempt in (1, 2, 3):
        response = await client.post(f"/api/v1/missed-calls/{task}/outcome", json={"outcome": "no_answer"},
                                     headers=auth("t-agent"))
        assert response.status == 200
        events = (await response.json())["events"]
        assert events[0]["attempt"] == attempt
    assert events[-1] == {"type": "CallbackTaskClosed", "reason": "unreachable"}
    again = await client.post(f"/api/v1/missed-calls/{task}/outcome", json={"outcome": "reached"},
                              headers=auth("t-agent"))
    assert again.status == 409
    bad = await client.post(f"/api/v1/missed-calls/{task}/outcome", json={"outcome": "maybe"},
                            headers=auth("t-agent"))
    assert bad.status == 400  # bad input, whatever the task's state
    assert (await bad.json())["error"]["code"] == "invalid"
    still_open = next(t for t in await tasks(client) if t["task_id"] != task)
    bad = await client.post(f"/api/v1/missed-calls/{still_open['task_id']}/outcome",
                            json={"outcome": "maybe"}, headers=auth("t-agent"))
    assert bad.status == 400
    unknown = await client.post("/api/v1/missed-calls/008613900009999.1/outcome", json={"outcome": "reached"},
                                headers=auth("t-agent"))
    assert unknown.status == 404 and (await unknown.json())["error"]["code"] == "not_found"
    never = await client.post(f"/api/v1/missed-calls/{task.rpartition('.')[0]}.2/outcome",
                              json={"outcome": "reached"}, headers=auth("t-agent"))
    assert never.status == 404  # the caller's second task was never opened
    await heartbeat(client, "A003")
    earlier = await client.post(f"/api/v1/missed-calls/{task}/reassign", json={"agent_id": "A003"},
                                headers=auth("t-dispatcher"))
    assert earlier.status == 409  # it was, and is closed
    assert (await earlier.json())["error"]["code"] == "not_allowed"


async def test_silent_agent_goes_offline_after_the_ttl(client: Any) -> None:
    await presence(client, "A001", "online")
    await presence(client, "A002", "online")
    await abandon(client, 1, "13900000001")
    await abandon(client, 2, "13900000002")

    async def one_each() -> bool:  # both keep beating until then: a slow worker must not lose A001
        await presence(client, "A001", "online")
        await presence(client, "A002", "online")
        return await _assigned_to(client, {"A001", "A002"})

    await until(one_each, 10.0)
    deadline = time.monotonic() + 3 * TTL
    while time.monotonic() < deadline:  # only A002 keeps sending heartbeats
        await presence(client, "A002", "online")
        if await _assigned_to(client, {"A002"}):
            break
        await asyncio.sleep(TTL / 4)
    assert await _assigned_to(client, {"A002"})


async def _assigned_to(client: Any, agents: set[str]) -> bool:
    found = await tasks(client)
    return len(found) == 2 and {t["assigned_to"] for t in found} == agents


def _redis_target(url: str) -> tuple[str, int]:
    """Host and port (or unix socket path and 0) of a Redis URL."""
    kwargs = aioredis.Redis.from_url(url).connection_pool.connection_kwargs
    return (str(kwargs["path"]), 0) if "path" in kwargs else (str(kwargs["host"]), int(kwargs["port"]))


async def test_redis_down_leaves_tasks_waiting_until_presence_returns(
    client: Any, redis_server_url: str, redis_prefix: str
) -> None:
    """An agent is online when Redis goes away: unknown presence must not be taken for any answer."""
    services = client.app[SERVICES]
    await abandon(client, 1, "13900000001")
    [waiting] = await until(lambda: tasks(client))
    proxy = TcpProxy(*_redis_target(redis_server_url))
    await proxy.start()
    # A board of its own (prefix and connection) the app's assigner does not read.
    via_proxy = aioredis.Redis(host="127.0.0.1", port=proxy.port, socket_connect_timeout=0.2,
                               socket_timeout=0.5)
    board = PresenceBoard(via_proxy, f"{redis_prefix}blind:")
    try:
        await board.beat("A009", "online")
        assert await board.present() == {"A009"}  # seen while Redis is up
        assigner = Assigner(services.pool, services.bus.handle, board.present)
        await proxy.cut()
        assert await board.present() is None
        assert await assigner.cycle() == 0
        assert [t["assigned_to"] for t in await tasks(client)] == [None]
        await proxy.start()
        assert await assigner.cycle() == 1  # the same assigner, presence back: A009 takes it
        assert [t["assigned_to"] for t in await tasks(client)] == ["A009"]
    finally:
        await via_proxy.aclose()
        await proxy.close()
    await presence(client, "A010", "online")  # the app's own assigner: A009 is not present there
    await until(lambda: tasks(client, "status=open&agent_id=A010"))
    assert [t["task_id"] for t in await tasks(client)] == [waiting["task_id"]]


async def test_a_task_closed_between_plan_and_assignment_is_skipped(client: Any) -> None:
    """The plan comes from the read model, which lags: a task closed meanwhile is left alone."""
    services = client.app[SERVICES]
    await abandon(client, 2, "13900000002")
    [task] = await until(lambda: tasks(client))

    async def caller_reached_first(cmd: object) -> Any:
        if isinstance(cmd, AssignCallbackTask):
            await services.bus.handle(RecordCallbackOutcome(cmd.task_id, "reached", "A001"))
        return await services.bus.handle(cmd)

    async def one_agent() -> set[str]:
        return {"A001"}

    assigner = Assigner(services.pool, caller_reached_first, one_agent)
    assert await assigner.cycle() == 0
    closed = await until(lambda: tasks(client, "status=closed"))
    assert [(t["task_id"], t["assigned_to"]) for t in closed] == [(task["task_id"], None)]


@pytest.mark.parametrize("cursor", ["0001-01-01T00:00:00+14:00|x", "9999-12-31T23:59:59-14:00|x",
                                    "2026-11-23T08:00:00|x"])
async def test_a_cursor_this_api_never_gave_is_400_not_500(client: Any, cursor: str) -> None:
    response = await client.get("/api/v1/missed-calls", params={"cursor": cursor},
                                headers=auth("t-dispatcher"))
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_parameter"


async def test_paging_with_the_cursors_given_lists_every_task_once(client: Any) -> None:
    for n in range(5):
        await abandon(client, n, f"1391234{n:04d}")

    async def all_five() -> bool:
        return len(await tasks(client, "limit=1000")) == 5

    await until(all_five)
    seen: list[str] = []
    params = {"limit": "2"}
    while True:
        body = await (await client.get("/api/v1/missed-calls", params=params,
                                       headers=auth("t-dispatcher"))).json()
        seen += [t["task_id"] for t in body["items"]]
        if body["next"] is None:
            break
        params["cursor"] = body["next"]
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(("path", "query"), [
    *((path, query) for path in ("/api/v1/agents/presence", "/api/v1/reports/abandoned-calls")
      for query in ("limit=0", "limit=1001", "limit=x")),
    ("/api/v1/reports/abandoned-calls", "cursor=not-one-we-gave"),  # presence's cursor is an agent id
])
async def test_every_list_here_keeps_the_shared_limit_and_cursor_rules(
    client: Any, path: str, query: str
) -> None:
    """Were 200 with every item: `limit` and `cursor` were ignored by these two lists."""
    response = await client.get(f"{path}?{query}", headers=auth("t-dispatcher"))
    assert response.status == 400, await response.text()
    assert (await response.json())["error"]["code"] == "bad_parameter"


async def test_the_abandoned_call_report_and_presence_come_in_pages(client: Any) -> None:
    for n in range(5):  # five hours of one queue
        body = {"event_id": f"p{n}", "type": "abandoned", "call_id": f"p{n}", "caller": "13912340000",
                "queue": "95598", "at": f"2026-11-23T0{n}:30:00Z"}
        assert (await client.post("/channels/cti/events", json=body, headers=auth("t-channel"))).status == 201
    for agent in ("A001", "A002", "A003"):
        assert await presence(client, agent, "online") == 200

    async def pages(path: str, limit: int) -> list[Any]:
        seen: list[Any] = []
        params = {"limit": str(limit)}
        while True:
            body = await (await client.get(path, params=params, headers=auth("t-dispatcher"))).json()
            assert len(body["items"]) <= limit
            seen += body["items"]
            if body["next"] is None:
                return seen
            params["cursor"] = body["next"]

    async def projected() -> bool:
        return len(await pages("/api/v1/reports/abandoned-calls", 1000)) == 5

    await until(projected)
    hours = [item["hour"] for item in await pages("/api/v1/reports/abandoned-calls", 2)]
    assert hours == [f"2026-11-23T0{n + 8}:00:00" for n in range(2)] + [
        f"2026-11-23T{n + 8}:00:00" for n in range(2, 5)]  # Beijing time's hours
    agents = [item["agent_id"] for item in await pages("/api/v1/agents/presence", 2)]
    assert agents == ["A001", "A002", "A003"]


async def test_a_task_or_presence_for_an_agent_not_registered_is_refused(client: Any, tmp_path: Any) -> None:
    """With the agents' register loaded, a dispatcher's reassignment to an id not in it, or its
    presence set for one, is 400 `unknown_assignee` and changes nothing. Were 200: a mistyped id
    pinned the task to no one (never called back), or went online and took every task."""
    from gateway.cli.loader import catch_up_reference, load_paths

    services = client.app[SERVICES]
    path = tmp_path / "agents.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": null, '
                    '"properties": {"kind": "agent", "id": "A001", "name": "冯英海"}}]}')
    assert (await load_paths(services, [path])).errors == []
    await catch_up_reference(services)
    await abandon(client, 3, "13900000003")
    [task] = await until(lambda: tasks(client))
    reassign = f"/api/v1/missed-calls/{task['task_id']}/reassign"
    for agent in ("GHOST", "A00l"):
        response = await client.post(reassign, json={"agent_id": agent}, headers=auth("t-dispatcher"))
        assert response.status == 400, await response.text()
        assert (await response.json())["error"]["code"] == "unknown_assignee"
        assert await presence(client, agent, "online") == 400
    assert (await client.get("/api/v1/agents/presence", headers=auth("t-dispatcher"))).status == 200
    assert [t["assigned_to"] for t in await tasks(client)] == [None]
    assert await presence(client, "A001", "online") == 200
    response = await client.post(reassign, json={"agent_id": "A001"}, headers=auth("t-dispatcher"))
    assert response.status == 200, await response.text()


async def test_a_task_reassigned_to_an_agent_not_present_is_refused_and_stays(client: Any) -> None:
    """A dispatcher's reassignment to a registered agent who is offline is 409 `agent_not_present`
    and the task stays where it was. It was answered 200 `assigned_to` that agent, and the assigner
    gave the task to another agent a moment later: the dispatcher was told one thing, the task did
    another. Once the agent is online, the reassignment holds (pinned)."""
    await heartbeat(client, "A001", "A002")
    await abandon(client, 5, "13900000005")

    async def assigned() -> Any:
        await heartbeat(client, "A001", "A002")
        found = await tasks(client)
        return found if found and found[0]["assigned_to"] else None

    [task] = await until(assigned)
    reassign = f"/api/v1/missed-calls/{task['task_id']}/reassign"
    response = await client.post(reassign, json={"agent_id": "A003"}, headers=auth("t-dispatcher"))
    assert response.status == 409, await response.text()
    assert (await response.json())["error"]["code"] == "agent_not_present"
    assert [t["assigned_to"] for t in await tasks(client)] == [task["assigned_to"]]
    await heartbeat(client, "A003")
    response = await client.post(reassign, json={"agent_id": "A003"}, headers=auth("t-dispatcher"))
    assert response.status == 200, await response.text()
    for _ in range(3):  # the assigner's cycles leave a pinned task with its present agent
        await heartbeat(client, "A001", "A002", "A003")
        await asyncio.sleep(0.2)
    assert [t["assigned_to"] for t in await tasks(client)] == ["A003"]
