"""Events round-trip through their stored form; every event type is known to a fresh reader."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from dispatch.cases.events import CallerInfo, CaseRegistered, Place
from dispatch.core import messages
from dispatch.core.messages import (
    EVENT_TYPES,
    Event,
    event,
    from_data,
    from_recorded,
    metadata,
    to_data,
    to_new_event,
)
from eventstore import RecordedEvent

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_event_round_trips_with_nested_dataclasses_and_datetimes() -> None:
    at = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    evt = CaseRegistered(case_id="C1", category="power_fault", priority=2, channel="phone",
                         description="停电", caller=CallerInfo(name="张三", phone="13912345678"),
                         accepted_at=at, deadline=at, location=Place(34.3, 108.7, "610402"),
                         flags=("vip",))
    new = to_new_event(evt, {"actor": "agent:A001"})
    record = RecordedEvent(1, "case-C1", 0, new.type, new.schema_version, new.data, new.metadata, at)
    assert from_recorded(record) == evt


@dataclass(frozen=True)
class _Leaf:
    at: datetime
    note: str | None = None


@dataclass(frozen=True)
class _Tree:
    leaf: _Leaf | None
    leaves: tuple[_Leaf, ...]
    times: list[datetime]
    names: tuple[str, ...]
    either: int | str
    extra: dict[str, Any]


def test_every_shape_of_field_decodes_back_to_its_type() -> None:
    """Optional and nested dataclasses, tuples and lists of them, unions kept as JSON."""
    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    tree = _Tree(_Leaf(at, "n"), (_Leaf(at),), [at, at], ("a", "b"), "x", {"k": [1]})
    assert from_data(_Tree, to_data(tree)) == tree
    empty = _Tree(None, (), [], (), 3, {})
    assert from_data(_Tree, to_data(empty)) == empty
    assert from_data(_Leaf, {"at": at.isoformat(), "unknown": 1}) == _Leaf(at)  # unknown keys ignored


class _Colour(Enum):
    RED = "red"


@dataclass(frozen=True)
class _Node:
    name: str
    count: int
    at: datetime | None
    tags: tuple[str, ...]
    child: _Node | None = None
    either: int | str = 0
    extra: Any = None


def test_to_data_converts_values_of_other_types_than_hinted_the_generic_way() -> None:
    """`to_data` converts a value of exactly the hinted type in line and any other the generic way:
    an enum in a `str` field is stored as its value, an int in a `str` field and a date in a
    `datetime` field as they are, a list of enums in a `tuple[str, ...]` field item by item, a
    node nested in itself by the same rules."""
    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    inner = _Node(_Colour.RED, True, at.date(), [_Colour.RED, "b"], None, "s", {"k": (at, _Colour.RED)})  # type: ignore[arg-type]
    outer = _Node("n", 2, at, ("a",), inner, 3, [at])
    assert to_data(outer) == {
        "name": "n", "count": 2, "at": "2026-12-03T08:00:00+00:00", "tags": ["a"], "either": 3,
        "extra": ["2026-12-03T08:00:00+00:00"],
        "child": {"name": "red", "count": True, "at": at.date(), "tags": ["red", "b"], "child": None,
                  "either": "s", "extra": {"k": ["2026-12-03T08:00:00+00:00", "red"]}}}
    assert type(to_data(inner)["name"]) is str
    assert to_data(_Node("n", 1, None, (), extra=_Node("m", 0, None, ())))["extra"]["name"] == "m"
    with pytest.raises(TypeError):
        to_data(at)


@dataclass(frozen=True)
class _Exact:
    """Every shape of field `to_data` converts in line, and two it leaves to the generic walk."""

    name: str
    count: int
    share: float
    done: bool
    at: datetime
    note: str | None
    leaf: _Leaf | None
    tags: tuple[str, ...]
    names: list[str]
    either: int | str
    extra: Any


def test_values_of_the_hinted_types_are_converted_in_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A value of exactly its field's type (an optional field's type, a tuple's or list's item
    type) is converted without the generic walk, which takes only the union and `Any` fields
    (two calls) - and the function is made once per type. Bugs: a kind of field left to the
    generic walk (the same JSON, at twice the cost per event), a union's first type taken as
    its type, the function made again for every event."""
    calls: list[object] = []
    generic = messages._to_json

    def walk(value: object) -> object:
        calls.append(value)
        return generic(value)

    made: list[type] = []
    make = messages._encoder

    def encoder(cls: type) -> Any:
        made.append(cls)
        return make(cls)

    monkeypatch.setattr(messages, "_to_json", walk)
    monkeypatch.setattr(messages, "_encoder", encoder)
    monkeypatch.setattr(messages, "_ENCODERS", {})
    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    value = _Exact("n", 1, 0.5, True, at, "x", _Leaf(at, "y"), ("a",), ["b"], 2, 3)
    expected = {"name": "n", "count": 1, "share": 0.5, "done": True, "at": "2026-12-03T08:00:00+00:00",
                "note": "x", "leaf": {"at": "2026-12-03T08:00:00+00:00", "note": "y"}, "tags": ["a"],
                "names": ["b"], "either": 2, "extra": 3}
    assert to_data(value) == expected
    assert calls == [2, 3]
    assert to_data(value) == expected
    assert made == [_Exact, _Leaf]


