"""Group commit: concurrent appends share one transaction and one WAL flush.

`PostgresEventStore(pool, group_commit=True)` routes `append` through a
`GroupCommitter`. Each call is queued; a flush sends every queued append (at
most `MAX_BATCH`) as ONE call of `intake_append_many` (migration 0001): one
statement, one transaction, one commit. A batch with nothing to refuse is
written together, in one subtransaction and one INSERT (migration 0009);
otherwise every append runs in its own subtransaction, so it keeps its own
semantics (exact expected version, NO_STREAM / STREAM_EXISTS / ANY,
idempotency key, atomic multi-event append) and its failure rolls back only
itself. Both give the same rows. A flush sends its appends
sorted by stream (arrival order kept within a stream), so concurrent flushes
lock streams in one order and never deadlock. Each caller is answered
after the commit that made its events durable. At most `MAX_IN_FLIGHT`
flushes run at once; while they do, new appends queue and ride the next
flush. A flush keeps its pooled connection while appends keep coming: when
the queue is empty it waits `LINGER_TURNS` turns of the event loop (no
timer) for a writer that was just answered to queue its next append, so a
sequential writer is served by one flush on one connection instead of a
task, a pool acquire and a release per append. With one writer a flush
carries one append at a time. See `eventstore/README.md` (Group commit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

import asyncpg
import structlog

from eventstore.errors import AppendFailed, EventStoreError, StoreUnavailable, WrongExpectedVersion
from eventstore.records import AppendArgs, AppendResult, NewEvent
from eventstore.shredding import Keyring, NewKeys, keyring_of
from eventstore.unavailable import UNAVAILABLE

log = structlog.get_logger(__name__)

MAX_BATCH = 64
"""Appends per flush: one by one each is a subtransaction, and PostgreSQL caches 64 subxids per backend."""
MAX_IN_FLIGHT = 4
"""Flushes (connections) in use at once by one committer."""
LINGER_TURNS = 2
"""Event-loop turns a flush waits on an empty queue before it gives its connection back.

