"""Open311 GeoReport v2: the service catalogue, request forms, JSON and XML shapes.

Services are the case categories; a service's attributes are its intake
fields (`attribute[code]=value` in a POST). `required` tells clients what to
ask for; a request without them is still accepted (the case lists them in
`missing_fields`). A request is the intake contact plus those fields, sent as
one `ReceiveWebRequest`. Case statuses map to Open311's `open` / `closed` with
the internal status in `status_notes`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.etree import ElementTree

from channels.errors import ChannelError
from channels.rejected import redact_fields
from channels.times import plausible
from dispatch.cases.events import CallerInfo, Fault, Place
from dispatch.cases.registration import CATEGORIES
from dispatch.cases.status import DONE
from dispatch.core.texts import CHINESE, LOCAL_TIME, Texts, texts_for
from dispatch.gis.geo import to_wgs84
from dispatch.intake.contact import InboundContact
from dispatch.intake.web import ReceiveWebRequest

ATTRIBUTES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "power_fault": (
        ("account_number", "string", True),
        ("fault_type", "singlevaluelist", True),
        ("fault_began_at", "datetime", True),
        ("fault_scope", "singlevaluelist", True),
        ("customer_type", "singlevaluelist", False),
        ("special_needs", "text", False),
    ),
    "voltage_anomaly": (("account_number", "string", True),),
    "home_service": (("service_time", "datetime", False),),
    "todo": (("service_time", "datetime", True),),
}
"""Each service's attributes: code, GeoReport datatype, required. What people read of services,
attributes and values is in the message catalogue (`open311.service.*`, `open311.attr.*`,
`open311.attr.<service>.<code>` where a service words one its own way, `open311.value.*`)."""
VALUES: dict[str, tuple[str, ...]] = {
    "fault_type": ("no_power", "partial_power", "sparks", "line_down", "meter", "other"),
    "fault_scope": ("own_home", "building", "street", "area"),
    "customer_type": ("resident", "enterprise"),
}
WEB_SERVICES = tuple(c for c in CATEGORIES if c != "elderly_emergency")
"""Elderly emergencies come from alarm devices, not from the web form."""
_ATTR = re.compile(r"^attribute\[([a-z_]{1,40})\]$")
MAX_KEY = 200
"""The longest idempotency key kept as the client sent it (a longer one is kept by its SHA-256)."""
MAX_EMAIL = 254
"""The longest e-mail address (RFC 5321's path limit): the address names the reporter as a data
subject when no phone is given, and a subject is a key the store indexes."""


class Open311Error(ChannelError):
    """An error answered in Open311's own error format."""

    def __init__(self, status: int, message: str, code: str = "bad_request") -> None:
        super().__init__(message, code=code)
        self.status = status


def service_name(code: str, texts: Texts = CHINESE) -> str:
    """What people read as the service `code` in `texts`' language."""
    return texts.say(f"open311.service.{code}")


def service(code: str, texts: Texts = CHINESE) -> dict[str, Any]:
    """One entry of `GET services`, in `texts`' language (the other language's name in brackets)."""
    name = service_name(code, texts)
    other = service_name(code, texts_for("zh-CN" if texts.language == "en" else "en"))
    return {"service_code": code, "service_name": name, "description": f"{name} ({other})",
            "metadata": code in ATTRIBUTES, "type": "realtime", "keywords": service_name(code),
            "group": "95598" if code in ("power_fault", "voltage_anomaly") else "12345"}


def _attribute_text(service_code: str, code: str, texts: Texts) -> str:
    own = f"open311.attr.{service_code}.{code}"
    return texts.say(own if own in texts.messages else f"open311.attr.{code}")


def definition(code: str, texts: Texts = CHINESE) -> dict[str, Any]:
    """`GET services/{code}`: the attributes a request of this service must carry."""
    if code not in WEB_SERVICES:
        raise Open311Error(404, f"service_code {code} not found", "not_found")
    attributes = []
    for order, (name, datatype, required) in enumerate(ATTRIBUTES.get(code, ()), 1):
        values = [{"key": v, "name": texts.say(f"open311.value.{v}")} for v in VALUES.get(name, ())]
        attributes.append({"variable": True, "code": name, "datatype": datatype, "required": required,
                           "datatype_description": "", "order": order,
                           "description": _attribute_text(code, name, texts), "values": values})
    return {"service_code": code, "attributes": attributes}


@dataclass(frozen=True, slots=True)
class Form:
    """A parsed `POST requests` form."""

    service_code: str
    attributes: dict[str, str]
    values: dict[str, str]


def parse_form(form: Mapping[str, str]) -> Form:
    """Split the form into standard fields and `attribute[...]`; check service, location and values.

    GeoReport v2: the location is one of lat & long, `address_string` or `address_id`;
    names, phone and email are optional, and so are attributes (never refused missing).
    """
    code = form.get("service_code", "")
    if not code:
        raise Open311Error(400, "service_code is required")
    if code not in WEB_SERVICES:
        raise Open311Error(404, f"service_code {code} not found", "not_found")
    attributes: dict[str, str] = {}
    for key, value in form.items():
        match = _ATTR.match(key)
        if match:
            attributes[match.group(1)] = value.strip()
    values = {k: v.strip() for k, v in form.items() if not k.startswith("attribute[")}
    has_point = values.get("lat") and values.get("long")
    if not (has_point or values.get("address_string") or values.get("address_id")):
        raise Open311Error(400, "lat/long, address_string or address_id is required")
    if len(values.get("email", "")) > MAX_EMAIL:
        raise Open311Error(400, f"email must be an address of at most {MAX_EMAIL} characters")
    for name, allowed in VALUES.items():
        if attributes.get(name) and attributes[name] not in allowed:
            raise Open311Error(400, f"attribute[{name}] must be one of {', '.join(allowed)}")
    return Form(code, attributes, values)


def _place(values: Mapping[str, str]) -> Place | None:
    if not (values.get("lat") and values.get("long")):
        return None
    try:
        lat, lon = to_wgs84(float(values["lat"]), float(values["long"]), values.get("crs") or "wgs84")
    except ValueError as exc:
        raise Open311Error(400, f"lat/long: {exc}") from exc
    return Place(lat, lon)


def _name(values: Mapping[str, str]) -> str | None:
    first, last = values.get("first_name", ""), values.get("last_name", "")
    if not (first or last):
        return None
    cjk = any("\u4e00" <= ch <= "\u9fff" for ch in first + last)
    return f"{last}{first}" if cjk else " ".join(p for p in (first, last) if p)


REPEAT_FIELDS = ("service_code", "lat", "long", "address_string", "address_id", "description",
                 "first_name", "last_name", "phone", "email")
"""What makes two requests of one key holder the same request (service, location, text, contact)."""


def request_key(form: Form, holder: str, idempotency_key: str | None) -> tuple[str, bool]:
    """The request's idempotency key, and whether it holds only within the repeat window.

    With the client's `Idempotency-Key` header, that key (scoped by the key holder);
    without, a hash of what the request says: a retry within 10 minutes is the same request.
    """
    if idempotency_key:
        key = f"open311:{holder}:{idempotency_key}"
        if len(key) > MAX_KEY:  # by its digest, never cut: keys alike in their first 200 characters differ
            key = f"open311:{holder}:sha256:{hashlib.sha256(idempotency_key.encode()).hexdigest()}"
        return key, False
    said = json.dumps([form.values.get(name, "") for name in REPEAT_FIELDS], ensure_ascii=False)
    return f"open311:{holder}:same:{hashlib.sha256(said.encode()).hexdigest()[:32]}", True


def to_command(form: Form, *, actor: str, holder: str, idempotency_key: str | None,
               received_at: datetime) -> ReceiveWebRequest:
    """The `ReceiveWebRequest` for a web request (`holder`: the api_key's subject)."""
    v, a = form.values, form.attributes
    fault = None
    if form.service_code == "power_fault":
        fault = Fault(a.get("fault_type"), a.get("fault_began_at"), a.get("fault_scope"))
    description = v.get("description") or service_name(form.service_code)
    if v.get("media_url"):
        description += f"\nmedia: {v['media_url']}"
    key, windowed = request_key(form, holder, idempotency_key)
    contact = InboundContact(
        channel="web", kind="web_request", idempotency_key=key,
        caller=CallerInfo(name=_name(v), phone=v.get("phone") or None, email=v.get("email") or None),
        occurred_at=received_at, received_at=received_at, text=description[:4000], location=_place(v),
        raw=dict(redact_fields(v), attributes=a), extra={"source": "open311"},
    )
    return ReceiveWebRequest(
        contact=contact, category=form.service_code,
        address=v.get("address_string") or v.get("address_id") or None,
        account_number=a.get("account_number") or v.get("account_id") or None,
        customer_type=a.get("customer_type"), fault=fault, service_time=a.get("service_time"),
        special_needs=a.get("special_needs"), repeat_window=windowed, actor=actor,
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def request_item(row: Mapping[str, Any], texts: Texts = CHINESE) -> dict[str, Any]:
    """One service request for `GET requests`: no personal data, location to ~100 m."""
    status, category = row["status"], row["category"]
    return {
        "service_request_id": row["case_id"],
        "status": "closed" if status in DONE else "open",
        "status_notes": f"case status: {status}",
        "service_name": service_name(category, texts) if category in CATEGORIES else category,
        "service_code": row["category"],
        "description": None,
        "agency_responsible": row.get("assigned_to"),
        "service_notice": None,
        "requested_datetime": _iso(row["accepted_at"]),
        "updated_datetime": _iso(row["updated_at"]),
        "expected_datetime": _iso(row.get("deadline")),
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": round(row["lat"], 3) if row.get("lat") is not None else None,
        "long": round(row["lon"], 3) if row.get("lon") is not None else None,
        "media_url": None,
    }


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""What XML 1.0 cannot hold, even escaped (C0 controls, lone surrogates, U+FFFE, U+FFFF)."""


def _xml_value(parent: ElementTree.Element, key: str, value: Any) -> None:
    child = ElementTree.SubElement(parent, key)
    if isinstance(value, list):
        singular = {"attributes": "attribute", "values": "value"}.get(key, "item")
        for entry in value:
            _xml_node(child, singular, entry)
    elif isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:  # an error may echo the input: keep the answer well-formed
        child.text = _NOT_XML.sub("\ufffd", str(value))


def _xml_node(parent: ElementTree.Element, tag: str, item: Mapping[str, Any]) -> None:
    node = ElementTree.SubElement(parent, tag)
    for key, value in item.items():
        _xml_value(node, key, value)


def to_xml(root: str, tag: str | None, body: Any) -> bytes:
    """Open311 XML: a list under `root` with one `tag` element each, or one object as `root`."""
    top = ElementTree.Element(root)
    if tag is None:
        for key, value in body.items():
            _xml_value(top, key, value)
    else:
        for item in body:
            _xml_node(top, tag, item)
    text: bytes = ElementTree.tostring(top, encoding="utf-8", xml_declaration=True)
    return text


def errors_body(status: int, message: str) -> list[dict[str, Any]]:
    """Open311's error array."""
    return [{"code": status, "description": message}]


_W3C_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def _w3c_period(value: str, name: str) -> tuple[datetime, datetime] | None:
    """W3C-DTF's forms without a time (YYYY, YYYY-MM, YYYY-MM-DD): the first instant of that
    year, month or day in Beijing time and the first one after it; None for other forms."""
    match = _W3C_DATE.match(value)
    if match is None:
        return None
    year, month, day = (int(part) if part else 0 for part in match.groups())
    try:
        first = datetime(year, month or 1, day or 1, tzinfo=LOCAL_TIME)
        if day:
            return first, first + timedelta(days=1)
        if month:
            return first, (first + timedelta(days=32)).replace(day=1)
        return first, first.replace(year=year + 1)
    except (ValueError, OverflowError) as exc:
        raise Open311Error(400, f"{name}: no such date {value}") from exc


_SPACED_OFFSET = re.compile(r"(T[\d:.]+) (\d\d:?\d\d)$")
"""A `+hh:mm` offset typed unescaped into a URL, which reads its `+` as a space."""


def check_query_date(value: str | None, name: str, *, end: bool = False) -> datetime | None:
    """A W3C datetime query parameter (`2010-01-01T00:00:00Z`), or a W3C date without a time
    (`2010-01-01`, `2010-01`, `2010`): from its first instant, or with `end` to its last."""
    if not value:
        return None
    period = _w3c_period(value, name)
    if period is not None:
        parsed = period[1] - timedelta(microseconds=1) if end else period[0]
    else:
        try:
            parsed = datetime.fromisoformat(_SPACED_OFFSET.sub(r"\1+\2", value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise Open311Error(400, f"{name} must be a W3C datetime like 2010-01-01T00:00:00Z") from exc
    if parsed.tzinfo is None:
        raise Open311Error(400, f"{name} must carry a time zone (Z)")
    if not plausible(parsed):
        raise Open311Error(400, f"{name} must lie in the years 2000-2099")
    return parsed
