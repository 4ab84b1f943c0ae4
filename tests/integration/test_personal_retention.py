"""Legal hold, retention and subject access on real PostgreSQL, with a fake clock and driven runners."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from dispatch.cases.read_model import CasesProjection
from dispatch.core.clock import FakeClock
from dispatch.core.personal import ERASED
from dispatch.customers.read_model import CallersProjection
from dispatch.personal.retention import Period, RetentionConfig, RetentionJob, parse_retention, plan
from eventstore.subscriptions import ProjectionRunner
from tests.conftest import auth
from tests.integration.test_cases_api import post

A, B, C = "13911110001", "13911110002", "13911110003"
YEAR = timedelta(days=365)


async def catch_up(services: Any) -> None:
    for projection in (CasesProjection(services.clock), CallersProjection()):
        await ProjectionRunner(services.store, projection).run_until_caught_up()


async def closed_case(api: Any, phone: str, category: str = "consultation", name: str = "张三") -> str:
    """A case of `phone`, registered and closed now."""
    case = await post(api, "/api/v1/cases", {
        "category": category, "priority": 3, "channel": "phone", "caller": {"name": name, "phone": phone},
        "description": "请问电费怎么交", "address": "咸阳市秦都区人民路 8 号"}, "t-agent", 201)
    await post(api, f"/api/v1/cases/{case['case_id']}/close",
               {"expected_version": case["version"], "reason": "已当场答复"}, "t-agent")
    return str(case["case_id"])


async def hold(api: Any, case_id: str, on: bool, token: str = "t-dispatcher", status: int = 200) -> Any:
    return await post(api, f"/api/v1/cases/{case_id}/legal-hold",
                      {"hold": on, "reason": "诉讼中，法院调取证据" if on else "诉讼结束"}, token, status)


async def erase(api: Any, subject: str, basis: str = "request", status: int = 200) -> Any:
    body = {"reason": "公民申请删除", "legal_basis": basis}
    return await post(api, f"/api/v1/subjects/{subject}/erase", body, "t-admin", status)


async def view(api: Any, case_id: str) -> Any:
    resp = await api.get(f"/api/v1/cases/{case_id}", headers=auth("t-agent"))
    return await resp.json()


async def test_a_legal_hold_refuses_erasure_on_request_but_not_on_an_order(api: Any, wired: Any) -> None:
    held = await closed_case(api, A)
    await hold(api, held, True, "t-agent", 403)  # agents do not set holds
    case = await hold(api, held, True)
    assert case["legal_hold"]["reason"] == "诉讼中，法院调取证据"
    assert case["legal_hold"]["by"] == "dispatcher:D001"
    assert (await hold(api, held, True, "t-auditor", 409))["error"]["code"] == "not_allowed"  # held already
    await catch_up(wired)
    refused = await erase(api, A, status=409)
    assert refused["error"]["code"] == "legal_hold" and refused["error"]["case_ids"] == [held]
    assert (await view(api, held))["caller"]["name"] == "张三"  # nothing was erased

    await hold(api, held, False, "t-dispatcher", 409)  # only an auditor or an admin releases
    released = await hold(api, held, False, "t-auditor")
    assert released["legal_hold"] is None
    assert (await erase(api, A))["case_ids"] == [held]
    assert (await view(api, held))["caller"]["name"] == ERASED


async def test_an_order_erases_a_held_case(api: Any, wired: Any) -> None:
    held = await closed_case(api, A)
    await hold(api, held, True, "t-admin")
    await catch_up(wired)
    assert (await erase(api, A, "order"))["case_ids"] == [held]
    assert (await view(api, held))["caller"]["phone"] == ERASED


async def test_retention_erases_only_people_all_of_whose_cases_are_past_their_period(
    api: Any, wired: Any, clock: FakeClock
) -> None:
    old = await closed_case(api, A)
    b_old = await closed_case(api, B)
    held = await closed_case(api, C)
    complaint = await closed_case(api, "13911110004", "complaint")
    await hold(api, held, True)
    clock.advance(2 * YEAR)
    b_new = await closed_case(api, B)
    clock.advance(2 * YEAR)  # A's, B's first, C's and the complaint ended 4 years ago; B's second 2
    await catch_up(wired)
    cfg = RetentionConfig(by_category={"complaint": Period(years=5)})
    job = RetentionJob(wired.pool, clock, wired.bus.handle, cfg)
    done = await job.run_once()
    assert done is not None and (done.erased, done.skipped, done.cases) == (1, 0, 1)
    assert (await view(api, old))["caller"]["name"] == ERASED
    for kept in (b_old, b_new, held, complaint):
        assert (await view(api, kept))["caller"]["name"] == "张三", kept
    assert await job.run_once() is None  # once a day

    clock.advance(2 * YEAR)  # B's second case is past its 3 years too, the complaint past its 5
    await catch_up(wired)
    done = await job.run_once()
    assert done is not None and (done.erased, done.cases) == (2, 3)
    assert (await view(api, b_new))["caller"]["name"] == ERASED
    assert (await view(api, complaint))["caller"]["name"] == ERASED
    assert (await view(api, held))["caller"]["name"] == "张三"  # still on hold


async def test_retention_erases_a_web_reporter_known_by_e_mail_alone(
    api: Any, wired: Any, clock: FakeClock
) -> None:
    """An Open311 reporter who gave an e-mail and no number (subject `email:...`) is erased when his
    cases' period is over, like a caller (retention chose only numbers, OpenIDs and elders: his
    name, e-mail and words were kept for ever)."""
    email = "zhao.liu@example.cn"
    response = await api.post("/open311/v2/requests.json", data={
        "api_key": "t-web", "service_code": "consultation", "description": "请问电费怎么交",
        "address_string": "人民路 8 号", "first_name": "赵六", "email": email})
    assert response.status == 201, await response.text()
    case_id = (await response.json())[0]["service_request_id"]
    await catch_up(wired)
    case = await view(api, case_id)
    await post(api, f"/api/v1/cases/{case_id}/close", {"expected_version": case["version"],
                                                       "reason": "已答复"}, "t-agent")
    clock.advance(4 * YEAR)
    await catch_up(wired)
    done = await RetentionJob(wired.pool, clock, wired.bus.handle, RetentionConfig()).run_once()
    assert done is not None and (done.erased, done.cases) == (1, 1)
    after = await view(api, case_id)
    assert (after["caller"]["name"], after["caller"]["email"]) == (ERASED, ERASED)


async def test_retention_skips_a_person_whose_cases_changed_since_they_were_chosen(
    api: Any, wired: Any, clock: FakeClock
) -> None:
    first = await closed_case(api, A)
    clock.advance(4 * YEAR)
    await catch_up(wired)
    async with wired.pool.acquire() as conn:
        people = await plan(conn, RetentionConfig(), clock.now())
    assert [p.case_ids for p in people] == [(first,)]
    await closed_case(api, A)  # the citizen called again meanwhile
    await catch_up(wired)
    job = RetentionJob(wired.pool, clock, wired.bus.handle, RetentionConfig())
    assert (await job.erase(people)).skipped == 1
    assert (await view(api, first))["caller"]["name"] == "张三"


async def test_retention_dry_run_counts_without_personal_data(
    api: Any, wired: Any, settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import personal

    case_id = await closed_case(api, A)  # closed at the fake clock's time, days before the real now
    await catch_up(wired)
    quick = dataclasses.replace(settings, retention=parse_retention("default=1d"))
    assert await personal.retention(argparse.Namespace(dry_run=True), quick) == 0
    out = capsys.readouterr().out
    assert "would erase 1 person(s), 1 identifier(s), 1 case(s)" in out and "consultation: 1" in out
    assert A not in out and case_id not in out
    assert (await view(api, case_id))["caller"]["name"] == "张三"


async def test_subject_access_export_before_and_after_erasure(api: Any, wired: Any) -> None:
    case_id = await closed_case(api, A, name="王五")
    await catch_up(wired)
    path = f"/api/v1/subjects/{A}/export"
    assert (await api.get(path, headers=auth("t-unit"))).status == 403
    resp = await api.get(path, headers=auth("t-auditor"))
    assert resp.status == 200
    before = await resp.json()
    assert before["subject"] == f"phone:{A}" and before["keys"] == {f"phone:{A}": "held"}
    [case] = before["cases"]
    assert case["case_id"] == case_id and case["view"]["caller"]["name"] == "王五"
    registered = case["events"][0]
    assert registered["type"] == "CaseRegistered" and registered["data"]["caller"]["name"] == "王五"
    assert not registered["erased"] and [e["type"] for e in case["events"]][-1] == "CaseClosed"
    assert before["caller_cards"][A]["cases"][0]["case_id"] == case_id and before["erasures"] == []

    await erase(api, A)
    after = await (await api.get(path, headers=auth("t-admin"))).json()
    assert after["keys"] == {f"phone:{A}": "none"} and len(after["erasures"]) == 1
    [case] = after["cases"]  # found through the erasure's record, though the read model forgot the number
    assert case["case_id"] == case_id and case["view"]["caller"]["name"] == ERASED
    assert case["events"][0]["data"]["caller"]["name"] == ERASED and case["events"][0]["erased"]
    assert "王五" not in str(after)
    await wired.access.flush()
    readers = await wired.pool.fetch(
        "SELECT reader FROM access_log WHERE via = 'api:subject-export' ORDER BY seq")
    assert [r["reader"] for r in readers] == ["auditor:AU01", "admin:root"]
    assert (await api.get("/api/v1/subjects/nobody/export", headers=auth("t-admin"))).status == 400


async def test_subject_access_export_holds_the_messages_sent_to_the_person(api: Any, wired: Any) -> None:
    """The export holds the SMS the centre sent the person (their number and text, in the
    notifications' streams), about a case of his or about none; they were left out."""
    from dispatch.notify.outbox import RequestNotification

    case_id = await closed_case(api, A)
    await catch_up(wired)
    for key, text, case in (("ack-1", "您的工单已受理", case_id), ("outage-1", "明日计划停电通知", None)):
        await wired.bus.handle(RequestNotification(dedup_key=key, channel="sms", to=A, text=text,
                                                   case_id=case, reason="test"))
    resp = await api.get(f"/api/v1/subjects/{A}/export", headers=auth("t-auditor"))
    assert resp.status == 200
    texts = [e["data"]["text"] for events in (await resp.json())["streams"].values() for e in events
             if e["type"] == "NotificationRequested"]
    assert sorted(texts) == ["您的工单已受理", "明日计划停电通知"]


async def test_export_subject_writes_a_file_only_its_owner_reads(
    api: Any, wired: Any, settings: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import stat

    from gateway.cli import personal

    case_id = await closed_case(api, A, name="赵六")
    await catch_up(wired)
    out = tmp_path / "subject.json"
    assert await personal.export_subject(argparse.Namespace(subject=f"+86 {A}", out=str(out)), settings) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    found = json.loads(out.read_text("utf-8"))
    assert [c["case_id"] for c in found["cases"]] == [case_id]
    assert found["cases"][0]["events"][0]["data"]["caller"]["name"] == "赵六"
    printed = capsys.readouterr().out
    assert "1 case(s)" in printed and "赵六" not in printed and A not in printed


async def test_a_run_erases_at_most_its_limit_and_the_rest_wait_for_the_next_day(
    api: Any, wired: Any, clock: FakeClock
) -> None:
    first, second = await closed_case(api, A), await closed_case(api, B)
    clock.advance(4 * YEAR)
    await catch_up(wired)
    job = RetentionJob(wired.pool, clock, wired.bus.handle, RetentionConfig(), limit=1)
    done = await job.run_once()
    assert done is not None and done.erased == 1
    assert (await view(api, first))["caller"]["name"] == ERASED  # in the order of the identifiers
    assert (await view(api, second))["caller"]["name"] == "张三"
    clock.advance(timedelta(days=1))
    await catch_up(wired)
    assert (done := await job.run_once()) is not None and done.erased == 1
    assert (await view(api, second))["caller"]["name"] == ERASED


async def test_intake_erase_refuses_a_held_person_saying_why(
    api: Any, wired: Any, settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import erase as erase_cli

    held = await closed_case(api, A)
    await hold(api, held, True)
    await catch_up(wired)
    args = argparse.Namespace(subject=A, reason="公民申请删除", basis="request", by="ops")
    assert await erase_cli.run(args, settings) == 1
    assert f"legal_hold: cases on legal hold: {held}" in capsys.readouterr().err
    assert (await view(api, held))["caller"]["name"] == "张三"
    assert await erase_cli.run(argparse.Namespace(**{**vars(args), "basis": "order"}), settings) == 0
    # (this app's key cache learns of another process's erasure by a NOTIFY its runners listen for)
    assert await wired.pool.fetchval("SELECT caller_name FROM cases WHERE case_id = $1", held) == ERASED
