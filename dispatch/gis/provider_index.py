"""Keeps the in-process provider index and district index in step with the log.

At start the indexes are built from the reference read model and the
reference projection's checkpoint, read in one snapshot; then provider and
district events after that checkpoint are followed live. The holders are
published in `services.extras` (`provider_index`, `districts`,
`dispatch_weights`) for views and policies.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import structlog

from dispatch.gis.geo import DistrictIndex
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import Provider
from eventstore import Checkpoint, RecordedEvent
from eventstore.postgres import PostgresEventStore, load_checkpoint_on
from eventstore.subscriptions import Follower, Step

log = structlog.get_logger(__name__)

POLL_INTERVAL = 1.0
_PAGE = 500
_CATEGORIES = frozenset({"provider", "district"})
_ACTIVE = ("dispatched", "confirmed", "in_progress")


def provider_from(item_id: str, props: Mapping[str, Any], geometry: Mapping[str, Any]) -> Provider:
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


def _district_feature(adcode: str, name: str, geometry: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry,
            "properties": {"kind": "district", "adcode": adcode, "name": name}}


async def _loads(conn: asyncpg.Connection) -> dict[str, int]:
    exists = await conn.fetchval("SELECT to_regclass('cases') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch(
        "SELECT assigned_to, count(*) AS n FROM cases WHERE assigned_to IS NOT NULL "
        "AND status = ANY($1::text[]) GROUP BY assigned_to", list(_ACTIVE))
    return {r["assigned_to"]: int(r["n"]) for r in rows}


async def snapshot_reference(
    pool: asyncpg.Pool,
) -> tuple[list[Provider], list[dict[str, Any]], Checkpoint]:
    """Providers (with current loads), district features and the checkpoint they reflect."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        checkpoint = await load_checkpoint_on(conn, "reference")
        rows = await conn.fetch("SELECT id, props, lat, lon FROM ref_providers")
        districts = await conn.fetch("SELECT adcode, name, geometry FROM ref_districts")
        loads = await _loads(conn)
    providers = [
        dataclasses.replace(
            provider_from(r["id"], r["props"], {"coordinates": [r["lon"], r["lat"]]}),
            load=loads.get(r["id"], 0),
        )
        for r in rows
    ]
    features = [_district_feature(r["adcode"], r["name"], r["geometry"]) for r in districts]
    return providers, features, checkpoint


class ReferenceFollower:
    """Loads the indexes, then applies provider and district events as they come."""

    def __init__(self, store: PostgresEventStore, extras: dict[str, Any]) -> None:
        self._store = store
        self._extras = extras
        self._districts: dict[str, dict[str, Any]] = {}

    async def start(self) -> Checkpoint:
        """Build both indexes from the read model; return where to follow from."""
        providers, districts, checkpoint = await snapshot_reference(self._store.pool)
        holder = await ProviderIndexHolder.create(providers)
        self._districts = {f["properties"]["adcode"]: f for f in districts}
        await self._rebuild_districts()
        # Published last: a lookup answered before the district index existed would
        # skip the served-district filter and name providers that do not serve there.
        self._extras["provider_index"] = holder
        log.info("provider_index_loaded", providers=len(providers), districts=len(districts))
        return checkpoint

    async def _rebuild_districts(self) -> None:
        self._extras["districts"] = await asyncio.to_thread(
            DistrictIndex.from_features, list(self._districts.values()))

    async def apply(self, event: RecordedEvent) -> None:
        """Apply one provider or district reference event."""
        if event.type not in ("ReferenceRecorded", "ReferenceUpdated"):
            return
        data = event.data
        if data["kind"] == "provider":
            holder: ProviderIndexHolder = self._extras["provider_index"]
            holder.upsert(provider_from(data["id"], data["properties"], data["geometry"]))
        elif data["kind"] == "district":
            self._districts[data["id"]] = _district_feature(
                data["id"], data["properties"]["name"], data["geometry"])
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


def workers(services: Any) -> list[Callable[[], Awaitable[None]]]:
    """The follower that keeps the indexes current (bootstrap hook)."""
    services.extras.setdefault("dispatch_weights", services.settings.dispatch.weights)
    return [ReferenceFollower(services.store, services.extras).run]
