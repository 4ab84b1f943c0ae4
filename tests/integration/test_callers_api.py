"""Who is calling, on the real app (PostgreSQL, Redis): the caller card, the registry, the
blacklist's effects, the live `ring` change and searching cases."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatch.gis.reference import RecordReference, parse_feature
from dispatch.missed_calls.read_model import open_tasks
from gateway.services import SERVICES
from tests.conftest import auth
from tests.conftest import until as shared_until

PHONE = "13912345678"


async def until(check: Any, within: float = 8.0) -> Any:
    """The shared poll, with this module's longer default wait."""
    return await shared_until(check, within)


def _at(offset_s: int = 0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=60 - offset_s)).isoformat()


async def cti(client: Any, event_id: str, kind: str, call_id: str, caller: str, agent: str | None = None,
              at: str | None = None) -> None:
    body = {"event_id": event_id, "type": kind, "call_id": call_id, "caller": caller, "queue": "12345",
            "at": at or _at()}
    if agent:
        body["agent"] = agent
    response = await client.post("/channels/cti/events", json=body, headers=auth("t-channel"))
    assert response.status == 201, await response.text()


async def register(client: Any, phone: str, description: str, *, name: str = "张三",
                   address: str = "咸阳市秦都区人民路 8 号") -> dict[str, Any]:
    response = await client.post("/api/v1/cases", headers=auth("t-agent"), json={
        "category": "complaint", "channel": "phone", "description": description,
        "caller": {"name": name, "phone": phone}, "address": address})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def card(client: Any, phone: str, token: str = "t-agent") -> dict[str, Any]:
    response = await client.get(f"/api/v1/callers/{phone}", headers=auth(token))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_card_shows_history_open_cases_first_in_any_format(client: Any) -> None:
    done = await register(client, "+86 139 1234 5678", "路灯坏了")
    close = await client.post(f"/api/v1/cases/{done['case_id']}/close", headers=auth("t-agent"),
                              json={"expected_version": done["version"], "reason": "answered"})
    assert close.status == 200, await close.text()
    first_open = await register(client, "139-1234-5678", "噪音扰民")
    newer_open = await register(client, PHONE, "井盖缺失")
    await register(client, "13800000000", "someone else's case")
    await cti(client, "e1", "offered", "call-1", "+8613912345678", agent="A001")
    await cti(client, "e2", "abandoned", "call-2", PHONE, at=datetime.now(UTC).isoformat())  # after the cases

    async def ready() -> dict[str, Any] | None:
        found = await card(client, "+86 139-1234-5678")
        complete = len(found["cases"]) == 3 and len(found["calls"]) == 2 and found["missed_calls"]
        return found if complete else None

    found = await until(ready)
    assert found["phone"] == PHONE and found["tier"] == "none"
    assert [c["case_id"] for c in found["cases"]] == [newer_open["case_id"], first_open["case_id"],
                                                     done["case_id"]]
    assert [c["open"] for c in found["cases"]] == [True, True, False]
    assert found["cases"][0]["light"] in ("green", "yellow", "red")
    assert {c["call_id"]: c["status"] for c in found["calls"]} == {"call-1": "offered", "call-2": "abandoned"}
    assert found["missed_calls"][0]["status"] == "open"

    assert (await client.get("/api/v1/callers/not-a-number", headers=auth("t-agent"))).status == 400
    assert (await client.get(f"/api/v1/callers/{PHONE}", headers=auth("t-unit"))).status == 403


async def test_add_the_call_to_the_open_case_records_an_event(client: Any) -> None:
    case = await register(client, PHONE, "噪音扰民")
    await cti(client, "e1", "answered", "call-9", PHONE, agent="A001")
    body = {"case_id": case["case_id"], "call_id": "call-9"}
    first = await client.post(f"/api/v1/callers/{PHONE}/add-to-case", json=body, headers=auth("t-agent"))
    assert first.status == 201, await first.text()
    again = await client.post(f"/api/v1/callers/{PHONE}/add-to-case", json=body, headers=auth("t-agent"))
    assert again.status == 200
    history = await (await client.get(f"/api/v1/audit/cases/{case['case_id']}/history",
                                      headers=auth("t-auditor"))).json()
    added = [e for e in history["events"] if e["type"] == "CallAddedToCase"]
    assert len(added) == 1 and added[0]["data"]["call_id"] == "call-9"
    assert added[0]["data"]["by"] == "agent:A001"
    missing = await client.post(f"/api/v1/callers/{PHONE}/add-to-case", headers=auth("t-agent"),
                                json={"case_id": case["case_id"], "call_id": "nope"})
    assert missing.status == 404
    bad = await client.post(f"/api/v1/callers/{PHONE}/add-to-case", headers=auth("t-agent"),
                            json={"case_id": case["case_id"], "call_id": "a b/c"})
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad_field"


