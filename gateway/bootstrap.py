"""The one place where adapters, handlers, projections and workers are wired.

Every piece joins as a typed object imported by name, never a module name:
- `DOMAIN`: each capability package of `dispatch` exports one `Capability`
  (`dispatch.core.capability`): its command handlers and tuples of factories
  of its projections, reactors, workers and listeners. A new projection (or
  reactor, worker, handler) stays in its capability folder: its module plus
  one entry in the package's `Capability` (and its table's SQL migration).
  A new capability is its folder plus one line in `DOMAIN`, and one in
  `dispatch/__init__.py`, which imports every capability package so that every
  event type is known before a record is decoded (tests fail if either is missed).
- `GATEWAY`: the pieces outside the domain, in the same shape: the seal writer
  and the presence-fed call-back assigner; the AMI and SIA listeners.
- `ROUTES`: the view modules; each has `setup(app)` adding its routes and
  `OPENAPI_PATHS` for the spec. A new view module (an HTTP channel's webhook,
  say) is one line here.
Every factory takes the services object, which satisfies each capability's
dependency Protocol (mypy checks that here). Nothing is created at import time.

`INTAKE_ROLE` splits the work between processes: `gateway` serves HTTP and runs
the listeners; `worker` runs projections, policies and workers; `all` (the
default) does both. Runners coordinate through PostgreSQL, so any number of
processes of each role may run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Protocol

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from channels import ami
from dispatch.cases import CASES
from dispatch.core import TIMERS
from dispatch.core.bus import MessageBus
from dispatch.core.capability import Capability, Task, build, collect_handlers
from dispatch.core.clock import Clock, SystemClock
from dispatch.core.messages import Json
from dispatch.core.personal import set_pseudonym_key
from dispatch.core.texts import texts_for
from dispatch.customers import CUSTOMERS
from dispatch.elderly import ELDERLY
from dispatch.gis import GIS
from dispatch.intake import INTAKE
from dispatch.intake.classify import learned_model
from dispatch.knowledge import KNOWLEDGE
from dispatch.linking import LINKING
from dispatch.missed_calls import MISSED_CALLS
from dispatch.notify import NOTIFY
from dispatch.org import ORG
from dispatch.personal import PERSONAL_DATA
from dispatch.places import PLACES
from dispatch.reports import REPORTS
from dispatch.supervision import SUPERVISION
from eventstore import tamper
from eventstore.access import AccessRecorder
from eventstore.leadership import Leadership
from eventstore.migrate import migrate
from eventstore.postgres import UNAVAILABLE, PostgresEventStore, create_pool
from eventstore.subscriptions import Projection, Reactor
from gateway import presence, sia_listener, sse
from gateway.notify import WechatOutbound, providers_from
from gateway.schema import SCHEMA
from gateway.services import Metrics, Services
from gateway.settings import Settings
from gateway.views import (
    alarm,
    audit,
    callers,
    cases,
    console,
    health,
    incidents,
    knowledge,
    missed_calls,
    notifications,
    open311,
    org,
    phone,
    places,
    providers,
    registration,
    reports,
    status,
    subjects,
    wechat,
)

log = structlog.get_logger(__name__)

DOMAIN: tuple[Capability[Services], ...] = (
    TIMERS, INTAKE, CASES, MISSED_CALLS, LINKING, GIS, ELDERLY, NOTIFY, SUPERVISION, KNOWLEDGE, PLACES,
    CUSTOMERS, ORG, REPORTS, PERSONAL_DATA,
)
"""The capabilities of the domain, one line each."""


def _sealer(services: Services) -> list[Task]:
    return tamper.workers(services.pool, services.settings.stores.seal_key)


def _access(services: Services) -> list[Task]:
    return [lambda: services.access.run(services.clock.now)]


def _ami(services: Services) -> list[Task]:
    return ami.listeners(services.settings.ami, services.bus.handle, services.clock)


GATEWAY: Capability[Services] = Capability(
    "gateway", workers=(_sealer, presence.workers), listeners=(_ami, sia_listener.listeners, _access))
"""The seal writer and the presence-fed call-back assigner; the AMI and SIA listeners and the
access record's writer (in the processes that serve the audit API)."""

CAPABILITIES: tuple[Capability[Services], ...] = (*DOMAIN, GATEWAY)


class Routes(Protocol):
    """A view module: `setup` adds its routes, `OPENAPI_PATHS` describes them."""

    OPENAPI_PATHS: Json

    def setup(self, app: web.Application) -> None:
        """Add the module's routes to the app."""
        ...


ROUTES: tuple[Routes, ...] = (
    wechat, providers, places, registration, cases, phone, missed_calls, notifications, presence, open311,
    alarm, health, console, sse, audit, incidents, knowledge, callers, org, reports, status, subjects,
)
"""The view modules, in the order their routes are added."""


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


