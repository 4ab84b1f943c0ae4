"""The linking evaluation on a smaller generated storm: the issue's thresholds, fast."""

from __future__ import annotations

import time

from bench.linking import components, describe, generate, pairwise, run
from dispatch.linking.clustering import LinkParams


def test_pairwise_scores_count_pairs() -> None:
    truth = {"a": "x", "b": "x", "c": "y", "d": "y"}
    assert pairwise({"a": "1", "b": "1", "c": "2", "d": "3"}, truth) == (1.0, 0.5)
    assert pairwise({k: "1" for k in truth}, truth) == (2 / 6, 1.0)
    assert components(["a", "b", "c"], [("a", "b")]) == {"a": "b", "b": "b", "c": "c"}


async def test_storm_meets_precision_and_recall_thresholds() -> None:
    started = time.perf_counter()
    contacts = generate(seed=7, incidents=20, contacts=1500)
    facts = describe(contacts)
    assert facts["outages"] == 20 and facts["contacts"] >= 1500
    assert set(facts["channels"]) == {"phone", "sms", "web", "wechat"}
    assert facts["unrelated"] > 200 and facts["without_place"] > 0
    outcome = await run(contacts, LinkParams())
    assert outcome.precision >= 0.95, outcome
    assert outcome.recall >= 0.90, outcome
    assert outcome.incident_precision >= 0.95
    assert time.perf_counter() - started < 10


async def test_linking_by_caller_alone_misses_the_storm() -> None:
    """The threshold test can fail: without space-time clustering recall collapses."""
    contacts = generate(seed=7, incidents=20, contacts=1500)
    outcome = await run(contacts, LinkParams(radius_m=0.001))
    assert outcome.recall < 0.1
