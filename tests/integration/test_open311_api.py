"""Open311 GeoReport v2 on the real app: `three` POSTs, `georeport` GETs (both over real HTTP)."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from typing import Any

import pytest
from georeport import GeoReport

from channels.open311 import parse_form, to_command
from dispatch.cases.read_model import projections as case_projections
from dispatch.intake.contact import REPEAT_WINDOW
from dispatch.intake.web import receive_web_request
from eventstore.subscriptions import ProjectionRunner
from gateway.settings import Settings
from tests.integration.alarm_helpers import events_of

itertools.ifilter = filter  # type: ignore[attr-defined]  # `three` is Python 2 code
from three import Three  # noqa: E402


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings, services: Any) -> Any:
    """The whole app without background runners: tests drive projections themselves."""
    from gateway.app import create_app

    services.settings = settings
    return await aiohttp_client(create_app(settings, services=services, background=False))


POWER = {
    "attribute[account_number]": "6100012345", "attribute[fault_type]": "no_power",
    "attribute[fault_began_at]": "2026-11-23T07:30:00+08:00", "attribute[fault_scope]": "building",
}


def base(client: Any) -> str:
    return str(client.make_url("/open311/v2/"))


async def project(services: Any) -> None:
    for projection in case_projections(services):
        await ProjectionRunner(services.store, projection).run_until_caught_up()


async def test_services_and_definitions_in_json_and_xml(client: Any) -> None:
    geo = GeoReport(base(client))
    services = await asyncio.to_thread(geo.get_service_list)
    codes = {s["service_code"] for s in services}
    assert {"power_fault", "complaint", "home_service"} <= codes and "elderly_emergency" not in codes
    definition = await asyncio.to_thread(geo.get_service_definition, "power_fault")
    required = {a["code"] for a in definition["attributes"] if a["required"]}
    assert required == {"account_number", "fault_type", "fault_began_at", "fault_scope"}
    xml_geo = GeoReport(base(client), output_format="xml")
    assert len(await asyncio.to_thread(xml_geo.get_service_list)) == len(services)
    missing = await client.get("/open311/v2/services/nope.xml")
    assert missing.status == 404
    assert ET.fromstring(await missing.read()).find("error/code").text == "404"  # type: ignore[union-attr]


async def test_three_posts_a_request_and_georeport_reads_it(client: Any, services: Any) -> None:
    three = Three(base(client), api_key="t-channel")
    answer = await asyncio.to_thread(
        three.post, "power_fault", address="秦都区人民路12号", name="San Zhang", phone="13912345678",
        description="整栋楼停电", lat="34.33", long="108.71", **POWER)
    assert three.post_response.status_code == 201
    case_id = answer[0]["service_request_id"]
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["case_id"] == case_id and case["data"]["channel"] == "web"
    assert case["data"]["fault"]["scope"] == "building" and case["data"]["missing_fields"] == []
    await project(services)
    geo = GeoReport(base(client))
    one = await asyncio.to_thread(geo.get_service_request, case_id)
    assert one["status"] == "open" and one["service_code"] == "power_fault"
    assert "accepted" in one["status_notes"] and one["address"] is None  # no personal data
    listed = await asyncio.to_thread(geo.get_service_requests, service_code="power_fault", status="open")
    assert [r["service_request_id"] for r in listed] == [case_id]
    assert await asyncio.to_thread(geo.get_service_requests, status="closed") == []
    by_id = await asyncio.to_thread(GeoReport(base(client), output_format="xml").get_service_requests,
                                    service_request_id=case_id)
    assert by_id["service_request_id"] == case_id


async def test_a_request_posted_as_xml_is_answered_in_xml(client: Any, services: Any) -> None:
    """`POST requests.xml` (`three`'s XML reader is Python 2 only: the answer is parsed here)."""
    form = {"api_key": "t-channel", "service_code": "complaint", "description": "噪音扰民",
            "address_string": "渭城区文汇路", "phone": "13800138000"}
    first = await client.post("/open311/v2/requests.xml", data=form, headers={"Idempotency-Key": "x-1"})
    assert first.status == 201
    assert first.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(await first.read())
    assert root.tag == "service_requests"
    [request] = root.findall("request")
    case_id = request.findtext("service_request_id")
    assert case_id and request.findtext("service_notice") == "request accepted"
    [case] = await events_of(services, "CaseRegistered")
    assert (case["data"]["case_id"], case["data"]["channel"], case["data"]["category"]) == (
        case_id, "web", "complaint")
    again = await client.post("/open311/v2/requests.xml", data=form, headers={"Idempotency-Key": "x-1"})
    assert again.status == 200
    repeat = ET.fromstring(await again.read())
    assert repeat.findtext("request/service_request_id") == case_id
    assert repeat.findtext("request/service_notice") == "duplicate request"
    assert len(await events_of(services, "CaseRegistered")) == 1


async def test_idempotency_key_repeats_answer_the_first_request(client: Any, services: Any) -> None:
    form = {"api_key": "t-channel", "service_code": "complaint", "description": "噪音扰民",
            "address_string": "渭城区文汇路", "phone": "13800138000"}
    headers = {"Idempotency-Key": "form-77"}
    first = await client.post("/open311/v2/requests.json", data=form, headers=headers)
    second = await client.post("/open311/v2/requests.json", data=form, headers=headers)
    assert (first.status, second.status) == (201, 200)
    assert (await first.json())[0]["service_request_id"] == (await second.json())[0]["service_request_id"]
    assert len(await events_of(services, "CaseRegistered")) == 1


async def test_long_idempotency_keys_alike_at_first_are_two_requests(client: Any, services: Any) -> None:
    """A key was cut to 200 characters: two reports whose keys shared their start were one, the
    second answered 409 and lost. A long key is kept whole (by its digest), and still repeats."""
    form = {"api_key": "t-channel", "service_code": "complaint", "description": "噪音扰民",
            "address_string": "渭城区文汇路", "phone": "13800138000"}
    ids = []
    for end in ("one", "two", "two"):
        headers = {"Idempotency-Key": "k" * 300 + end}
        answer = await client.post("/open311/v2/requests.json", data={**form, "description": end},
                                   headers=headers)
        assert answer.status in (200, 201), await answer.text()
        ids.append((await answer.json())[0]["service_request_id"])
    assert ids[0] != ids[1] and ids[1] == ids[2]
    assert len(await events_of(services, "CaseRegistered")) == 2


@pytest.mark.parametrize(("form", "status", "fmt"), [
    ({"service_code": "complaint", "description": "x", "address_string": "a"}, 403, "json"),
    ({"api_key": "t-agent", "service_code": "complaint", "address_string": "a"}, 403, "xml"),
    ({"api_key": "t-channel", "service_code": "nope", "address_string": "a"}, 404, "json"),
    ({"api_key": "t-channel", "service_code": "complaint"}, 400, "json"),
    ({"api_key": "t-channel", "service_code": "power_fault", "address_string": "a",
      "attribute[fault_type]": "aliens"}, 400, "xml"),
    ({"api_key": "t-channel", "service_code": "complaint", "lat": "95", "long": "1"}, 400, "json"),
    ({"api_key": "t-channel", "service_code": "complaint", "address_string": "a", "phone": "12"},
     400, "json"),
])
async def test_errors_in_open311_format_and_recorded(
    client: Any, services: Any, form: dict[str, str], status: int, fmt: str
) -> None:
    response = await client.post(f"/open311/v2/requests.{fmt}", data=form)
    assert response.status == status
    if fmt == "json":
        [error] = await response.json()
        assert error["code"] == status and error["description"]
    else:
        root = ET.fromstring(await response.read())
        assert root.tag == "errors" and root.find("error/code").text == str(status)  # type: ignore[union-attr]
    assert len(await events_of(services, "InputRejected")) == 1
    assert await events_of(services, "CaseRegistered") == []


async def test_fixmystreet_power_fault_without_phone_or_address_is_accepted(
    client: Any, services: Any
) -> None:
    """FixMyStreet's client sends lat/long, name, email and the attributes: 201, the rest for an agent."""
    three = Three(base(client), api_key="t-channel")
    answer = await asyncio.to_thread(
        three.post, "power_fault", first_name="Bartholomew", last_name="Fitzgerald-Smythe",
        email="bart@example.org", description="No power in the whole street", lat="34.33", long="108.71",
        **POWER)
    assert three.post_response.status_code == 201
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["case_id"] == answer[0]["service_request_id"]
    assert case["data"]["caller"]["name"] == "Bartholomew Fitzgerald-Smythe"  # kept as given
    assert case["data"]["caller"]["email"] == "bart@example.org"
    assert case["data"]["missing_fields"] == ["caller.phone", "address"]
    assert await events_of(services, "InputRejected") == []


async def test_a_request_without_attributes_is_accepted_with_missing_fields(
    client: Any, services: Any
) -> None:
    form = {"api_key": "t-channel", "service_code": "power_fault", "address_string": "秦都区人民路12号"}
    response = await client.post("/open311/v2/requests.json", data=form)
    assert response.status == 201
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["missing_fields"] == [
        "caller.name", "caller.phone", "account_number", "fault.type", "fault.began_at", "fault.scope"]


@pytest.mark.parametrize(("given", "stored"), [
    ("+44 (0)20 7946 0958", "+442079460958"), ("0044 20 7946 0958", "+442079460958"),
    ("+86 139-1234-5678", "13912345678"), ("029 8888 1234", "02988881234"),
    ("＋86 139－1234－5678", "13912345678"),  # a Chinese input method in full-width mode
])
async def test_phone_numbers_in_any_common_format(
    client: Any, services: Any, given: str, stored: str
) -> None:
    form = {"api_key": "t-channel", "service_code": "complaint", "address_string": "渭城区文汇路",
            "phone": given}
    response = await client.post("/open311/v2/requests.json", data=form)
    assert response.status == 201
    [case] = await events_of(services, "CaseRegistered")
    assert case["data"]["caller"]["phone"] == stored  # Chinese numbers keep the form streams key on


async def test_a_retry_without_idempotency_key_answers_the_first_case(client: Any, services: Any) -> None:
    """FixMyStreet sends no Idempotency-Key: its retry after a lost 201 must not open a second case."""
    form = {"api_key": "t-channel", "service_code": "complaint", "description": "噪音扰民",
            "lat": "34.33", "long": "108.71", "email": "a@example.org"}
    first = await client.post("/open311/v2/requests.json", data=form)
    again = await client.post("/open311/v2/requests.json", data=form)
    other = await client.post("/open311/v2/requests.json", data={**form, "description": "又开始了"})
    assert (first.status, again.status, other.status) == (201, 200, 201)
    [one], [repeat], [new] = await first.json(), await again.json(), await other.json()
    assert repeat["service_request_id"] == one["service_request_id"] != new["service_request_id"]
    assert len(await events_of(services, "CaseRegistered")) == 2


async def test_a_retry_across_the_10_minute_bucket_edge_is_a_repeat_on_postgres(
    pg_store: Any, clock: Any
) -> None:
    """Only the look-up of the previous bucket's key makes this retry a repeat; 10 min 1 s is not."""
    form = parse_form({"service_code": "complaint", "description": "噪音扰民", "lat": "34.33",
                       "long": "108.71"})
    edge = clock.now()
    assert edge.timestamp() % REPEAT_WINDOW.total_seconds() == 0

    async def post_at(at: datetime) -> Any:
        clock.set(at)
        cmd = to_command(form, actor="channel:web", holder="web", idempotency_key=None, received_at=at)
        return await receive_web_request(cmd, store=pg_store, clock=clock)

    first = await post_at(edge - timedelta(seconds=30))
    again = await post_at(edge + timedelta(seconds=30))
    later = await post_at(edge + timedelta(minutes=9, seconds=31))
    assert (again.case_id, again.duplicate) == (first.case_id, True)
    assert later.case_id != first.case_id and not later.duplicate


async def test_an_answered_id_is_never_404_before_the_read_model_catches_up(client: Any) -> None:
    """No projection runs here: every GET must fold the case from its stream (read your writes)."""
    ids = []
    for n in range(6):
        form = {"api_key": "t-channel", "service_code": "complaint", "description": f"路灯不亮 {n}",
                "lat": "34.33", "long": "108.71"}
        posted = await client.post("/open311/v2/requests.json", data=form)
        ids.append((await posted.json())[0]["service_request_id"])
        one = await client.get(f"/open311/v2/requests/{ids[-1]}.json")
        assert one.status == 200
        [item] = await one.json()
        assert (item["service_request_id"], item["status"], item["lat"]) == (ids[-1], "open", 34.33)
    listed = await client.get("/open311/v2/requests.json", params={"service_request_id": ",".join(ids)})
    assert sorted(r["service_request_id"] for r in await listed.json()) == sorted(ids)
    geo = GeoReport(base(client), output_format="xml")
    assert (await asyncio.to_thread(geo.get_service_request, ids[0]))["service_request_id"] == ids[0]
    case = await client.get(f"/api/v1/cases/{ids[0]}", headers={"Authorization": "Bearer t-agent"})
    assert case.status == 200 and (await case.json())["case_id"] == ids[0]
    never_issued = ids[0][:-1] + ("A" if ids[0][-1] != "A" else "B")
    assert (await client.get(f"/open311/v2/requests/{never_issued}.json")).status == 404


async def test_unknown_request_and_bad_dates(client: Any) -> None:
    assert (await client.get("/open311/v2/requests/C0000.json")).status == 404
    bad = await client.get("/open311/v2/requests.json", params={"start_date": "yesterday"})
    assert bad.status == 400
    wide = await client.get("/open311/v2/requests.json", params={
        "start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"})
    assert wide.status == 400


async def test_citizen_form_page_is_served(client: Any) -> None:
    page = await client.get("/citizen/")
    script = await client.get("/citizen/static/citizen.js")
    assert page.status == 200 and "requests.json" in await script.text()
    assert "service_code" in await page.text()


async def test_service_code_status_and_ids_may_be_declared_multiple_times(
    client: Any, services: Any
) -> None:
    """Was the first of them only: GeoReport v2 says `service_code` and `status` 'can be declared
    multiple times, comma delimited' (`?service_code=a&service_code=b`), and clients build the
    `service_request_id` list so too; every declaration counts, as the commas do."""
    ids = []
    for code in ("complaint", "report"):
        form = {"api_key": "t-channel", "service_code": code, "address_string": "渭城区文汇路"}
        posted = await client.post("/open311/v2/requests.json", data=form)
        assert posted.status == 201, await posted.text()
        ids.append((await posted.json())[0]["service_request_id"])
    await project(services)

    async def found(query: list[tuple[str, str]]) -> set[str]:
        response = await client.get("/open311/v2/requests.json", params=query)
        assert response.status == 200, await response.text()
        return {r["service_request_id"] for r in await response.json()}

    assert await found([("service_request_id", ids[0]), ("service_request_id", ids[1])]) == set(ids)
    assert await found([("service_code", "complaint"), ("service_code", "report")]) == set(ids)
    assert await found([("status", "closed"), ("status", "open")]) == set(ids)
    bad = await client.get("/open311/v2/requests.json", params=[("status", "open"), ("status", "done")])
    assert bad.status == 400


async def test_an_email_longer_than_an_address_can_be_is_400_not_500(client: Any, services: Any) -> None:
    """Was 500 `AppendFailed`: a reporter without a phone is the data subject of their e-mail,
    and an e-mail of a few KB is no index key PostgreSQL can hold (`subject_keys`). An address
    has at most 254 characters (RFC 5321); a longer one is refused, recorded, before the store."""
    form = {"api_key": "t-channel", "service_code": "complaint", "address_string": "渭城区文汇路",
            "email": secrets.token_hex(1500) + "@example.org"}  # random: PostgreSQL compresses a run
    response = await client.post("/open311/v2/requests.json", data=form)
    assert response.status == 400, await response.text()
    [error] = await response.json()
    assert "email" in error["description"]
    assert len(await events_of(services, "InputRejected")) == 1
    assert await events_of(services, "CaseRegistered") == []
    fine = await client.post("/open311/v2/requests.json", data={**form, "email": "a" * 242 + "@example.org"})
    assert fine.status == 201, await fine.text()
