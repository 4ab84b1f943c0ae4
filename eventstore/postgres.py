"""The PostgreSQL event store on asyncpg.

Appends are one call of the `intake_append` SQL function (one round trip, one
transaction). Readers see a gap-free order by commit horizon; see
`eventstore/README.md` for the mechanism and its failure mode.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import structlog

from eventstore import jsontext
from eventstore.errors import AppendFailed, EventStoreError, StoreUnavailable, WrongExpectedVersion
from eventstore.group import APPEND_MANY, MAX_BATCH, GroupCommitter, _columns, outcome_of
from eventstore.records import (
    ANY,
    AppendArgs,
    AppendResult,
    Checkpoint,
    NewEvent,
    ReadBatch,
    RecordedEvent,
)
from eventstore.shredding import ERASURE_CHANNEL, Keyring, NewKeys, bind, keyring_of
from eventstore.tail import LogTail, TailPage
from eventstore.unavailable import UNAVAILABLE as UNAVAILABLE  # re-exported: the gateway maps it to 503
from eventstore.unavailable import DroppingConnection, drop
from eventstore.wakeup import Wakeup, WakeupHub

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "intake_events"
_WRONG_VERSION = "IX409"
_NOTIFY_WINDOW = 0.01
ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true)"
"""In a statement of its own transaction: that commit does not wait for its WAL flush."""
_NOTIFY = f"SELECT {ASYNC_COMMIT}, pg_notify('{NOTIFY_CHANNEL}', $1)"
_NOTIFY_PAYLOAD_MAX = 7000  # PostgreSQL's limit is 8000 bytes; beyond, wake every reader
_ABANDONED: tuple[type[BaseException], ...] = (*UNAVAILABLE, asyncio.CancelledError)
"""Errors after which a connection is dropped rather than handed out again."""
_RELISTEN_EVERY = 1.0
_CLOSE_GRACE = 1.0
_SETTLE = (0.002, 0.004, 0.008, 0.016, 0.032, 0.0)

def _sent(row: str = "") -> str:
    """The columns of an event row as read, of table or subquery `row` (none: `events` itself):
    its JSON as `jsonb`'s binary form (bytes), decoded only if not read lately (`_records`)."""
    of = f"{row}." if row else ""
    return (f"{of}position, {of}tx_id::text::bigint AS tx, {of}stream, {of}version, {of}type, "
            f"{of}schema_version, jsonb_send({of}data) AS data, jsonb_send({of}metadata) AS metadata, "
            f"{of}recorded_at")


_COLUMNS = _sent()
"""An event row as read. Only for rows read in index order: below a sort, `jsonb_send` would run
for every row sorted."""
_SORTED_COLUMNS = "position, tx_id, stream, version, type, schema_version, data, metadata, recorded_at"
_SENT_COLUMNS = _sent("b")
"""`_COLUMNS` of the rows `b` a sorted page kept (`_batch_sql`): the planner may sort a page's
candidates (a typed read's filter leaves it no index order) and would compute the select list
of each; sent after the LIMIT, only the rows returned are."""


async def init_connection(conn: asyncpg.Connection) -> None:
    """Per-connection set-up: JSON codecs for json and jsonb (`jsonb` in binary, eventstore/jsontext.py)."""
    await conn.set_type_codec("json", encoder=jsontext.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("jsonb", encoder=jsontext.encode_jsonb, decoder=jsontext.decode_jsonb,
                              schema="pg_catalog", format="binary")


async def create_pool(
    dsn: str,
    *,
    min_size: int = 2,
    max_size: int = 20,
    command_timeout: float = 4.0,
    application_name: str = "intake",
    keyring: Keyring | None = None,
) -> asyncpg.Pool:
    """A connection pool with the store's codecs and bounded waits.

    The short `command_timeout` bounds a statement on a database that went
    away; long jobs pass their own timeout. A request's own deadline
    (`gateway.http.WRITE_DEADLINE`) is shorter still: an abandoned statement
    drops its connection (`DroppingConnection`) instead of waiting for the
    server to acknowledge a cancel.
    `application_name` names the sessions in `pg_stat_activity` (a DSN's own
    `application_name` wins). Every connection of the pool shares one cache of
    the subjects' keys (`keyring`, `eventstore/shredding.py`).
    """
    ring = keyring or Keyring()

    async def init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        bind(conn, ring)

    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=init,
            connection_class=DroppingConnection,
            command_timeout=command_timeout,
            timeout=3,
            server_settings=_server_settings(dsn, application_name),
            reset=_cheap_reset,
        )
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool


