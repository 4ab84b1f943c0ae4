"""Subscriptions to the global log: projections and reactors.

- A `Projection` keeps read-model tables in PostgreSQL. `ProjectionRunner`
  applies each batch of events and saves the checkpoint in ONE transaction,
  so its effects happen exactly once; changes are published after commit.
  A `BatchProjection` takes the whole batch at once (a few statements per
  batch instead of a few per event).
- A `Reactor` (a policy) reacts to events by sending idempotent commands.
  `ReactorRunner` works on any `EventStore` and is at-least-once: it saves
  its checkpoint after reacting, so a crash may repeat a reaction. A
  `Recalling` reactor also keeps working state of its own, which
  `ReactorRunner.rebuild` refolds from the log without reacting. A `Keyed`
  reactor names the key its reactions depend on (a sender, a case): the
  runner reacts to events of different keys concurrently, to the events of
  one key in log order, so their appends share commits (group commit) and
  a burst is not paced by one round trip and one WAL flush per event. A
  `BatchReactor` takes the runner's whole batch at once (a few statements
  per batch instead of a few per event); if that fails, the runner reacts
  to the batch again event by event, so a failure names its event.

A runner may declare `types` (a frozenset of event types, beside
`categories`): the store then reads and decodes only events of those types,
and the runner's checkpoints move past the others unread (`types_of`); a
runner handed events of other types would ignore them anyway. Declare every
type `apply`, `react` or `recall` looks at, or none.

On PostgreSQL both read through the store's `read_batch` / `read_batch_in`,
which answer from the process's shared tail of the log when they can
(`eventstore/tail.py`: one statement for every runner at the head, as fresh
as a read of its own).

Both catch up from their checkpoint, then follow the log live: woken by the
store's wake-ups (local appends and NOTIFY from other processes), at most
once per `STEP_INTERVAL`, polling every `poll_interval` seconds as a
fallback, and re-polling within milliseconds while committed events wait
behind the commit horizon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import asyncpg
import structlog

from eventstore.errors import EventStoreError
from eventstore.interface import EventStore
from eventstore.leadership import Leadership
from eventstore.partitions import (
    Held,
    ensure,
    load_held,
    partition_of,
    partitions_of,
    save_held,
)
from eventstore.postgres import ASYNC_COMMIT, PostgresEventStore
from eventstore.records import Checkpoint, RecordedEvent
from eventstore.wakeup import Wakeup

log = structlog.get_logger(__name__)

_QUICK_MIN = 0.005
_QUICK_MAX = 0.05
_COALESCE = 0.003
"""After a wake-up, wait this long so that a burst of appends is read in one batch."""
_BACKOFF_MAX = 30.0
STEP_INTERVAL = 0.05
"""Live, a reader steps at most this often: a busy log is read in batches, not one per commit.

Every step costs a reader the same few statements whatever it reads (a
projection's lock, checkpoint, read and save); woken by every commit of a
busy worker, a reader stepped for one or two events at a time. A wake-up
within this interval of the last step waits for its end; one after a quiet
spell is read at once (after `_COALESCE`).
"""


@dataclass(frozen=True, slots=True)
class Change:
    """A notice for live views, published after the projection's transaction commits."""

    topic: str
    data: dict[str, Any]


Publish = Callable[[Sequence[Change]], Awaitable[None]]


class Projection(Protocol):
    """A read model kept in PostgreSQL tables, fed from the log exactly once.

    `name` is its checkpoint name (unique); `categories` the stream categories
    it reads (None: all); `tables` its read-model tables, truncated by rebuild;
    optionally `types`, the only event types it applies (`types_of`).
    Plain class attributes satisfy these read-only members.
    """

    @property
    def name(self) -> str: ...
    @property
    def categories(self) -> frozenset[str] | None: ...
    @property
    def tables(self) -> tuple[str, ...]: ...

    async def apply(
        self, conn: asyncpg.Connection, event: RecordedEvent
    ) -> Sequence[Change] | None:
        """Update the read model for one event inside the runner's transaction."""
        ...


@runtime_checkable
class BatchProjection(Projection, Protocol):
    """A projection that applies a whole batch in a few statements.

    `apply_batch(conn, events)` must leave the tables as `apply` on each
    event in turn would, and return the same changes.
    """

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
    ) -> Sequence[Change]:
        """Update the read model for the events, in log order, inside the runner's transaction."""
        ...


