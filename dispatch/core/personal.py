"""Personal data in events: which fields hold it, and whose it is (the data subject).

A field declared with `field(metadata=PERSONAL)` holds personal data: names, numbers,
addresses, free text, OpenIDs, raw payloads, a home's coordinates. A message
(or a nested value) names its subject with a `data_subject()` method; without
one, the first nested value that names one does (an event carrying a
`CallerInfo` is that caller's). `to_new_event` hands both to the store, which
seals those fields with the subject's key (`eventstore/shredding.py`);
erasing the subject makes them unreadable everywhere at once.

Subjects are strings `phone:<canonical number>`, `openid:<OpenID>`,
`elder:<id>`, `device:<alarm account>`, `email:<address>`; `parse_subject`
reads what an operator types (`intake erase 139 1234 5678`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import types
import typing
from datetime import datetime

from dispatch.core.errors import InvalidCommand
from dispatch.core.phone import normalise_phone
from eventstore.records import Path
from eventstore.shredding import ERASED

KINDS = ("phone", "openid", "elder", "device", "email")
"""The kinds of data subject."""

__all__ = [
    "ERASED",
    "KINDS",
    "PERSONAL",
    "declared_personal",
    "parse_subject",
    "personal_paths",
    "phone_subject",
    "pseudonym",
    "set_pseudonym_key",
    "subject_of",
]


PERSONAL: dict[str, bool] = {"personal": True}
"""Field metadata of a field that holds personal data: `field(metadata=PERSONAL)`, sealed in the
log with its subject's key."""


def phone_subject(phone: str | None) -> str | None:
    """The subject of a phone number, in canonical form (as typed when it is not a valid number)."""
    if not phone or phone == ERASED:
        return None
    try:
        return f"phone:{normalise_phone(phone)}"
    except InvalidCommand:
        return f"phone:{phone.strip()}"


def subject(kind: str, value: str | None) -> str | None:
    """`kind:value`, or None without a value (or with an erased one)."""
    if kind == "phone":
        return phone_subject(value)
    return f"{kind}:{value}" if value and value != ERASED else None


def parse_subject(text: str) -> str:
    """A subject from what an operator gives: `kind:value`, or a bare phone number."""
    kind, sep, value = text.strip().partition(":")
    if sep and kind in KINDS and value.strip():
        found = subject(kind, value.strip())
        if found:
            return found
    if not sep:
        try:
            return f"phone:{normalise_phone(text)}"
        except InvalidCommand:
            pass
    raise InvalidCommand(
        f"a subject is a phone number or one of {', '.join(k + ':...' for k in KINDS)}", field="subject")


_DEVELOPMENT_KEY = b"intake development pseudonyms: set INTAKE_PSEUDONYM_KEY in production"
_pseudonym_key = _DEVELOPMENT_KEY


def set_pseudonym_key(key: bytes) -> None:
    """The deployment's secret for `pseudonym` (`INTAKE_PSEUDONYM_KEY`), set once at start-up.

    It must never change: stream names and keys are made with it."""
    global _pseudonym_key
    _pseudonym_key = key or _DEVELOPMENT_KEY


def pseudonym(value: str) -> str:
    """A stable, keyed, one-way name for an identifier (a number, an OpenID) where it must name
    something for ever - a stream, a task, an idempotency key - and so cannot be erased.

    HMAC-SHA-256 with the deployment's secret, 128 bits in hex: without the secret a number
    cannot be tested against it (a plain hash of an 11-digit number is reversed in minutes).
    """
    return hmac.new(_pseudonym_key, value.encode(), hashlib.sha256).hexdigest()[:32]


_LEAVES = frozenset({str, int, float, bool, datetime, type(None)})
"""Types of field values that hold nothing nested (no personal paths, no subject below them)."""


Field = tuple[str, bool, bool]
"""(name, declared personal?, may hold a nested message?) of a dataclass field."""
Fields = tuple[Field, ...]
_FIELDS: dict[type, tuple[Fields, bool] | None] = {}


