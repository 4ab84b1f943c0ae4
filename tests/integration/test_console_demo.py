"""The demo storm goes through the real channel endpoints and brings the console's read models alive."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from gateway.cli.demo import Storm, demo_files
from gateway.cli.loader import catch_up_reference, load_paths
from gateway.settings import Settings, TwilioSettings
from tests.conftest import auth

TWILIO = "demo-twilio-secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with a Twilio auth token, so signed SMS are accepted."""
    return dataclasses.replace(settings, twilio=TwilioSettings(TWILIO))


async def _eventually(client: Any, path: str, enough: Any, token: str = "t-dispatcher",
                      within: float = 20.0) -> Any:
    body: Any = None
    try:
        async with asyncio.timeout(within):
            while True:
                response = await client.get(path, headers=auth(token))
                body = await response.json() if response.status == 200 else None
                if body is not None and enough(body):
                    return body
                await asyncio.sleep(0.1)
    except TimeoutError:
        pytest.fail(f"{path} did not become {enough.__name__} within {within} s; last seen: {body!r}"[:6000])


async def test_the_storm_creates_cases_missed_calls_and_dispatches(client: Any, services: Any) -> None:
    stats = await load_paths(services, demo_files())
    assert not stats.errors
    await catch_up_reference(services)
    tokens = {"channel": "t-channel", "dispatcher": "t-dispatcher", "admin": "t-admin"}
    storm = Storm(str(client.make_url("")).rstrip("/"), tokens, TWILIO, pace=0.05, waves=6)
    sent = await storm.play()

    assert storm.skipped == set(), f"channels skipped: {storm.skipped}"
    assert sent["cti"] >= 6 * 3 * 2 and sent["sms"] == 6 and sent["web"] == 6 and sent["alarm"] >= 1
    cases = await _eventually(client, "/api/v1/cases?limit=500", lambda b: len(b["items"]) >= 12)
    assert {c["channel"] for c in cases["items"]} >= {"sms", "web"}
    await _eventually(client, "/api/v1/missed-calls?status=open", lambda b: len(b["items"]) >= 2)
    kpis = await _eventually(client, "/api/v1/kpis", lambda b: b["kpis"]["answer_rate"]["value"] is not None)
    assert 0 < kpis["kpis"]["answer_rate"]["value"] < 1
    assert kpis["kpis"]["abandoned_per_hour"]["total"] >= 1
    assert kpis["kpis"]["cases_by_light"]["value"] >= 12
    assert sent.get("dispatch", 0) >= 1


async def test_the_storm_is_a_storm_located_outages_forming_incidents_sent_to_power_crews(
        client: Any, services: Any) -> None:
    from gateway.cli.demo import storm_areas

    stats = await load_paths(services, demo_files())
    assert not stats.errors
    await catch_up_reference(services)
    providers = {r["id"]: (r["name"], set(r["skills"]))
                 for r in await services.pool.fetch("SELECT id, name, skills FROM ref_providers")}
    tokens = {"channel": "t-channel", "dispatcher": "t-dispatcher", "admin": "t-admin"}
    storm = Storm(str(client.make_url("")).rstrip("/"), tokens, TWILIO, pace=0.05, waves=9)
    await storm.play()
    areas = storm_areas()
    assert len(areas) == 3 and all(len(a.name) >= 3 for a in areas)

    def located(body: Any) -> bool:
        outages = [c for c in body["items"] if c["channel"] in ("sms", "web")]
        return len(outages) >= 18 and all((c.get("location") or {}).get("district") for c in outages)

    # the first address a process matches builds the gazetteer's matcher (seconds on a busy host)
    cases = (await _eventually(client, "/api/v1/cases?limit=500", located, within=60.0))["items"]
    outages = [c for c in cases if c["channel"] in ("sms", "web")]
    # web outages are power faults, not reports; every outage has a district (Qindu's)
    assert {c["category"] for c in outages if c["channel"] == "web"} == {"power_fault"}
    assert {c["category"] for c in outages} <= {"power_fault"}
    assert {c["location"]["district"] for c in outages} == {"610402"}
    # dangers (transformer smoke, a trapped lift, a line down) came in as priority 1
    dangers = [c for c in outages if any(w in c["description"] for w in ("冒烟", "电梯困人", "刮断"))]
    assert dangers and all(c["priority"] == 1 for c in dangers)
    # the outages of one place link and form incidents, named by their district
    incidents = await _eventually(client, "/api/v1/incidents", lambda b: len(b["items"]) >= 1)
    assert all(i["category"] == "power_fault" and i["district"] == "610402" for i in incidents["items"])
    # dispatches went by the job: outages to power crews or electricians, never a care company;
    # an elder's alarm to medical or elderly-care help, never a power crew
    def outage_dispatched(body: Any) -> bool:
        return any(c["category"] == "power_fault" and c.get("assigned_to") in providers
                   for c in body["items"])

    refreshed = (await _eventually(client, "/api/v1/cases?limit=500", outage_dispatched))["items"]
    dispatched = [c for c in refreshed if c.get("assigned_to") in providers]
    for c in dispatched:
        name, skills = providers[c["assigned_to"]]
        if c["category"] == "power_fault":
            assert skills & {"power_repair", "line_repair"}, (c, name)
            assert "养老" not in name and "医疗" not in name, (c, name)
        if c["category"] == "elderly_emergency":
            assert skills & {"medical", "elderly_care"} and "抢修" not in name, (c, name)
