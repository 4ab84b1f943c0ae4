"""The priority score, complexity and importance, and the queue key as exact figures.

The score orders the dispatch queue; these pin each of its constants (level
weights, the 0.95 cap and the slope of 20 past it, rounding to 4 places) so
that changing one fails a test, as `make mutate` showed the ordering tests alone did not.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.cases.sla import SlaConfig, Urgency, complexity_of, importance_of, priority_score, queue_key

HOUR = timedelta(hours=1)


def score(priority: int, elapsed_minutes: float, limit_minutes: float = 60, complexity: float = 0.0,
          importance: float = 0.0) -> float:
    return priority_score(Urgency(priority, timedelta(minutes=elapsed_minutes),
                                  timedelta(minutes=limit_minutes), complexity, importance))


@pytest.mark.parametrize(("priority", "weight"), [(1, 8.0), (2, 4.0), (3, 2.0), (4, 1.0), (5, 1.0)])
def test_at_the_start_the_score_is_the_level_weight(priority: int, weight: float) -> None:
    assert score(priority, 0) == weight
    assert score(priority, -5) == weight  # a clock step back counts as no time


def test_the_score_rises_as_one_over_the_remaining_share_up_to_the_cap() -> None:
    assert score(4, 30) == 2.0  # 1 / (1 - 0.5)
    assert score(4, 45) == 4.0
    assert score(4, 7) == 1.1321  # 1 / (1 - 7/60), rounded to 4 places
    assert score(4, 57) == 20.0  # x = 0.95: both sides of the cap agree


def test_past_the_cap_it_rises_by_20_per_limit() -> None:
    assert score(4, 60) == 21.0  # 20 + (1 - 0.95) * 20
    assert score(4, 120) == 41.0
    assert score(2, 90) == 4.0 * 31.0


def test_complexity_and_importance_multiply() -> None:
    assert score(3, 30, complexity=0.5, importance=0.7) == round(2.0 * 1.5 * 1.7 * 2.0, 4)


def test_a_limit_under_a_second_counts_as_one_second() -> None:
    tiny = priority_score(Urgency(4, timedelta(seconds=0.5), timedelta(0)))
    assert tiny == 2.0  # x = 0.5 / 1 s


def test_complexity_of_category_and_scope() -> None:
    assert complexity_of("power_fault") == 0.6
    assert complexity_of("power_fault", "building") == pytest.approx(0.9)
    assert complexity_of("power_fault", "Building") == pytest.approx(0.9)  # the scope's case does not matter
    assert complexity_of("power_fault", "area") == 1.0  # capped at 1
    assert complexity_of("complaint", None) == 0.5
    assert complexity_of("complaint", "nowhere") == 0.5
    assert complexity_of("no_such_category") == 0.2


def test_importance_of_flags_and_customer_type() -> None:
    assert importance_of(()) == 0.0
    assert importance_of((), None) == 0.0
    assert importance_of(("unknown",)) == 0.0
    assert importance_of((), "vip") == 1.0
    assert importance_of(("elderly",), "enterprise") == 0.7
    assert importance_of(("vip", "unknown")) == 1.0


def test_queue_key_is_green_channel_then_score_then_age() -> None:
    t0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert queue_key(1, 3.0, t0) == (0, -3.0, t0)
    assert queue_key(3, 2.0, t0) == (1, -2.0, t0)


def test_callback_and_archive_limits() -> None:
    cfg = SlaConfig()
    assert cfg.callback_limit() == 12 * HOUR
    assert cfg.archive_limit() == 24 * HOUR
    assert SlaConfig(callback_hours=2, archive_hours=5).callback_limit() == 2 * HOUR
    assert SlaConfig(callback_hours=2, archive_hours=5).archive_limit() == 5 * HOUR