def _wechat_outbound(settings: Settings) -> WechatOutbound | None:
    wechat = settings.wechat
    if wechat.appid and wechat.secret:
        return WechatOutbound(wechat.appid, wechat.secret, wechat.api_base)
    return None


async def build_services(settings: Settings, *, clock: Clock | None = None) -> Services:
    """Connect the stores, apply migrations and wire the message bus."""
    if settings.stores.database_url is None:
        raise ValueError("build_services needs a database URL (the CLI starts embedded servers)")
    set_pseudonym_key(settings.stores.pseudonym_key or b"")
    if settings.stores.pseudonym_key is None:
        log.warning("pseudonym_key_not_set", detail="INTAKE_PSEUDONYM_KEY names streams of numbers and "
                    "OpenIDs; without it a development key is used, fine only for demos and tests")
    pool = await create_pool(settings.stores.database_url, max_size=settings.stores.pool_size,
                             application_name=f"intake-{settings.process.role}")
    async with pool.acquire() as conn:
        await migrate(conn, SCHEMA)
    # train the intake classifier now (once per process, under a second), not on the first SMS;
    # before the background tasks start, so that its CPU burst delays none of their statements
    await asyncio.to_thread(learned_model)
    # The runners of a worker read the log once between them; a gateway's reader or two read their own.
    store = PostgresEventStore(pool, group_commit=settings.stores.group_commit,
                               shared_reads=settings.process.role in ("all", "worker"))
    clock = clock or SystemClock()
    redis_client = await connect_redis(settings.stores.redis_url)
    texts = texts_for(settings.process.language)
    bus = MessageBus(collect_handlers(CAPABILITIES), {"store": store, "clock": clock, "texts": texts})
    services = Services(
        settings=settings, pool=pool, store=store, clock=clock, bus=bus,
        redis=redis_client, metrics=Metrics(),
        leadership=Leadership(pool, lease=settings.process.lease_seconds),
        notify_providers=providers_from(settings.notifications, _wechat_outbound(settings)), texts=texts,
        access=AccessRecorder(pool, key=settings.stores.seal_key),
    )
    bus.provide("services", services)
    bus.provide("pool", pool)
    bus.provide("redis", redis_client)
    bus.provide("sla", settings.sla)
    return services


async def close_services(services: Services) -> None:
    """Release pools and clients (the partition leases first: the other workers take them at once).

    Background tasks still running on them are stopped first: a task left running would open a
    new connection on a closed client (redis-py reconnects on demand) that nothing then closes.
    """
    await stop_tasks(services.background)
    try:
        await services.access.flush()
    except UNAVAILABLE as exc:
        log.warning("access_flush_failed", error=str(exc))
    await services.leadership.close()
    await services.store.close()
    if services.redis is not None:
        await services.redis.aclose()
    await services.pool.close()


def background_tasks(services: Services, leadership: Leadership | None = None) -> list[Task]:
    """Every long-running task this process's role runs: listeners, runners, workers.

    With a `leadership`, the worker processes share each runner's partitions
    (`eventstore/leadership.py`); timers and the outbox coordinate by themselves.
    """
    from eventstore.subscriptions import ProjectionRunner, ReactorRunner

    role = services.settings.process.role
    tasks: list[Task] = []
    if role in ("all", "gateway"):
        tasks.extend(build((f for c in CAPABILITIES for f in c.listeners), services))
    if role in ("all", "worker"):
        lag = services.metrics.projection_lag
        for projection in projections(services):
            tasks.append(ProjectionRunner(services.store, projection, publish=services.publish,
                                          leadership=leadership,
                                          lag=lag.labels(name=projection.name).set).run)
        for reactor in reactors(services):
            tasks.append(ReactorRunner(services.store, reactor, leadership=leadership,
                                       lag=lag.labels(name=reactor.name).set).run)
        tasks.extend(build((f for c in CAPABILITIES for f in c.workers), services))
    return tasks


def projections(services: Services) -> list[Projection]:
    """The projections this build has (also for `intake rebuild`)."""
    return build((f for c in CAPABILITIES for f in c.projections), services)


def reactors(services: Services) -> list[Reactor]:
    """The reactors this build has (`intake rebuild` refolds those with state of their own)."""
    return build((f for c in CAPABILITIES for f in c.reactors), services)


async def run_background(services: Services) -> AsyncIterator[None]:
    """Run the background tasks until the generator is closed; then cancel them."""
    await services.store.listen()
    running = [asyncio.create_task(_supervise(t), name=getattr(t, "__qualname__", "task"))
               for t in background_tasks(services, services.leadership)]
    services.background.extend(running)
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


async def _supervise(task: Task) -> None:
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
