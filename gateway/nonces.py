"""Nonces seen recently, so that a signed request cannot be played again."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)


class NonceBook:
    """Remembers each nonce for a given time; `first_use` is True only the first time.

    Kept in Redis (`SET NX` with a TTL), so every gateway process refuses a
    request another one took. While Redis is unreachable the book falls back to
    this process's memory (at most `max_local` nonces, oldest forgotten first):
    a replay to the same process is still refused, and the caller's timestamp
    window bounds the rest.
    """

    def __init__(self, client: aioredis.Redis | None, prefix: str, *, max_local: int = 100_000,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._redis = client
        self._prefix = f"{prefix}nonce:"
        self._local: OrderedDict[str, float] = OrderedDict()
        self._max = max_local
        self._now = now

    async def first_use(self, key: str, ttl: int) -> bool:
        """Record `key` for `ttl` seconds; False when it was recorded already and has not expired."""
        if self._redis is not None:
            try:
                return bool(await self._redis.set(self._prefix + key, b"1", nx=True, ex=ttl))
            except (RedisError, OSError) as exc:
                log.warning("nonce_book_in_memory", error=str(exc))
        return self._first_local_use(key, ttl)

    def _first_local_use(self, key: str, ttl: int) -> bool:
        now = self._now()
        while self._local and next(iter(self._local.values())) <= now:
            self._local.popitem(last=False)
        expires = self._local.get(key)
        if expires is not None and expires > now:
            return False
        self._local[key] = now + ttl
        self._local.move_to_end(key)
        if len(self._local) > self._max:
            self._local.popitem(last=False)
        return True