class Reactor(Protocol):
    """A policy: reacts to events by sending idempotent commands (at-least-once).

    `name` is its checkpoint name; `categories` the stream categories it reads.
    """

    @property
    def name(self) -> str: ...
    @property
    def categories(self) -> frozenset[str] | None: ...

    async def react(self, event: RecordedEvent) -> None:
        """React to one event; may be called again for the same event after a crash."""
        ...


@runtime_checkable
class Recalling(Reactor, Protocol):
    """A reactor with working state of its own (e.g. a candidate table), rebuilt from the log.

    `recall` folds one event into that state as reacting to it did, without
    deciding or sending anything. `reacted` is False for the events after the
    reactor's checkpoint: it has not reacted to them yet, but the events its
    last reactions caused lie there, and it noted their effect when it reacted.
    """

    async def forget(self) -> None:
        """Drop the working state."""
        ...

    async def recall(self, event: RecordedEvent, reacted: bool) -> None:
        """Fold one event into the working state; no commands."""
        ...


@runtime_checkable
class Keyed(Reactor, Protocol):
    """A reactor whose reactions to events of different keys are independent of each other.

    `key(event)`: what the reaction to `event` reads and writes (e.g. the
    SMS sender, the case). Reactions to events of one key run one after the
    other in log order; those of different keys may run at the same time.
    """

    def key(self, event: RecordedEvent) -> str:
        """The key of the reaction to `event`."""
        ...


@runtime_checkable
class BatchReactor(Reactor, Protocol):
    """A reactor that reacts to a whole batch at once.

    `react_batch(events)` must have the effects `react` on each event in log
    order would have; like `react` it may be called again for the same events
    (at-least-once), and a failure of it is followed by `react` on each event.
    """

    async def react_batch(self, events: Sequence[RecordedEvent]) -> None:
        """React to the events, in log order."""
        ...


def types_of(runner: object) -> frozenset[str] | None:
    """The event types a runner declares it handles (`types`), else None: every type."""
    types = getattr(runner, "types", None)
    if types is not None and not (isinstance(types, frozenset) and types
                                  and all(isinstance(t, str) for t in types)):
        raise ValueError(f"types must be a non-empty frozenset of event types, not {types!r}")
    return types


Progress = Callable[[int, int | None], None]
"""Rebuild progress: events done, and the total when it is known."""


class _BatchFailed(Exception):
    """A `BatchProjection`'s batch failed; it is applied again event by event."""


class ProjectionFailed(EventStoreError):
    """A projection could not apply an event; its batch was rolled back."""

    def __init__(self, name: str, event: RecordedEvent) -> None:
        super().__init__(
            f"projection {name!r} failed on {event.stream}@{event.version} "
            f"(position {event.position}, {event.type})"
        )
        self.name = name
        self.position = event.position
        self.stream = event.stream


@dataclass(frozen=True, slots=True)
class Step:
    """What one read-and-apply step did: events applied, whether more wait (pending), events read.

    `read` counts the events of the batch read, of the reader's partitions or
    not (None: as many as applied); a full batch is read again at once.
    `idle`: the reader holds no partition; wait this long before the next step,
    not for events (`Partitioning.idle`).
    `newest`: when the last event of the batch read was recorded (None: none read).
    """

    applied: int
    pending: bool
    read: int | None = None
    idle: float | None = None
    newest: datetime | None = None

    @property
    def seen(self) -> int:
        """The events read (those applied when not said)."""
        return self.applied if self.read is None else self.read


