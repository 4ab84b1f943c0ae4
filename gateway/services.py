"""The wired services one process runs with, and the aiohttp app keys for them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
import redis.asyncio as aioredis
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.exceptions import RedisError

from dispatch.core.bus import MessageBus
from dispatch.core.clock import Clock
from dispatch.core.texts import CHINESE, Texts
from dispatch.elderly.alarms import ElderDirectory
from dispatch.gis.geo import DistrictIndex
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import DispatchWeights
from dispatch.notify.provider import Provider
from eventstore.access import AccessRecorder
from eventstore.leadership import Leadership
from eventstore.postgres import PostgresEventStore
from gateway.nonces import NonceBook
from gateway.presence_board import PresenceBoard
from gateway.ratelimit import RejectionLimits
from gateway.settings import Settings

if TYPE_CHECKING:
    from eventstore.subscriptions import Change

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Metrics:
    """Prometheus metrics of one process (own registry, so tests can build many apps)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    requests: Counter = field(init=False)
    latency: Histogram = field(init=False)
    events_appended: Counter = field(init=False)
    rejected_inputs: Counter = field(init=False)
    projection_lag: Gauge = field(init=False)
    dropped_inputs: Counter = field(init=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "intake_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "intake_http_request_seconds", "HTTP request latency", ["route"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.events_appended = Counter(
            "intake_channel_events", "Inbound channel events committed", ["channel"], registry=r
        )
        self.rejected_inputs = Counter(
            "intake_rejected_inputs", "Inbound inputs rejected", ["channel", "code"], registry=r
        )
        self.dropped_inputs = Counter(
            "intake_dropped_inputs",
            "Inbound inputs refused or dropped without an InputRejected record (noise, floods, "
            "no valid token, refused after parsing)",
            ["channel", "reason"], registry=r,
        )
        self.projection_lag = Gauge(
            "intake_projection_lag_seconds",
            "Seconds a runner (projection or policy) of this worker is behind the log: the age of "
            "the newest event its last step read, 0 when caught up or holding no partition", ["name"],
            registry=r,
        )


@dataclass(slots=True)
class Services:
    """Everything a handler, view or worker of this process may need.

    It satisfies the dependency Protocol of every capability (`dispatch.core.capability.Deps`
    and its extensions). The shared resources at the end are made by the process's
    listeners and views as they start (None until then); a test may set them.
    """

    settings: Settings
    pool: asyncpg.Pool
    store: PostgresEventStore
    clock: Clock
    bus: MessageBus
    redis: aioredis.Redis | None
    metrics: Metrics
    leadership: Leadership
    notify_providers: Mapping[str, Provider]
    """Delivery providers by outbox channel (see gateway.notify)."""
    access: AccessRecorder
    """Who read the log, when (the audit API's reads; `eventstore/access.py`)."""
    provider_index: ProviderIndexHolder | None = None
    """The live provider index (the GIS listener loads it)."""
    districts: DistrictIndex | None = None
    """The district index (the GIS listener loads it)."""
    dispatch_weights: DispatchWeights | None = None
    """The weights nearest-provider answers are scored with."""
    presence: PresenceBoard | None = None
    """The agents' presence board (made on first use)."""
    elder_directory: ElderDirectory | None = None
    """An elder directory replacing the registry in PostgreSQL (tests)."""
    nonces: NonceBook | None = None
    """Nonces of signed channel requests seen recently (made on first use)."""
    rejection_limits: RejectionLimits = field(default_factory=RejectionLimits)
    """How many rejections of unauthenticated input are recorded (gateway.rejections)."""
    texts: Texts = CHINESE
    """The messages people are sent (SMS, WeChat), in `INTAKE_LANGUAGE`."""
    background: list[asyncio.Task[None]] = field(default_factory=list)
    """The background tasks running on these services (`bootstrap.run_background`): closing the
    services stops any still running first, so none reconnects a pool or client already closed."""

    def presence_board(self) -> PresenceBoard:
        """The process's presence board (made once, kept in `presence`)."""
        if self.presence is None:
            self.presence = PresenceBoard(self.redis, self.settings.stores.redis_prefix,
                                          self.settings.console.presence_ttl)
        return self.presence

    @property
    def changes_stream(self) -> str:
        """The Redis Stream keeping recent changes, so live views resume by stream id."""
        return f"{self.settings.stores.redis_prefix}changes:log"

    async def publish(self, changes: Sequence[Change]) -> None:
        """Fan projection changes out to live views; a Redis failure loses only liveness."""
        if not changes or self.redis is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for change in changes:
                    payload = json.dumps({"topic": change.topic, "data": change.data},
                                         ensure_ascii=False, default=str)
                    pipe.xadd(self.changes_stream, {"change": payload}, maxlen=10_000, approximate=True)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("publish_failed", error=str(exc), changes=len(changes))


SERVICES = web.AppKey("services", Services)
"""The app key under which the wired services live."""
