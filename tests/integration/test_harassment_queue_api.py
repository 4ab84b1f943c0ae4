"""A blacklisted number's cases on the real app (PostgreSQL, Redis): an SMS from it opens a case
that is kept off the case board and the dispatch queue, is listed in the harassment queue, and is
still found by its id and by the number."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from gateway.settings import Settings, TwilioSettings
from tests.conftest import auth, until

TOKEN = "twilio-harassment-token"
PHONE = "13955556666"
OTHER = "13977778888"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Twilio configured, no proxy: the request URL is what Twilio signed."""
    return dataclasses.replace(settings, twilio=TwilioSettings(TOKEN))


async def _sms(client: Any, sid: str, sender: str, text: str) -> None:
    params = {"MessageSid": sid, "From": f"+86{sender}", "To": "+8612345", "Body": text, "NumMedia": "0"}
    url = str(client.make_url("/channels/twilio/sms"))
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    response = await client.post("/channels/twilio/sms", data=urlencode(params).encode(), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200, await response.text()


async def _ids(client: Any, query: str, token: str = "t-dispatcher") -> set[str]:
    response = await client.get(f"/api/v1/{query}", headers=auth(token))
    assert response.status == 200, await response.text()
    return {item["case_id"] for item in (await response.json())["items"]}


async def _case_of(client: Any, phone: str) -> str | None:
    found = await _ids(client, f"cases?q={phone}")
    return next(iter(found), None)


async def test_a_blacklisted_numbers_case_is_in_the_harassment_queue_not_on_the_board(client: Any) -> None:
    before = await client.post("/api/v1/cases", headers=auth("t-agent"), json={
        "category": "complaint", "channel": "phone", "description": "拉黑之前的来电",
        "caller": {"name": "张三", "phone": PHONE}, "address": "咸阳市秦都区人民路 8 号"})
    assert before.status == 201
    earlier, version = (await before.json())["case_id"], (await before.json())["version"]
    closed = await client.post(f"/api/v1/cases/{earlier}/close", headers=auth("t-agent"),
                               json={"expected_version": version, "reason": "answered"})
    assert closed.status == 200, await closed.text()  # else the SMS would join it
    put = await client.put(f"/api/v1/customers/{PHONE}", json={"tier": "blacklisted", "reason": "骚扰"},
                           headers=auth("t-dispatcher"))
    assert put.status == 200, await put.text()

    async def blacklisted() -> bool:
        body = await (await client.get(f"/api/v1/callers/{PHONE}", headers=auth("t-agent"))).json()
        return bool(body["tier"] == "blacklisted")

    await until(blacklisted, 8.0)
    await _sms(client, "SMH0001", PHONE, "我家停电了，你们赶紧来")
    await _sms(client, "SMH0002", OTHER, "我家停电了，整栋楼都没电")

    async def queued() -> str | None:
        body = await (await client.get("/api/v1/harassment", headers=auth("t-dispatcher"))).json()
        return next((q["case_id"] for q in body["items"] if q["kind"] == "case"), None)

    case_id = await until(queued, 8.0)
    other = await until(lambda: _case_of(client, OTHER), 8.0)
    assert case_id != earlier

    board = await _ids(client, "cases")
    assert other in board and earlier in board  # a case made before the blacklisting stays
    assert case_id not in board
    assert case_id not in await _ids(client, "cases?status=accepted")  # no status filter takes it there
    assert case_id not in await _ids(client, "queue") and other in await _ids(client, "queue")
    assert await _ids(client, "cases?queue=harassment") == {case_id}
    assert {case_id, other, earlier} <= await _ids(client, "cases?queue=all")
    # still found by its id and by the number, and shown on its own
    assert await _ids(client, f"cases?q={case_id}") == {case_id}
    assert await _ids(client, f"cases?q=%2B86{PHONE}") == {case_id, earlier}
    shown = await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-agent"))
    assert shown.status == 200
    bad = await client.get("/api/v1/cases?queue=vip", headers=auth("t-dispatcher"))
    assert bad.status == 400


async def test_overdue_lists_keep_a_blacklisted_numbers_cases_apart(api: Any, wired: Any, clock: Any) -> None:
    from tests.integration.test_cases_api import FAULT, post
    from tests.integration.test_personal_retention import catch_up

    put = await api.put(f"/api/v1/customers/{PHONE}", json={"tier": "blacklisted", "reason": "骚扰"},
                        headers=auth("t-dispatcher"))
    assert put.status == 200, await put.text()
    ids = []
    for phone in (PHONE, OTHER):
        case = await post(api, "/api/v1/cases", {**FAULT, "caller": {"name": "张三", "phone": phone}},
                          "t-agent", 201)
        await post(api, f"/api/v1/cases/{case['case_id']}/dispatch", {"expected_version": 0, "to": "U002"})
        ids.append(case["case_id"])
    barred, plain = ids
    await catch_up(wired)
    clock.advance(timedelta(minutes=31))  # past the 30-minute confirmation

    async def overdue(query: str) -> list[str]:
        resp = await api.get(f"/api/v1/overdue?kind=confirmation{query}", headers=auth("t-dispatcher"))
        assert resp.status == 200, await resp.text()
        return [c["case_id"] for c in (await resp.json())["items"]]

    assert await overdue("") == [plain]
    assert await overdue("&queue=harassment") == [barred]
    assert sorted(await overdue("&queue=all")) == sorted(ids)
    bad = await api.get("/api/v1/overdue?kind=confirmation&queue=vip", headers=auth("t-dispatcher"))
    assert bad.status == 400
