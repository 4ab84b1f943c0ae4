"""Agent presence in Redis: who is online or busy, with a heartbeat TTL."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from gateway.settings import PRESENCE_TTL

log = structlog.get_logger(__name__)

STATUSES: tuple[str, ...] = ("online", "busy", "offline")
PRESENT: frozenset[str] = frozenset({"online", "busy"})


class PresenceBoard:
    """Who is present, kept in Redis: `presence:expiry` (zset) and `presence:status` (hash)."""

    def __init__(self, client: aioredis.Redis | None, prefix: str, ttl: float = PRESENCE_TTL,
                 now: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._expiry = f"{prefix}presence:expiry"
        self._status = f"{prefix}presence:status"
        self.ttl = ttl
        self._now = now

    async def status_of(self, agent_id: str) -> str | None:
        """An agent's live status (None if absent or expired)."""
        return (await self.statuses()).get(agent_id)

    async def beat(self, agent_id: str, status: str) -> None:
        """Record a heartbeat / status."""
        if self._redis is None:
            raise RedisError("Redis is not configured")
        async with self._redis.pipeline(transaction=True) as pipe:
            if status in PRESENT:
                pipe.zadd(self._expiry, {agent_id: self._now() + self.ttl})
                pipe.hset(self._status, agent_id, status)
            else:
                pipe.zrem(self._expiry, agent_id)
                pipe.hdel(self._status, agent_id)
            await pipe.execute()

    async def statuses(self) -> dict[str, str]:
        """Every present agent and its status; expired agents are dropped."""
        if self._redis is None:
            raise RedisError("Redis is not configured")
        now = self._now()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrangebyscore(self._expiry, "-inf", now)
            pipe.zrangebyscore(self._expiry, now, "+inf")
            pipe.hgetall(self._status)
            expired, live, status = await pipe.execute()
        if expired:
            await self._redis.zrem(self._expiry, *expired)
            await self._redis.hdel(self._status, *expired)
        found = {k.decode(): v.decode() for k, v in status.items()}
        return {a.decode(): found.get(a.decode(), "online") for a in live}

    async def present(self) -> set[str] | None:
        """The agents who may take call-backs, or None when presence is unknown (Redis down)."""
        try:
            return set(await self.statuses())
        except (RedisError, OSError) as exc:
            log.warning("presence_unknown", error=str(exc))
            return None
