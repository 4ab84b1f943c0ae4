"""Automatic dispatch of fault cases to the nearest suitable provider, batch-wise in a surge.

A worker reads the dispatch queue from the `cases` read model (fault
categories with a location, waiting: accepted / classified / rejected) and
sends `DispatchCase` commands through the bus with the row's version as
`expected_version`, so a case changed meanwhile is skipped, never dispatched
twice. Priority-1 cases take the green channel: each gets its best provider
first, one by one. The rest: with at most `INTAKE_SURGE_THRESHOLD` (5) waiting,
each gets `ProviderSnapshot.best`; above it, `nearest_batch.assign_batch`
spreads them at minimum total cost. A rejected case is re-dispatched to the
best provider that has not rejected it. Categories and their skills:
`AutoDispatchConfig.skills`, from the table of `dispatch.gis.skills`
(`INTAKE_AUTO_DISPATCH=power_fault:power_repair,...`; `off` disables).

The provider index is the shared `ReferenceIndexes.provider_index` holder
(kept by `dispatch.gis.provider_index`); this worker re-syncs each provider's load
(its open cases) every 10 s and counts its own dispatches in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg
import structlog

from dispatch.cases.actions import DispatchCase
from dispatch.cases.read_model import busy_loads, waiting_located
from dispatch.cases.sla import green_channel
from dispatch.core.bus import Send
from dispatch.core.capability import Task
from dispatch.core.clock import Clock
from dispatch.core.errors import DispatchError
from dispatch.gis.batch import WaitingCase, assign_batch
from dispatch.gis.config import AutoDispatchConfig
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import DispatchWeights, ProviderSnapshot, StatusChange
from dispatch.gis.provider_index import GisDeps, ReferenceIndexes
from dispatch.gis.skills import need_of

log = structlog.get_logger(__name__)

ACTOR = "system:auto_dispatch"


async def sync_loads(pool: asyncpg.Pool, holder: ProviderIndexHolder) -> None:
    """Set every indexed provider's load to its number of open cases (dispatched..in progress)."""
    loads = await busy_loads(pool)
    ids = holder.snapshot.layout.positions
    holder.set_status(*(StatusChange(pid, load=loads.get(pid, 0)) for pid in ids))


@dataclass(frozen=True, slots=True)
class Waiting:
    """A queued case as the dispatcher sees it."""

    case: WaitingCase
    version: int
    rejected_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    """A decided dispatch."""

    waiting: Waiting
    provider_id: str
    distance_m: float
    score: float


def choose(
    snapshot: ProviderSnapshot, queue: Sequence[Waiting], weights: DispatchWeights,
    surge_threshold: int, k: int = 8,
) -> list[Choice]:
    """Pure: green channel and rejected cases one by one, the rest by best or batch."""
    singles = [w for w in queue if green_channel(w.case.priority) or w.rejected_by]
    single_ids = {w.case.case_id for w in singles}
    rest = [w for w in queue if w.case.case_id not in single_ids]
    if len(rest) <= surge_threshold:
        singles, rest = singles + rest, []
    choices: list[Choice] = []
    for w in singles:
        found = _best_excluding(snapshot, w, weights, k)
        if found is not None:
            choices.append(found)
            _, load = snapshot.status(found.provider_id)
            snapshot = snapshot.with_status([StatusChange(found.provider_id, load=load + 1)])
    by_id = {w.case.case_id: w for w in rest}
    result = assign_batch(snapshot, [w.case for w in rest], weights, k=k)
    choices += [Choice(by_id[a.case_id], a.provider_id, a.distance_m, a.score)
                for a in result.assignments]
    return choices


def _best_excluding(
    snapshot: ProviderSnapshot, w: Waiting, weights: DispatchWeights, k: int
) -> Choice | None:
    query = w.case.query(k + len(w.rejected_by))
    candidates = [c for c in snapshot.nearest(query, weights) if c.provider_id not in w.rejected_by]
    if not candidates:
        return None
    best = min(candidates, key=lambda c: c.score)
    return Choice(w, best.provider_id, best.distance_m, best.score)


def _preferred(category: str) -> frozenset[str]:
    need = need_of(category)
    return need.preferred if need is not None else frozenset()


async def waiting_cases(db: asyncpg.Pool, skills: Mapping[str, str], limit: int = 2000) -> list[Waiting]:
    """The queue of automatically dispatchable cases, most urgent first."""
    return [Waiting(WaitingCase(r.case_id, r.lat, r.lon, skills[r.category], r.district, r.priority,
                                _preferred(r.category)), r.version, r.rejected_by)
            for r in await waiting_located(db, skills, limit)]


class AutoDispatcher:
    """Worker: dispatches waiting fault cases (see the module doc)."""

    def __init__(
        self, pool: asyncpg.Pool, handle: Send, clock: Clock,
        indexes: ReferenceIndexes, config: AutoDispatchConfig, *, interval: float = 0.5,
        refresh: float = 10.0,
    ) -> None:
        self._pool, self._handle, self._clock, self._indexes = pool, handle, clock, indexes
        self._skills = config.skills
        self._weights = config.weights
        self._surge = config.surge_threshold
        self._interval, self._refresh = interval, refresh

    async def run_once(self) -> int:
        """Dispatch what can be dispatched now; the number of cases dispatched."""
        if not self._skills:
            return 0
        holder = self._holder()
        queue = await waiting_cases(self._pool, self._skills) if holder is not None else []
        if holder is None or not queue:
            return 0
        snapshot = holder.snapshot
        choices = await asyncio.to_thread(choose, snapshot, queue, self._weights, self._surge)
        sent = 0
        for c in choices:
            sent += await self._send(c)
        if len(queue) > self._surge:
            log.info("surge_batch", waiting=len(queue), dispatched=sent)
        return sent

    async def _send(self, c: Choice) -> int:
        case_id = c.waiting.case.case_id
        try:
            await self._handle(DispatchCase(
                case_id=case_id, expected_version=c.waiting.version, actor=ACTOR, to=c.provider_id,
                kind="provider", auto=True, distance_m=round(c.distance_m, 1), score=round(c.score, 4),
                idempotency_key=f"auto-dispatch:{case_id}:{c.waiting.version}"))
        except DispatchError as exc:  # changed meanwhile (409): the next pass sees it afresh
            log.info("auto_dispatch_skipped", case_id=case_id, reason=str(exc))
            return 0
        holder = self._holder()
        if holder is not None:
            _, load = holder.snapshot.status(c.provider_id)
            holder.set_status(StatusChange(c.provider_id, load=load + 1))
        return 1

    def _holder(self) -> ProviderIndexHolder | None:
        return self._indexes.provider_index

    async def run(self) -> None:
        """Refresh the provider index every `refresh` seconds and dispatch every `interval`."""
        loop = asyncio.get_running_loop()
        synced = -float("inf")
        while True:
            holder = self._holder()
            if holder is not None and loop.time() - synced >= self._refresh:
                await sync_loads(self._pool, holder)
                synced = loop.time()
            await self.run_once()
            await asyncio.sleep(self._interval)


def workers(deps: GisDeps) -> list[Task]:
    """The automatic dispatcher."""
    return [AutoDispatcher(deps.pool, deps.bus.handle, deps.clock, deps, deps.settings.dispatch).run]