def _stop_if_cancelled() -> None:
    """Raise `CancelledError` if this task was cancelled, even if a library swallowed it.

    On Python 3.11, `asyncio.wait_for` (used inside asyncpg) can swallow a cancel
    that races its completion; the task then stays "cancelling" but runs on.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Follower:
    """The catch-up-then-live loop of a log reader: both runners, and in-process indexes.

    `follow(step)` runs `step` (read one batch from the reader's own position,
    apply it, say how many events and whether more wait behind the horizon)
    forever: again at once after a full batch, soon while `pending`, else on a
    wake-up of the reader's categories (at most once per `step_interval`) or
    every `poll_interval`; errors are retried with backoff.

    `lag`, when given, is told after each step how many seconds the reader is
    behind the log: the age of the newest event its step read, 0 once it is
    caught up or holds no partition (the worker's `intake_projection_lag_seconds`).
    """

    def __init__(self, name: str, wakeup: Wakeup, batch_size: int, poll_interval: float,
                 step_interval: float = STEP_INTERVAL,
                 lag: Callable[[float], None] | None = None) -> None:
        self.name = name
        self.lag = lag
        self.wakeup = wakeup
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.step_interval = step_interval
        self._quick = _QUICK_MIN
        self._stepped = 0.0  # loop time the last step started

    async def pause(self, step: Step) -> None:
        """Wait as long as the last step says is useful."""
        if step.idle is not None:
            await asyncio.sleep(step.idle)
            return
        if step.seen >= self.batch_size:
            self._quick = _QUICK_MIN
            return
        if step.pending:
            # Committed events wait behind an older running transaction.
            await asyncio.sleep(self._quick)
            self._quick = _QUICK_MIN if step.seen else min(self._quick * 2, _QUICK_MAX)
            return
        self._quick = _QUICK_MIN
        if await self.wakeup.wait(self.poll_interval):
            since = asyncio.get_running_loop().time() - self._stepped
            await asyncio.sleep(max(_COALESCE, self.step_interval - since))

    def observe(self, step: Step) -> None:
        """Tell `lag` how far behind the log this step left the reader."""
        if self.lag is None:
            return
        if step.idle is not None or (step.seen == 0 and not step.pending):
            self.lag(0.0)
        elif step.newest is not None:
            self.lag(max(0.0, time.time() - step.newest.timestamp()))

    async def follow(self, step: Callable[[], Awaitable[Step]]) -> None:
        """Run `step` forever, retrying from the checkpoint with backoff on errors."""
        delay = 0.1
        while True:
            _stop_if_cancelled()
            self.wakeup.clear()
            self._stepped = asyncio.get_running_loop().time()
            try:
                result = await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                _stop_if_cancelled()  # a cancel surfaced as a driver error
                log.exception("subscription_failed", subscription=self.name, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            delay = 0.1
            self.observe(result)
            await self.pause(result)

    async def until_caught_up(self, step: Callable[[], Awaitable[Step]]) -> int:
        """Run `step` until nothing is readable or pending; the events applied."""
        total = 0
        while True:
            result = await step()
            total += result.applied
            if result.seen == 0 and not result.pending:
                return total
            if result.seen == 0:
                await self.pause(result)


class Partitioning:
    """One runner's partitions in PostgreSQL: which this process holds now (`eventstore/partitions.py`).

    With a `Leadership`, the partitions its process holds a lease on; without
    one (a test, `intake rebuild`, `intake load`), all of them. The rows are
    created on first use (splitting a single checkpoint from before partitions).
    """

    def __init__(self, pool: asyncpg.Pool, runner: Projection | Reactor, kind: str,
                 leadership: Leadership | None) -> None:
        self.name = runner.name
        self.count = partitions_of(runner)
        self._kind = kind
        self._categories = runner.categories
        self.leadership = leadership
        self._pool = pool
        self._ensured = False

    @property
    def owner(self) -> str | None:
        """The worker name leases are held under (None: no leases, all partitions)."""
        return None if self.leadership is None else self.leadership.worker

    @property
    def lease(self) -> float:
        """How long a renewed lease lasts."""
        return 0.0 if self.leadership is None else self.leadership.lease

    async def prepare(self) -> None:
        """Create the partition rows if they are not there yet (once per runner)."""
        if not self._ensured:
            async with self._pool.acquire() as conn:
                await ensure(conn, self.name, self.count, self._kind, self._categories)
            self._ensured = True

    async def held(self) -> tuple[int, ...]:
        """The partitions to work on now (none: stand by)."""
        await self.prepare()
        if self.leadership is None:
            return tuple(range(self.count))
        return await self.leadership.partitions(self.name, self.count)

    def idle(self, poll_interval: float) -> float:
        """How long to wait while holding nothing: a heartbeat while claims are tried, else a poll
        interval (not until a wake-up: under load those come every few milliseconds)."""
        waiting = self.leadership is not None and self.leadership.waiting(self.name, self.count)
        return self.leadership.heartbeat if waiting and self.leadership else poll_interval


def _quote(table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


class ProjectionRunner:
    """Feeds one projection from the log; PostgreSQL only, exactly-once effects.

    The projection's events are split into partitions by stream
    (`eventstore/partitions.py`; `partitions = 1` on the projection: one serial
    order). Per batch, in one transaction: lock the lease rows of the
    partitions this process holds and read their checkpoints - only those
    whose lease is still this worker's (the fence: a process that lost a
    lease writes nothing more for it, and a takeover waits for the commit) -
    read the log from the oldest of them, apply each event of those
    partitions not applied yet, move their checkpoints to the batch's end.
    After the commit, the collected changes are passed to `publish`.

    Its transactions (each batch's, and a rebuild's reset) commit without
    waiting for their WAL flush (`synchronous_commit = off` for them alone).
    A crash of the server may then lose the newest of them, rows and
    checkpoint together, as if they had rolled back: the runner applies the
    batches again from the log, whose events were durable before anyone read
    them (a lost reset leaves the old rows and checkpoint: run the rebuild
    again). Any later durable commit flushes
    them first, so nothing durable can have depended on a lost batch.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        projection: Projection,
        *,
        publish: Publish | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        leadership: Leadership | None = None,
        lag: Callable[[float], None] | None = None,
    ) -> None:
        self._store = store
        self._projection = projection
        # Checked once: isinstance against a runtime-checkable protocol inspects
        # every member, and per event it cost the worker 8% of its CPU.
        self._batched = projection if isinstance(projection, BatchProjection) else None
        self._types = types_of(projection)
        self._publish = publish
        self._parts = Partitioning(store.pool, projection, "projection", leadership)
        self._follower = Follower(
            f"projection:{projection.name}", store.wakeup(projection.categories), batch_size,
            poll_interval, lag=lag
        )

    async def run(self) -> None:
        """Catch up, then follow the log live, forever (cancel to stop)."""
        await self._follower.follow(self.step)

    async def run_until_caught_up(self) -> int:
        """Process until nothing is readable; the number of events applied."""
        return await self._follower.until_caught_up(self.step)

    async def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Truncate the tables and reset every partition's checkpoint in one transaction, then catch up."""
        name = self._projection.name
        await self._parts.prepare()
        async with self._store.connection() as conn, conn.transaction():
            await load_held(conn, name, self._parts.count, range(self._parts.count), None, lock=True,
                            extra=ASYNC_COMMIT)
            if self._projection.tables:
                tables = ", ".join(_quote(t) for t in self._projection.tables)
                await conn.execute(f"TRUNCATE {tables}")
            await conn.execute("DELETE FROM checkpoints WHERE name = $1 OR name LIKE $2",
                               name, f"{name}/%")
            total = await self._count(conn)
        log.info("projection_rebuild_started", projection=name, events=total)
        done = 0
        if progress is not None:
            progress(0, total)
        while True:
            result = await self.step()
            done += result.applied
            if progress is not None:
                progress(done, max(total, done))
            if result.seen == 0 and not result.pending:
                break
            if result.seen == 0:
                await self._follower.pause(result)
        log.info("projection_rebuilt", projection=name, events=done)
        return done

    async def _count(self, conn: asyncpg.Connection) -> int:
        categories, types = self._projection.categories, self._types
        return int(await conn.fetchval(
            "SELECT count(*) FROM events WHERE ($1::text[] IS NULL OR category = ANY($1::text[])) "
            "AND ($2::text[] IS NULL OR type = ANY($2::text[]))",
            None if categories is None else sorted(categories), None if types is None else sorted(types)))

    async def step(self) -> Step:
        """Apply one batch and save the checkpoints in one transaction; then publish.

        Holding no partition (another worker runs them all), it does nothing and
        says how long to wait (`Step.idle`). A `BatchProjection` gets the batch at once; if that fails, the
        transaction is rolled back and the batch is applied again event by
        event, so that a failure names the event that caused it.
        """
        held = await self._parts.held()
        if not held:
            return Step(0, False, idle=self._parts.idle(self._follower.poll_interval))
        try:
            return await self._step(held, batched=True)
        except _BatchFailed:
            return await self._step(held, batched=False)

    async def _step(self, partitions: Sequence[int], batched: bool) -> Step:
        changes: list[Change] = []
        name, count = self._projection.name, self._parts.count
        async with self._store.connection() as conn, conn.transaction():
            # The lease rows stay locked to the commit; the statement also makes
            # this transaction commit without waiting for its WAL flush.
            held = await load_held(conn, name, count, partitions, self._parts.owner, lock=True,
                                   extra=ASYNC_COMMIT)
            if not held.checkpoints:
                return Step(0, False)  # the leases moved on: the next heartbeat says so
            batch = await self._store.read_batch_in(
                conn,
                held.after,
                limit=self._follower.batch_size,
                categories=self._projection.categories,
                types=self._types,
            )
            events = [event for checkpoint, event in batch.events
                      if held.wants(partition_of(event.stream, count), checkpoint)]
            projection = self._batched
            if batched and projection is not None and len(events) > 1:
                changes.extend(await self._apply_batch(projection, conn, events))
            else:
                for event in events:
                    changes.extend(await self._apply(conn, event))
            if batch.end is not None:  # past the events of other types too
                await save_held(conn, name, count, list(held.checkpoints), batch.end,
                                owner=self._parts.owner, lease=self._parts.lease)
        await self._publish_after_commit(changes)
        return Step(len(events), batch.pending, len(batch.events),
                    newest=batch.events[-1][1].recorded_at if batch.events else None)

    @staticmethod
    async def _apply_batch(
        projection: BatchProjection, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
    ) -> Sequence[Change]:
        try:
            return await projection.apply_batch(conn, events)
        except (asyncio.CancelledError, EventStoreError):
            raise
        except Exception as exc:
            log.warning("projection_batch_failed", projection=projection.name,
                        first=events[0].position, last=events[-1].position, exc_info=True)
            raise _BatchFailed from exc

    async def _apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change]:
        try:
            return await self._projection.apply(conn, event) or ()
        except (asyncio.CancelledError, EventStoreError):
            raise
        except Exception as exc:
            raise ProjectionFailed(self._projection.name, event) from exc

    async def _publish_after_commit(self, changes: Sequence[Change]) -> None:
        if not changes or self._publish is None:
            return
        try:
            await self._publish(changes)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The rows are committed; live views catch up from the read model.
            log.warning("publish_failed", projection=self._projection.name, exc_info=True)