An answer reaches a caller awaiting `append` one turn after its flush set it
(the caller's task); one more spares a wrapper coroutine in between.
"""

APPEND_MANY = "SELECT * FROM intake_append_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"


class GroupedStore(Protocol):
    """What a `GroupCommitter` needs of the store it commits for (`PostgresEventStore`)."""

    def connection(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled connection; an unreachable database raises `StoreUnavailable`."""
        ...

    def wake(self, categories: Iterable[str] | None = None) -> None:
        """Wake readers of these stream categories after a commit."""
        ...

    async def append_args_now(self, conn: asyncpg.Connection, args: AppendArgs) -> AppendResult:
        """One plain append on `conn`, in a transaction of its own; wakes readers."""
        ...


@dataclass(slots=True)
class _Pending:
    args: AppendArgs
    done: asyncio.Future[AppendResult]
    rekeyed: bool = False  # refused once for a key made for a subject that had one (0007)

    @property
    def stream(self) -> str:
        return self.args.stream

    def answer(self, result: AppendResult) -> None:
        """Give the caller its result, unless it went away (or was answered) already."""
        if not self.done.done():
            self.done.set_result(result)

    def fail(self, exc: BaseException) -> None:
        """Give the caller its error, unless it went away (or was answered) already."""
        if not self.done.done():
            self.done.set_exception(exc)


class GroupCommitter:
    """Queues a store's appends and commits concurrent ones together, each with its own answer."""

    def __init__(self, store: GroupedStore) -> None:
        self._store = store
        self._queue: list[_Pending] = []
        self._flushing = 0
        self._lingering = 0  # flushes waiting on an empty queue: they take the next append
        self._tasks: set[asyncio.Task[None]] = set()

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """`EventStore.append`, committed together with concurrent calls."""
        args = AppendArgs.of(stream, events, expected_version, idempotency_key)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[AppendResult] = loop.create_future()
        self._queue.append(_Pending(args, done))
        if not self._lingering and self._flushing < MAX_IN_FLIGHT:
            self._flushing += 1
            task = loop.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # Awaited directly, not through a shield: a caller that goes away cancels
        # only its own future, which a flush then leaves out or no longer answers.
        return await done

    async def _flush(self) -> None:
        # The count drops in the same step as the queue is seen empty (after the
        # connection went back): no append can queue in between and find every
        # flush about to end.
        try:
            while self._queue:
                await self._serve()
        finally:
            self._flushing -= 1

    async def _serve(self) -> None:
        """Write batches on one pooled connection while appends keep coming."""
        batch: list[_Pending] = []
        try:
            async with self._store.connection() as conn:
                while await self._more():
                    batch = self._take()
                    if batch:
                        await self._write(conn, batch)
                    batch = []
        except StoreUnavailable as exc:  # no connection, or it was lost: its batch fails with it
            if not batch:
                batch = self._take()
            _fail(batch, exc)
        except Exception as exc:  # a defect: its batch fails, said here (the task is never awaited)
            log.exception("group_commit_failed", size=len(batch))
            _fail(batch, AppendFailed(f"the grouped append failed: {type(exc).__name__}: {exc}"))
        finally:
            _fail(batch, AppendFailed("the grouped append was interrupted"))

    def _take(self) -> list[_Pending]:
        """The next batch off the queue, without the appends whose callers went away."""
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        return [item for item in batch if not item.done.cancelled()]

    async def _more(self) -> bool:
        """Whether appends are queued, waiting a few loop turns for one if not."""
        if self._queue:
            return True
        self._lingering += 1
        try:
            for _ in range(LINGER_TURNS):
                await asyncio.sleep(0)
                if self._queue:
                    return True
        finally:
            self._lingering -= 1
        return False

    async def _write(self, conn: asyncpg.Connection, batch: list[_Pending]) -> None:
        if len(batch) == 1:  # nothing to share the commit with: the plain append is cheaper
            await self._alone(conn, batch[0])
            return
        # Every flush takes its row locks in stream order (a stable sort keeps the
        # arrival order within a stream): concurrent flushes racing for the same
        # streams then wait for each other but can never deadlock, which would
        # stall both for deadlock_timeout (1 s) before one of them gives way.
        batch = sorted(batch, key=attrgetter("stream"))
        ring = keyring_of(conn)
        sealed, new = await _seal(conn, ring, [item.args for item in batch])
        try:
            rows = await conn.fetch(APPEND_MANY, *_columns(sealed, new))
        except UNAVAILABLE:
            raise  # the connection is lost, not the statement refused: the flush fails unavailable
        except asyncpg.PostgresError as exc:
            # The statement as a whole was refused (e.g. a value its parameters
            # cannot carry): give every append its own answer.
            log.info("group_commit_split", size=len(batch), error=type(exc).__name__)
            for item in batch:
                await self._alone(conn, item)
            return
        rekey = [item for item, row in zip(batch, rows, strict=True) if row["status"] == "rekey"]
        refused = _subjects(rekey)
        ring.kept(new, refused)
        appended = {args.category for args, row in zip(sealed, rows, strict=True)
                    if row["status"] == "ok" and not row["out_duplicate"]}
        if appended:
            self._store.wake(appended)
        for item, args, row in zip(batch, sealed, rows, strict=True):
            if row["status"] != "rekey" and _settle(item, args, row):
                await self._alone(conn, item)
        if rekey:
            await self._again(conn, ring, rekey, refused)

    async def _again(
        self, conn: asyncpg.Connection, ring: Keyring, rekey: list[_Pending], subjects: set[str]
    ) -> None:
        """Appends refused because their `subjects` had keys (not cached here when sealed): the keys
        are looked up, and the appends ride the next flush sealed with them (once; then alone)."""
        await ring.keys_for(conn, subjects)
        for item in rekey:
            if item.rekeyed:  # refused twice (its subject's key went meanwhile): not again
                await self._alone(conn, item)
            else:
                item.rekeyed = True
        self._queue[:0] = [item for item in rekey if not item.done.done()]

    async def _alone(self, conn: asyncpg.Connection, item: _Pending) -> None:
        """Settle one append with a plain (ungrouped) append of its own on `conn`."""
        try:
            result = await self._store.append_args_now(conn, item.args)
        except EventStoreError as exc:
            item.fail(exc)
            return
        item.answer(result)


async def _seal(
    conn: asyncpg.Connection, ring: Keyring, batch: list[AppendArgs]
) -> tuple[list[AppendArgs], NewKeys]:
    """The appends sealed: a subject with no key cached here gets a new one, stored by the flush's
    statement (migration 0007); a keyring that caches nothing asks the database for each."""
    if ring.caches:
        return ring.seal_making(batch)
    return await ring.seal(conn, batch), NewKeys()


def _subjects(items: Iterable[_Pending]) -> set[str]:
    return {p.subject for item in items for p in item.args.personal if p is not None}


def _columns(batch: Sequence[AppendArgs], new: NewKeys) -> list[list[Any] | None]:
    """The arrays of `intake_append_many`: per append, then its events flattened, then the new
    keys the events are sealed with (`new`, migration 0007)."""
    columns: list[list[Any]] = [[] for _ in range(9)]
    for args in batch:
        for column, value in zip(columns, (args.stream, args.category, args.expected_version,
                                           args.idempotency_key, len(args.types)), strict=False):
            column.append(value)
        columns[5].extend(args.types)
        columns[6].extend(args.schema_versions)
        columns[7].extend(args.data)
        columns[8].extend(args.metadata)
    return [*columns, *new.columns()]


def outcome_of(args: AppendArgs, row: asyncpg.Record) -> AppendResult | EventStoreError | None:
    """One append's answer from its status row; None if it must be retried alone."""
    status = row["status"]
    if status == "retry":
        return None
    if status == "wrong":
        return WrongExpectedVersion(args.stream, args.expected_version, row["actual"])
    if status == "error":
        return AppendFailed(f"append to {args.stream!r} failed: {row['message']}")
    result = AppendResult(row["out_stream"], tuple(row["out_positions"]), row["out_first"],
                          row["out_last"], row["out_duplicate"])
    try:
        return args.answer(result)
    except EventStoreError as exc:
        return exc


def _settle(item: _Pending, args: AppendArgs, row: asyncpg.Record) -> bool:
    """Answer one append (sent as `args`) from its status row; True if it must be retried alone.

    One refused inside the group (status `error`) is retried alone too: the group's statement
    caught its error and kept only the message, while alone it raises with its SQLSTATE, so that
    a database refusing writes (read-only, disk full) answers unavailable rather than failed.
    """
    if row["status"] == "error":
        return True
    outcome = outcome_of(args, row)
    if outcome is None:
        return True
    if isinstance(outcome, EventStoreError):
        item.fail(outcome)
    else:
        item.answer(outcome)
    return False


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for item in batch:
        item.fail(exc)