async def test_registry_put_rights_validation_and_elderly(client: Any) -> None:
    url = f"/api/v1/customers/{PHONE}"
    assert (await client.put(url, json={"tier": "vip", "reason": "x"}, headers=auth("t-agent"))).status == 403
    bad = await client.put(url, json={"tier": "gold", "reason": "x"}, headers=auth("t-dispatcher"))
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad_field"
    no_reason = await client.put(url, json={"tier": "blacklisted"}, headers=auth("t-dispatcher"))
    assert no_reason.status == 400
    past = await client.put(url, json={"tier": "vip", "reason": "x", "expires_at": "2020-01-01T00:00:00Z"},
                            headers=auth("t-dispatcher"))
    assert past.status == 400
    ok = await client.put(url, json={"tier": "vip", "reason": "人大代表"}, headers=auth("t-dispatcher"))
    assert ok.status == 200
    assert {k: v for k, v in (await ok.json()).items() if k != "expires_at"} == {
        "phone": PHONE, "tier": "vip", "reason": "人大代表", "set_by": "dispatcher:D001",
        "effective_tier": "vip"}
    found = await until(lambda: _tier(client, PHONE, "vip"))
    assert found["customer"]["reason"] == "人大代表"

    # an elder's number (loaded with spaces and +86) is elderly when nothing else is set
    services = client.server.app[SERVICES]
    await services.bus.handle(RecordReference(parse_feature({
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [108.71, 34.34]},
        "properties": {"kind": "elder", "id": "E1", "name": "李奶奶", "phone": "+86 138 0000 1111",
                       "devices": ["D1"], "contacts": []}})))
    elder = await until(lambda: _tier(client, "13800001111", "elderly"))
    assert elder["elder"] == {"id": "E1", "name": "李奶奶"}
    # a tier set by hand wins over the derived one; cleared, the number is elderly again
    await client.put("/api/v1/customers/13800001111", json={"tier": "important", "reason": "多次投诉"},
                     headers=auth("t-dispatcher"))
    await until(lambda: _tier(client, "13800001111", "important"))
    cleared = await client.put("/api/v1/customers/13800001111", json={"tier": "none"},
                               headers=auth("t-dispatcher"))
    assert (await cleared.json())["effective_tier"] == "elderly"
    await until(lambda: _tier(client, "13800001111", "elderly"))


async def _tier(client: Any, phone: str, tier: str) -> dict[str, Any] | None:
    found = await card(client, phone)
    return found if found["tier"] == tier else None


async def test_blacklisted_number_is_recorded_counted_queued_and_never_called_back(client: Any) -> None:
    services = client.server.app[SERVICES]
    put = await client.put(f"/api/v1/customers/{PHONE}", json={"tier": "blacklisted", "reason": "骚扰电话"},
                           headers=auth("t-dispatcher"))
    assert put.status == 200
    await until(lambda: _tier(client, PHONE, "blacklisted"))
    for n in range(3):
        await cti(client, f"b{n}", "abandoned", f"bl-{n}", PHONE, at=_at(n))
    await cti(client, "o1", "abandoned", "other-1", "13700000000")

    async def counted() -> list[dict[str, Any]] | None:
        body = await (await client.get("/api/v1/customers?tier=blacklisted",
                                       headers=auth("t-dispatcher"))).json()
        return body["items"] if body["items"] and body["items"][0]["contacts"] == 3 else None

    items = await until(counted)
    assert items[0]["phone"] == PHONE and items[0]["reason"] == "骚扰电话"
    queue = await (await client.get("/api/v1/harassment", headers=auth("t-dispatcher"))).json()
    assert {q["call_id"] for q in queue["items"]} == {"bl-0", "bl-1", "bl-2"}
    # the calls are still recorded: a call-back task exists, but redistribution never takes it
    tasks = await until(lambda: _open_tasks(client, 2))
    async with services.pool.acquire() as conn:
        assignable = {t[0] for t in await open_tasks(conn)}
    blacklisted = next(t["task_id"] for t in tasks if t["caller"] == PHONE)
    other = next(t["task_id"] for t in tasks if t["caller"] == "13700000000")
    assert blacklisted not in assignable and other in assignable
    assert (await client.get("/api/v1/harassment", headers=auth("t-agent"))).status == 403


async def _open_tasks(client: Any, n: int) -> list[dict[str, Any]] | None:
    body = await (await client.get("/api/v1/missed-calls?status=open", headers=auth("t-dispatcher"))).json()
    return body["items"] if len(body["items"]) == n else None