class ReactorRunner:
    """Feeds one reactor from any `EventStore`; at-least-once.

    On PostgreSQL the reactor's events are split into partitions
    (`eventstore/partitions.py`) by its key (`Keyed`) or else by stream,
    each with its own checkpoint; given a `Leadership`, the runner reacts to
    the partitions its process holds, so several worker processes share the
    work (without one, it runs them all). On another store it has one
    checkpoint. Each step reads a batch from the oldest checkpoint held and
    reacts to the events of its partitions not reacted to yet.

    Checkpoints are saved after the reactions of each batch (a partition whose
    reaction failed stops at the event before it, the others move to the
    batch's end), so a crash or a failure repeats at most the reactions since
    the last save. Reactions must therefore be idempotent. A `Keyed`
    reactor's batch runs as one chain of reactions per key, at most
    `concurrency` chains at once; a failed reaction stops its own chain only.
    """

    def __init__(
        self,
        store: EventStore,
        reactor: Reactor,
        *,
        batch_size: int = 200,
        poll_interval: float = 0.5,
        concurrency: int = 4,
        leadership: Leadership | None = None,
        lag: Callable[[float], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._store = store
        self._reactor = reactor
        # Checked once (see ProjectionRunner): `_partition` runs for every event read.
        self._keyed = reactor if isinstance(reactor, Keyed) else None
        self._batched = reactor if isinstance(reactor, BatchReactor) else None
        self._types = types_of(reactor)
        self._concurrency = concurrency
        self._pg = store if isinstance(store, PostgresEventStore) else None
        self._parts = (None if self._pg is None else
                       Partitioning(self._pg.pool, reactor, "reactor", leadership))
        self._held: Held | None = None
        self._follower = Follower(
            f"reactor:{reactor.name}", store.wakeup(reactor.categories), batch_size, poll_interval,
            lag=lag
        )

    async def run(self) -> None:
        """Catch up, then follow the log live, forever (cancel to stop)."""
        await self._follower.follow(self.step)

    async def run_until_caught_up(self) -> int:
        """Process until nothing is readable; the number of events reacted to."""
        return await self._follower.until_caught_up(self.step)

    def _partition(self, event: RecordedEvent) -> int:
        """The partition of `event`: by the reactor's key when it is `Keyed`, else by stream."""
        if self._parts is None:
            return 0
        key = event.stream if self._keyed is None else self._keyed.key(event)
        return partition_of(key, self._parts.count)

    async def _load(self, partitions: Sequence[int]) -> Held:
        """The checkpoints of `partitions` (the store's single one without partitions)."""
        if self._pg is None or self._parts is None:
            return Held({0: await self._store.load_checkpoint(self._reactor.name)})
        async with self._pg.connection() as conn:
            return await load_held(conn, self._reactor.name, self._parts.count, partitions, None)

    async def _save(self, moves: dict[int, Checkpoint]) -> None:
        """Move partitions' checkpoints forward (one statement per distinct checkpoint)."""
        if self._pg is None or self._parts is None:
            await self._store.save_checkpoint(self._reactor.name, moves[0])
            return
        by: dict[Checkpoint, list[int]] = {}
        for partition, checkpoint in moves.items():
            by.setdefault(checkpoint, []).append(partition)
        async with self._pg.connection() as conn:
            for checkpoint, partitions in by.items():
                await save_held(conn, self._reactor.name, self._parts.count, partitions, checkpoint,
                                owner=self._parts.owner, lease=self._parts.lease)

    async def rebuild(self, progress: Progress | None = None) -> int:
        """Refold a `Recalling` reactor's own state from the whole log; the events read (of its `types`).

        Nothing is sent and the checkpoints stay where they are, so the reactor
        resumes where it stopped, deciding as it would have. Stop the workers first.
        """
        reactor = self._reactor
        if not isinstance(reactor, Recalling):
            raise TypeError(f"reactor {reactor.name!r} keeps no state to rebuild")
        if self._parts is not None:
            await self._parts.prepare()
        reacted_to = await self._load(range(self._parts.count) if self._parts else [0])
        await reactor.forget()
        log.info("reactor_rebuild_started", reactor=reactor.name,
                 checkpoint=max(c.position for c in reacted_to.checkpoints.values()))
        after, done = Checkpoint(), 0
        while True:
            batch = await self._store.read_batch(
                after, limit=self._follower.batch_size, categories=reactor.categories,
                types=self._types,
            )
            for checkpoint, event in batch.events:
                await reactor.recall(event, not reacted_to.wants(self._partition(event), checkpoint))
            after = batch.end or after
            done += len(batch.events)
            if progress is not None:
                progress(done, None)
            if not batch.events and not batch.pending:
                break
            if not batch.events:
                await self._follower.pause(Step(0, True))
        log.info("reactor_rebuilt", reactor=reactor.name, events=done)
        return done

    async def step(self) -> Step:
        """React to one batch of the partitions held; save their checkpoints.

        Holding no partition (other workers run them all), it does nothing and
        says how long to wait (standby, `Step.idle`); the checkpoints are read again whenever the
        partitions held change.
        """
        if self._parts is None:
            partitions: tuple[int, ...] = (0,)
        else:
            partitions = await self._parts.held()
            if not partitions:
                self._held = None
                return Step(0, False, idle=self._parts.idle(self._follower.poll_interval))
        if self._held is None or tuple(sorted(self._held.checkpoints)) != partitions:
            self._held = await self._load(partitions)
        held = self._held
        batch = await self._store.read_batch(
            held.after,
            limit=self._follower.batch_size,
            categories=self._reactor.categories,
            types=self._types,
        )
        every = batch.events
        of = [self._partition(event) for _, event in every]
        events = [item for item, partition in zip(every, of, strict=True)
                  if held.wants(partition, item[0])]
        done = [False] * len(events)
        try:
            batched, keyed = self._batched, self._keyed
            if (batched is not None and len(events) > 1
                    and await self._react_batch(batched, [event for _, event in events])):
                done[:] = [True] * len(events)
            elif keyed is not None and self._concurrency > 1 and len(events) > 1:
                await self._react_by_key(keyed, events, done)
            else:
                for index, (_, event) in enumerate(events):
                    await self._react(event)
                    done[index] = True
        finally:
            if batch.end is not None:
                await self._advance(held, every, of, events, done, batch.end)
        return Step(sum(done), batch.pending, len(every),
                    newest=every[-1][1].recorded_at if every else None)

    async def _advance(
        self, held: Held, every: Sequence[tuple[Checkpoint, RecordedEvent]], of: Sequence[int],
        events: Sequence[tuple[Checkpoint, RecordedEvent]], done: Sequence[bool], end: Checkpoint,
    ) -> None:
        """Save each partition's checkpoint below its first reaction that did not succeed.

        (failed, or was cancelled; none: the batch's `end`, past any events of
        other types it skipped). A retry repeats it
        and everything of its partition after it in log order, whatever its
        key; the reactions are idempotent.
        """
        index = {checkpoint.order: i for i, (checkpoint, _) in enumerate(every)}
        stop: dict[int, int] = {}
        for (checkpoint, _), ok in zip(events, done, strict=True):
            i = index[checkpoint.order]
            if not ok and of[i] not in stop:
                stop[of[i]] = i
        moves: dict[int, Checkpoint] = {}
        for partition, current in held.checkpoints.items():
            first = stop.get(partition)
            to = end if first is None else every[first - 1][0] if first else None
            if to is not None and to.order > current.order:
                moves[partition] = to
        if moves:
            await self._save(moves)
            self._held = Held({**held.checkpoints, **moves})

    async def _react_by_key(
        self, reactor: Keyed, events: Sequence[tuple[Checkpoint, RecordedEvent]], done: list[bool]
    ) -> None:
        """One chain of reactions per key, at most `concurrency` at once; marks each success.

        A failure stops its own chain; the others run to their end, then the
        failure of the earliest event in log order is raised.
        """
        chains: dict[str, list[int]] = {}
        for index, (_, event) in enumerate(events):
            chains.setdefault(reactor.key(event), []).append(index)
        failed: dict[int, Exception] = {}
        gate = asyncio.Semaphore(self._concurrency)

        async def chain(indexes: list[int]) -> None:
            async with gate:
                for index in indexes:
                    try:
                        await self._react(events[index][1])
                    except Exception as exc:
                        failed[index] = exc
                        return
                    done[index] = True

        await asyncio.gather(*(chain(indexes) for indexes in chains.values()))
        if failed:
            raise failed[min(failed)]

    async def _react_batch(self, reactor: BatchReactor, events: Sequence[RecordedEvent]) -> bool:
        """Whether `react_batch` succeeded; if not, the caller reacts event by event."""
        try:
            await reactor.react_batch(events)
        except asyncio.CancelledError:
            raise
        except Exception:
            _stop_if_cancelled()
            log.warning("reaction_batch_failed", reactor=reactor.name, first=events[0].position,
                        last=events[-1].position, exc_info=True)
            return False
        return True

    async def _react(self, event: RecordedEvent) -> None:
        try:
            await self._reactor.react(event)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.error(
                "reaction_failed",
                reactor=self._reactor.name,
                stream=event.stream,
                position=event.position,
                type=event.type,
            )
            raise
