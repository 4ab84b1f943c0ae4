"""Erasing a data subject from the gateway's side: the domain's erasure, then Redis.

`dispatch/personal/erasure.py` deletes the keys and scrubs PostgreSQL's read
models in one transaction. Redis holds no personal data of its own, except
the recent history of live changes (`Services.changes_stream`, the last
~10,000) that a console resumes from: entries naming the erased cases,
numbers or OpenIDs are deleted from it. Used by `intake erase` and
`POST /api/v1/subjects/{subject}/erase`.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis.exceptions import RedisError

from dispatch.personal.erasure import EraseSubject, Erasure
from gateway.services import Services

log = structlog.get_logger(__name__)
_PAGE = 1000


async def erase(services: Services, cmd: EraseSubject) -> Erasure:
    """Erase the subject (PostgreSQL), then trim the live history in Redis (best effort: logged)."""
    done: Erasure = await services.bus.handle(cmd)
    try:
        trimmed = await trim_changes(services, [*done.case_ids, *done.phones, *done.openids])
    except (RedisError, OSError) as exc:
        log.warning("erasure_redis_trim_failed", erasure_id=done.erasure_id, error=str(exc))
    else:
        log.info("subject_erased", erasure_id=done.erasure_id, keys=done.keys, cases=len(done.case_ids),
                 live_changes_deleted=trimmed)
    return done


async def trim_changes(services: Services, needles: list[str]) -> int:
    """Delete the live-history entries that mention any of `needles`; how many were deleted."""
    if services.redis is None or not needles:
        return 0
    wanted = [n.encode() for n in needles if n]
    stream, start, deleted = services.changes_stream, "-", 0
    while True:
        entries: list[Any] = list(await services.redis.xrange(stream, min=start, max="+", count=_PAGE) or [])
        doomed = [eid for eid, fields in entries
                  if any(n in value for value in fields.values() for n in wanted)]
        if doomed:
            deleted += int(await services.redis.xdel(stream, *doomed))
        if len(entries) < _PAGE:
            return deleted
        start = "(" + entries[-1][0].decode()
