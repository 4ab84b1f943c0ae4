"""`intake serve` tunes the cyclic garbage collector once it has started."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

from gateway.cli import serve as cli


class _Node:
    other: _Node | None = None


def test_tuning_freezes_the_start_up_heap_and_still_collects_new_cycles() -> None:
    before = gc.get_threshold()
    survivor = _Node()
    try:
        cli.tune_collector()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == cli.GC_THRESHOLD
        assert not gc.is_tracked(survivor) or survivor not in gc.get_objects(generation=2)

        cycle = _Node()
        cycle.other = _Node()
        cycle.other.other = cycle
        gone = weakref.ref(cycle)
        del cycle
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_benchmarks_gc_probe_reports_each_processes_pauses(tmp_path: Path) -> None:
    probe = Path(__file__).parents[2] / "bench" / "gcprobe"
    env = {**os.environ, "PYTHONPATH": str(probe), "INTAKE_GC_PROBE": str(tmp_path), "INTAKE_ROLE": "gateway"}
    subprocess.run([sys.executable, "-c", "import gc; gc.collect(); gc.collect(0)"], env=env, check=True)
    (report,) = tmp_path.glob("gc-gateway-*.txt")
    lines = report.read_text().splitlines()
    assert lines[0].startswith("objects tracked at exit: ")
    assert any(line.startswith("gen0: ") for line in lines)
    assert any(line.startswith("gen2: ") and "longest" in line for line in lines)
