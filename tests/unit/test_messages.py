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
from dispatch.core.messages import from_data, from_recorded, to_data, to_new_event
from eventstore import RecordedEvent


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
