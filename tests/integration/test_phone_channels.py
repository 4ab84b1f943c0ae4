"""Phone channels over HTTP on the real app: CTI events and Twilio voice status callbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from gateway.services import SERVICES
from gateway.settings import Settings, TwilioSettings
from tests.conftest import auth

TOKEN = "twilio-test-token"
PUBLIC = "https://hotline.example.cn"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with Twilio configured behind a proxy."""
    return dataclasses.replace(settings, twilio=TwilioSettings(TOKEN),
                               http=dataclasses.replace(settings.http, public_url=PUBLIC))


def cti(event_id: str, kind: str, call_id: str, caller: str = "13912345678", **more: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": kind, "call_id": call_id, "caller": caller,
            "queue": "95598", "at": "2026-11-23T08:00:00Z", **more}


async def rejected(client: Any) -> list[dict[str, Any]]:
    pool = client.app[SERVICES].pool
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT data FROM events WHERE type = 'InputRejected' ORDER BY position")
    return [r["data"] for r in rows]


async def wait_for(client: Any, path: str, predicate: Any, within: float = 3.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        body = await (await client.get(path, headers=auth("t-dispatcher"))).json()
        if predicate(body):
            return body
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.02)


async def test_cti_events_are_idempotent_and_make_a_task_within_a_second(client: Any) -> None:
    response = await client.post("/channels/cti/events", json=cti("e1", "offered", "c1"),
                                 headers=auth("t-channel"))
    assert response.status == 201
    started = time.monotonic()
    first = await client.post("/channels/cti/events", json=cti("e2", "abandoned", "c1"),
                              headers=auth("t-channel"))
    again = await client.post("/channels/cti/events", json=cti("e2", "abandoned", "c1"),
                              headers=auth("t-channel"))
    assert (first.status, again.status) == (201, 200)
    assert (await again.json())["duplicate"] is True
    body = await wait_for(client, "/api/v1/missed-calls?status=open", lambda b: b["items"], 1.0)
    assert time.monotonic() - started < 1.0
    [task] = body["items"]
    assert task["caller"] == "13912345678" and task["attempts"] == 1
    assert {"caller", "attempts", "first_missed_at", "last_missed_at", "assigned_to", "status"} <= set(task)
    assert body["next"] is None


async def test_a_caller_presented_as_a_sip_or_tel_uri_gets_one_call_back_with_the_number(client: Any) -> None:
    for n, caller in enumerate(("sip:13912345678@10.0.0.8", "tel:+86-139-1234-5678", "013912345678")):
        response = await client.post("/channels/cti/events", json=cti(f"u{n}", "abandoned", f"cu{n}", caller),
                                     headers=auth("t-channel"))
        assert response.status == 201
    body = await wait_for(client, "/api/v1/missed-calls?status=open",
                          lambda b: b["items"] and b["items"][0]["attempts"] == 3)
    [task] = body["items"]
    assert task["caller"] == "13912345678"


async def test_a_withheld_number_is_recorded_and_makes_no_task(client: Any) -> None:
    """An anonymous caller's abandoned call is a contact on record; no call-back can be made,
    and the redistribution goes on past it (the next caller's abandon gets its task)."""
    for event_id, kind in (("a1", "offered"), ("a2", "abandoned")):
        body = {k: v for k, v in cti(event_id, kind, "anon1").items() if k != "caller"}
        response = await client.post("/channels/cti/events", json=body, headers=auth("t-channel"))
        assert response.status == 201, await response.text()
    await client.post("/channels/cti/events", json=cti("n1", "abandoned", "named1", caller="13800000009"),
                      headers=auth("t-channel"))
    body = await wait_for(client, "/api/v1/missed-calls?status=open", lambda b: b["items"], 3.0)
    assert [t["caller"] for t in body["items"]] == ["13800000009"]


async def test_cti_bad_input_is_400_json_and_recorded(client: Any) -> None:
    bad_json = await client.post("/channels/cti/events", data=b"{not json",
                                 headers={**auth("t-channel"), "Content-Type": "application/json"})
    missing = await client.post("/channels/cti/events", json={"event_id": "x", "type": "offered"},
                                headers=auth("t-channel"))
    assert (bad_json.status, missing.status) == (400, 400)
    assert (await bad_json.json())["error"]["code"] == "bad_json"
    assert "call_id" in (await missing.json())["error"]["message"]
    codes = [r["code"] for r in await rejected(client)]
    assert codes == ["bad_json", "missing_field"]
    unauthorised = await client.post("/channels/cti/events", json=cti("e9", "offered", "c9"))
    assert unauthorised.status == 401


def signed(path: str, params: dict[str, str], token: str = TOKEN) -> tuple[bytes, dict[str, str]]:
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return urlencode(params).encode(), {"X-Twilio-Signature": signature,
                                        "Content-Type": "application/x-www-form-urlencoded"}


async def test_twilio_missed_inbound_call_opens_a_task(client: Any) -> None:
    params = {"CallSid": "CA0001", "CallStatus": "no-answer", "From": "+8613800000001",
              "To": "+8695598", "Direction": "inbound", "AccountSid": "AC1"}
    body, headers = signed("/channels/twilio/voice-status", params)
    for _ in range(2):  # Twilio retries: the second delivery changes nothing
        response = await client.post("/channels/twilio/voice-status", data=body, headers=headers)
        assert response.status == 200
        assert "<Response>" in await response.text()
    tasks = await wait_for(client, "/api/v1/missed-calls", lambda b: b["items"])
    assert [t["caller"] for t in tasks["items"]] == ["13800000001"]
    assert tasks["items"][0]["attempts"] == 1
    completed = {**params, "CallSid": "CA0002", "CallStatus": "completed"}
    body, headers = signed("/channels/twilio/voice-status", completed)
    assert (await client.post("/channels/twilio/voice-status", data=body, headers=headers)).status == 200
    closed = await wait_for(client, "/api/v1/missed-calls?status=closed", lambda b: b["items"])
    assert closed["items"][0]["close_reason"] == "got_through"


