"""Commands and events: frozen dataclasses with explicit schema versions.

Commands are orders (`RegisterCase`), events are past tense (`CaseRegistered`).
Events are registered by class name so that stored records map back to types;
their fields are JSON values, `datetime` (stored as ISO-8601), enums (stored
as their values) or nested dataclasses of the same kind.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, TypeAlias, TypeVar

import structlog

from dispatch.core.personal import personal_paths, subject_of
from eventstore import NewEvent, Personal, RecordedEvent
from eventstore.records import JSON


class Command:
    """Marker base of every command."""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """Base of every domain event."""

    SCHEMA_VERSION: ClassVar[int] = 1


JsonValue: TypeAlias = Any
"""One JSON value (object, array, string, number, boolean or null); readers check its shape."""
Json: TypeAlias = JSON
"""A JSON object (event data and metadata, jsonb columns, HTTP bodies): `dict[str, JsonValue]`."""

log = structlog.get_logger(__name__)
E = TypeVar("E", bound=type[Event])
_SCALARS = frozenset({str, int, float, bool})
EVENT_TYPES: dict[str, type[Event]] = {}


def event(cls: E) -> E:
    """Class decorator: register an event type under its class name."""
    name = cls.__name__
    if name in EVENT_TYPES and EVENT_TYPES[name] is not cls:
        raise TypeError(f"event type {name} registered twice")
    EVENT_TYPES[name] = cls
    return cls


_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type (None for any other type), cached per type.

    `dataclasses.fields` builds a fresh tuple on every call; every appended and
    every read event goes through here.
    """
    try:
        return _FIELDS[cls]
    except KeyError:
        names = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None
        _FIELDS[cls] = names
        return names


def _to_json(value: object) -> JsonValue:
    cls = type(value)
    if value is None or cls in _SCALARS:
        return value
    names = _field_names(cls)
    if names is not None:
        return {name: _to_json(getattr(value, name)) for name in names}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


def to_data(message: object) -> Json:
    """A dataclass message as a JSON object."""
    encode = _ENCODERS.get(type(message)) or _encoder(type(message))
    return encode(message)


_ENCODERS: dict[type, Callable[[Any], Json]] = {}
_EXACT = (str, int, float, bool)


def _encoder(cls: type) -> Callable[[Any], Json]:
    """`_to_json` for instances of one dataclass type, made once per type (every appended event
    goes through here).

    The generic walk asks each value's type what it is. This function is written from the
    fields' type hints instead, one expression per field that converts a value of exactly the
    hinted type in line (a `str` as it is, a `datetime` by `isoformat`, a nested dataclass by its
    own encoder, a tuple of strings as a list) and hands any other value (None aside) to
    `_to_json`: its result is `_to_json`'s, value for value, in about half the time.
    """
    names = _field_names(cls)
    if names is None:
        raise TypeError(f"{cls.__name__} is not a dataclass message")
    try:
        hints = typing.get_type_hints(cls)
    except (NameError, TypeError):  # a hint that does not resolve: every value the generic way
        hints = {}
    scope: dict[str, Any] = {"_g": _to_json, "_datetime": datetime}
    nested: dict[str, type] = {}
    items = []
    for i, name in enumerate(names):
        hint = _plain(hints.get(name))
        item = _plain(typing.get_args(hints.get(name))[0]) if _sequence(hints.get(name)) else None
        if hint in _EXACT:
            scope[f"_t{i}"] = hint
            expr = f"x if (x := v.{name}) is None or type(x) is _t{i} else _g(x)"
        elif hint is datetime:
            expr = f"x.isoformat() if type(x := v.{name}) is _datetime else _g(x)"
        elif hint is not None and _field_names(hint) is not None:
            scope[f"_t{i}"], nested[f"_e{i}"] = hint, hint
            expr = f"_e{i}(x) if type(x := v.{name}) is _t{i} else _g(x)"
        elif item in _EXACT:
            scope[f"_t{i}"] = item
            expr = (f"[y if type(y) is _t{i} else _g(y) for y in x] "
                    f"if type(x := v.{name}) is tuple or type(x) is list else _g(x)")
        else:
            expr = f"_g(v.{name})"
        items.append(f"{name!r}: ({expr})")
    exec(f"def encode(v):\n    return {{{', '.join(items)}}}", scope)  # source made of field names only
    encode: Callable[[Any], Json] = scope["encode"]
    _ENCODERS[cls] = encode
    for slot, tp in nested.items():  # after registering: a type may nest itself
        scope[slot] = _ENCODERS.get(tp) or _encoder(tp)
    return encode


