"""Erasing a data subject on the real app (PostgreSQL, Redis): the keys go, the read models and
every read show the fields erased, everything else stays, and the log still verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dispatch.core.personal import ERASED
from eventstore.postgres import PostgresEventStore
from tests.conftest import auth, until
from tests.integration.test_callers_api import cti, register

PHONE = "13912345678"
OTHER = "13800000000"


async def erase(client: Any, subject: str, token: str = "t-admin", **body: Any) -> Any:
    return await client.post(f"/api/v1/subjects/{subject}/erase", headers=auth(token),
                             json=body or {"reason": "公民申请删除个人信息", "legal_basis": "request"})


async def case(client: Any, case_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-agent"))
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def test_erasing_a_number_erases_its_cases_and_calls_and_nothing_else(
        client: Any, pg_pool: Any) -> None:
    mine = await register(client, "+86 139 1234 5678", "楼道灯坏了，我叫张三", name="张三",
                          address="人民路 8 号")
    theirs = await register(client, OTHER, "噪音扰民", name="李四", address="渭阳路 1 号")
    await cti(client, "e1", "abandoned", "call-1", PHONE, at=datetime.now(UTC).isoformat())  # after the case

    async def seen() -> bool:
        card = await (await client.get(f"/api/v1/callers/{PHONE}", headers=auth("t-agent"))).json()
        return bool(card["cases"] and card["missed_calls"])

    await until(seen, 8.0)
    response = await erase(client, "139-1234-5678")
    assert response.status == 200, await response.text()
    done = await response.json()
    assert done["case_ids"] == [mine["case_id"]] and done["keys"] >= 1

    after = await case(client, mine["case_id"])
    assert after["caller"]["name"] == ERASED and after["caller"]["phone"] == ERASED
    assert after["description"] == ERASED and after["address"] == ERASED
    # nothing else changed: its id, category, times, status
    assert (after["category"], after["accepted_at"], after["status"]) == (
        mine["category"], mine["accepted_at"], mine["status"])
    other = await case(client, theirs["case_id"])
    assert (other["caller"]["name"], other["description"]) == ("李四", "噪音扰民")

    # the log still reads whole for everyone else, erased for the subject, and still verifies
    store = PostgresEventStore(pg_pool)
    registered = (await store.read_stream(f"case-{mine['case_id']}"))[0]
    assert registered.data["caller"]["phone"] == ERASED and registered.data["category"] == "complaint"
    assert (await store.read_stream(f"case-{theirs['case_id']}"))[0].data["caller"]["name"] == "李四"
    verify = await (await client.get("/api/v1/audit/verify", headers=auth("t-auditor"))).json()
    assert verify["ok"], verify

    card = await (await client.get(f"/api/v1/callers/{PHONE}", headers=auth("t-agent"))).json()
    assert card["cases"] == [] and card["calls"] == [] and card["missed_calls"] == []
    erasures = [r for r in await store.read_stream(f"erasure-{done['erasure_id']}")]
    assert erasures[0].type == "PersonalDataErased" and erasures[0].data["legal_basis"] == "request"
    assert PHONE not in str(erasures[0].data) and PHONE not in str(erasures[0].metadata)


async def test_erasure_is_for_admins_and_needs_a_reason_and_basis(client: Any) -> None:
    assert (await erase(client, PHONE, token="t-agent")).status == 403
    assert (await erase(client, PHONE, reason="x", legal_basis="because")).status == 400
    assert (await erase(client, PHONE, reason="", legal_basis="request")).status == 400
    assert (await erase(client, "not a subject", reason="x", legal_basis="request")).status == 400


async def test_a_rebuild_after_erasing_a_listed_number_lists_no_erased_entry(
        client: Any, services: Any, pg_pool: Any) -> None:
    # Catches: the callers projection writing the erased `CustomerTierSet` of a rebuild as a
    # registry entry of the number "[erased]": a blacklisted entry nobody has, listed by
    # GET /api/v1/customers, on which every erased caller's contacts would be counted.
    from eventstore.subscriptions import ProjectionRunner
    from gateway.bootstrap import projections

    for number, tier, reason in ((PHONE, "blacklisted", "辱骂坐席"), (OTHER, "vip", "人大代表")):
        response = await client.put(f"/api/v1/customers/{number}", headers=auth("t-dispatcher"),
                                    json={"tier": tier, "reason": reason})
        assert response.status == 200, await response.text()
    assert (await erase(client, PHONE)).status == 200
    await client.close()  # the app's runners stop: a rebuild must not race them
    for projection in projections(services):
        if projection.name == "callers":
            await ProjectionRunner(services.store, projection).rebuild()
    rows = await pg_pool.fetch("SELECT phone, tier FROM customers ORDER BY phone")
    assert [(r["phone"], r["tier"]) for r in rows] == [(OTHER, "vip")]


async def test_erasing_a_web_reporter_known_by_e_mail_alone_erases_his_request(
        client: Any, pg_pool: Any) -> None:
    """An Open311 reporter who gave an e-mail and no number is the subject `email:...` (his case is
    sealed with its key): his access export holds his case; erasing him answers 200 naming it, which
    then reads erased, and neither the case board nor the reports keep his e-mail (both were a 500,
    KeyError)."""
    email, name = "zhao.liu@example.cn", "赵六"
    response = await client.post("/open311/v2/requests.json", data={
        "api_key": "t-web", "service_code": "complaint", "description": "井盖缺失很危险",
        "address_string": "人民路 8 号", "first_name": name, "email": email})
    assert response.status == 201, await response.text()
    case_id = (await response.json())[0]["service_request_id"]

    async def reported() -> bool:
        return bool(await pg_pool.fetchval("SELECT count(*) FROM report_callers WHERE caller = $1", email))

    await until(reported, 8.0)
    export = await client.get(f"/api/v1/subjects/email:{email}/export", headers=auth("t-auditor"))
    assert export.status == 200, await export.text()
    assert [c["case_id"] for c in (await export.json())["cases"]] == [case_id]
    response = await erase(client, f"email:{email}")
    assert response.status == 200, await response.text()
    assert (await response.json())["case_ids"] == [case_id]
    after = await case(client, case_id)
    assert (after["caller"]["name"], after["caller"]["email"], after["description"]) == (ERASED,) * 3
    for table in ("cases", "report_callers", "report_facts"):
        row = await pg_pool.fetchval(f"SELECT t::text FROM {table} t WHERE t::text LIKE $1 LIMIT 1",
                                     f"%{email}%")
        assert row is None, (table, row)


async def test_erasing_an_elders_number_reaches_his_registry_record_loaded_in_another_format(
        client: Any, pg_pool: Any) -> None:
    """An elder loaded with his number written `+86 189 8479 6809` is the person that number names:
    erasing the number deletes his registry record (name, home, contacts, devices). The record kept
    the number as written, so the erasure, which looks numbers up in canonical form, missed it."""
    from dispatch.gis.reference import RecordReference, ReferenceProjection, parse_feature
    from eventstore.subscriptions import ProjectionRunner
    from gateway.services import SERVICES

    services = client.app[SERVICES]
    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [108.66, 34.37]},
               "properties": {"kind": "elder", "id": "ELD00009", "name": "曹英霞",
                              "phone": "+86 189 8479 6809", "devices": ["E0009"],
                              "contacts": [{"role": "family", "name": "曹军", "phone": "+86 139 1234 5678"}],
                              "address": "秦都区建设路195号"}}
    await services.bus.handle(RecordReference(parse_feature(feature)))
    await ProjectionRunner(services.store, ReferenceProjection()).run_until_caught_up()
    # his contacts' numbers too: the alarm's SMS go to them, and are found by them when they are erased
    [contacts] = await pg_pool.fetch("SELECT contacts FROM ref_elders")
    assert [c["phone"] for c in contacts[0]] == ["13912345678"]
    response = await erase(client, "18984796809")
    assert response.status == 200, await response.text()
    assert (await response.json())["identifiers"] >= 3  # the number, the elder, his device
    assert await pg_pool.fetch("SELECT id FROM ref_elders") == []
    assert await pg_pool.fetch("SELECT account FROM ref_devices") == []
