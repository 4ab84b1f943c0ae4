"""A `unit` token never reads the personal data of a case assigned to another unit, on any route.

CONTRACT.md: names, phone numbers and addresses are masked for a `unit` except
on cases assigned to it; so are free text (the description, a message's text)
and exact coordinates (coarsened to about 1 km), in cases, notifications
(every field: `dedup_key` and `provider_id` carry the number) and incidents.
The test walks every GET route the app serves (so a
route added later is covered without editing this file), calls it as unit
U001 with the ids of a case assigned to U002 filled in, and looks for that
case's personal data anywhere in the answer. A dispatcher calling the same
routes is the control: it must see the data somewhere, or the walk proves nothing.
The live stream (`/api/v1/stream`) is the one GET route that does not answer
with a body: `tests/integration/test_sse.py` checks it with another unit's case.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiohttp import web

from dispatch.cases.read_model import CasesProjection
from dispatch.core.clock import FakeClock
from dispatch.linking.incidents import OpenIncident
from dispatch.linking.read_model import LinksProjection
from dispatch.notify.outbox import RequestNotification, mark_delivery
from eventstore.subscriptions import ProjectionRunner
from tests.conftest import auth

NAME, PHONE, ADDRESS, EMAIL = "欧阳娜娜", "13912345678", "渭城区文林路88号", "nana@example.cn"
CASE = {
    "category": "power_fault", "priority": 2, "channel": "phone",
    "caller": {"name": NAME, "phone": PHONE, "email": EMAIL}, "account_number": "6100012345",
    "description": f"整栋楼停电，老人有心脏病，回拨 {PHONE}",
    "location": {"lat": 34.334567, "lon": 108.701234},
    "address": ADDRESS, "fault": {"type": "outage", "began_at": "2026-11-23T07:50:00+08:00",
                                  "scope": "building"},
}
INCIDENT = "I-storm-1"
SECRETS = (NAME, PHONE, ADDRESS, EMAIL, "文林路", "心脏病", "34.3345", "108.7012")
NO_BODY = frozenset({"/api/v1/stream"})


async def _other_units_case(api: Any, wired: Any) -> str:
    """A case assigned to U002, with a notification to its caller, in the read models."""
    created = await api.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))
    assert created.status == 201
    case_id = str((await created.json())["case_id"])
    dispatched = await api.post(f"/api/v1/cases/{case_id}/dispatch",
                                json={"expected_version": 0, "to": "U002"}, headers=auth("t-dispatcher"))
    assert dispatched.status == 200
    await wired.bus.handle(RequestNotification(
        dedup_key=f"elder-alert:{case_id}:{PHONE}", channel="sms", to=PHONE,
        text=f"{NAME}（{ADDRESS}）按下一键通，请立即联系", case_id=case_id))
    await wired.bus.handle(OpenIncident(INCIDENT, "610404", "power_fault", (case_id,), 34.334567, 108.701234))
    async with wired.pool.acquire() as conn:  # as the log provider answers: the key is its message id
        row_id = await conn.fetchval("SELECT id FROM notification_outbox")
        await mark_delivery(conn, row_id, "sent", f"log-elder-alert:{case_id}:{PHONE}", None, None)
    await ProjectionRunner(wired.store, CasesProjection(wired.clock)).run_until_caught_up()
    await ProjectionRunner(wired.store, LinksProjection()).run_until_caught_up()
    return case_id


def _get_paths(app: web.Application, case_id: str) -> list[str]:
    """Every GET path the app serves, its placeholders filled with the case's ids."""
    paths: set[str] = set()
    ids = {"fmt": "json", "incident_id": INCIDENT}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        if route.method != "GET" or "directory" in info:
            continue
        path = info.get("path") or info.get("formatter", "")
        filled = re.sub(r"\{(\w+)[^}]*\}", lambda m: ids.get(m[1], case_id), path)
        paths.add(filled + ("?" if "?" not in filled else "&") + f"case_id={case_id}&assigned_to=U002"
                  f"&unit_id=U002&kind=confirmation")
    return sorted(p for p in paths if p.split("?")[0] not in NO_BODY)


async def test_no_get_route_shows_a_unit_another_units_caller(api: Any, wired: Any, clock: FakeClock) -> None:
    case_id = await _other_units_case(api, wired)
    clock.advance(timedelta(minutes=45))  # past the confirmation deadline: on the overdue list
    paths = _get_paths(api.server.app, case_id)
    assert any(p.startswith(f"/api/v1/cases/{case_id}?") for p in paths)
    dispatcher_saw: list[str] = []
    for path in paths:
        as_unit = await api.get(path, headers=auth("t-unit"))
        text = await as_unit.text()
        assert as_unit.status != 500, (path, text)
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, (path, as_unit.status, leaked)
        as_dispatcher = await (await api.get(path, headers=auth("t-dispatcher"))).text()
        if any(s in as_dispatcher for s in SECRETS):
            dispatcher_saw.append(path.split("?")[0])
    assert f"/api/v1/cases/{case_id}" in dispatcher_saw  # the control: the data is there to leak
    assert "/api/v1/cases" in dispatcher_saw
    assert "/api/v1/notifications" in dispatcher_saw
    assert "/api/v1/incidents" in dispatcher_saw and f"/api/v1/incidents/{INCIDENT}" in dispatcher_saw


async def test_a_unit_sees_another_units_case_coarsely(api: Any, wired: Any) -> None:
    """Masked is not absent: the board still shows where and what, to about a kilometre."""
    case_id = await _other_units_case(api, wired)
    seen = await (await api.get(f"/api/v1/cases/{case_id}", headers=auth("t-unit"))).json()
    where = seen["location"]
    assert (where["lat"], where["lon"], where["source"], where["place"]) == (34.33, 108.7, "given", None)
    assert (seen["description"], seen["address"], seen["caller"]["name"]) == (None, None, None)
    assert seen["caller"]["phone"] == "*******5678" and seen["category"] == "power_fault"
    [note] = (await (await api.get("/api/v1/notifications", headers=auth("t-unit"))).json())["items"]
    assert (note["to"], note["text"]) == ("*******5678", "***")
    assert note["dedup_key"] == f"elder-alert:{case_id}:*******5678"
    incident = await (await api.get(f"/api/v1/incidents/{INCIDENT}", headers=auth("t-unit"))).json()
    assert (incident["lat"], incident["lon"], incident["case_ids"]) == (34.33, 108.7, [case_id])


async def test_the_unit_assigned_sees_its_callers_data(api: Any, wired: Any) -> None:
    """The other half of the rule: masking is per case, not per role."""
    case_id = await _other_units_case(api, wired)
    now = await (await api.get(f"/api/v1/cases/{case_id}", headers=auth("t-dispatcher"))).json()
    mine = await api.post(f"/api/v1/cases/{case_id}/dispatch",
                          json={"expected_version": now["version"], "to": "U001"},
                          headers=auth("t-dispatcher"))
    assert mine.status == 200, await mine.text()
    seen = await (await api.get(f"/api/v1/cases/{case_id}", headers=auth("t-unit"))).json()
    assert (seen["caller"]["name"], seen["caller"]["phone"], seen["address"]) == (NAME, PHONE, ADDRESS)
    assert seen["description"] == CASE["description"] and seen["location"]["lat"] == 34.334567
    await ProjectionRunner(wired.store, CasesProjection(wired.clock)).run_until_caught_up()
    [note] = (await (await api.get("/api/v1/notifications", headers=auth("t-unit"))).json())["items"]
    assert (note["to"], note["dedup_key"]) == (PHONE, f"elder-alert:{case_id}:{PHONE}")
    assert NAME in note["text"]
