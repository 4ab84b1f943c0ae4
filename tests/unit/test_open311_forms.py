"""Open311 forms into `RegisterCase`, status mapping and the XML shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest

from channels.open311 import (
    Open311Error,
    definition,
    errors_body,
    parse_form,
    request_item,
    to_command,
    to_xml,
)

POWER = {"service_code": "power_fault", "lat": "34.33", "long": "108.71", "phone": "13912345678",
         "last_name": "张", "first_name": "三", "description": "停电",
         "attribute[account_number]": "61001", "attribute[fault_type]": "no_power",
         "attribute[fault_began_at]": "2026-11-23T07:30", "attribute[fault_scope]": "street"}


def test_power_fault_form_becomes_a_strict_registration() -> None:
    cmd = to_command(parse_form(POWER), actor="channel:web", idempotency_key="k")
    assert cmd.category == "power_fault" and cmd.channel == "web" and cmd.strict
    assert cmd.caller.name == "张三" and cmd.account_number == "61001"
    assert cmd.fault is not None and cmd.fault.scope == "street"
    assert cmd.location is not None and cmd.location.lat == pytest.approx(34.33)


def test_gcj02_coordinates_are_converted() -> None:
    cmd = to_command(parse_form({**POWER, "crs": "gcj02"}), actor="a", idempotency_key=None)
    assert cmd.location is not None and cmd.location.lat != pytest.approx(34.33, abs=1e-5)


@pytest.mark.parametrize(("change", "status"), [
    ({"service_code": ""}, 400), ({"service_code": "nope"}, 404),
    ({"service_code": "elderly_emergency"}, 404), ({"lat": "", "long": ""}, 400),
    ({"attribute[fault_scope]": ""}, 400), ({"attribute[fault_type]": "aliens"}, 400),
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
    from channels.open311 import parse_form, to_command

    form = parse_form({"service_code": "complaint", "api_key": "t-channel", "lat": "34.3", "long": "108.7",
                       "description": "路灯不亮", "phone": "13800000000"})
    command = to_command(form, actor="channel:web", idempotency_key=None)
    assert command.raw["api_key"] == "***"
    assert "t-channel" not in repr(command.raw)


def test_rejected_raw_bodies_have_credentials_redacted() -> None:
    from channels.rejected import redact_text

    assert redact_text("service_code=x&api_key=t-channel&lat=1") == "service_code=x&api_key=***&lat=1"
    assert redact_text('{"api_key": "t-channel"}') == '{"api_key": "***"}'
