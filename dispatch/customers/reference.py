"""Registry entries as reference data: a feature of `kind: customer` (no geometry) loaded by `intake load`.

Properties: `phone` (any format), `tier` (vip, important, blacklisted, none),
`reason`, optional `expires_at` (ISO-8601 with a timezone). An entry that
already says the same writes nothing; a changed one records a new
`CustomerTierSet` (set by the loader).
"""

from __future__ import annotations

from datetime import datetime

from dispatch.core.bus import Send
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import Json, JsonValue
from dispatch.customers.registry import SetCustomerTier

KIND = "customer"


def properties_of(feature: JsonValue) -> Json | None:
    """The properties of a customer feature, or None for any other feature."""
    props = feature.get("properties") if isinstance(feature, dict) else None
    return props if isinstance(props, dict) and props.get("kind") == KIND else None


def _text(props: Json, name: str) -> str:
    value = props.get(name)
    if value is None:
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise InvalidCommand(f"{name} must be text", field=name)
    return str(value).strip()


def set_command(props: Json, actor: str) -> SetCustomerTier:
    """The command one customer feature stands for; `InvalidCommand` names a bad property."""
    phone = _text(props, "phone")
    if not phone:
        raise InvalidCommand("a customer needs a phone", field="phone")
    raw_expiry = _text(props, "expires_at")
    try:
        expires = datetime.fromisoformat(raw_expiry.replace("Z", "+00:00")) if raw_expiry else None
    except ValueError as exc:
        raise InvalidCommand("expires_at is not an ISO-8601 time", field="expires_at") from exc
    return SetCustomerTier(phone, _text(props, "tier"), _text(props, "reason"), actor, expires,
                           source="loader")


async def load(handle: Send, props: Json, actor: str) -> str:
    """Record one entry: `recorded` or `unchanged`."""
    written = await handle(set_command(props, actor))
    return "recorded" if written else "unchanged"