def _server_settings(dsn: str, application_name: str) -> dict[str, str]:
    # asyncpg lets these override the DSN's query parameters: leave a DSN's own name.
    # A dropped connection's statement stops within a second (DroppingConnection).
    settings = {"idle_in_transaction_session_timeout": "10000",
                "client_connection_check_interval": "1000"}
    if "application_name" not in parse_qs(urlsplit(dsn).query):
        settings["application_name"] = application_name
    return settings


async def _cheap_reset(conn: asyncpg.Connection) -> None:
    """Reset a connection returned to the pool without a round trip when it is clean.

    asyncpg's default runs `RESET ALL; UNLISTEN *; ...` on every release, a
    second round trip per append. Code that changes session state on a pooled
    connection (SET, LISTEN, session advisory locks) must undo it itself.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _record(row: asyncpg.Record) -> RecordedEvent:
    """The event of a row of `_COLUMNS`, decoded."""
    return RecordedEvent(
        position=row["position"],
        stream=row["stream"],
        version=row["version"],
        type=row["type"],
        schema_version=row["schema_version"],
        data=jsontext.decode_jsonb(row["data"]),
        metadata=jsontext.decode_jsonb(row["metadata"]),
        recorded_at=row["recorded_at"],
    )


def _stored(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> list[RecordedEvent]:
    """The events of rows of `_COLUMNS` as stored: each decoded once per keyring (pool). The
    runners of a worker read the same events one after the other; the log's rows never change."""
    ring = keyring_of(conn)
    return [ring.stored(r["position"]) or _record(r) for r in rows]


async def _open(conn: asyncpg.Connection, records: list[RecordedEvent]) -> list[RecordedEvent]:
    """The events with their personal data opened (`Keyring.open`)."""
    return await keyring_of(conn).open(conn, records)


