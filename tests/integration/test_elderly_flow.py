"""The elderly emergency flow over `POST /channels/alarm/events` and the call-back API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from dispatch.core.clock import FakeClock
from dispatch.core.personal import pseudonym
from dispatch.elderly.alarms import ElderlyAlarmReactor
from dispatch.elderly.read_model import ElderlyAlertsProjection
from dispatch.gis.geo import geodesic_m, wgs84_to_gcj02
from dispatch.notify.outbox import Lane
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from gateway.settings import Settings
from tests.conftest import auth
from tests.integration.alarm_helpers import (
    CONTACTS,
    ELDER_ACCOUNT,
    HOME,
    events_of,
    outbox,
    register_elder,
)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, services: Any) -> Any:
    """The app on a fake clock, without background runners (the tests drive them)."""
    from gateway.app import create_app

    fake = FakeClock(datetime.now(UTC).replace(microsecond=0))
    services.clock = fake
    services.bus.provide("clock", fake)
    return await aiohttp_client(create_app(settings, services=services, background=False))


def alarm(event_id: str, code: str = "MA", account: str = ELDER_ACCOUNT, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "account": account, "code": code,
            "at": datetime.now(UTC).isoformat(), **extra}


async def post(client: Any, body: Any) -> Any:
    return await client.post("/channels/alarm/events", json=body, headers=auth("t-channel"))


async def alerts(client: Any, **params: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/elderly/alerts", params=params, headers=auth("t-agent"))
    assert response.status == 200
    return list((await response.json())["items"])


async def test_alarm_opens_case_alerts_contacts_and_call_back_goes_overdue(
    client: Any, services: Any
) -> None:
    await register_elder(services)
    response = await post(client, alarm("vendor-1"))
    assert response.status == 201
    body = await response.json()
    case_id = body["case_id"]
    assert body["kind"] == "alarm" and body["flags"] == []
    [case] = await events_of(services, "CaseRegistered")
    data = case["data"]
    assert data["priority"] == 1 and data["category"] == "elderly_emergency"
    assert (data["location"]["lat"], data["location"]["lon"]) == HOME  # the elder's home
    assert data["address"] == "秦都区建设路195号" and data["caller"]["device_account"] == ELDER_ACCOUNT
    rows = await outbox(services, case_id)
    assert sorted(r["to_addr"] for r in rows) == sorted(c["phone"] for c in CONTACTS)
    assert all(case_id in r["body"] and r["dedup_key"].startswith("elder-alert:") for r in rows)
    assert {r["lane"] for r in rows} == {Lane.URGENT}  # ahead of a storm's acknowledgements

    await ProjectionRunner(services.store, ElderlyAlertsProjection()).run_until_caught_up()
    [alert] = await alerts(client)
    assert alert["case_id"] == case_id and alert["notified"] == 3 and not alert["overdue"]
    assert await alerts(client, overdue="true") == []
    services.clock.advance(timedelta(minutes=31))
    [overdue] = await alerts(client, overdue="true")
    assert overdue["case_id"] == case_id

    confirm = await client.post(f"/api/v1/elderly/alerts/{case_id}/confirm",
                                json={"outcome": "reached", "note": "daughter arrived"},
                                headers=auth("t-agent"))
    assert confirm.status == 200
    await ProjectionRunner(services.store, ElderlyAlertsProjection()).run_until_caught_up()
    assert await alerts(client, overdue="true") == []
    bad = await client.post(f"/api/v1/elderly/alerts/{case_id}/confirm", json={"outcome": "maybe"},
                            headers=auth("t-agent"))
    assert bad.status == 400


async def test_repeated_event_id_changes_nothing(client: Any, services: Any) -> None:
    await register_elder(services)
    body = alarm("vendor-2")
    first = await (await post(client, body)).json()
    again = await post(client, body)
    assert again.status == 200
    assert (await again.json())["case_id"] == first["case_id"]
    assert len(await events_of(services, "AlarmReceived")) == 1
    assert len(await events_of(services, "CaseRegistered")) == 1
    assert len(await events_of(services, "NotificationRequested")) == len(CONTACTS)
    # the catch-up reactor (after its grace period) re-runs the response idempotently
    services.clock.advance(ElderlyAlarmReactor.GRACE)
    await ReactorRunner(services.store, ElderlyAlarmReactor(services)).run_until_caught_up()
    assert len(await events_of(services, "NotificationRequested")) == len(CONTACTS)
    assert len(await events_of(services, "ElderlyAlertOpened")) == 1


async def test_an_event_id_reused_for_another_signal_is_409_and_changes_nothing(
    client: Any, services: Any
) -> None:
    """An id already used names the first delivery: another signal under it (a test resent as an
    alarm, another device's alarm) is 409 `idempotency_conflict` and opens nothing, as a reused
    id is on every channel. Bug: it was answered 200 as the first delivery, so the vendor took
    the second alarm for delivered and it was lost. The same event in another spelling (the
    code's case, `at` in another offset, the zone as a number) is still a repeat."""
    await register_elder(services)
    test = await (await post(client, alarm("reused-1", code="602"))).json()
    again = await post(client, alarm("reused-1", code="MA"))
    assert again.status == 409 and (await again.json())["error"]["code"] == "idempotency_conflict"
    assert await events_of(services, "CaseRegistered") == []
    assert await events_of(services, "NotificationRequested") == []
    at = datetime.now(UTC).replace(microsecond=0)
    first = await (await post(client, alarm("reused-2", code="MA", zone="1", at=at.isoformat()))).json()
    for other in ({"code": "RP"}, {"account": "E9999"}, {"zone": "2"}, {"lat": 34.3, "lon": 108.7},
                  {"at": (at + timedelta(seconds=5)).isoformat()}):
        again = await post(client, {**alarm("reused-2", code="MA", zone="1", at=at.isoformat()), **other})
        assert again.status == 409, other
    same = alarm("reused-2", code="ma", zone=1, at=at.astimezone(timezone(timedelta(hours=8))).isoformat())
    again = await post(client, same)
    assert again.status == 200 and await again.json() == {**first, "duplicate": True}
    assert test["kind"] == "test" and len(await events_of(services, "AlarmReceived")) == 2
    assert len(await events_of(services, "CaseRegistered")) == 1


async def test_a_burst_from_one_account_joins_its_case(client: Any, services: Any) -> None:
    """Presses of one device within 10 minutes of the first are one case and one round of
    texts; a press after that, or from another device, opens its own."""
    await register_elder(services)
    first = await (await post(client, alarm("burst-1"))).json()
    for n, minutes in ((2, 3), (3, 9.5)):  # minutes after the first press
        services.clock.advance(timedelta(minutes=minutes - (3 if n == 3 else 0)))
        again = await post(client, alarm(f"burst-{n}"))
        assert again.status == 201 and (await again.json())["case_id"] == first["case_id"]
    assert len(await events_of(services, "AlarmReceived")) == 3  # each press is on record
    joined = await events_of(services, "AlarmJoinedAlert")  # and with the case it joined
    assert {(j["data"]["case_id"], j["stream"]) for j in joined} == {
        (first["case_id"], f"elderalert-{first['case_id']}")}
    assert len(joined) == 2
    assert len(await events_of(services, "CaseRegistered")) == 1
    assert len(await events_of(services, "NotificationRequested")) == len(CONTACTS)
    other = await (await post(client, alarm("other-1", account="E9999"))).json()
    assert other["case_id"] != first["case_id"]
    services.clock.advance(timedelta(minutes=1))  # 10.5 min after the first press
    later = await (await post(client, alarm("burst-4"))).json()
    assert later["case_id"] not in (first["case_id"], other["case_id"])
    assert len(await events_of(services, "CaseRegistered")) == 3


async def test_a_burst_joins_the_case_an_earlier_release_opened_under_the_account(
    client: Any, services: Any
) -> None:
    """Until this release a burst's case key named the device account itself; now its pseudonym.
    A press during an upgrade joins the case the earlier release opened (its key is looked up,
    never written again). Bug: the old key unknown, so the press opens a second emergency case."""
    await register_elder(services)
    first = await (await post(client, alarm("upgrade-1"))).json()
    async with services.pool.acquire() as conn:  # as the earlier release stored it
        moved = await conn.execute(
            "UPDATE idempotency_keys SET key = replace(key, $1, $2) WHERE key LIKE $1 || ':%'",
            f"alarm-case:device:{pseudonym(ELDER_ACCOUNT)}", f"alarm-case:account:{ELDER_ACCOUNT}")
    assert moved == "UPDATE 1"
    services.clock.advance(timedelta(minutes=3))
    again = await (await post(client, alarm("upgrade-2"))).json()
    assert again["case_id"] == first["case_id"]
    assert len(await events_of(services, "CaseRegistered")) == 1


async def test_device_position_in_gcj02_is_stored_in_wgs84(client: Any, services: Any) -> None:
    await register_elder(services)
    lat, lon = wgs84_to_gcj02(34.3400, 108.7000)
    await post(client, alarm("vendor-3", code="E101", lat=lat, lon=lon, crs="gcj02"))
    [case] = await events_of(services, "CaseRegistered")
    place = case["data"]["location"]
    assert geodesic_m(place["lat"], place["lon"], 34.3400, 108.7000) < 1.0


async def test_nearest_medical_help_is_noted_on_the_alert(client: Any, services: Any) -> None:
    from dispatch.gis.holder import ProviderIndexHolder
    from dispatch.gis.nearest import Provider

    near = Provider("P-NEAR", "社区医生", HOME[0] + 0.002, HOME[1], frozenset({"medical"}), 3)
    far = Provider("P-FAR", "远处医院", HOME[0] + 0.05, HOME[1], frozenset({"medical"}), 3)
    plumber = Provider("P-PLUMB", "水电工", HOME[0], HOME[1], frozenset({"plumbing"}), 3)
    services.provider_index = ProviderIndexHolder([near, far, plumber])
    await register_elder(services)
    await post(client, alarm("vendor-6"))
    [opened] = await events_of(services, "ElderlyAlertOpened")
    help_ = opened["data"]["nearest_help"]
    assert help_["id"] == "P-NEAR" and 200 < help_["distance_m"] < 250


async def test_unknown_account_opens_flagged_case(client: Any, services: Any) -> None:
    body = await (await post(client, alarm("vendor-4", code="120", account="NOBODY1"))).json()
    assert body["flags"] == ["unregistered_device"] and body["case_id"]
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["flags"] == ["unregistered_device"] and case["data"]["priority"] == 1


async def test_test_signal_is_recorded_without_case(client: Any, services: Any) -> None:
    await register_elder(services)
    body = await (await post(client, alarm("vendor-5", code="602"))).json()
    assert body["kind"] == "test" and body["case_id"] is None
    assert len(await events_of(services, "AlarmReceived")) == 1
    assert await events_of(services, "CaseRegistered") == []


@pytest.mark.parametrize("body", [
    {"account": "E0001", "code": "MA", "at": "2026-01-01T00:00:00Z"},
    {"event_id": "x", "account": "E0001", "code": "ZZZZ", "at": "2026-01-01T00:00:00Z"},
    {"event_id": "x", "account": "E0001", "code": "MA", "at": "yesterday"},
    {"event_id": "x", "account": "E0001", "code": "MA", "at": "2026-01-01T00:00:00Z", "lat": 91, "lon": 1},
    {"event_id": "x", "account": "bad account!", "code": "MA", "at": "2026-01-01T00:00:00Z"},
    [1, 2],
])
async def test_bad_alarm_input_is_400_and_recorded(client: Any, services: Any, body: Any) -> None:
    response = await post(client, body)
    assert response.status == 400
    assert (await response.json())["error"]["code"]
    assert len(await events_of(services, "InputRejected")) == 1
    assert await events_of(services, "AlarmReceived") == []


async def test_alarm_endpoint_needs_a_channel_token(client: Any) -> None:
    response = await client.post("/channels/alarm/events", json=alarm("v"), headers=auth("t-agent"))
    assert response.status == 403
    assert (await client.post("/channels/alarm/events", json=alarm("v"))).status == 401
