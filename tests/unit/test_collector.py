"""`intake serve` tunes the cyclic garbage collector once it has started."""

from __future__ import annotations

import gc
import weakref

from gateway import cli


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
