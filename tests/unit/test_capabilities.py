"""The wiring is complete: every capability is wired, every declared event type is known."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import dispatch
from dispatch.core.capability import Capability, collect_handlers
from gateway.bootstrap import DOMAIN

DISPATCH = Path(dispatch.__file__).parent


def _declared_events() -> set[str]:
    """Names of the classes decorated with `@event` anywhere in the domain's source."""
    names: set[str] = set()
    for path in DISPATCH.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "event" for d in node.decorator_list
            ):
                names.add(node.name)
    return names


def test_every_capability_package_is_wired_by_bootstrap() -> None:
    exported = {
        id(value): f"dispatch.{info.name}"
        for info in pkgutil.iter_modules(dispatch.__path__)
        if info.ispkg
        for value in vars(importlib.import_module(f"dispatch.{info.name}")).values()
        if isinstance(value, Capability)
    }
    assert len(exported) >= 9
    assert {id(c) for c in DOMAIN} == exported.keys()


def test_every_command_has_one_handler() -> None:
    handlers = collect_handlers(DOMAIN)
    assert len(handlers) == sum(len(c.handlers) for c in DOMAIN)


def test_a_fresh_process_decodes_a_record_of_every_declared_event_type() -> None:
    """Importing one core module is enough: `dispatch` imports every capability package."""
    declared = _declared_events()
    assert len(declared) > 30
    code = (
        "import dataclasses, json, sys\n"
        "from datetime import datetime, UTC\n"
        "from eventstore import RecordedEvent\n"
        "from dispatch.core.messages import EVENT_TYPES, from_recorded\n"
        "decoded = []\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    cls = EVENT_TYPES.get(name)\n"
        "    data = {f.name: None for f in dataclasses.fields(cls)} if cls else {}\n"
        "    evt = from_recorded(RecordedEvent(1, 's-1', 0, name, 1, data, {}, datetime.now(UTC)))\n"
        "    if type(evt).__name__ == name:\n"
        "        decoded.append(name)\n"
        "print(json.dumps(decoded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(sorted(declared))],
                         capture_output=True, text=True, check=True)
    assert set(json.loads(out.stdout)) == declared
