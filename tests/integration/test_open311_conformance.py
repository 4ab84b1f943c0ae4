"""Open311 GeoReport v2 as an outside client sends it: charsets, W3C dates, XML, answer fields.

Each test is an input an acceptance probe sent that the endpoint answered wrongly (a 5xx, a
garbled contact answered 201, XML that does not parse, a W3C date refused, a field missing).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from dispatch.core.texts import LOCAL_TIME
from tests.conftest import stored_events

REPORT = {"api_key": "t-channel", "service_code": "complaint", "address_string": "渭城区文汇路",
          "description": "噪音扰民"}


async def rejections(services: Any) -> list[str]:
    return [e.data["code"] for e in await stored_events(services.pool, "type = 'InputRejected'")]


def multipart(charset: str) -> tuple[bytes, str]:
    """A multipart body whose description part declares `charset` (the rest plain ASCII)."""
    parts = [f'--B\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             for k, v in (("api_key", "t-channel"), ("service_code", "complaint"), ("address_string", "x"))]
    parts.append('--B\r\nContent-Disposition: form-data; name="description"\r\n'
                 f"Content-Type: text/plain; charset={charset}\r\n\r\nhello\r\n--B--\r\n")
    return "".join(parts).encode(), "multipart/form-data; boundary=B"


@pytest.mark.parametrize("kind", ["form", "multipart"])
async def test_a_form_in_an_unknown_charset_is_400_bad_encoding_not_500(
    client: Any, services: Any, kind: str
) -> None:
    """Was 500: `LookupError: unknown encoding` escaped the view (aiohttp's `post()` and the
    multipart part's decode)."""
    if kind == "form":
        body = urlencode({**REPORT, "api_key": "t-channel"}).encode()
        content_type = "application/x-www-form-urlencoded; charset=x-nope"
    else:
        body, content_type = multipart("x-nope")
    response = await client.post("/open311/v2/requests.json", data=body,
                                 headers={"Content-Type": content_type})
    assert response.status == 400, await response.text()
    assert (await response.json())[0]["code"] == 400
    assert await rejections(services) == ["bad_encoding"]


async def test_a_form_whose_bytes_are_not_its_charset_is_400_not_a_garbled_case(
    client: Any, services: Any
) -> None:
    """Was 201 with U+FFFD for every Chinese character: GBK bytes in a form that declares no
    charset (UTF-8) were decoded with replacement, and the address and text were lost."""
    gbk = urlencode(REPORT, encoding="gbk").encode()
    response = await client.post("/open311/v2/requests.json", data=gbk,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 400, await response.text()
    assert await rejections(services) == ["bad_encoding"]
    declared = await client.post("/open311/v2/requests.json", data=gbk,
                                 headers={"Content-Type": "application/x-www-form-urlencoded; charset=gbk"})
    assert declared.status == 201, await declared.text()
    [case] = await stored_events(services.pool, "type = 'CaseRegistered'")
    assert (case.data["address"], case.data["description"]) == ("渭城区文汇路", "噪音扰民")


@pytest.mark.parametrize(("method", "path", "form"), [
    ("GET", "/open311/v2/services/%01x.xml", None),
    ("GET", "/open311/v2/services/%EF%BF%BF.xml", None),
    ("POST", "/open311/v2/requests.xml", {"api_key": "t-channel", "service_code": "a\x01b"}),
])
async def test_xml_errors_that_echo_the_input_are_well_formed(
    client: Any, method: str, path: str, form: dict[str, str] | None
) -> None:
    """Was not well-formed XML: a control character of the input (or U+FFFF) echoed in the
    error's description is not an XML 1.0 character, so clients could not read the error."""
    response = await client.request(method, path, data=form)
    assert response.status == 404
    root = ET.fromstring(await response.read())
    assert root.findtext("error/code") == "404" and "not found" in (root.findtext("error/description") or "")


async def report(client: Any) -> str:
    response = await client.post("/open311/v2/requests.json", data=REPORT)
    assert response.status == 201, await response.text()
    case_id: str = (await response.json())[0]["service_request_id"]
    return case_id


@pytest.mark.parametrize("query", [
    {"start_date": "2001-01-01"}, {"start_date": "2001-01"}, {"start_date": "2001"},
    {"end_date": "2099-12-31"}, {"start_date": "2099-12-01", "end_date": "2099-12-31"},
])
async def test_w3c_dates_without_a_time_are_accepted(client: Any, query: dict[str, str]) -> None:
    """Was 400 'must carry a time zone': W3C-DTF (GeoReport v2's date format) also has the
    forms YYYY, YYYY-MM and YYYY-MM-DD, which carry no time and so no zone."""
    response = await client.get("/open311/v2/requests.json", params=query)
    assert response.status == 200, await response.text()


async def test_a_date_names_the_whole_day_in_beijing_time(client: Any, services: Any) -> None:
    """A date alone is that day in the hotline's time (Asia/Shanghai): from its first instant for
    `start_date`, to its last for `end_date`."""
    case_id = await report(client)
    [case] = await stored_events(services.pool, "type = 'CaseRegistered'")
    day = case.recorded_at.astimezone(LOCAL_TIME).date()

    async def ids(**query: str) -> list[str]:
        found = await client.get("/open311/v2/requests.json",
                                 params=query)
        assert found.status == 200, await found.text()
        return [r["service_request_id"] for r in await found.json()]

    for _ in range(50):  # the read model catches up
        if await ids(start_date=day.isoformat()):
            break
        await asyncio.sleep(0.1)
    assert await ids(start_date=day.isoformat(), end_date=day.isoformat()) == [case_id]
    assert await ids(end_date=day.isoformat()) == [case_id]
    assert await ids(start_date=(day + timedelta(days=1)).isoformat()) == []
    assert await ids(end_date=(day - timedelta(days=1)).isoformat()) == []


async def test_a_service_request_id_list_may_have_spaces_after_the_commas(client: Any) -> None:
    """Was one result for two ids: `C1, C2` looked up ' C2'."""
    first, second = await report(client), await report_other(client)
    found = await client.get("/open311/v2/requests.json",
                             params={"service_request_id": f"{first}, {second}"})
    assert {r["service_request_id"] for r in await found.json()} == {first, second}


async def report_other(client: Any) -> str:
    response = await client.post("/open311/v2/requests.json", data={**REPORT, "description": "又一件"})
    assert response.status == 201, await response.text()
    case_id: str = (await response.json())[0]["service_request_id"]
    return case_id


async def test_a_request_answer_carries_every_georeport_field(client: Any) -> None:
    """Was without `address_id` and `zipcode`: GeoReport v2's service request lists them (empty
    here: an answer carries no personal data)."""
    case_id = await report(client)
    [item] = await (await client.get(f"/open311/v2/requests/{case_id}.json")).json()
    assert {"address_id", "zipcode"} <= set(item) and item["address_id"] is None
    xml = ET.fromstring(await (await client.get(f"/open311/v2/requests/{case_id}.xml")).read())
    assert xml.find("request/zipcode") is not None and xml.find("request/address_id") is not None


@pytest.mark.parametrize(("headers", "query", "name", "scope", "began"), [
    ({}, {}, "故障报修", "整栋楼", "故障开始时间"),
    ({"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, {}, "故障报修", "整栋楼", "故障开始时间"),
    ({"Accept-Language": "en-GB,en;q=0.9"}, {}, "Power fault repair", "Building", "When the fault began"),
    ({}, {"locale": "en"}, "Power fault repair", "Building", "When the fault began"),
    ({"Accept-Language": "fr"}, {}, "故障报修", "整栋楼", "故障开始时间"),
])
async def test_what_people_read_of_services_is_chinese_unless_english_is_asked_for(
    client: Any, headers: dict[str, str], query: dict[str, str], name: str, scope: str, began: str
) -> None:
    """Was English only ('Power fault repair', 'Fault type', value names that were the keys
    `building`...): a portal shows `service_name`, the attributes' `description` and the values'
    `name` to citizens of a Chinese hotline. From the message catalogue: Chinese by default."""
    services = await (await client.get("/open311/v2/services.json", headers=headers, params=query)).json()
    power = next(s for s in services if s["service_code"] == "power_fault")
    assert power["service_name"] == name
    xml = ET.fromstring(await (await client.get("/open311/v2/services.xml", headers=headers,
                                                params=query)).read())
    assert xml.findtext("service/service_name") == name
    definition = await (await client.get("/open311/v2/services/power_fault.json", headers=headers,
                                         params=query)).json()
    attrs = {a["code"]: a for a in definition["attributes"]}
    assert attrs["fault_began_at"]["description"] == began
    assert {v["key"]: v["name"] for v in attrs["fault_scope"]["values"]}["building"] == scope
    case_id = await report(client)
    [item] = await (await client.get(f"/open311/v2/requests/{case_id}.json", headers=headers,
                                     params=query)).json()
    assert item["service_name"] == ("投诉" if name == "故障报修" else "Complaint")


@pytest.mark.parametrize("fmt", ["json", "xml"])
async def test_an_idempotency_key_reused_for_another_report_is_409_not_the_first_case(
    client: Any, services: Any, fmt: str
) -> None:
    """Was 200 'duplicate request' naming the first case: a second, different report sent under
    the first one's `Idempotency-Key` was lost. As an id reused for other input elsewhere, it
    is 409 `idempotency_conflict` (recorded); the same report again still answers the first."""
    headers = {"Idempotency-Key": "portal-7"}
    url = f"/open311/v2/requests.{fmt}"
    first = await client.post(url, data=REPORT, headers=headers)
    assert first.status == 201, await first.text()
    other = {**REPORT, "service_code": "report", "description": "另一件事：占道经营",
             "address_string": "秦都区人民路"}
    reused = await client.post(url, data=other, headers=headers)
    assert reused.status == 409, await reused.text()
    if fmt == "json":
        assert (await reused.json())[0]["code"] == 409
    else:
        assert ET.fromstring(await reused.read()).findtext("error/code") == "409"
    again = await client.post(url, data=REPORT, headers=headers)
    assert again.status == 200, await again.text()
    assert len(await stored_events(services.pool, "type = 'CaseRegistered'")) == 1
    assert await rejections(services) == ["idempotency_conflict"]


async def test_a_form_without_content_type_is_read_and_a_json_body_is_told_to_be_a_form(
    client: Any, services: Any
) -> None:
    """Both were 403 'api_key is missing' with the key in the body: a form sent with no
    `Content-Type` (aiohttp names it application/octet-stream) was read as no field at all, and a
    JSON body was told its key was missing. GeoReport v2 posts a form: without a type the body is
    read as one; another type is 400 saying a form is wanted (recorded), not a wrong credential."""
    body = urlencode(REPORT).encode()
    bare = await client.post("/open311/v2/requests.json", data=body, skip_auto_headers=["Content-Type"])
    assert bare.status == 201, await bare.text()
    as_json = await client.post("/open311/v2/requests.json", json={**REPORT, "description": "JSON"})
    assert as_json.status == 400, await as_json.text()
    [error] = await as_json.json()
    assert "application/x-www-form-urlencoded" in error["description"]
    assert await rejections(services) == ["not_a_form"]
