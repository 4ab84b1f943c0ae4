"""The operator API for cases over HTTP on real PostgreSQL, with a fake clock and driven runners."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dispatch.cases.read_model import CasesProjection, LightRefresher
from dispatch.core.clock import FakeClock
from dispatch.supervision.chasing import CaseFollowUp
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from tests.conftest import auth, stored_events

FAULT = {
    "category": "power_fault", "priority": 2, "channel": "phone",
    "caller": {"name": "张三", "phone": "13800138000"}, "account_number": "6100012345",
    "description": "整栋楼停电", "location": {"lat": 34.33, "lon": 108.70},
    "address": "秦都区人民路1号", "fault": {"type": "outage", "began_at": "2026-11-23T07:50:00+08:00",
                                         "scope": "building"},
}


async def catch_up(services: Any) -> None:
    await ProjectionRunner(services.store, CasesProjection(services.clock)).run_until_caught_up()


async def post(
    api: Any, path: str, body: dict[str, Any], token: str = "t-dispatcher", status: int = 200
) -> Any:
    resp = await api.post(path, json=body, headers=auth(token))
    data = await resp.json()
    assert resp.status == status, data
    return data


async def test_register_and_walk_the_lifecycle(api: Any, wired: Any, clock: FakeClock) -> None:
    case = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    cid, base = case["case_id"], f"/api/v1/cases/{case['case_id']}"
    assert (case["status"], case["light"], case["version"]) == ("accepted", "green", 0)
    assert case["deadline"] == (clock.now() + timedelta(minutes=30)).isoformat()
    assert case["caller"]["phone"] == "13800138000" and case["history_url"].endswith(f"/{cid}/history")
    case = await post(api, f"{base}/dispatch", {"expected_version": 0, "to": "U001"})
    stale = await post(api, f"{base}/confirm", {"expected_version": 0}, "t-unit", 409)
    assert stale["error"]["code"] == "stale_version"
    for action, body, token in [
        ("confirm", {}, "t-unit"),
        ("feedback", {"text": "到场抢修"}, "t-unit"),
        ("request-extension", {"until": (clock.now() + timedelta(hours=13)).isoformat(), "reason": "备件"},
         "t-unit"),
        ("decide-extension", {"approve": True}, "t-dispatcher"),
        ("complete", {"result": "已恢复供电"}, "t-unit"),
        ("callback", {"outcome": "satisfied"}, "t-agent"),
    ]:
        case = await post(api, f"{base}/{action}", {"expected_version": case["version"], **body}, token)
    assert (case["status"], case["callback"]["outcome"], case["callback"]["handler"]) == (
        "called_back", "satisfied", "U001")
    await catch_up(wired)
    resp = await api.get("/api/v1/cases?status=called_back", headers=auth("t-auditor"))
    listed = (await resp.json())["items"]
    assert [c["case_id"] for c in listed] == [cid] and listed[0]["version"] == case["version"]
    resp = await api.get("/api/v1/assessment/units?unit_id=U001", headers=auth("t-dispatcher"))
    [stats] = (await resp.json())["items"]
    assert (stats["dispatched"], stats["confirmed"], stats["completed"], stats["satisfied"]) == (1, 1, 1, 1)


async def test_bad_input_and_roles(api: Any) -> None:
    missing = {k: v for k, v in FAULT.items() if k != "account_number"}
    err = await post(api, "/api/v1/cases", missing, "t-agent", 400)
    assert "account_number" in err["error"]["message"]
    case = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    base = f"/api/v1/cases/{case['case_id']}"
    await post(api, f"{base}/dispatch", {"to": "U001"}, status=400)  # expected_version is required
    await post(api, f"{base}/dispatch", {"expected_version": 0, "to": "U001"}, "t-unit", 403)
    await post(api, f"{base}/fly", {"expected_version": 0}, status=404)
    await post(api, f"{base}/confirm", {"expected_version": 0}, "t-unit", 409)  # not dispatched yet
    resp = await api.get("/api/v1/cases/CNOPE", headers=auth("t-agent"))
    assert resp.status == 404


async def test_personal_data_is_masked_for_other_units(api: Any, wired: Any) -> None:
    case = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    base = f"/api/v1/cases/{case['case_id']}"
    resp = await api.get(base, headers=auth("t-unit"))
    seen = await resp.json()
    assert seen["caller"] == {"name": None, "phone": "*******8000", "email": None, "openid": None}
    assert seen["address"] is None
    await post(api, f"{base}/dispatch", {"expected_version": 0, "to": "U001"})
    resp = await api.get(base, headers=auth("t-unit"))
    assert (await resp.json())["caller"]["name"] == "张三"  # now assigned to U001
    await catch_up(wired)
    resp = await api.get("/api/v1/cases", headers=auth("t-unit"))
    assert (await resp.json())["items"][0]["caller"]["phone"] == "13800138000"


async def test_lights_and_overdue_lists_follow_the_clock(api: Any, wired: Any, clock: FakeClock) -> None:
    ids = [(await post(api, "/api/v1/cases", FAULT, "t-agent", 201))["case_id"] for _ in range(3)]
    confirm_late, complete_late, callback_late = ids
    await post(api, f"/api/v1/cases/{confirm_late}/dispatch", {"expected_version": 0, "to": "U002"})
    for cid in (complete_late, callback_late):
        await post(api, f"/api/v1/cases/{cid}/dispatch", {"expected_version": 0, "to": "U001"})
        await post(api, f"/api/v1/cases/{cid}/confirm", {"expected_version": 1}, "t-unit")
    await post(api, f"/api/v1/cases/{callback_late}/complete", {"expected_version": 2}, "t-unit")
    await catch_up(wired)

    async def board(query: str, token: str = "t-dispatcher") -> list[str]:
        resp = await api.get(f"/api/v1/{query}", headers=auth(token))
        body = await resp.json()
        assert resp.status == 200, body
        return [c["case_id"] for c in body["items"]]

    assert await board("overdue?kind=confirmation") == []
    assert sorted(await board("cases?light=green")) == sorted(ids)
    clock.advance(timedelta(minutes=25))  # past 80 % of the 30-min response limit
    assert await board("cases?light=yellow") == [confirm_late]  # the others are confirmed / done
    clock.advance(timedelta(minutes=6))
    assert await board("overdue?kind=confirmation") == [confirm_late]
    assert await board("cases?light=red") == [confirm_late]
    clock.advance(timedelta(hours=13))
    assert await board("overdue?kind=completion") == [complete_late]
    assert await board("overdue?kind=completion", "t-unit") == [complete_late]  # its own
    assert await board("overdue?kind=callback") == [callback_late]
    resp = await api.get("/api/v1/overdue?kind=whenever", headers=auth("t-dispatcher"))
    assert resp.status == 400
    published: list[Any] = []

    async def publish(changes: Any) -> None:
        published.extend(changes)

    assert await LightRefresher(wired.pool, clock, publish).refresh() == 2
    lights = dict(await wired.pool.fetch("SELECT case_id, light FROM cases"))
    assert (lights[confirm_late], lights[complete_late], lights[callback_late]) == ("red", "red", "green")
    assert {c.data["case_id"] for c in published} == {confirm_late, complete_late}


async def test_pages_with_cursor_and_queue_order(api: Any, wired: Any) -> None:
    ids = [(await post(api, "/api/v1/cases", {**FAULT, "priority": p}, "t-agent", 201))["case_id"]
           for p in (3, 1, 2)]
    await catch_up(wired)
    resp = await api.get("/api/v1/cases?limit=2", headers=auth("t-agent"))
    first = await resp.json()
    resp = await api.get(f"/api/v1/cases?limit=2&cursor={first['next']}", headers=auth("t-agent"))
    second = await resp.json()
    assert second["next"] is None
    assert sorted(c["case_id"] for c in first["items"] + second["items"]) == sorted(ids)
    resp = await api.get("/api/v1/queue", headers=auth("t-dispatcher"))
    queue = (await resp.json())["items"]
    assert queue[0]["case_id"] == ids[1] and queue[0]["green_channel"] is True
    assert [c["priority"] for c in queue] == [1, 2, 3]


async def test_followup_schedules_timers_and_sends_sms(api: Any, wired: Any, clock: FakeClock) -> None:
    case = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    cid = case["case_id"]
    await wired.pool.execute(
        "INSERT INTO ref_units (id, name, phone) VALUES ('U001', '秦都供电', '13326435929')")
    await post(api, f"/api/v1/cases/{cid}/dispatch", {"expected_version": 0, "to": "U001"})
    follow = ReactorRunner(wired.store, CaseFollowUp(wired.pool, wired.bus, wired.store))
    await follow.run_until_caught_up()
    timers = dict(await wired.pool.fetch("SELECT key, due_at FROM timers"))
    assert timers == {f"case:{cid}:confirmation": clock.now() + timedelta(minutes=30)}
    reasons = await stored_events(wired.pool, "type = 'NotificationRequested'")
    assert [(e.data["reason"], e.data["to"]) for e in reasons] == [
        ("dispatch", "13326435929"), ("transfer", "13800138000")]
    await post(api, f"/api/v1/cases/{cid}/confirm", {"expected_version": 1}, "t-unit")
    await follow.run_until_caught_up()
    assert set(dict(await wired.pool.fetch("SELECT key, due_at FROM timers"))) == {f"case:{cid}:completion"}


async def test_a_case_names_the_unit_it_is_assigned_to(api: Any, wired: Any) -> None:
    """The console showed a bare `U001` as the assignee: the case names the registered unit
    (`assignee_name`), and says null for an id the register does not hold."""
    case = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    assert case.get("assignee_name") is None
    await wired.pool.execute(
        "INSERT INTO ref_units (id, name, phone) VALUES ('U001', '秦都供电', '13326435929')")
    await post(api, f"/api/v1/cases/{case['case_id']}/dispatch", {"expected_version": 0, "to": "U001"})
    resp = await api.get(f"/api/v1/cases/{case['case_id']}", headers=auth("t-unit"))
    shown = await resp.json()
    assert (shown["assigned_to"], shown["assignee_name"]) == ("U001", "秦都供电")
    await wired.pool.execute("DELETE FROM ref_units")
    resp = await api.get(f"/api/v1/cases/{case['case_id']}", headers=auth("t-dispatcher"))
    assert (await resp.json())["assignee_name"] is None


async def test_link_and_unlink_through_the_case_actions(api: Any, wired: Any) -> None:
    a = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    b = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    base = f"/api/v1/cases/{a['case_id']}"
    body = {"expected_version": 0, "other_case_id": b["case_id"]}
    linked = await post(api, f"{base}/link", body, "t-agent")
    assert linked["linked_case_ids"] == [b["case_id"]]
    await catch_up(wired)
    resp = await api.get(f"/api/v1/cases?linked_to={b['case_id']}", headers=auth("t-agent"))
    assert [c["case_id"] for c in (await resp.json())["items"]] == [a["case_id"]]
    unlinked = await post(api, f"{base}/unlink", {"expected_version": linked["version"],
                                                  "other_case_id": b["case_id"]}, "t-agent")
    assert unlinked["linked_case_ids"] == []


async def _tables(services: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with services.pool.acquire() as conn:
        cases = [dict(r) for r in await conn.fetch("SELECT * FROM cases ORDER BY case_id")]
        stats = [dict(r) for r in await conn.fetch("SELECT * FROM case_unit_stats ORDER BY unit_id")]
    return cases, stats


async def test_the_projection_writes_the_same_rows_batched_or_event_by_event(
    api: Any, wired: Any, clock: FakeClock
) -> None:
    for n in range(3):
        case = await post(api, "/api/v1/cases", {**FAULT, "description": f"停电 {n}"}, "t-agent", 201)
        base = f"/api/v1/cases/{case['case_id']}"
        steps = [("dispatch", {"to": "U001"}, "t-dispatcher"),
                 ("reject", {"reason": "不属本单位"}, "t-unit"),
                 ("dispatch", {"to": "U001"}, "t-dispatcher"),
                 ("confirm", {}, "t-unit"),
                 ("complete", {"result": "已恢复供电"}, "t-unit"),
                 ("callback", {"outcome": "satisfied"}, "t-agent")][: 2 + 2 * n]
        for action, body, token in steps:
            case = await post(api, f"{base}/{action}", {"expected_version": case["version"], **body}, token)
        clock.advance(timedelta(minutes=7))
    projection = CasesProjection(wired.clock)
    events = await ProjectionRunner(wired.store, projection, batch_size=1).run_until_caught_up()
    one_by_one = await _tables(wired)
    assert len(one_by_one[0]) == 3 and one_by_one[1][0]["dispatched"] == 5

    assert await ProjectionRunner(wired.store, projection, batch_size=500).rebuild() == events
    assert await _tables(wired) == one_by_one


async def test_an_agent_sets_moves_and_clears_a_reminder(api: Any, wired: Any, clock: FakeClock) -> None:
    todo = {**FAULT, "category": "todo", "priority": 4, "description": "周五前回复王女士公积金问题"}
    todo.pop("fault")
    case = await post(api, "/api/v1/cases", todo, "t-agent", 201)
    base = f"/api/v1/cases/{case['case_id']}"
    at = (clock.now() + timedelta(hours=3)).isoformat()
    case = await post(api, f"{base}/reminder", {"expected_version": 0, "remind_at": at, "note": "回电"},
                      "t-agent")
    assert case["reminder"] == {"at": at, "note": "回电", "by": "agent:A001", "reminded_at": None}
    before = (clock.now() - timedelta(minutes=1)).isoformat()
    past = await post(api, f"{base}/reminder", {"expected_version": case["version"], "remind_at": before},
                      "t-agent", 400)
    assert past["error"]["code"] == "invalid" and "future" in past["error"]["message"]
    missing = await post(api, f"{base}/reminder", {"expected_version": case["version"]}, "t-agent", 400)
    assert missing["error"]["code"] == "missing_field"
    refused = await post(api, f"{base}/reminder", {"expected_version": case["version"], "remind_at": at},
                         "t-unit", 403)
    assert refused["error"]["code"] == "forbidden"
    case = await post(api, f"{base}/reminder", {"expected_version": case["version"], "remind_at": None},
                      "t-agent")
    assert case["reminder"]["at"] is None


async def test_an_idempotency_key_is_a_retry_of_its_own_registration_and_refused_for_any_other(
    api: Any
) -> None:
    """A repeated registration answers its case; the same key on another registration, or on an
    action first, is 409: answering that case would lose the agent's new case without a word."""
    async def register(body: dict[str, Any], key: str) -> Any:
        return await api.post("/api/v1/cases", json=body, headers={**auth("t-agent"), "Idempotency-Key": key})

    first = await register(FAULT, "reg-1")
    again = await register(FAULT, "reg-1")
    assert (first.status, again.status) == (201, 200)
    case_id = (await first.json())["case_id"]
    assert (await again.json())["case_id"] == case_id
    other = {**FAULT, "description": "隔壁楼也停电了", "caller": {"name": "李四", "phone": "13800138001"}}
    refused = await register(other, "reg-1")
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "idempotency_conflict"
    dispatched = await api.post(f"/api/v1/cases/{case_id}/dispatch",
                                json={"expected_version": 0, "to": "U001"},
                                headers={**auth("t-dispatcher"), "Idempotency-Key": "act-1"})
    assert dispatched.status == 200
    refused = await register(other, "act-1")
    assert refused.status == 409 and (await refused.json())["error"]["code"] == "idempotency_conflict"
    taken = await register(other, "reg-2")
    assert taken.status == 201 and (await taken.json())["case_id"] != case_id


