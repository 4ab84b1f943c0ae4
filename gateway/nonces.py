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
    """Remembers each nonce for a given time, with the request that used it; `first_use` is
    True for its first request only (and for that same request again: a retry of it).

    Kept in Redis (`SET NX` with a TTL, the request's digest as the value), so every gateway
    process refuses a request under a nonce another request took. While Redis is unreachable
    the book falls back to this process's memory (at most `max_local` nonces, oldest forgotten
    first): such a replay to the same process is still refused, and the caller's timestamp
    window bounds the rest.
    """

    def __init__(self, client: aioredis.Redis | None, prefix: str, *, max_local: int = 100_000,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._redis = client
        self._prefix = f"{prefix}nonce:"
        self._local: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._max = max_local
        self._now = now

    async def first_use(self, key: str, ttl: int, request: str) -> bool:
        """Record `key` for `ttl` seconds as used by `request` (a digest of what was sent with
        it); False when another request recorded it and it has not expired."""
        if self._redis is not None:
            try:
                name = self._prefix + key
                if await self._redis.set(name, request.encode(), nx=True, ex=ttl):
                    return True
                return bool(await self._redis.get(name) == request.encode())
            except (RedisError, OSError) as exc:
                log.warning("nonce_book_in_memory", error=str(exc))
        return self._first_local_use(key, ttl, request)

    def _first_local_use(self, key: str, ttl: int, request: str) -> bool:
        now = self._now()
        while self._local and next(iter(self._local.values()))[0] <= now:
            self._local.popitem(last=False)
        used = self._local.get(key)
        if used is not None and used[0] > now:
            return used[1] == request
        self._local[key] = (now + ttl, request)
        self._local.move_to_end(key)
        if len(self._local) > self._max:
            self._local.popitem(last=False)
        return True