def _optional(hint: object) -> object | None:
    """`hint` without None (`str | None`: str; `str`: itself); None for a union of several types."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return inner[0] if len(inner) == 1 else None
    return hint


def _plain(hint: object) -> type | None:
    """The one type a value of `hint` has when it is not None (`str | None`: str), if there is one."""
    inner = _optional(hint)
    return inner if isinstance(inner, type) else None


def _sequence(hint: object) -> bool:
    """Whether `hint` is a tuple or list of one item type (`tuple[str, ...]`, `list[str]`)."""
    args = typing.get_args(hint)
    return typing.get_origin(hint) in (tuple, list) and (len(args) == 1 or args[1:] == (Ellipsis,))


def to_new_event(evt: Event, metadata: Json | None = None, *, subject: str | None = None) -> NewEvent:
    """The store record for a domain event, its personal fields noted for sealing.

    The subject is `subject` when given (a case's events are its caller's, whoever
    they name), else the event's own (`personal.subject_of`), else a key of the
    event's own: never refused, but then erased only with the log's retention.
    """
    paths = personal_paths(evt)
    sealed = None
    if paths:
        who = subject or subject_of(evt)
        if who is None:
            who = f"event:{uuid.uuid4()}"
            log.warning("personal_data_without_subject", type=type(evt).__name__)
        sealed = Personal(who, paths)
    return NewEvent(type(evt).__name__, to_data(evt), evt.SCHEMA_VERSION, dict(metadata or {}), sealed)


Decode = Callable[[JsonValue], object]
"""Turns a non-null JSON value into the value of a field's type."""


def _field_decoders(cls: type) -> tuple[tuple[str, Decode | None], ...]:
    """(field name, decoder or None: the JSON value as it is) per field of a dataclass type.

    Worked out once per type from its type hints: every event read from the log
    is rebuilt here, and asking `typing` about each field's hint on every read
    cost more than the rest of the decoding.
    """
    hints = typing.get_type_hints(cls)
    return tuple((name, _decoder(hints[name])) for name in _field_names(cls) or ())


_decoding: Callable[[type], tuple[tuple[str, Decode | None], ...]] = functools.cache(_field_decoders)


@functools.cache
def _decoder(tp: object) -> Decode | None:
    """The decoder of one type hint (None: the JSON value as it is), cached per hint."""
    inner = _optional(tp)
    if inner is not tp:
        return None if inner is None else _decoder(inner)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is datetime:
        return datetime.fromisoformat
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp
    if isinstance(tp, type) and _field_names(tp) is not None:
        return functools.partial(from_data, tp)
    if origin in (tuple, list) and args:
        item = _decoder(args[0])
        if item is None:
            return origin  # type: ignore[no-any-return]
        return lambda values: origin(None if v is None else item(v) for v in values)
    return None


T = TypeVar("T")


def from_data(cls: type[T], data: Json) -> T:
    """Build a dataclass message from its JSON object, ignoring unknown keys."""
    kwargs: dict[str, object] = {}
    for name, decode in _decoding(cls):
        if name in data:
            value = data[name]
            kwargs[name] = value if decode is None or value is None else decode(value)
    return cls(**kwargs)


def from_recorded(record: RecordedEvent) -> Event | None:
    """The domain event of a stored record, or None for a type this code does not know.

    Every declared type is known here: importing any part of `dispatch` imports
    every capability package, and with it every `@event` declaration.
    """
    cls = EVENT_TYPES.get(record.type)
    return None if cls is None else from_data(cls, record.data)


def metadata(
    *,
    actor: str | None = None,
    channel: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    received_at: datetime | None = None,
    **extra: object,
) -> Json:
    """Event metadata with the standard keys; None values are left out."""
    values = {
        "actor": actor,
        "channel": channel,
        "correlation_id": correlation_id,
        "causation_id": causation_id,
        "received_at": received_at.isoformat() if received_at else None,
        **extra,
    }
    return {k: v for k, v in values.items() if v is not None}