@dataclass(frozen=True)
class _Unresolved:
    name: "Missing"  # type: ignore[name-defined]  # noqa: F821, UP037 - a hint that does not resolve


def test_a_type_whose_hints_do_not_resolve_is_converted_the_generic_way() -> None:
    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert to_data(_Unresolved(at)) == {"name": "2026-12-03T08:00:00+00:00"}
    with pytest.raises(TypeError, match="datetime is not a dataclass message"):
        to_data(at)


def test_an_event_type_is_registered_once_by_its_name() -> None:
    """Bugs: a type registered under another name or as nothing (its records read as unknown), a
    second type of the same name taken (the log's records would turn into the wrong type)."""

    class Probe(Event):
        pass

    try:
        assert event(Probe) is Probe and EVENT_TYPES["Probe"] is Probe
        assert event(Probe) is Probe  # the same type again: nothing changes
        other = type("Probe", (Event,), {})
        with pytest.raises(TypeError, match="event type Probe registered twice"):
            event(other)
        assert EVENT_TYPES["Probe"] is Probe
    finally:
        EVENT_TYPES.pop("Probe", None)


def test_a_store_record_carries_its_types_schema_version() -> None:
    """Bug: every record stored as version 1 (or none), so an upcaster could not tell old from new."""

    @dataclass(frozen=True, slots=True)
    class Revised(Event):
        SCHEMA_VERSION = 2
        n: int

    assert to_new_event(Revised(1)).schema_version == 2
    assert to_new_event(CaseRegistered("C1", "x", 1, "sms", "y", CallerInfo(), T0, T0)).schema_version == 1


def test_a_record_of_a_type_this_code_does_not_know_is_none() -> None:
    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert from_recorded(RecordedEvent(1, "case-C1", 0, "NoSuchEvent", 1, {"x": 1}, {}, at)) is None


def test_metadata_has_the_standard_keys_and_leaves_out_what_is_none() -> None:
    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert metadata(actor="agent:A1", channel="sms", correlation_id="c", causation_id="d",
                    received_at=at, via="x", gone=None) == {
        "actor": "agent:A1", "channel": "sms", "correlation_id": "c", "causation_id": "d",
        "received_at": "2026-12-03T08:00:00+00:00", "via": "x"}
    assert metadata() == {}


def test_a_fresh_process_knows_event_types_of_modules_it_never_imported() -> None:
    code = (
        "from datetime import datetime, UTC\n"
        "from eventstore import RecordedEvent\n"
        "from dispatch.core.messages import from_recorded\n"
        "r = RecordedEvent(1, 'case-C1', 1, 'CaseLinked', 1, {'case_id': 'C1', 'other_case_id': 'C2',"
        " 'reason': 'same_place', 'score': 0.9}, {}, datetime.now(UTC))\n"
        "print(type(from_recorded(r)).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CaseLinked"



def hand_built_records(root: Path) -> list[str]:
    """Where the code under `root` builds a store record itself (`NewEvent(...)`), as `path:line`."""
    found = []
    for package in ("dispatch", "channels", "gateway"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                callee = node.func if isinstance(node, ast.Call) else None
                name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
                if name == "NewEvent":
                    found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
    return found


def test_every_appended_event_is_a_declared_type() -> None:
    """Only `to_new_event` makes store records, so every type in the log is an `@event` class."""
    records = hand_built_records(Path(__file__).resolve().parents[2])
    assert [where.split(":")[0] for where in records] == ["dispatch/core/messages.py"], records
