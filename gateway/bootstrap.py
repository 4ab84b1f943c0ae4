"""The one place where adapters, handlers, projections and workers are wired.

Each domain or channel module joins by one line in a tuple below:
- `HANDLER_MODULES` (in `dispatch/core/bus.py`): `HANDLERS: dict[type, handler]`;
- `PROJECTION_MODULES`: `def projections(services) -> list[Projection]`;
- `REACTOR_MODULES`: `def reactors(services) -> list[Reactor]`;
- `WORKER_MODULES`: `def workers(services) -> list[Callable[[], Awaitable[None]]]`,
  long-running tasks such as timers and the outbox sender;
- `LISTENER_MODULES`: the same hook, for channel listeners and in-process indexes;
- `ROUTE_MODULES`: `def setup(app)` adding routes, and `OPENAPI_PATHS` for the spec.
Nothing is created at import time.

`INTAKE_ROLE` splits the work between processes: `gateway` serves HTTP and runs
the listeners; `worker` runs projections, policies and workers; `all` (the
default) does both. Runners coordinate through PostgreSQL, so any number of
processes of each role may run.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from dispatch.core.bus import MessageBus, collect_handlers
from dispatch.core.clock import Clock, SystemClock
from eventstore.leadership import Leadership
from eventstore.migrate import migrate
from eventstore.postgres import PostgresEventStore, create_pool
from gateway.services import Metrics, Services
from gateway.settings import Settings

log = structlog.get_logger(__name__)

PROJECTION_MODULES: tuple[str, ...] = (
    "dispatch.missed_calls.read_model",
    "dispatch.cases.read_model",
    "dispatch.elderly.read_model",
    "dispatch.gis.reference",
    "dispatch.linking.read_model",
)
REACTOR_MODULES: tuple[str, ...] = (
    "dispatch.missed_calls.policy",
    "dispatch.intake.sms",
    "dispatch.notify.outbox",
    "dispatch.elderly.alarms",
    "dispatch.supervision.chasing",
    "dispatch.linking.policy",
)
WORKER_MODULES: tuple[str, ...] = (
    "eventstore.tamper",
    "dispatch.core.timers",
    "dispatch.gis.auto_dispatch",
    "dispatch.cases.read_model",
    "dispatch.notify.sender",
    "gateway.presence",
)
LISTENER_MODULES: tuple[str, ...] = (
    "channels.ami",
    "gateway.sia_listener",
    "dispatch.gis.provider_index",
)
"""Like `WORKER_MODULES`, but run by the `gateway` role: channel listeners and
the in-process indexes its views read."""
ROUTE_MODULES: tuple[str, ...] = (
    "gateway.views.wechat",
    "gateway.views.providers",
    "gateway.views.cases",
    "gateway.views.phone",
    "gateway.views.missed_calls",
    "gateway.views.notifications",
    "gateway.presence",
    "gateway.views.open311",
    "gateway.views.alarm",
    "gateway.views.health",
    "gateway.views.console",
    "gateway.sse",
    "gateway.views.audit",
    "gateway.views.incidents",
)


def _collect(modules: tuple[str, ...], attribute: str, services: Services) -> list[Any]:
    found: list[Any] = []
    for name in modules:
        factory = getattr(importlib.import_module(name), attribute)
        found.extend(factory(services))
    return found


async def connect_redis(url: str | None) -> aioredis.Redis | None:
    """A Redis client, or None (with a warning) when Redis is unreachable."""
    if url is None:
        return None
    client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        log.warning("redis_unavailable_at_start", error=str(exc))
    return client


async def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Connect the stores, apply migrations and wire the message bus."""
    if settings.stores.database_url is None:
        raise ValueError("build_services needs a database URL (the CLI starts embedded servers)")
    pool = await create_pool(settings.stores.database_url, application_name=f"intake-{settings.process.role}")
    async with pool.acquire() as conn:
        await migrate(conn)
    store = PostgresEventStore(pool, group_commit=settings.stores.group_commit)
    clock = clock or SystemClock()
    redis_client = await connect_redis(settings.stores.redis_url)
    bus = MessageBus(collect_handlers(), {"store": store, "clock": clock})
    services = Services(
        settings=settings, pool=pool, store=store, clock=clock, bus=bus,
        redis=redis_client, metrics=Metrics(), leadership=Leadership(pool),
    )
    bus.provide("services", services)
    bus.provide("pool", pool)
    bus.provide("redis", redis_client)
    bus.provide("sla", settings.sla)
    return services


async def close_services(services: Services) -> None:
    """Release pools and clients (the reactor leads first: a standby takes over at once)."""
    await services.leadership.close()
    await services.store.close()
    if services.redis is not None:
        await services.redis.aclose()
    await services.pool.close()


def background_tasks(
    services: Services, leadership: Leadership | None = None
) -> list[Callable[[], Awaitable[None]]]:
    """Every long-running task this process's role runs: listeners, runners, workers.

    With a `leadership`, each reactor runs in one worker process at a time (the
    others stand by); projections, timers and the outbox coordinate by themselves.
    """
    from eventstore.subscriptions import ProjectionRunner, ReactorRunner

    role = services.settings.process.role
    tasks: list[Callable[[], Awaitable[None]]] = []
    if role in ("all", "gateway"):
        tasks.extend(_collect(LISTENER_MODULES, "workers", services))
    if role in ("all", "worker"):
        for projection in _collect(PROJECTION_MODULES, "projections", services):
            tasks.append(ProjectionRunner(services.store, projection, publish=services.publish).run)
        for reactor in _collect(REACTOR_MODULES, "reactors", services):
            tasks.append(ReactorRunner(services.store, reactor, leadership=leadership).run)
        tasks.extend(_collect(WORKER_MODULES, "workers", services))
    return tasks


def projections(services: Services) -> list[Any]:
    """The projections this build has (for `intake rebuild`)."""
    return _collect(PROJECTION_MODULES, "projections", services)


def reactors(services: Services) -> list[Any]:
    """The reactors this build has (`intake rebuild` refolds those with state of their own)."""
    return _collect(REACTOR_MODULES, "reactors", services)


async def run_background(services: Services) -> AsyncIterator[None]:
    """Run the background tasks until the generator is closed; then cancel them."""
    await services.store.listen()
    running = [asyncio.create_task(_supervise(t), name=getattr(t, "__qualname__", "task"))
               for t in background_tasks(services, services.leadership)]
    try:
        yield
    finally:
        await stop_tasks(running)
        await services.leadership.close()  # the runners stopped: hand their reactors over now


STOP_GRACE = 5.0


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks and wait for them; cancel again any that swallowed the cancel."""
    pending = set(tasks)
    for task in pending:
        task.cancel()
    grace = STOP_GRACE
    while pending:
        _, pending = await asyncio.wait(pending, timeout=grace)
        for task in pending:
            log.warning("background_task_ignored_cancel", task=task.get_name())
            task.cancel()
        grace = 1.0
    await asyncio.gather(*tasks, return_exceptions=True)


async def _supervise(task: Callable[[], Awaitable[None]]) -> None:
    """Run a background task; restart it with backoff if it ever fails."""
    delay = 0.5
    name = getattr(task, "__qualname__", repr(task))
    while True:
        try:
            await task()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise asyncio.CancelledError from None  # a cancel surfaced as a driver error
            log.exception("background_task_failed", task=name, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
