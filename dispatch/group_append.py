"""Group commit for channel webhooks: many concurrent one-event appends, one statement.

Under load every webhook request would otherwise be its own transaction, and
PostgreSQL spends its time committing. `GroupAppender.append` queues the
event; a flush sends every queued event in ONE statement (one `intake_append`
per stream, one transaction, one WAL flush) and answers each caller when it
committed. With few requests a flush carries one event and nothing waits.

This belongs in the store as an `append_batch` API; until the store offers
it, this uses the store's own `intake_append` SQL function.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from eventstore import ANY, AppendResult, EventStore, NewEvent
from eventstore.errors import AppendFailed, EventStoreError, IdempotencyConflict, StoreUnavailable
from eventstore.postgres import PostgresEventStore
from eventstore.records import category_of, check_stream_name

log = structlog.get_logger(__name__)

_SQL = """SELECT a.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
        $6::jsonb[], $7::jsonb[]) WITH ORDINALITY AS u(stream, category, key, type, sv, data, meta, n)
    CROSS JOIN LATERAL intake_append(u.stream, u.category, -3, u.key, ARRAY[u.type], ARRAY[u.sv],
        ARRAY[u.data], ARRAY[u.meta]) a
    ORDER BY u.n"""
MAX_BATCH = 128
MAX_IN_FLIGHT = 4


@dataclass(slots=True)
class _Pending:
    stream: str
    event: NewEvent
    key: str
    done: asyncio.Future[AppendResult]


class GroupAppender:
    """Appends one event per call to any stream, keyed, group-committed with concurrent calls."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._queue: list[_Pending] = []
        self._flushing = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def append(self, stream: str, event: NewEvent, key: str) -> AppendResult:
        """Append `event` to `stream` (any version) unless `key` is stored; like `EventStore.append`."""
        if not isinstance(self._store, PostgresEventStore):
            return await self._store.append(stream, [event], ANY, idempotency_key=key)
        check_stream_name(stream)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[AppendResult] = loop.create_future()
        self._queue.append(_Pending(stream, event, key, done))
        if self._flushing < MAX_IN_FLIGHT:
            self._flushing += 1
            task = loop.create_task(self._flush(self._store))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(done)  # a caller that goes away does not cancel the others

    async def _flush(self, store: PostgresEventStore) -> None:
        # The count drops in the same step as the queue is seen empty: no append
        # can queue in between and find every flush about to end.
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._write(store, batch)
                finally:
                    _fail(batch, AppendFailed("the batched append was interrupted"))
        finally:
            self._flushing -= 1

    async def _write(self, store: PostgresEventStore, batch: list[_Pending]) -> None:
        first: dict[str, _Pending] = {}
        for item in batch:
            first.setdefault(item.key, item)
        unique = list(first.values())
        try:
            async with store.connection() as conn:
                rows = await conn.fetch(_SQL, *_columns(unique))
        except asyncpg.UniqueViolationError:
            # A concurrent append of the same key or stream: settle them one by one.
            await asyncio.gather(*(self._one(item) for item in unique))
        except asyncpg.PostgresError as exc:
            _fail(batch, AppendFailed(f"batched append failed: {exc}"))
            return
        except (StoreUnavailable, AppendFailed) as exc:
            _fail(batch, exc)
            return
        else:
            for item, row in zip(unique, rows, strict=True):
                _settle(item, AppendResult(row["out_stream"], tuple(row["out_positions"]),
                                           row["out_first"], row["out_last"], row["out_duplicate"]))
            if any(not row["out_duplicate"] for row in rows):
                store.wake()
        for item in batch:
            if not item.done.done():  # the same key twice in one batch: the first one's answer
                _follow(item, first[item.key].done)

    async def _one(self, item: _Pending) -> None:
        try:
            result = await self._store.append(item.stream, [item.event], ANY, idempotency_key=item.key)
        except EventStoreError as exc:
            item.done.set_exception(exc)
            return
        item.done.set_result(result)


def _columns(items: list[_Pending]) -> list[list[Any]]:
    columns: list[list[Any]] = [[], [], [], [], [], [], []]
    for item in items:
        e = item.event
        values = (item.stream, category_of(item.stream), item.key, e.type, e.schema_version, e.data,
                  {**e.metadata, "idempotency_key": item.key})
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for item in batch:
        if not item.done.done():
            item.done.set_exception(exc)


def _follow(item: _Pending, first: asyncio.Future[AppendResult]) -> None:
    if first.exception() is not None:
        item.done.set_exception(first.exception())  # type: ignore[arg-type]
        return
    r = first.result()
    _settle(item, AppendResult(r.stream, r.positions, r.first_version, r.last_version, True))


def _settle(item: _Pending, result: AppendResult) -> None:
    if result.duplicate and result.stream != item.stream:
        item.done.set_exception(IdempotencyConflict(item.key, item.stream, result.stream))
    else:
        item.done.set_result(result)
