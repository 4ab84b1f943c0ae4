"""What the fuzz tests share: bounded, repeatable hypothesis settings and the tally of inputs tried."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from hypothesis import HealthCheck, Phase, settings

TRIED: Counter[str] = Counter()
"""Inputs sent per channel in this session (printed at the end by tests/fuzz/conftest.py)."""
ANSWERS: defaultdict[str, Counter[str]] = defaultdict(Counter)
"""What the inputs got per channel: HTTP status classes (2xx, 4xx...) or DC-09 answers."""


def tried(channel: str, answer: str) -> None:
    """Count one input sent to a channel and what it got."""
    TRIED[channel] += 1
    ANSWERS[channel][answer] += 1


def bounded(examples: int) -> Any:
    """Hypothesis settings for a fuzz run: the same inputs on every run, no example database."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
