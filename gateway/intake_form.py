"""The agent's registration form as the API states it: which fields each category asks for,
the choices offered, and a `POST /api/v1/cases` body checked into every field error at once.

The console's form (gateway/static/console/register.js) reads the rules from
`GET /api/v1/cases/form` and shows the errors this module finds next to the
fields they name (`{"error": {"code": "invalid_fields", "fields": [{field, code,
message}]}}`), so the form checks exactly what the API checks. A path is the
field's place in the body (`caller.phone`, `fault.type`), as in `missing_fields`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from channels.open311 import VALUES
from dispatch.cases.registration import (
    CATEGORIES,
    DEFAULT_PRIORITY,
    MAX_NAME_CHARS,
    POWER_FAULT_REQUIRED,
    RESPONSE_LIMIT_MINUTES,
    RegisterCase,
    missing_fields,
)
from dispatch.core.errors import DispatchError
from dispatch.core.messages import Json, JsonValue
from dispatch.core.phone import normalise_phone
from dispatch.gis.geo import to_wgs84
from gateway.http import BadRequest

FIELDS_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "power_fault": ("account_number", "customer_type", "fault.type", "fault.began_at", "fault.scope",
                    "special_needs"),
    "voltage_anomaly": ("account_number", "customer_type", "special_needs"),
    "home_service": ("service_time", "special_needs"),
    "elderly_care": ("service_time", "special_needs"),
    "todo": ("service_time",),
}
"""The fields beyond the common ones (caller, description, address, place) a category asks for."""
REQUIRED: dict[str, tuple[str, ...]] = {"power_fault": POWER_FAULT_REQUIRED}
"""Fields a registration of the category must carry (the rule `missing_fields` applies)."""
CHOICES: dict[str, tuple[str, ...]] = {
    "fault.type": VALUES["fault_type"], "fault.scope": VALUES["fault_scope"],
    "customer_type": VALUES["customer_type"],
}
"""Values the form offers (any text is accepted: a caller's words may fit none)."""
TEXT_FIELDS: tuple[str, ...] = (
    "channel", "caller.name", "account_number", "customer_type", "address", "fault.type",
    "fault.began_at", "fault.scope", "service_time", "special_needs", "call_id",
)


def form_rules() -> Json:
    """What `GET /api/v1/cases/form` answers."""
    return {"categories": list(CATEGORIES), "default_priority": DEFAULT_PRIORITY, "max_name": MAX_NAME_CHARS,
            "priorities": sorted(RESPONSE_LIMIT_MINUTES), "fields": FIELDS_BY_CATEGORY,
            "required": REQUIRED, "choices": CHOICES}


class FieldErrors(BadRequest):
    """A 400 naming every field of a registration that is missing or wrong."""

    def __init__(self, errors: list[Json]) -> None:
        names = ", ".join(f"{e['field']} ({e['code']})" for e in errors)
        super().__init__("invalid_fields", f"{len(errors)} field(s) to correct: {names}")
        self.fields = errors


def _at(body: Mapping[str, JsonValue], path: str) -> JsonValue:
    value: JsonValue = body
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _problem(path: str, code: str, message: str) -> Json:
    return {"field": path, "code": code, "message": message}


def _shape(body: Mapping[str, JsonValue]) -> list[Json]:
    """Type and value errors of the body's fields (before any rule of a category)."""
    found: list[Json] = []
    category, description = body.get("category"), body.get("description")
    if not isinstance(category, str) or not category:
        found.append(_problem("category", "missing_field", "category is required"))
    elif category not in CATEGORIES:
        found.append(_problem("category", "bad_choice", f"category must be one of {', '.join(CATEGORIES)}"))
    if not isinstance(description, str) or not description.strip():
        found.append(_problem("description", "missing_field", "description is required"))
    priority = body.get("priority")
    if priority is not None and (isinstance(priority, bool) or priority not in RESPONSE_LIMIT_MINUTES):
        found.append(_problem("priority", "bad_choice", "priority must be 1, 2, 3 or 4"))
    for kind, path in (("caller", "caller"), ("fault", "fault"), ("location", "location")):
        value = body.get(path)
        if (value is not None or kind == "caller") and not isinstance(value, dict):
            found.append(_problem(path, "missing_field" if value is None else "bad_field",
                                  f"{path} must be an object"))
    for path in TEXT_FIELDS:
        value = _at(body, path)
        if value is not None and not isinstance(value, str):
            found.append(_problem(path, "bad_field", f"{path} must be text"))
    name = _at(body, "caller.name")
    if isinstance(name, str) and len(name.strip()) > MAX_NAME_CHARS:
        found.append(_problem("caller.name", "bad_field",
                              f"caller.name is at most {MAX_NAME_CHARS} characters"))
    found += _phone(body) + _location(body)
    return found


def _phone(body: Mapping[str, JsonValue]) -> list[Json]:
    phone = _at(body, "caller.phone")
    if phone is None or phone == "":
        return []
    if not isinstance(phone, str):
        return [_problem("caller.phone", "bad_field", "caller.phone must be text")]
    try:
        normalise_phone(phone)
    except DispatchError as exc:
        return [_problem("caller.phone", "bad_phone", str(exc))]
    return []


def _location(body: Mapping[str, JsonValue]) -> list[Json]:
    where = body.get("location")
    if not isinstance(where, dict):
        return []
    lat, lon, crs = where.get("lat"), where.get("lon"), where.get("crs")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon))
    if not numbers or not (crs is None or isinstance(crs, str)):
        return [_problem("location", "bad_field", "location needs numbers lat and lon (crs optional)")]
    try:
        to_wgs84(float(lat), float(lon), crs)  # type: ignore[arg-type]
    except DispatchError as exc:
        return [_problem("location", "bad_field", str(exc))]
    return []


def check_registration(body: Mapping[str, JsonValue], build: Callable[[], RegisterCase]) -> RegisterCase:
    """The command `build` makes of a checked body; `FieldErrors` listing every field to correct."""
    found = _shape(body)
    if found:
        raise FieldErrors(found)
    cmd = build()
    missing = missing_fields(cmd)
    if missing:
        raise FieldErrors([_problem(path, "missing_field", f"{cmd.category} intake needs {path}")
                           for path in missing])
    return cmd
