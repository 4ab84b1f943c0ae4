"""Phone numbers: the canonical form every capability keys on, masking, the stream key.

Numbers are parsed with `phonenumbers` (Google's libphonenumber), default region
China, so any common format is accepted: international (`+44 20 7946 0958`,
`0044...`), with spaces, dashes or brackets, national with the trunk prefix.
The canonical form of a Chinese number is the national one without `+86`
(`13912345678`, `02912345678`, `95598`): caller streams and the read models
are keyed on it, so it must never change; other countries' numbers are E.164.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from dispatch.core.errors import InvalidCommand

DEFAULT_REGION = "CN"
CHINA = 86
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0(10|2\d|[3-9]\d{2})\d{7,8}$")
"""An area code (010, 02x, 03xx-09xx) and the number: `0` and a mobile (how PBXs present a mobile
from another city, 外地手机加0) is no landline, and `phonenumbers` reads it as the mobile."""
_SERVICE = re.compile(r"^(95598|12345|110|119|120|122)$")
_CHINA_PREFIX = re.compile(r"^(\+86|0086)")
_DIALLABLE = re.compile(r"^\+?[\d\s\-().]+$")
"""What a phone number may be written with: `phonenumbers` would also find a number inside
words ("call 13912345678") or read letters as digits (vanity numbers); a field or message
that is more than a number is not one."""


_URI = re.compile(r"^\s*(?:tel|sips?):([^;@]*)(?:[;@].*)?$", re.IGNORECASE | re.DOTALL)
"""A number written as a URI, as PBXs and SIP trunks present callers: RFC 3966 `tel:+86-139...`
(with `;phone-context=` or other parameters) or a SIP URI's user part (`sip:13912345678@pbx`)."""


def normalise_phone(raw: str) -> str:
    """A phone number in canonical form (Chinese numbers without +86); raise if invalid.

    Full-width forms (＋86 139－1234－5678, as a Chinese input method types them) are read
    as the ASCII ones (NFKC)."""
    raw = unicodedata.normalize("NFKC", raw)
    uri = _URI.match(raw)
    if uri is not None:
        return normalise_phone(uri.group(1))
    digits = _CHINA_PREFIX.sub("", re.sub(r"[\s\-()]", "", raw))
    if _MOBILE.match(digits) or _LANDLINE.match(digits) or _SERVICE.match(digits):
        return digits  # the forms stored since the first release, kept byte for byte
    if not _DIALLABLE.match(raw.strip()):
        raise _invalid(raw)
    try:
        number = phonenumbers.parse(raw, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise _invalid(raw) from exc
    if number.country_code == CHINA:
        if not phonenumbers.is_valid_number(number):
            raise _invalid(raw)
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        return re.sub(r"\D", "", national)
    if not phonenumbers.is_possible_number(number):
        raise _invalid(raw)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _invalid(raw: str) -> InvalidCommand:
    return InvalidCommand(f"phone number {mask_phone(raw)} is not a valid number", field="phone")


def e164(phone: str) -> str:
    """A canonical number in E.164 (`13912345678` -> `+8613912345678`), as SMS APIs want it.

    Chinese numbers are stored without `+86` (`normalise_phone`); other countries' are E.164
    already. What does not parse as a number is given back as it is, for the provider to refuse.
    """
    if phone.startswith("+"):
        return phone
    try:
        number = phonenumbers.parse(phone, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_TEXTABLE = frozenset({phonenumbers.PhoneNumberType.MOBILE,
                       phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE})


def takes_sms(phone: str) -> bool:
    """Whether a canonical number can be sent an SMS: a mobile (a landline or a service number cannot).

    Chinese mobiles are `1[3-9]` and ten digits; another country's number is asked of
    libphonenumber's numbering plan (where a plan cannot tell mobiles from landlines, yes).
    """
    if not phone.startswith("+"):
        return _MOBILE.match(phone) is not None
    try:
        number = phonenumbers.parse(phone)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(number) in _TEXTABLE


def mask_phone(phone: str | None) -> str | None:
    """Only the last four digits of a phone number stay readable."""
    if not phone:
        return phone
    return "*" * max(len(phone) - 4, 0) + phone[-4:]


_NUMBER_RUN = re.compile(r"(?<![A-Za-z0-9_])(\+?\d[\d\- ]{5,}\d)(?![A-Za-z0-9_])")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MIN_PHONE_DIGITS = 7


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(1)
    if _ISO_DATE.fullmatch(run) or sum(c.isdigit() for c in run) < MIN_PHONE_DIGITS:
        return run
    return "*" * max(len(run) - 4, 0) + run[-4:]


def mask_numbers(text: str) -> str:
    """`text` with every phone-number-like run of digits masked but its last four.

    Runs inside identifiers (`C20261123ABC`) and ISO dates are left alone.
    """
    return _NUMBER_RUN.sub(_mask_run, text)


def caller_key(phone: str) -> str:
    """The stream id of a canonical phone number (`+` becomes `00`, as dialled abroad)."""
    return "00" + phone[1:] if phone.startswith("+") else phone
