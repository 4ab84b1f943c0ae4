"""Personal data: who sees it, and how it is hidden from everyone else.

The one place for the rule and the masks that the API, the live stream and
the logs use (CONTRACT.md, "Personal data"):

- `agent`, `dispatcher`, `auditor` and `admin` see names, numbers, addresses,
  free text and exact coordinates;
- a `unit` sees them only on cases assigned to it; elsewhere a number keeps its
  last four characters, names, addresses and free text (descriptions, SMS
  bodies, an elder's conditions, message texts) are hidden, and coordinates are
  coarsened to 0.01 degree (about 1.1 km north-south, 0.9 km east-west at 35 N);
- logs are masked for everyone (`mask_value` is the log processor's mask too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dispatch.core.phone import mask_numbers, mask_phone
from gateway.auth import Principal

FULL_PERSONAL_DATA: frozenset[str] = frozenset({"agent", "dispatcher", "auditor", "admin"})
"""Roles that see personal data on every case."""
COARSE_DECIMALS = 2
"""Coordinates shown to those who may not see exact ones keep this many decimals (about 1 km)."""
HIDDEN = "***"

PHONE_KEYS = frozenset({"phone", "caller_phone", "caller", "to", "to_addr", "from", "sender"})
"""Keys whose values are numbers (or other contact addresses): the last four characters stay."""
PERSONAL_KEYS = frozenset({
    "name", "caller_name", "address", "email", "caller_email", "openid", "caller_openid", "contact",
    "contacts", "from_user", "fromusername", "description", "body", "text", "conditions", "result",
    "account", "device_account", "account_number"})
"""Keys whose values are hidden whole: names, addresses, identifiers (an elder's alarm device, a
household's electricity account) and free text."""
COORDINATE_KEYS = frozenset({"lat", "lon", "long", "latitude", "longitude"})
TOPIC_PERSONAL_KEYS: dict[str, frozenset[str]] = {"reminder": frozenset({"note"})}
"""Keys of one live-stream topic hidden whole besides `PERSONAL_KEYS`: a reminder's note is the
agent's free text about the caller (sealed as personal data), where other notes are the staff's."""


def sees_personal_data(who: Principal | None, *, assigned_to: str | None = None) -> bool:
    """Whether this caller sees names, numbers, texts and exact coordinates (of a case
    assigned to `assigned_to`)."""
    if who is None:
        return False
    if who.role in FULL_PERSONAL_DATA:
        return True
    return who.role == "unit" and assigned_to is not None and assigned_to == who.subject


mask_text = mask_numbers
"""Mask every phone-number-like run of digits but its last four (one rule with the outbox's)."""


def coarse(value: float | None) -> float | None:
    """A latitude or longitude rounded to about a kilometre."""
    return None if value is None else round(value, COARSE_DECIMALS)


def mask_value(key: str, value: Any) -> Any:
    """`value` (a JSON-like value of any depth, found under `key`) with personal data hidden.

    Under a phone key a number keeps its last four characters; names, addresses,
    identifiers and free text become "***"; coordinates are coarsened; in any
    other text, phone-number-like runs of digits keep their last four.
    """
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(key, v) for v in value]
    name = key.lower()
    if name in COORDINATE_KEYS and isinstance(value, float):
        return coarse(value)
    if not isinstance(value, str) or not value:
        return value
    if name in PHONE_KEYS:
        return mask_phone(value) if any(c.isdigit() for c in value) else HIDDEN
    if name in PERSONAL_KEYS:
        return HIDDEN
    return mask_text(value)


def mask_change(topic: str, data: Mapping[str, Any]) -> Any:
    """A live-stream change's data (of `topic`) with personal data hidden (`mask_value`)."""
    private = TOPIC_PERSONAL_KEYS.get(topic, frozenset())
    return {k: HIDDEN if k in private and isinstance(v, str) and v else mask_value(str(k), v)
            for k, v in data.items()}


def hide_case(view: dict[str, Any]) -> dict[str, Any]:
    """A case's API view for a caller who may not see its personal data.

    Hidden fields answer null (the API's shape stays); the number keeps its
    last four digits and the location its district and a coarse point.
    """
    caller = view.get("caller") or {}
    location = view.get("location")
    return {**view,
            "caller": {"name": None, "phone": mask_phone(caller.get("phone")), "email": None, "openid": None},
            "location": None if location is None else {  # a matched place names the caller's words
                **location, "lat": coarse(location.get("lat")), "lon": coarse(location.get("lon")),
                **({"place": None} if "place" in location else {})},
            "address": None, "description": None, "result": None,
            **{k: None for k in ("account_number", "special_needs", "recording_id") if k in view},
            **({"reminder": {**view["reminder"], "note": None}} if view.get("reminder") else {}),
            **({"legal_hold": {**view["legal_hold"], "reason": None}} if view.get("legal_hold") else {})}