async def test_an_offered_call_rings_the_agent_on_the_live_stream(client: Any) -> None:
    async with client.get("/api/v1/stream", headers=auth("t-agent")) as stream:
        buffer = ""
        while "event: mode" not in buffer:
            buffer += (await stream.content.readany()).decode()
        await cti(client, "r1", "offered", "ring-1", "+86 139 1234 5678", agent="A001")

        async def ring() -> dict[str, Any] | None:
            nonlocal buffer
            buffer += (await asyncio.wait_for(stream.content.readany(), 5)).decode()
            for block in buffer.split("\n\n"):
                data = next((line[6:] for line in block.splitlines() if line.startswith("data: ")), None)
                if data and '"ring"' in data:
                    return dict(json.loads(data))
            return None

        change = await until(ring)
    assert change["data"] == {"agent": "A001", "call_id": "ring-1", "phone": PHONE, "status": "offered",
                              "at": change["data"]["at"]}


async def test_search_cases_by_phone_name_address_and_id(client: Any) -> None:
    a = await register(client, PHONE, "路灯坏了", name="王小明", address="咸阳市秦都区人民路 8 号")
    b = await register(client, "13800000000", "噪音", name="李四", address="渭城区文汇路 100_1 号")

    async def search(q: str, token: str = "t-agent") -> set[str]:
        response = await client.get("/api/v1/cases", params={"q": q}, headers=auth(token))
        assert response.status == 200, await response.text()
        return {c["case_id"] for c in (await response.json())["items"]}

    async def both_listed() -> bool:
        return len(await search("号")) == 2

    await until(both_listed)
    assert await search("+86 139-1234-5678") == {a["case_id"]}
    assert await search("小明") == {a["case_id"]}
    assert await search("人民路") == {a["case_id"]}
    assert await search(b["case_id"]) == {b["case_id"]}
    assert await search("100_1") == {b["case_id"]}
    assert await search("100%") == set()  # LIKE wildcards are literal
    assert await search("_") == {b["case_id"]}
    # a unit finds no one else's case by a caller's number or name, only by case id
    assert await search(PHONE, "t-unit") == set()
    assert await search(a["case_id"], "t-unit") == {a["case_id"]}
    blank = await client.get("/api/v1/cases", params={"q": "  "}, headers=auth("t-agent"))
    assert blank.status == 400


async def _pages(client: Any, path: str, limit: int) -> list[dict[str, Any]]:
    """Every item of a list, read in pages of `limit` with the cursors it gives."""
    seen: list[dict[str, Any]] = []
    params = {"limit": str(limit)}
    while True:
        response = await client.get(path, params=params, headers=auth("t-dispatcher"))
        assert response.status == 200, await response.text()
        body = await response.json()
        assert len(body["items"]) <= limit
        seen += body["items"]
        if body["next"] is None:
            return seen
        params["cursor"] = body["next"]


async def test_the_registry_and_the_blacklist_queue_come_in_pages(client: Any) -> None:
    """`GET /api/v1/customers` and `/api/v1/harassment` give a `next` cursor while there is more, and
    paging through them lists every entry once, in order. Were `next: null` after `limit` items:
    a registry longer than a page (100 by default) could not be read past its first page."""
    phones = [f"1390000000{n}" for n in range(5)]
    for n, phone in enumerate(phones):
        put = await client.put(f"/api/v1/customers/{phone}", headers=auth("t-dispatcher"),
                               json={"tier": "vip" if n % 2 else "blacklisted", "reason": "测试"})
        assert put.status == 200, await put.text()
    for n in range(3):
        await cti(client, f"h{n}", "abandoned", f"h-{n}", phones[0], at=_at(n))

    async def counted() -> list[dict[str, Any]] | None:
        body = await (await client.get("/api/v1/customers", headers=auth("t-dispatcher"))).json()
        return body["items"] if len(body["items"]) == 5 and body["items"][0]["contacts"] == 3 else None

    whole = await until(counted)
    paged = await _pages(client, "/api/v1/customers", 2)
    assert [e["phone"] for e in paged] == [e["phone"] for e in whole]
    assert whole[0]["phone"] == phones[0] and {e["phone"] for e in paged} == set(phones)
    assert {e["phone"] for e in await _pages(client, "/api/v1/customers?tier=blacklisted", 1)} == set(
        phones[0::2])
    assert [q["call_id"] for q in await _pages(client, "/api/v1/harassment", 1)] == ["h-2", "h-1", "h-0"]
    for path in ("/api/v1/customers", "/api/v1/harassment"):
        for cursor in ("x", "1|nope|1390", "2026-12-01T00:00:00|x", "|"):
            response = await client.get(path, params={"cursor": cursor}, headers=auth("t-dispatcher"))
            assert response.status == 400, (path, cursor, await response.text())
            assert (await response.json())["error"]["code"] == "bad_parameter"