async def test_twilio_bad_signature_is_403_and_recorded(client: Any) -> None:
    params = {"CallSid": "CA9", "CallStatus": "busy", "From": "+8613800000009"}
    body, headers = signed("/channels/twilio/voice-status", params, token="wrong")
    response = await client.post("/channels/twilio/voice-status", data=body, headers=headers)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "bad_signature"
    body, headers = signed("/channels/twilio/voice-status", {"CallStatus": "busy"})
    missing = await client.post("/channels/twilio/voice-status", data=body, headers=headers)
    assert missing.status == 400
    assert "CallSid" in (await missing.json())["error"]["message"]
    assert [r["code"] for r in await rejected(client)] == ["bad_signature", "missing_field"]


async def test_abandoned_report_per_queue_and_hour(client: Any) -> None:
    for i, kind in enumerate(["abandoned", "abandoned", "answered"]):
        call = cti(f"r{i}", kind, f"rc{i}", caller=f"1390000000{i}", at=f"2026-11-23T08:1{i}:00Z")
        assert (await client.post("/channels/cti/events", json=call, headers=auth("t-channel"))).status == 201
    body = await wait_for(client, "/api/v1/reports/abandoned-calls?tz=Asia/Shanghai",
                          lambda b: b["items"] and b["items"][0]["calls"] == 3)
    [row] = body["items"]
    assert (row["queue"], row["abandoned"], row["answered"]) == ("95598", 2, 1)
    assert row["hour"].startswith("2026-11-23T16:00")


async def test_the_abandoned_call_report_counts_beijing_hours_unless_told_otherwise(client: Any) -> None:
    """The hotline's hours are Beijing time's, as every other report's days are: a call abandoned at
    07:30 Beijing time (23:30 UTC the day before) is in the 07:00 row of that day. Without `tz` the
    report counted UTC hours, so a morning's losses were shown under the evening before."""
    call = cti("bj1", "abandoned", "bjc1", caller="13900000011", at="2026-11-23T07:30:00+08:00")
    assert (await client.post("/channels/cti/events", json=call, headers=auth("t-channel"))).status == 201
    body = await wait_for(client, "/api/v1/reports/abandoned-calls", lambda b: bool(b["items"]))
    [row] = body["items"]
    assert (row["hour"], row["tz"], row["abandoned"]) == ("2026-11-23T07:00:00", "Asia/Shanghai", 1)
    utc = await wait_for(client, "/api/v1/reports/abandoned-calls?tz=UTC", lambda b: bool(b["items"]))
    assert [r["hour"] for r in utc["items"]] == ["2026-11-22T23:00:00"]


async def test_an_event_id_reused_for_other_content_is_409_idempotency_conflict(client: Any) -> None:
    """A repeated delivery is the same event again (200); an `event_id` the PBX reuses for another
    event - another type, caller or time, or another call - is not: answering 200 would drop it."""
    post = client.post
    assert (await post("/channels/cti/events", json=cti("k1", "abandoned", "call-k1"),
                       headers=auth("t-channel"))).status == 201
    assert (await post("/channels/cti/events", json=cti("k1", "abandoned", "call-k1"),
                       headers=auth("t-channel"))).status == 200
    for other in (cti("k1", "answered", "call-k1"), cti("k1", "abandoned", "call-k1", caller="13900000000"),
                  cti("k1", "abandoned", "call-k1", at="2026-11-23T08:05:00Z"),
                  cti("k1", "abandoned", "call-k2")):
        response = await post("/channels/cti/events", json=other, headers=auth("t-channel"))
        assert response.status == 409, other
        assert (await response.json())["error"]["code"] == "idempotency_conflict"
    pool = client.app[SERVICES].pool
    async with pool.acquire() as conn:
        types = [r["type"] for r in await conn.fetch(
            "SELECT type FROM events WHERE stream IN ('call-call-k1', 'call-call-k2')")]
    assert types == ["CallAbandoned"]
    # the same instant written in another offset, or the number in another format, is the same event
    for same in (cti("k1", "abandoned", "call-k1", at="2026-11-23T16:00:00+08:00"),
                 cti("k1", "abandoned", "call-k1", caller="+86 139 1234 5678")):
        assert (await post("/channels/cti/events", json=same, headers=auth("t-channel"))).status == 200


@pytest.mark.parametrize(("kinds", "status"), [
    (("offered", "ended", "answered"), "ended"),  # the end delivered before the answer
    (("answered", "offered"), "answered"),
    (("offered", "abandoned", "ended"), "abandoned"),
    (("ended", "abandoned", "offered"), "abandoned"),
])
async def test_a_calls_status_does_not_go_back_when_its_events_come_out_of_order(
    client: Any, kinds: tuple[str, ...], status: str
) -> None:
    """A PBX's events may arrive in any order: a call once over is never shown waiting or talking."""
    for n, kind in enumerate(kinds):
        response = await client.post("/channels/cti/events", json=cti(f"o{n}", kind, "c-order"),
                                     headers=auth("t-channel"))
        assert response.status == 201
    card = await wait_for(client, "/api/v1/callers/13912345678",  # every event projected
                          lambda b: b["calls"] and all(b["calls"][0][f"{kind}_at"] for kind in kinds))
    assert card["calls"][0]["status"] == status