async def _records(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> list[RecordedEvent]:
    """The events of rows of `_COLUMNS` as read: decoded once (`_stored`), personal data opened."""
    return await _open(conn, _stored(conn, rows))


def _checkpoint(row: asyncpg.Record) -> Checkpoint:
    """The checkpoint of a row read with `tx` and `position`."""
    return Checkpoint((row["tx"], row["position"]), row["position"])


class PostgresEventStore:
    """An `EventStore` on PostgreSQL; the single source of truth."""

    def __init__(
        self, pool: asyncpg.Pool, *, acquire_timeout: float = 3.0, group_commit: bool = False,
        shared_reads: bool = False,
    ) -> None:
        """`group_commit`: commit concurrent appends together (`eventstore/group.py`).

        `shared_reads`: answer `read_batch` from a `LogTail` of the whole log, read once for every
        reader of this process (`eventstore/tail.py`) - for a process that runs the runners, which
        read every category between them. A process with a reader or two of a few categories
        (a gateway: the provider index) reads them itself: a tail would read and decode the whole
        log for them (in a storm, every SMS).
        """
        self.pool = pool
        self._group = GroupCommitter(self) if group_commit else None
        self._acquire_timeout = acquire_timeout
        self._hub = WakeupHub()
        self._notify_pending = False
        self._notify_categories: set[str] | None = set()  # None: some wake named none
        self._notify_task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None
        self._listening = False
        self._relisten_task: asyncio.Task[None] | None = None
        self.tail = LogTail(read_tail_on, _open) if shared_reads else None
        """The stretch of the log this process read lately, shared by its readers (`read_batch`)."""

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; unreachable database becomes `StoreUnavailable`.

        Only a wait for a busy pool is bounded by `acquire_timeout` on the way
        in: with an idle connection, asyncpg hands over a live one at once (its
        queue prefers them), and its acquire timeout would cost a timer and a
        cancel scope per call for nothing (~15-20 us of client CPU, a twentieth
        of an append's). The release (a rollback) is always bounded by it. Any
        refusal to connect is `StoreUnavailable`; a connection whose operation
        was abandoned or lost is terminated, never handed out again.
        """
        pool = self.pool
        try:
            conn = await pool.acquire(timeout=None if pool.get_idle_size() else self._acquire_timeout)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:  # any refusal to connect
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        try:
            try:
                yield conn
            except _ABANDONED:
                drop(conn)  # never handed out again
                raise
            finally:
                await pool.release(conn, timeout=self._acquire_timeout)
        except UNAVAILABLE as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """See `EventStore.append`; group-committed with concurrent calls if configured."""
        if self._group is not None:
            return await self._group.append(
                stream, events, expected_version, idempotency_key=idempotency_key
            )
        return await self.append_now(
            stream, events, expected_version, idempotency_key=idempotency_key
        )

    @property
    def group_commit(self) -> bool:
        """Whether `append` group-commits concurrent calls."""
        return self._group is not None

    async def append_now(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """`append` in a transaction of its own, never grouped; wakes readers."""
        args = AppendArgs.of(stream, events, expected_version, idempotency_key)
        async with self.connection() as conn:
            return await self.append_args_now(conn, args)

    async def append_args_now(self, conn: asyncpg.Connection, args: AppendArgs) -> AppendResult:
        """`append_now` on `conn` (not in a transaction) of arguments already checked."""
        result = await append_args_on(conn, args)
        if not result.duplicate:
            self.wake((args.category,))
        return result

    async def read_stream(
        self, stream: str, *, after_version: int = -1, limit: int | None = None
    ) -> list[RecordedEvent]:
        """See `EventStore.read_stream`."""
        async with self.connection() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM events WHERE stream = $1 AND version > $2 "
                "ORDER BY version LIMIT $3",
                stream,
                after_version,
                limit,
            )
            return await _records(conn, rows)

    async def read_streams(self, streams: Collection[str]) -> dict[str, list[RecordedEvent]]:
        """See `EventStore.read_streams`: one statement for all of them."""
        if not streams:
            return {}
        async with self.connection() as conn:
            return await read_streams_on(conn, streams)

    async def stream_version(self, stream: str) -> int:
        """See `EventStore.stream_version`."""
        async with self.connection() as conn:
            version = await conn.fetchval(
                "SELECT max(version) FROM events WHERE stream = $1", stream
            )
        return -1 if version is None else int(version)

    async def read_all(
        self,
        after: Checkpoint,
        *,
        limit: int = 1000,
        categories: frozenset[str] | None = None,
    ) -> list[tuple[Checkpoint, RecordedEvent]]:
        """See `EventStore.read_all`. Only rows below the commit horizon are returned.

        A one-shot read: while committed events wait behind the horizon and
        the page is not full, it re-reads a few times within ~60 ms, so that
        a transaction that was just committing (ours, or one of another
        database not yet identifiable, see README) does not hide events that
        committed before the call. Followers use `read_batch` and re-poll.
        """
        async with self.connection() as conn:
            for pause in _SETTLE:
                batch = await read_batch_on(conn, after, limit=limit, categories=categories)
                if not batch.pending or len(batch.events) >= limit:
                    break
                await asyncio.sleep(pause)
        return list(batch.events)

    async def read_batch(
        self,
        after: Checkpoint,
        *,
        limit: int = 1000,
        categories: frozenset[str] | None = None,
        types: frozenset[str] | None = None,
    ) -> ReadBatch:
        """See `EventStore.read_batch`: answered from the shared tail where it can be (`read_batch_in`)."""
        async with self.connection() as conn:
            return await self.read_batch_in(conn, after, limit=limit, categories=categories, types=types)

    async def read_batch_in(
        self,
        conn: asyncpg.Connection,
        after: Checkpoint,
        *,
        limit: int = 1000,
        categories: frozenset[str] | None = None,
        types: frozenset[str] | None = None,
    ) -> ReadBatch:
        """`read_batch` on `conn` (a projection's transaction): with `shared_reads`, the page from
        the process's `LogTail` (`eventstore/tail.py`), refreshed for it, when it starts in the
        stretch kept; else read on its own."""
        batch = None
        if self.tail is not None:
            batch = await self.tail.read(conn, after, limit=limit, categories=categories, types=types)
        if batch is None:
            batch = await read_batch_on(conn, after, limit=limit, categories=categories, types=types)
        return batch

    def wakeup(self, categories: frozenset[str] | None = None) -> Wakeup:
        """See `EventStore.wakeup`."""
        return self._hub.subscribe(categories)

    async def checkpoint_at(self, position: int) -> Checkpoint:
        """See `EventStore.checkpoint_at`."""
        if position <= 0:
            return Checkpoint()
        async with self.connection() as conn:
            tx = await conn.fetchval(
                "SELECT tx_id::text::bigint FROM events WHERE position = $1", position
            )
        if tx is None:
            raise KeyError(position)
        return Checkpoint((int(tx), position), position)

    async def find_by_idempotency_key(self, key: str) -> AppendResult | None:
        """See `EventStore.find_by_idempotency_key`."""
        async with self.connection() as conn:
            return await _stored_key(conn, key)

    async def load_checkpoint(self, name: str) -> Checkpoint:
        """See `EventStore.load_checkpoint`."""
        async with self.connection() as conn:
            return await load_checkpoint_on(conn, name)

    async def save_checkpoint(self, name: str, checkpoint: Checkpoint) -> None:
        """See `EventStore.save_checkpoint`.

        Its commit does not wait for the WAL flush. Readers that save on their
        own (reactors) repeat at most the reactions since the last save after
        a crash, and their reactions are idempotent; losing the newest save in
        a crash costs exactly that, while waiting for an fsync per batch cost
        every reactor a flush under load. Projections save inside their own
        (durable) transaction with `save_checkpoint_on`.
        """
        tx, position = checkpoint.order
        async with self.connection() as conn:
            await conn.execute(_SAVE_CHECKPOINT_ASYNC, name, str(tx), position)

    # -- waking readers -------------------------------------------------------

    def wake(self, categories: Iterable[str] | None = None) -> None:
        """Wake local readers now and, coalesced, readers in other processes.

        `categories`: the stream categories just appended to (None: unknown;
        wakes every reader). `append` calls this; call it yourself after
        committing a transaction in which you appended with `append_on`.

        The NOTIFY is sent outside the append transaction: a `pg_notify` inside
        every append serialises commits on the notify queue lock. Appends that
        land while a NOTIFY is pending share it; its payload is the union of
        their categories.
        """
        named = None if categories is None else frozenset(categories)
        self._hub.wake_all(named)
        if named is None:
            self._notify_categories = None
        elif self._notify_categories is not None:
            self._notify_categories |= named
        if not self._notify_pending:
            self._notify_pending = True
            self._notify_task = asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        # At most one NOTIFY per window: each one is a transaction with a commit.
        # That commit need not wait for its WAL flush (a lost wake-up costs one
        # poll interval; the events themselves committed durably), so it does not
        # add an fsync of its own next to the appends.
        await asyncio.sleep(_NOTIFY_WINDOW)
        self._notify_pending = False
        named, self._notify_categories = self._notify_categories, set()
        payload = "" if named is None else ",".join(sorted(named))
        if len(payload) > _NOTIFY_PAYLOAD_MAX:
            payload = ""
        try:
            async with self.connection() as conn:
                await conn.execute(_NOTIFY, payload)
        except (StoreUnavailable, asyncpg.PostgresError) as exc:
            log.warning("notify_failed", error=str(exc))

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        # The categories another process appended to; empty: unknown, wake every reader.
        self._hub.wake_all(frozenset(payload.split(",")) if payload else None)

    async def listen(self) -> None:
        """Follow NOTIFY from other processes on a dedicated connection.

        When that connection is lost (the database went away), readers are
        woken (they poll meanwhile) and it listens again once the database is back.
        """
        self._listening = True
        if self._listener is not None:
            return
        try:
            conn = await self.pool.acquire(timeout=self._acquire_timeout)
        except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot LISTEN: {exc}") from exc
        try:
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
            ring = keyring_of(conn)
            await conn.add_listener(ERASURE_CHANNEL, lambda _c, _p, _ch, payload: ring.on_notice(payload))
        except BaseException as exc:
            drop(conn)
            await self.pool.release(conn)
            if isinstance(exc, (*UNAVAILABLE, asyncpg.PostgresError)):
                raise StoreUnavailable(f"cannot LISTEN: {exc}") from exc
            raise
        conn.add_termination_listener(self._listener_lost)
        self._listener = conn

    def _listener_lost(self, conn: object) -> None:
        if self._listener is not conn:
            return
        self._listener = None
        self._hub.wake_all(None)  # a NOTIFY may have been missed: every reader looks
        if self._listening and (self._relisten_task is None or self._relisten_task.done()):
            self._relisten_task = asyncio.get_running_loop().create_task(self._relisten())

    async def _relisten(self) -> None:
        """Listen again once the database is back, trying every `_RELISTEN_EVERY` seconds."""
        while self._listening and self._listener is None:
            try:
                await self.listen()
            except StoreUnavailable as exc:
                log.info("relisten_failed", error=str(exc))
                await asyncio.sleep(_RELISTEN_EVERY)

    async def wait_for_events(self, timeout: float) -> None:  # noqa: ASYNC109 (fixed API)
        """See `EventStore.wait_for_events`; `timeout` is the polling fallback."""
        await self._hub.wait(timeout)

    async def close(self) -> None:
        """Drop the listener connection; give a pending notify a moment, then cancel it.

        The listener is terminated, not unlistened and released: it is nobody
        else's, and after an outage it may be stuck in an abandoned operation.
        """
        self._listening = False
        if self._relisten_task is not None:
            self._relisten_task.cancel()
        for task in (self._relisten_task, self._notify_task):
            if task is not None and not task.done():
                done, _ = await asyncio.wait({task}, timeout=_CLOSE_GRACE)
                if not done:
                    task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._listener is not None:
            listener, self._listener = self._listener, None
            drop(listener)
            await self.pool.release(listener)


_APPEND = "SELECT * FROM intake_append($1, $2, $3, $4, $5, $6, $7, $8)"

# The same append for ONE event as a single statement (no plpgsql): a
# statement of its own is planned once per connection (asyncpg's statement
# cache), where the function runs four statements through SPI. Same rules as
# intake_append (migration 0001): a stored key answers as a duplicate and
# writes nothing; a wrong expected version writes nothing and its row carries
# the actual version (last column) and no first version; a concurrent append
# of the same key or stream version fails on the unique index like the
# function's. The hash is the same inlined intake_event_hash. Measured: about
# 10 % less wall time per one-writer append (bench/RESULTS.md, session 12).
_APPEND_ONE = """
WITH dup AS (
    SELECT k.stream, k.positions, k.first_version, k.last_version
    FROM idempotency_keys k WHERE k.key = $4),
head AS (
    SELECT coalesce(h.version, -1) AS version, coalesce(h.hash, '\\x'::bytea) AS hash,
           clock_timestamp() AS now
    FROM (SELECT) o LEFT JOIN LATERAL (
        SELECT e.version, e.hash FROM events e WHERE e.stream = $1
        ORDER BY e.version DESC LIMIT 1) h ON true),
ins AS (
    INSERT INTO events (stream, category, version, type, schema_version, data, metadata,
                        recorded_at, prev_hash, hash)
    SELECT $1, $2, h.version + 1, $5, $6, $7, $8, h.now, h.hash,
           intake_event_hash(h.hash, $1, h.version + 1, $5, $6, $7, $8, h.now)
    FROM head h
    WHERE NOT EXISTS (SELECT FROM dup)
      AND ($3 = -3 OR $3 = h.version OR ($3 = -2 AND h.version >= 0))
    RETURNING position, version),
k AS (
    INSERT INTO idempotency_keys (key, stream, positions, first_version, last_version)
    SELECT $4, $1, ARRAY[i.position], i.version, i.version FROM ins i WHERE $4 IS NOT NULL)
SELECT coalesce(d.stream, $1), coalesce(d.positions, ARRAY[i.position]),
       coalesce(d.first_version, i.version), coalesce(d.last_version, i.version),
       d.stream IS NOT NULL, h.version
FROM head h LEFT JOIN dup d ON true LEFT JOIN ins i ON true
"""


async def _call_append(conn: asyncpg.Connection, args: AppendArgs) -> asyncpg.Record:
    """One append statement; in a caller's transaction, inside a savepoint.

    The row: stream, positions, first and last version, duplicate, and (one
    event only) the actual version where the expected one was wrong.
    """
    params: tuple[object, ...]
    if len(args.types) == 1:
        sql = _APPEND_ONE
        params = (args.stream, args.category, args.expected_version, args.idempotency_key,
                  args.types[0], args.schema_versions[0], args.data[0], args.metadata[0])
    else:
        sql = _APPEND
        params = (args.stream, args.category, args.expected_version, args.idempotency_key,
                  args.types, args.schema_versions, args.data, args.metadata)
    if conn.is_in_transaction():
        async with conn.transaction():
            return await conn.fetchrow(sql, *params)
    return await conn.fetchrow(sql, *params)


async def append_on(
    conn: asyncpg.Connection,
    stream: str,
    events: Sequence[NewEvent],
    expected_version: int,
    *,
    idempotency_key: str | None = None,
) -> AppendResult:
    """`append` on a given connection: in its open transaction, if any, else on its own.

    Inside a caller's transaction the events commit with it (and readers see
    them only then). Does not wake readers: call it through
    `PostgresEventStore.append`, or rely on NOTIFY / polling.
    """
    return await append_args_on(conn, AppendArgs.of(stream, events, expected_version, idempotency_key))


async def append_args_on(conn: asyncpg.Connection, args: AppendArgs) -> AppendResult:
    """`append_on` with its arguments already checked (personal data sealed here if not yet)."""
    if any(args.personal):
        (args,) = await keyring_of(conn).seal(conn, [args])
    return await _append_sealed(conn, args)


async def _append_sealed(conn: asyncpg.Connection, args: AppendArgs) -> AppendResult:
    stream, expected_version, idempotency_key = args.stream, args.expected_version, args.idempotency_key
    while True:
        try:
            row = await _call_append(conn, args)
        except asyncpg.UniqueViolationError as exc:
            # Another append committed first: with the same key, or the same stream version.
            stored = await _stored_key(conn, idempotency_key) if idempotency_key else None
            if stored is not None:
                return args.answer(stored)
            if exc.constraint_name == _KEY_CONSTRAINT:
                raise AppendFailed(f"idempotency key of {stream!r} taken but not visible") from exc
            if expected_version == ANY:
                continue
            actual = await conn.fetchval(_LAST_VERSION, stream)
            raise WrongExpectedVersion(
                stream, expected_version, -1 if actual is None else int(actual)
            ) from exc
        except UNAVAILABLE:
            raise  # the connection's owner answers StoreUnavailable
        except asyncpg.PostgresError as exc:
            if getattr(exc, "sqlstate", None) == _WRONG_VERSION:
                detail = getattr(exc, "detail", None) or "-1"
                raise WrongExpectedVersion(stream, expected_version, int(detail)) from exc
            raise AppendFailed(f"append to {stream!r} failed: {exc}") from exc
        if row[2] is None:  # one event, wrong expected version: nothing was written
            raise WrongExpectedVersion(stream, expected_version, row[5])
        return args.answer(AppendResult(row[0], tuple(row[1]), row[2], row[3], row[4]))


async def append_many_on(
    conn: asyncpg.Connection, batch: Sequence[AppendArgs]
) -> list[AppendResult | EventStoreError]:
    """Several appends on `conn`, in its open transaction if any: `MAX_BATCH` per statement.

    Each append keeps its own semantics and its refusal (the error, in its
    place in the answer) rolls back only itself. Streams are locked in
    stream order, as group commit does. Does not wake readers.
    """
    batch = await keyring_of(conn).seal(conn, batch)
    order = sorted(range(len(batch)), key=lambda i: batch[i].stream)
    found: list[AppendResult | EventStoreError | None] = [None] * len(batch)
    for start in range(0, len(order), MAX_BATCH):
        chunk = order[start:start + MAX_BATCH]
        rows = await conn.fetch(APPEND_MANY, *_columns([batch[i] for i in chunk], NewKeys()))
        for i, row in zip(chunk, rows, strict=True):
            found[i] = outcome_of(batch[i], row)
    answers: list[AppendResult | EventStoreError] = []
    for args, outcome in zip(batch, found, strict=True):
        if outcome is None:  # a concurrent transaction raced it: a plain append settles it
            try:
                outcome = await append_args_on(conn, args)
            except EventStoreError as exc:
                outcome = exc
        answers.append(outcome)
    return answers


_KEY_CONSTRAINT = "idempotency_keys_pkey"
_STORED_KEY = "SELECT stream, positions, first_version, last_version FROM idempotency_keys WHERE key = $1"
_LAST_VERSION = "SELECT max(version) FROM events WHERE stream = $1"


async def _stored_key(conn: asyncpg.Connection, key: str) -> AppendResult | None:
    """What the append that stored `key` wrote, as a duplicate; None if no such key."""
    row = await conn.fetchrow(_STORED_KEY, key)
    if row is None:
        return None
    return AppendResult(row[0], tuple(row[1]), row[2], row[3], True)


async def read_streams_on(
    conn: asyncpg.Connection, streams: Collection[str]
) -> dict[str, list[RecordedEvent]]:
    """`read_streams` on a given connection (in its transaction: an erasure made in it shows)."""
    found: dict[str, list[RecordedEvent]] = {stream: [] for stream in streams}
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE stream = ANY($1::text[]) ORDER BY stream, version", list(found))
    for record in await _records(conn, rows):
        found[record.stream].append(record)
    return found


async def read_all_on(
    conn: asyncpg.Connection,
    after: Checkpoint,
    *,
    limit: int = 1000,
    categories: frozenset[str] | None = None,
) -> list[tuple[Checkpoint, RecordedEvent]]:
    """`read_all` on a given connection (inside a projection's transaction)."""
    batch = await read_batch_on(conn, after, limit=limit, categories=categories)
    return list(batch.events)


def _batch_sql(categories: frozenset[str] | None, typed: bool = False, named: bool = False) -> str:
    """One statement, one snapshot, one horizon: the page below it and the pending flag.

    `intake_horizon()` (migration 0001, README: the commit horizon) is
    evaluated once. `pending`: whether an event of the categories read is at
    or above the horizon (only the few rows of transactions still settling are
    looked at), so a flood in other categories does not keep a reader polling.
    `typed`: only events of the types in the last parameter are returned, and
    `skip_tx`, `skip_position` name the newest event of the categories below
    the horizon after the start (a backward scan from the horizon), which a
    page shorter than its limit read or passed over.
    `named` (every category, untyped: a `LogTail`'s refresh): instead of the
    flag, `settling` names the categories of the rows at or above the horizon
    (NULL when there are $4 or more of them: any).

    Several categories are one `category = ANY(...)` filter on the read order,
    not a scan per category: with the category a parameter of a generic plan,
    PostgreSQL scanned the whole read order backwards for each category's
    newest row (2.5-4 ms a read, whatever it returned, when a category had no
    recent event).
    """
    where = ""
    after = "(tx_id, position) > ($1::text::xid8, $2) AND tx_id < h.horizon"
    types = "$4"
    if categories is not None:
        types = "$5"
        # One category: an equality keeps the (category, tx_id, position) index ordered.
        where = "AND category = $4::text" if len(categories) == 1 else "AND category = ANY($4::text[])"
    # Uncorrelated (the horizon as a subquery, not the CTE's column), so it runs once per read,
    # not for every row of the page; ordered and limited, so that an index scan from the
    # horizon up is the plan (with the horizon unknown when planning, an EXISTS was planned as
    # a scan of the whole log).
    settling = (f"(SELECT tx_id FROM events WHERE tx_id >= (SELECT horizon FROM h) {where} "
                "ORDER BY tx_id LIMIT 1) IS NOT NULL AS pending")
    if named:
        settling = ("(SELECT CASE WHEN count(*) < $4 THEN coalesce(array_agg(DISTINCT s.category), '{}') END "
                    "FROM (SELECT category FROM events WHERE tx_id >= (SELECT horizon FROM h) "
                    "ORDER BY tx_id LIMIT $4) s) AS settling")
    last = (f"SELECT tx_id, position FROM events WHERE {after} {where} "
            "ORDER BY tx_id DESC, position DESC LIMIT 1")
    skipped, skip_join, of_types = "", "", ""
    if typed:
        skipped = "s.tx_id::text::bigint AS skip_tx, s.position AS skip_position, "
        skip_join = f"LEFT JOIN LATERAL ({last}) s ON true "
        of_types = f"AND type = ANY({types}::text[])"
    return (
        "WITH h AS MATERIALIZED (SELECT intake_horizon() AS horizon) "
        f"SELECT {settling}, {skipped}{_SENT_COLUMNS} "
        f"FROM h {skip_join}"
        f"LEFT JOIN LATERAL (SELECT {_SORTED_COLUMNS} FROM events "
        f"WHERE {after} {where} {of_types} "
        "ORDER BY tx_id, position LIMIT $3) b ON true"
    )


async def read_batch_on(
    conn: asyncpg.Connection,
    after: Checkpoint,
    *,
    limit: int = 1000,
    categories: frozenset[str] | None = None,
    types: frozenset[str] | None = None,
) -> ReadBatch:
    """`read_batch` on a given connection.

    Only rows of transactions older than every running transaction are
    returned (see README: the commit horizon), ordered by transaction id then
    position; rows at or above the horizon are only reported as `pending`.
    With `types`, only rows of those types are read and decoded; a page
    shorter than `limit` has passed over the others up to the newest row of
    the categories below the horizon (`ReadBatch.skipped_to`).
    """
    tx, position = after.order
    args: list[Any] = [str(tx), position, limit]
    if categories is not None:
        args.append(next(iter(categories)) if len(categories) == 1 else sorted(categories))
    if types is not None:
        args.append(sorted(types))
    rows = await conn.fetch(_batch_sql(categories, types is not None), *args)
    pending = bool(rows[0]["pending"]) if rows else False
    found = [r for r in rows if r["position"] is not None]
    records = await _records(conn, found)
    events = tuple((_checkpoint(r), record) for r, record in zip(found, records, strict=True))
    skipped_to = None
    if types is not None and len(events) < limit and rows and rows[0]["skip_tx"] is not None:
        skipped_to = Checkpoint((rows[0]["skip_tx"], rows[0]["skip_position"]), rows[0]["skip_position"])
        if events and skipped_to.order <= events[-1][0].order:
            skipped_to = None
    return ReadBatch(events, pending, skipped_to)


_SETTLING_SAID = 1000
_TAIL_SQL = _batch_sql(None, named=True)


async def read_tail_on(conn: asyncpg.Connection, after: Checkpoint, limit: int) -> TailPage:
    """A refresh of a `LogTail`: every event after `after` below the horizon (at most `limit`),
    as stored, and the categories of the rows settling at or above it (None: too many to name)."""
    tx, position = after.order
    rows = await conn.fetch(_TAIL_SQL, str(tx), position, limit, _SETTLING_SAID)
    settling = rows[0]["settling"] if rows else []
    found = [r for r in rows if r["position"] is not None]
    return TailPage(list(zip(map(_checkpoint, found), _stored(conn, found), strict=True)),
                    None if settling is None else frozenset(settling))


async def load_checkpoint_on(conn: asyncpg.Connection, name: str) -> Checkpoint:
    """A named reader's checkpoint, read on a given connection."""
    row = await conn.fetchrow(
        "SELECT tx_id::text::bigint AS tx, position FROM checkpoints WHERE name = $1", name
    )
    if row is None:
        return Checkpoint()
    return _checkpoint(row)


_UPSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (name, tx_id, position) {values} "
    "ON CONFLICT (name) DO UPDATE SET tx_id = excluded.tx_id, position = excluded.position, "
    "updated_at = now()"
)
_SAVE_CHECKPOINT = _UPSERT_CHECKPOINT.format(values="VALUES ($1, $2::text::xid8, $3)")
_SAVE_CHECKPOINT_ASYNC = _UPSERT_CHECKPOINT.format(
    values=f"SELECT $1, $2::text::xid8, $3 FROM (SELECT {ASYNC_COMMIT}) s"
)


async def save_checkpoint_on(conn: asyncpg.Connection, name: str, checkpoint: Checkpoint) -> None:
    """Store a named reader's checkpoint on a given connection (its transaction)."""
    tx, position = checkpoint.order
    await conn.execute(_SAVE_CHECKPOINT, name, str(tx), position)
