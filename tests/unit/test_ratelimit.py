"""Per-source token buckets."""

from __future__ import annotations

import pytest

from gateway.ratelimit import SourceLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    ticks = Ticks()
    limiter = SourceLimiter(2.0, 3, now=ticks)
    assert [limiter.allow("a") for _ in range(5)] == [True, True, True, False, False]
    ticks.now = 0.5  # one token back at 2 a second
    assert [limiter.allow("a") for _ in range(2)] == [True, False]
    ticks.now = 100.0  # never more than the burst
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]


def test_sources_have_their_own_buckets() -> None:
    limiter = SourceLimiter(1.0, 1, now=Ticks())
    assert limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")


def test_memory_is_bounded_and_the_least_recent_source_is_forgotten() -> None:
    limiter = SourceLimiter(1.0, 1, max_sources=2, now=Ticks())
    assert limiter.allow("a") and limiter.allow("b")
    assert not limiter.allow("a")  # "a" is now the most recent, "b" the least
    assert limiter.allow("c")      # forgets "b"
    assert limiter.allow("b")      # a full bucket again
    assert not limiter.allow("c")


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        SourceLimiter(rate, burst)
