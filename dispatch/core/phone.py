"""Phone numbers: the canonical form every capability keys on, masking, the stream key."""

from __future__ import annotations

import re

from dispatch.core.errors import InvalidCommand

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SERVICE = re.compile(r"^(95598|12345|110|119|120|122)$")


def normalise_phone(raw: str) -> str:
    """A phone number in canonical form (Chinese numbers without +86); raise if invalid."""
    digits = re.sub(r"[\s\-()]", "", raw)
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    if _MOBILE.match(digits) or _LANDLINE.match(digits) or _SERVICE.match(digits):
        return digits
    if _E164.match(digits):
        return digits
    raise InvalidCommand(f"phone number {mask_phone(raw)} is not a valid number", field="phone")


def mask_phone(phone: str | None) -> str | None:
    """Only the last four digits of a phone number stay readable."""
    if not phone:
        return phone
    return "*" * max(len(phone) - 4, 0) + phone[-4:]


def caller_key(phone: str) -> str:
    """The stream id of a canonical phone number (`+` becomes `00`, as dialled abroad)."""
    return "00" + phone[1:] if phone.startswith("+") else phone
