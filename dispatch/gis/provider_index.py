"""Keeps the in-process provider index and district index in step with the log.

At start the indexes are built from the reference read model and the
reference projection's checkpoint, read in one snapshot; then provider and
district events after that checkpoint are followed live. The indexes are
published on a `ReferenceIndexes` object (the process's services) for views
and policies.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Protocol

import asyncpg
import structlog

from dispatch.cases.read_model import busy_loads
from dispatch.core.capability import Deps, Task
from dispatch.core.messages import Json, JsonValue, from_recorded
from dispatch.gis.config import AutoDispatchConfig
from dispatch.gis.geo import DistrictIndex
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import DispatchWeights, Provider
from dispatch.gis.reference import ReferenceEvent, districts, providers
from eventstore import Checkpoint, RecordedEvent
from eventstore.postgres import PostgresEventStore, load_checkpoint_on
from eventstore.subscriptions import Follower, Step

log = structlog.get_logger(__name__)

POLL_INTERVAL = 1.0
_PAGE = 500
_CATEGORIES = frozenset({"provider", "district"})


def provider_from(item_id: str, props: Json, geometry: Mapping[str, JsonValue]) -> Provider:
    """The index's view of a provider reference item."""
    lon, lat = geometry["coordinates"][:2]
    return Provider(
        id=item_id,
        name=str(props["name"]),
        lat=float(lat),
        lon=float(lon),
        skills=frozenset(props.get("skills", ())),
        capacity=int(props["capacity"]),
        districts=frozenset(str(d) for d in props.get("districts", ())),
        available=bool(props.get("available", True)),
        district=props.get("district"),
        phone=str(props.get("phone", "")),
    )


def _district_feature(adcode: str, name: str, geometry: JsonValue) -> Json:
    return {"type": "Feature", "geometry": geometry,
            "properties": {"kind": "district", "adcode": adcode, "name": name}}


async def snapshot_reference(
    pool: asyncpg.Pool,
) -> tuple[list[Provider], list[Json], Checkpoint]:
    """Providers (with current loads), district features and the checkpoint they reflect."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        checkpoint = await load_checkpoint_on(conn, "reference")
        rows = await providers(conn)
        areas = await districts(conn)
        loads = await busy_loads(conn)
    indexed = [
        dataclasses.replace(provider_from(r.id, r.props, {"coordinates": [r.lon, r.lat]}),
                            load=loads.get(r.id, 0))
        for r in rows
    ]
    features = [_district_feature(r.adcode, r.name, r.geometry) for r in areas]
    return indexed, features, checkpoint


class ReferenceIndexes(Protocol):
    """Where the in-process indexes of reference data are published (None until loaded)."""

    provider_index: ProviderIndexHolder | None
    districts: DistrictIndex | None
    dispatch_weights: DispatchWeights | None


class DispatchSettings(Protocol):
    """The configuration section GIS reads."""

    @property
    def dispatch(self) -> AutoDispatchConfig:
        """Automatic dispatch: categories and skills, surge threshold, scoring weights."""
        ...


class GisDeps(Deps, ReferenceIndexes, Protocol):
    """What the GIS capability's hooks use: the common dependencies, the indexes, its settings."""

    @property
    def settings(self) -> DispatchSettings:
        """The configuration."""
        ...


class ReferenceFollower:
    """Loads the indexes, then applies provider and district events as they come."""

    def __init__(self, store: PostgresEventStore, indexes: ReferenceIndexes) -> None:
        self._store = store
        self._indexes = indexes
        self._districts: dict[str, Json] = {}

    async def start(self) -> Checkpoint:
        """Build both indexes from the read model; return where to follow from."""
        providers, districts, checkpoint = await snapshot_reference(self._store.pool)
        holder = await ProviderIndexHolder.create(providers)
        self._districts = {f["properties"]["adcode"]: f for f in districts}
        await self._rebuild_districts()
        # Published last: a lookup answered before the district index existed would
        # skip the served-district filter and name providers that do not serve there.
        self._indexes.provider_index = holder
        log.info("provider_index_loaded", providers=len(providers), districts=len(districts))
        return checkpoint

    async def _rebuild_districts(self) -> None:
        self._indexes.districts = await asyncio.to_thread(
            DistrictIndex.from_features, list(self._districts.values()))

    async def apply(self, event: RecordedEvent) -> None:
        """Apply one provider or district reference event."""
        evt = from_recorded(event)
        if not isinstance(evt, ReferenceEvent) or evt.geometry is None:
            return  # providers and districts always have a geometry (parse_feature checks)
        if evt.kind == "provider":
            holder = self._indexes.provider_index
            assert holder is not None, "start() publishes the index before events are applied"
            holder.upsert(provider_from(evt.id, evt.properties, evt.geometry))
        elif evt.kind == "district":
            self._districts[evt.id] = _district_feature(evt.id, evt.properties["name"], evt.geometry)
            await self._rebuild_districts()

    async def run(self) -> None:
        """Load, then follow the log forever (cancel to stop)."""
        after = await self.start()
        follower = Follower("provider-index", self._store.wakeup(_CATEGORIES), _PAGE, POLL_INTERVAL)

        async def step() -> Step:
            nonlocal after
            batch = await self._store.read_batch(after, limit=_PAGE, categories=_CATEGORIES)
            for checkpoint, event in batch.events:
                await self.apply(event)
                after = checkpoint
            return Step(len(batch.events), batch.pending)

        await follower.follow(step)


def listeners(deps: GisDeps) -> list[Task]:
    """The follower that keeps the indexes current (in the process that serves HTTP)."""
    if deps.dispatch_weights is None:
        deps.dispatch_weights = deps.settings.dispatch.weights
    return [ReferenceFollower(deps.store, deps).run]
