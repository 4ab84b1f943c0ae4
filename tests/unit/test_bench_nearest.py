"""`intake bench nearest` times fresh queries only, and the baseline over at least 2,000 lookups."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
import pytest

from bench import nearest
from dispatch.gis.nearest import NearestQuery


def test_timings_call_each_query_once_and_time_only_the_measured_ones() -> None:
    calls: list[float] = []
    queries = [NearestQuery(30.0 + i, 120.0, k=10) for i in range(5)]
    warmup = [NearestQuery(10.0, 120.0, k=10)]
    times = nearest.timings_us(lambda q: calls.append(q.lat), queries, warmup)
    assert calls == [10.0, 30.0, 31.0, 32.0, 33.0, 34.0] and len(times) == 5


def test_no_lookup_is_timed_twice_and_the_baseline_over_2000(monkeypatch: pytest.MonkeyPatch) -> None:
    timed: list[tuple[str, Sequence[NearestQuery], Sequence[NearestQuery]]] = []

    def spy(fn: Callable[[NearestQuery], object], queries: Sequence[NearestQuery],
            warmup: Sequence[NearestQuery]) -> npt.NDArray[np.float64]:
        timed.append((getattr(fn, "__name__", type(fn).__name__), queries, warmup))
        return np.ones(len(queries))

    monkeypatch.setattr(nearest, "timings_us", spy)
    rows = nearest.lookup_rows(nearest.region(), [3_000], 300, np.random.default_rng(1), passes=3)
    assert [name for name, _, _ in timed] == ["find", "find", "find", "nearest", "Haversine"]
    assert [len(queries) for _, queries, _ in timed] == [300, 300, 300, 75, 2_000]
    points = [(q.lat, q.lon) for _, queries, warmup in timed for q in (*queries, *warmup)]
    assert len(points) == len(set(points))  # every timing and warm-up on queries of its own
    assert "| 3,000 | naive numpy haversine scan | 2,000 |" in "\n".join(rows)


def test_the_baseline_is_never_timed_over_fewer_than_2000_lookups() -> None:
    assert nearest.baseline_lookups(20_000, 1_000_000) == 2_000
    assert nearest.baseline_lookups(20_000, 100_000) == 2_000
    assert nearest.baseline_lookups(20_000, 10_000) == 5_000
    assert nearest.baseline_lookups(500, 1_000) == 2_000
