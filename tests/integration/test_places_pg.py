"""Addresses to places on real PostgreSQL: an address-only case is located, linked and queued
for dispatch like a case with coordinates; an agent corrects its place; the intake channels
(Open311 `address_string`, SMS) reach the same path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.read_model import CasesProjection, waiting_located
from dispatch.cases.registration import RegisterCase
from dispatch.cases.state import load_case
from dispatch.linking.policy import LinkingPolicy, PgCandidates
from dispatch.places.gazetteer import Gazetteer
from dispatch.places.locate import AddressLocator, GazetteerCache
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from gateway.cli.loader import catch_up_reference, load_paths
from tests.conftest import auth, stored_events

GIS = Path(__file__).resolve().parents[2] / "gis_data"
PLACES = [
    ("T1", "金山社区", "community", "610402", {"type": "Polygon", "coordinates": [[
        [108.695, 34.326], [108.705, 34.326], [108.705, 34.334], [108.695, 34.334], [108.695, 34.326]]]}),
    ("T2", "金山社区", "community", "610404", {"type": "Point", "coordinates": [108.76, 34.38]}),
    ("T3", "渭阳超市", "landmark", "610404", {"type": "Point", "coordinates": [108.741, 34.371]}),
]


async def load_gazetteer(services: Any, tmp_path: Path) -> None:
    features = [{"type": "Feature", "geometry": geometry,
                 "properties": {"kind": "place", "id": pid, "name": name, "type": kind, "district": district}}
                for pid, name, kind, district, geometry in PLACES]
    path = tmp_path / "places.geojson"
    document = {"type": "FeatureCollection", "features": features}
    path.write_text(json.dumps(document, ensure_ascii=False), "utf-8")
    stats = await load_paths(services, [GIS / "districts.geojson", path])
    assert stats.errors == []
    await catch_up_reference(services)


class CountingCache(GazetteerCache):
    """The gazetteer cache, counting how often the locator asks it for the matcher."""

    reads = 0

    async def current(self) -> Gazetteer | None:
        self.reads += 1
        return await super().current()


async def register(services: Any, *, location: Place | None = None, address: str | None = None,
                   description: str = "停电了", phone: str = "13800138000") -> str:
    done = await services.bus.handle(RegisterCase(
        category="power_fault", channel="phone", description=description, caller=CallerInfo(phone=phone),
        location=location, address=address))
    return str(done.case_id)


async def test_an_address_only_case_is_located_linked_and_queued_for_dispatch(
    services: Any, tmp_path: Path
) -> None:
    await load_gazetteer(services, tmp_path)
    given = await register(services, location=Place(34.3301, 108.7002, "610402", "秦都区"),
                           phone="13900139000")
    texted = await register(services, address="秦都区金山社区5号楼2单元")
    vague = await register(services, address="金山社区", phone="13700137000")  # two districts have one
    cache = CountingCache(services.pool)
    await ReactorRunner(services.store, AddressLocator(cache, services.bus.handle)).run_until_caught_up()
    assert cache.reads == 1  # one version query for the runner's batch, not one per case

    state = await load_case(services.store, texted)
    assert state.location is not None and state.location_source == "gazetteer"
    assert (state.location.district, state.location.district_name) == ("610402", "秦都区")
    assert state.matched_place is not None and state.matched_place.id == "T1"
    assert state.matched_place.score == 100.0 and state.matched_place.text == "金山社区"
    assert (await load_case(services.store, vague)).location is None  # left for an agent

    params = services.settings.linking
    policy = LinkingPolicy(PgCandidates(services.pool, params), params, store=services.store,
                           send=services.bus.handle)
    await ReactorRunner(services.store, policy).run_until_caught_up()
    assert given in (await load_case(services.store, texted)).linked_case_ids

    await ProjectionRunner(services.store, CasesProjection(services.clock)).run_until_caught_up()
    queued = {r.case_id: r for r in await waiting_located(services.pool, ["power_fault"], 10)}
    assert texted in queued and vague not in queued
    assert queued[texted].district == "610402"


async def wait_for(check: Any, within: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await check()
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_open311_address_is_located_and_an_agent_corrects_it(
    client: Any, services: Any, tmp_path: Path
) -> None:
    await load_gazetteer(services, tmp_path)
    form = {"api_key": "t-channel", "service_code": "complaint", "description": "路灯不亮",
            "address_string": "渭城区渭阳超市对面"}
    response = await client.post("/open311/v2/requests.json", data=form)
    assert response.status == 201
    case_id = (await response.json())[0]["service_request_id"]

    async def located() -> Any:
        answer = await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-agent"))
        body = await answer.json()
        return body if body["location"] else None

    body = await wait_for(located)
    assert body is not None, "the Open311 address was never located"
    assert body["location"]["source"] == "gazetteer" and body["location"]["place"]["id"] == "T3"
    assert (body["location"]["lat"], body["location"]["lon"]) == (34.371, 108.741)

    async def on_the_board() -> Any:  # the read model the console's map draws
        answer = await client.get("/api/v1/cases", headers=auth("t-dispatcher"))
        items = [i for i in (await answer.json())["items"] if i["case_id"] == case_id]
        return items[0] if items and items[0]["location"] else None

    shown = await wait_for(on_the_board)
    assert shown is not None and shown["location"]["source"] == "gazetteer"

    stale = await client.post(f"/api/v1/cases/{case_id}/location", headers=auth("t-agent"),
                              json={"expected_version": body["version"] - 1, "place_id": "T2"})
    assert stale.status == 409
    unknown = await client.post(f"/api/v1/cases/{case_id}/location", headers=auth("t-agent"),
                                json={"expected_version": body["version"], "place_id": "nope"})
    assert unknown.status == 404
    denied = await client.post(f"/api/v1/cases/{case_id}/location", headers=auth("t-unit"),
                               json={"expected_version": body["version"], "place_id": "T2"})
    assert denied.status == 403
    moved = await client.post(f"/api/v1/cases/{case_id}/location", headers=auth("t-agent"),
                              json={"expected_version": body["version"], "place_id": "T2"})
    assert moved.status == 200
    after = (await moved.json())["location"]
    assert (after["source"], after["place"]["id"], after["district"]) == ("agent", "T2", "610404")

    point = await client.post(f"/api/v1/cases/{case_id}/location", headers=auth("t-dispatcher"),
                              json={"expected_version": body["version"] + 1, "lat": 34.3302, "lon": 108.7003})
    assert point.status == 200
    where = (await point.json())["location"]
    assert (where["source"], where["place"], where["district"]) == ("agent", None, "610402")
    history = await services.store.read_stream(f"case-{case_id}")
    assert [e.data["source"] for e in history if e.type == "CaseLocated"] == ["gazetteer", "agent", "agent"]


async def test_an_sms_that_names_a_place_opens_a_located_case(services: Any, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from dispatch.intake.contact import InboundContact
    from dispatch.intake.sms import ReceiveSms, SmsIntakePolicy

    await load_gazetteer(services, tmp_path)
    at = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    await services.bus.handle(ReceiveSms(InboundContact(
        channel="sms", kind="sms", idempotency_key="twilio:sms:SM1",
        caller=CallerInfo(phone="+8613911112222"), occurred_at=at, received_at=at,
        text="渭城区渭阳超市旁边停电了", raw={"MessageSid": "SM1"})))
    await ReactorRunner(services.store, SmsIntakePolicy(services.bus.handle)).run_until_caught_up()
    await ReactorRunner(services.store, AddressLocator(GazetteerCache(services.pool),
                                                       services.bus.handle)).run_until_caught_up()
    [located] = await stored_events(services.pool, "type = 'CaseLocated'")
    data = located.data
    assert data["source"] == "gazetteer" and data["place"]["id"] == "T3"
    assert data["location"]["district"] == "610404"
