"""Open311 forms into the intake contact and `ReceiveWebRequest`, status mapping and the XML shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest

from channels.open311 import (
    Open311Error,
    check_query_date,
    definition,
    errors_body,
    parse_form,
    request_item,
    to_command,
    to_xml,
)
from dispatch.core.clock import FakeClock
from dispatch.intake.web import ReceiveWebRequest, receive_web_request
from eventstore.memory import MemoryEventStore

AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def command(form: dict[str, str], key: str | None = "k", holder: str = "web") -> ReceiveWebRequest:
    return to_command(parse_form(form), actor="channel:web", holder=holder, idempotency_key=key,
                      received_at=AT)

POWER = {"service_code": "power_fault", "lat": "34.33", "long": "108.71", "phone": "13912345678",
         "last_name": "张", "first_name": "三", "description": "停电",
         "attribute[account_number]": "61001", "attribute[fault_type]": "no_power",
         "attribute[fault_began_at]": "2026-11-23T07:30", "attribute[fault_scope]": "street"}


def test_power_fault_form_becomes_a_web_contact() -> None:
    cmd = command(POWER)
    contact = cmd.contact
    assert cmd.category == "power_fault" and (contact.channel, contact.kind) == ("web", "web_request")
    assert contact.caller.name == "张三" and cmd.account_number == "61001" and contact.text == "停电"
    assert cmd.fault is not None and cmd.fault.scope == "street"
    assert contact.location is not None and contact.location.lat == pytest.approx(34.33)
    assert contact.idempotency_key == "open311:web:k" and not cmd.repeat_window


def test_gcj02_coordinates_are_converted() -> None:
    cmd = command({**POWER, "crs": "gcj02"})
    assert cmd.contact.location is not None and cmd.contact.location.lat != pytest.approx(34.33, abs=1e-5)


@pytest.mark.parametrize(("change", "status"), [
    ({"service_code": ""}, 400), ({"service_code": "nope"}, 404),
    ({"service_code": "elderly_emergency"}, 404), ({"lat": "", "long": ""}, 400),
    ({"attribute[fault_type]": "aliens"}, 400),
])
def test_bad_forms(change: dict[str, str], status: int) -> None:
    with pytest.raises(Open311Error) as caught:
        parse_form({**POWER, **change})
    assert caught.value.status == status


def test_definition_lists_mandatory_attributes() -> None:
    attrs = {a["code"]: a for a in definition("power_fault")["attributes"]}
    assert attrs["fault_type"]["required"] and attrs["fault_type"]["values"]
    assert not attrs["customer_type"]["required"]
    with pytest.raises(Open311Error):
        definition("elderly_emergency")


@pytest.mark.parametrize(("status", "mapped"), [
    ("accepted", "open"), ("dispatched", "open"), ("in_progress", "open"), ("completed", "closed"),
    ("called_back", "closed"), ("archived", "closed"), ("closed", "closed"),
])
def test_status_mapping(status: str, mapped: str) -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    item = request_item({"case_id": "C1", "status": status, "category": "complaint", "accepted_at": now,
                         "updated_at": now, "lat": 34.123456, "lon": 108.654321})
    assert item["status"] == mapped and status in item["status_notes"]
    assert (item["lat"], item["long"]) == (34.123, 108.654)


def test_xml_shapes() -> None:
    root = ElementTree.fromstring(to_xml("errors", "error", errors_body(403, "no key")))
    assert root.find("error/code").text == "403"  # type: ignore[union-attr]
    root = ElementTree.fromstring(to_xml("service_definition", None, definition("power_fault")))
    assert root.find("attributes/attribute/code").text == "account_number"  # type: ignore[union-attr]
    assert root.find("attributes/attribute/required").text == "true"  # type: ignore[union-attr]


def test_the_api_key_is_never_stored_with_the_request() -> None:
    form = {"service_code": "complaint", "api_key": "t-channel", "lat": "34.3", "long": "108.7",
            "description": "路灯不亮", "phone": "13800000000"}
    raw = command(form, key=None).contact.raw
    assert raw["api_key"] == "***"
    assert "t-channel" not in repr(raw)


def test_rejected_raw_bodies_have_credentials_redacted() -> None:
    from channels.rejected import redact_text

    assert redact_text("service_code=x&api_key=t-channel&lat=1") == "service_code=x&api_key=***&lat=1"
    assert redact_text('{"api_key": "t-channel"}') == '{"api_key": "***"}'


def test_missing_attributes_are_accepted_and_left_for_an_agent() -> None:
    """GeoReport clients may leave attributes out: the request is not refused (issue 20)."""
    form = parse_form({"service_code": "power_fault", "lat": "34.33", "long": "108.71"})
    assert form.attributes == {}


async def test_power_fault_without_phone_and_address_registers_with_missing_fields() -> None:
    store = MemoryEventStore(FakeClock(AT).now)
    form = {**POWER, "phone": "", "first_name": "Bartholomew", "last_name": "Fitzgerald-Smythe",
            "email": "b@example.org"}
    registered = await receive_web_request(command(form), store=store, clock=FakeClock(AT))
    [record] = await store.read_stream(f"case-{registered.case_id}")
    assert record.data["caller"]["name"] == "Bartholomew Fitzgerald-Smythe"
    assert record.data["missing_fields"] == ["caller.phone", "address"]


@pytest.mark.parametrize(("change", "same"), [
    ({}, True), ({"description": "停电了"}, False), ({"lat": "34.34"}, False),
    ({"phone": "13912345679"}, False), ({"service_code": "voltage_anomaly"}, False),
    ({"attribute[fault_scope]": "area"}, True),  # not what makes a request the same
])
def test_without_idempotency_key_the_content_is_the_key(change: dict[str, str], same: bool) -> None:
    first, again = command(POWER, key=None), command({**POWER, **change}, key=None)
    assert first.repeat_window and again.repeat_window
    assert (first.contact.idempotency_key == again.contact.idempotency_key) is same
    assert command(POWER, key=None, holder="other").contact.idempotency_key != first.contact.idempotency_key


BOUNDARY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
"""A multiple of 10 minutes since the epoch: where one repeat bucket ends and the next begins."""


@pytest.mark.parametrize(("first", "again", "same"), [
    (timedelta(minutes=1), timedelta(minutes=9), True),
    (timedelta(seconds=-30), timedelta(seconds=30), True),  # across the bucket edge
    (timedelta(minutes=-1), timedelta(minutes=9), True),  # exactly 10 minutes
    (timedelta(minutes=-1), timedelta(minutes=9, seconds=1), False),
    (timedelta(minutes=1), timedelta(minutes=21), False),  # two buckets on
])
async def test_a_repeat_without_key_answers_the_first_case_within_10_minutes(
    first: timedelta, again: timedelta, same: bool
) -> None:
    clock = FakeClock(BOUNDARY + first)
    store = MemoryEventStore(clock.now)

    async def post() -> tuple[str, bool]:
        cmd = to_command(parse_form(POWER), actor="channel:web", holder="web", idempotency_key=None,
                         received_at=clock.now())
        done = await receive_web_request(cmd, store=store, clock=clock)
        return done.case_id, done.duplicate

    case_id, _ = await post()
    clock.set(BOUNDARY + again)
    repeat_id, duplicate = await post()
    assert (repeat_id == case_id, duplicate) == (same, same)


@pytest.mark.parametrize("typed", ["2026-12-07T08:00:00 08:00", "2026-12-07T08:00:00 0800",
                                   "2026-12-07T08:00:00.5 08:00"])
def test_an_offset_whose_plus_the_url_read_as_a_space_is_that_offset(typed: str) -> None:
    """`start_date=2026-12-07T08:00:00+08:00` typed into a URL arrives with a space for the `+`
    (form encoding): it was 400; it is the instant it says (00:00 UTC), and `-08:00` is not touched."""
    assert check_query_date(typed, "start_date") == datetime(2026, 12, 7, 0, 0, tzinfo=UTC) + timedelta(
        milliseconds=500 if ".5" in typed else 0)
    west = datetime(2026, 12, 7, 16, tzinfo=UTC)
    assert check_query_date("2026-12-07T08:00:00-08:00", "start_date") == west
    with pytest.raises(Open311Error):
        check_query_date("2026-12-07 08:00", "start_date")  # no offset at all: still refused
