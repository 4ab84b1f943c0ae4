"""Commands and events: frozen dataclasses with explicit schema versions.

Commands are orders (`RegisterCase`), events are past tense (`CaseRegistered`).
Events are registered by class name so that stored records map back to types;
their fields are JSON values, `datetime` (stored as ISO-8601) or nested
dataclasses of the same kind.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from eventstore import NewEvent, RecordedEvent


class Command:
    """Marker base of every command."""


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """Base of every domain event."""

    SCHEMA_VERSION: ClassVar[int] = 1


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


def _to_json(value: Any) -> Any:
    if value is None or type(value) in _SCALARS:
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


def to_data(message: object) -> dict[str, Any]:
    """A dataclass message as a JSON object."""
    data = _to_json(message)
    assert isinstance(data, dict)
    return data


def to_new_event(evt: Event, metadata: dict[str, Any] | None = None) -> NewEvent:
    """The store record for a domain event."""
    return NewEvent(type(evt).__name__, to_data(evt), evt.SCHEMA_VERSION, dict(metadata or {}))


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _from_json(tp: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        inner = [a for a in args if a is not type(None)]
        return _from_json(inner[0], value) if len(inner) == 1 else value
    if tp is datetime:
        return datetime.fromisoformat(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_data(tp, value)
    if origin is tuple and args:
        item = args[0]
        return tuple(_from_json(item, v) for v in value)
    if origin is list and args:
        return [_from_json(args[0], v) for v in value]
    return value


T = TypeVar("T")


def from_data(cls: type[T], data: dict[str, Any]) -> T:
    """Build a dataclass message from its JSON object, ignoring unknown keys."""
    hints = _hints(cls)
    kwargs = {
        f.name: _from_json(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.name in data
    }
    return cls(**kwargs)


def _register_all() -> None:
    """Import every handler module, so that every event type is registered."""
    from dispatch.bus import HANDLER_MODULES

    for name in HANDLER_MODULES:
        importlib.import_module(name)


def from_recorded(record: RecordedEvent) -> Event | None:
    """The domain event of a stored record, or None for a type this code does not know."""
    cls = EVENT_TYPES.get(record.type)
    if cls is None:
        _register_all()
        cls = EVENT_TYPES.get(record.type)
        if cls is None:
            return None
    return from_data(cls, record.data)


def metadata(
    *,
    actor: str | None = None,
    channel: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    received_at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
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
