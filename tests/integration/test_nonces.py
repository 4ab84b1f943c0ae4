"""The nonce book on a real Redis: shared by processes, in memory while Redis is away."""

from __future__ import annotations

import redis.asyncio as aioredis

from gateway.nonces import NonceBook


async def test_a_nonce_taken_by_one_process_is_refused_by_another(
    redis_server_url: str, redis_prefix: str
) -> None:
    first, second = (aioredis.Redis.from_url(redis_server_url) for _ in range(2))
    try:
        assert await NonceBook(first, redis_prefix).first_use("wechat:1:n1", 601, "POST a")
        assert not await NonceBook(second, redis_prefix).first_use("wechat:1:n1", 601, "POST b")
        assert await NonceBook(second, redis_prefix).first_use("wechat:1:n2", 601, "POST b")
        assert 0 < await second.ttl(f"{redis_prefix}nonce:wechat:1:n1") <= 601
        # The request that took it, sent again (a retry), goes on in any process; another does not.
        assert await NonceBook(first, redis_prefix).first_use("wechat:1:n3", 601, "POST a")
        assert await NonceBook(second, redis_prefix).first_use("wechat:1:n3", 601, "POST a")
        assert not await NonceBook(second, redis_prefix).first_use("wechat:1:n3", 601, "POST b")
    finally:
        await first.aclose()
        await second.aclose()


async def test_with_redis_unreachable_the_process_still_refuses_a_replay(redis_prefix: str) -> None:
    down = aioredis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
    try:
        book = NonceBook(down, redis_prefix)
        assert await book.first_use("wechat:1:n1", 601, "POST a")
        assert not await book.first_use("wechat:1:n1", 601, "POST b")
    finally:
        await down.aclose()