async def test_a_filter_value_no_case_can_hold_is_400_not_an_empty_board(api: Any, wired: Any) -> None:
    """The board's closed filters (status, category, light), the duplicate candidates' and the
    incidents' category: a value outside their set is 400 `bad_parameter` naming the choices.
    Were 200 with no items: a typo (`status=open`, `light=RED`) read as "no such cases"."""
    await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    await catch_up(wired)
    for query in ("status=open", "status=Accepted", "light=RED", "light=purple", "category=停电"):
        resp = await api.get(f"/api/v1/cases?{query}", headers=auth("t-dispatcher"))
        error = (await resp.json())["error"]
        assert resp.status == 400 and error["code"] == "bad_parameter", (query, error)
        assert query.split("=")[0] in error["message"]
    for path in ("/api/v1/cases/candidates?category=bogus", "/api/v1/incidents?category=bogus"):
        resp = await api.get(path, headers=auth("t-dispatcher"))
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_parameter", path
    for query in ("status=accepted", "light=green", "category=power_fault", "status=&light="):
        resp = await api.get(f"/api/v1/cases?{query}", headers=auth("t-dispatcher"))
        assert resp.status == 200 and len((await resp.json())["items"]) == 1, query


async def test_the_dispatch_queue_ranks_every_waiting_case_and_comes_in_pages(
    api: Any, wired: Any, monkeypatch: Any
) -> None:
    """`GET /api/v1/queue` ranks every waiting case, however many the board's reads take (here one
    case per read), and gives a `next` cursor while there is more. Was: the newest 1,000 of each
    status only (in a storm the oldest, most overdue, fell off) and `next: null` after `limit`."""
    import gateway.views.cases as views

    monkeypatch.setattr(views, "QUEUE_READ", 1, raising=False)
    ids = [(await post(api, "/api/v1/cases", {**FAULT, "priority": p}, "t-agent", 201))["case_id"]
           for p in (3, 1, 2)]
    await catch_up(wired)
    seen: list[dict[str, Any]] = []
    query = "limit=2"
    while True:
        resp = await api.get(f"/api/v1/queue?{query}", headers=auth("t-dispatcher"))
        body = await resp.json()
        assert resp.status == 200 and len(body["items"]) <= 2, body
        seen += body["items"]
        if body["next"] is None:
            break
        query = f"limit=2&cursor={body['next']}"
    assert [c["case_id"] for c in seen] == [ids[1], ids[2], ids[0]]
    resp = await api.get("/api/v1/queue?cursor=x", headers=auth("t-dispatcher"))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_parameter"
