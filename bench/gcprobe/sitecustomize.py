"""Garbage-collector pauses of every intake process a benchmark starts (bench/RESULTS.md, session 6).

Put this folder on PYTHONPATH and set INTAKE_GC_PROBE to a folder; Python
imports this module at start-up, and at exit each process writes
`gc-<role>-<pid>.txt` there: per generation the number of collections,
their total and longest pause, and the objects tracked at exit.

    INTAKE_GC_PROBE=/tmp/gc PYTHONPATH=bench/gcprobe .venv/bin/python -m bench.channels ...
"""

from __future__ import annotations

import atexit
import gc
import os
import time
from pathlib import Path
from typing import Any

_OUT = os.environ.get("INTAKE_GC_PROBE")
_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
_started = [0.0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _pauses[int(info["generation"])].append(time.perf_counter() - _started[0])


def _write(folder: Path) -> None:
    lines = [f"objects tracked at exit: {len(gc.get_objects())}"]
    for generation, pauses in _pauses.items():
        if pauses:
            lines.append(f"gen{generation}: {len(pauses)} collections, {sum(pauses) * 1e3:.0f} ms in all, "
                         f"longest {max(pauses) * 1e3:.1f} ms")
    role = os.environ.get("INTAKE_ROLE", "none")
    (folder / f"gc-{role}-{os.getpid()}.txt").write_text("\n".join(lines) + "\n")


if _OUT:
    Path(_OUT).mkdir(parents=True, exist_ok=True)
    gc.callbacks.append(_timed)
    atexit.register(_write, Path(_OUT))
