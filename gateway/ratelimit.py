"""Per-source token buckets: how the listeners keep one noisy peer from taking the receiver."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


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
