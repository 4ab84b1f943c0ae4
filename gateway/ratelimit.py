"""Per-source token buckets: how the listeners keep one noisy peer from taking the receiver."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class SourceLimiter:
    """At most `rate` events a second per source, in bursts of up to `burst`.

    Memory is bounded: beyond `max_sources` the source seen least recently is
    forgotten (it starts again with a full bucket, which errs on the side of
    answering a device).
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_sources: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = float(burst)
        self._max = max_sources
        self._now = now
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, source: str) -> bool:
        """Take one token from `source`'s bucket; False when it is empty."""
        now = self._now()
        bucket = self._buckets.pop(source, None)
        if bucket is None:
            bucket = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.at) * self._rate)
            bucket.at = now
        self._buckets[source] = bucket
        if len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


REJECTIONS_PER_SECOND = 1.0
REJECTION_BURST = 30
"""Rejections of unauthenticated input recorded per source address: a misconfigured peer
still leaves a trail (30 at once, then one a second); a flood costs the log that much."""
ALL_REJECTIONS_PER_SECOND = 20.0
ALL_REJECTION_BURST = 300
"""The same over every source together, for floods from many addresses."""


@dataclass(slots=True)
class RejectionLimits:
    """How many rejections of unauthenticated input are written to the log, per source and in all."""

    per_source: SourceLimiter = field(
        default_factory=lambda: SourceLimiter(REJECTIONS_PER_SECOND, REJECTION_BURST))
    overall: SourceLimiter = field(
        default_factory=lambda: SourceLimiter(ALL_REJECTIONS_PER_SECOND, ALL_REJECTION_BURST))

    def allow(self, source: str) -> bool:
        """Take one from `source`'s allowance and from the overall one; False when either is spent."""
        return self.per_source.allow(source) and self.overall.allow("")