def _may_nest(hint: object) -> bool:
    """Whether a value of type `hint` may hold a nested message: False for leaves and unions and
    tuples or lists of leaves (`str | None`, `tuple[str, ...]`), True for anything else."""
    if hint in _LEAVES:
        return False
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType, tuple, list, frozenset, set) and args:
        return any(_may_nest(a) for a in args if a is not Ellipsis)
    return True


def _fields(cls: type) -> tuple[Fields, bool] | None:
    """The fields of a dataclass type (see `Field`), and whether the type chooses its personal
    fields per value (a `personal_fields()` method); None for any other type. Cached: every
    appended event is walked here."""
    try:
        return _FIELDS[cls]
    except KeyError:
        pass
    found = None
    if dataclasses.is_dataclass(cls):
        try:
            hints: dict[str, object] = typing.get_type_hints(cls)
        except (NameError, TypeError):  # a hint that does not resolve: assume anything nests
            hints = {}
        found = (tuple((f.name, bool(f.metadata.get("personal")), _may_nest(hints.get(f.name, object)))
                       for f in dataclasses.fields(cls)),
                 callable(getattr(cls, "personal_fields", None)))
    _FIELDS[cls] = found
    return found


def personal_paths(message: object, prefix: Path = ()) -> tuple[Path, ...]:
    """Where `message`'s personal values are in its JSON data (`to_data`): nested values too."""
    shape = _fields(type(message))  # None for a value that is no dataclass (or a dataclass type)
    if shape is None:
        return ()
    found: list[Path] = []
    fields, varies = shape
    if varies:  # a message whose personal fields vary; it may name nested values (`location.lat`)
        fields, nested = _chosen(type(message), tuple(message.personal_fields()))  # type: ignore[attr-defined]
        found = [(*prefix, *path) for path in nested if _value_at(message, path) is not None]
    for name, is_personal, nests in fields:
        if not (is_personal or nests):
            continue
        value = getattr(message, name)
        if value is None:
            continue
        if is_personal:
            found.append((*prefix, name))
        elif type(value) in _LEAVES:
            continue
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                found.extend(personal_paths(item, (*prefix, name, i)))
        else:
            found.extend(personal_paths(value, (*prefix, name)))
    return tuple(found)


_CHOSEN: dict[tuple[type, tuple[str, ...]], tuple[Fields, tuple[tuple[str, ...], ...]]] = {}


def _chosen(cls: type, names: tuple[str, ...]) -> tuple[Fields, tuple[tuple[str, ...], ...]]:
    """The fields of `cls` with `names` (from its `personal_fields()`) as the personal ones, and the
    nested paths among the names; cached, as a type chooses among a few sets."""
    try:
        return _CHOSEN[cls, names]
    except KeyError:
        pass
    shape = _fields(cls)
    assert shape is not None
    chosen = set(names)
    found = (tuple((name, name in chosen, nests) for name, _, nests in shape[0]),
             tuple(tuple(n.split(".")) for n in sorted(chosen) if "." in n))
    _CHOSEN[cls, names] = found
    return found


def _value_at(message: object, path: tuple[str, ...]) -> object:
    for name in path:
        message = getattr(message, name, None)
    return message


def declared_personal(message: object) -> tuple[str, ...]:
    """The names of `message`'s fields declared `PERSONAL` (for a `personal_fields` that adds some)."""
    shape = _fields(type(message))
    return () if shape is None else tuple(name for name, personal, _ in shape[0] if personal)


def subject_of(message: object) -> str | None:
    """Whose personal data `message` holds: its own `data_subject()`, else the first nested one's."""
    own = getattr(message, "data_subject", None)
    if callable(own):
        found = own()
        if found:
            return str(found)
    shape = _fields(type(message))
    if shape is None:
        return None
    for name, _, nests in shape[0]:
        if not nests:
            continue
        value = getattr(message, name)
        if _fields(type(value)) is not None:
            found = subject_of(value)
            if found:
                return found
    return None
