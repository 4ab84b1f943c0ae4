"""The linking policy: on each new case, link duplicates and gather outages into incidents.

A reactor over `case-` and `incident-` streams. For a `CaseRegistered` (and
for a `CaseLocated`: a case that came with an address only is judged again
once the gazetteer, or an agent, gives it a place; for a `CallerPhoneGiven`: a
WeChat follower's case once it has a phone number) it asks
its candidate read model (`link_candidates`, its own table, kept in log order
by this policy alone, so every decision sees exactly the cases before it)
for recent cases of the category in a bounding box (GiST index) or from the
same caller, runs the pure `duplicates.decide`, and sends `LinkCases` and the
incident commands with idempotency keys derived from the event. The benchmark
(`bench/linking.py`) drives the same `decide_for` over `MemoryCandidates`.

The candidates are working state, not a source of truth: `intake rebuild
linking` (`ReactorRunner.rebuild`) refolds them from the recorded events
through `recall`, deciding and sending nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Protocol

import asyncpg
import structlog

from dispatch.cases.events import CaseRegistered
from dispatch.cases.read_model import not_finished_sql
from dispatch.cases.state import case_stream, load_case
from dispatch.cases.status import DONE
from dispatch.core.bus import Send
from dispatch.core.capability import Deps
from dispatch.core.errors import DispatchError
from dispatch.core.messages import from_data
from dispatch.linking.clustering import (
    CaseSketch,
    Decision,
    LinkCases,
    LinkParams,
    Match,
    UnlinkCases,
    bbox,
    decide,
    score_candidates,
    window,
)
from dispatch.linking.incidents import (
    AddCaseToIncident,
    IncidentBroadcast,
    IncidentState,
    MergeIncidents,
    OpenIncident,
    load_incident,
)
from eventstore import EventStore, RecordedEvent
from eventstore.subscriptions import Reactor

log = structlog.get_logger(__name__)

ACTOR = "policy:linking"
PRUNE_EVERY = 500

class CandidateSource(Protocol):
    """The candidate read model: `MemoryCandidates` (tests, bench) or `PgCandidates`."""

    async def candidates(self, new: CaseSketch) -> list[CaseSketch]:
        """Recent cases of the category in the bounding box, or from the same caller."""
        ...

    async def remember(self, sketch: CaseSketch) -> None:
        """Add a case (a repeat keeps its incident)."""
        ...

    async def assign(self, case_ids: Sequence[str], incident_id: str | None) -> None:
        """Record the incident of cases (None releases them)."""
        ...

    async def places(self, incident_ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """The mean place of each incident's located cases (`duplicates.Places`)."""
        ...

    async def move(self, incident_id: str, to: str | None) -> None:
        """Move an incident's cases to another (merged), or free them (None: resolved)."""
        ...

    async def recategorise(self, case_id: str, category: str) -> None:
        """A case's category changed (reclassified)."""
        ...

    async def relocate(self, case_id: str, lat: float, lon: float, district: str | None) -> None:
        """A case's place was found or corrected after registration."""
        ...

    async def rephone(self, case_id: str, phone: str) -> None:
        """A case's caller gave a phone number after registration (a WeChat follower)."""
        ...

    async def clear(self) -> None:
        """Forget every case (before a rebuild)."""
        ...


# incident_at: the time of the incident's seed case (`duplicates.seed_case_of`: 'C' + the id's tail).
_CANDIDATES = f"""
SELECT case_id, category, at, lat, lon, district, phone, openid, incident_id,
       (SELECT s.at FROM link_candidates s WHERE s.case_id = 'C' || substr(l.incident_id, 2)) AS incident_at
  FROM link_candidates l
 WHERE case_id <> $1 AND category = $2
   AND ((pt <@ box(point($4, $3), point($6, $5))
        AND (at BETWEEN $7 AND $8 OR (incident_id IS NOT NULL AND at BETWEEN $11 AND $12)))
        OR ((phone = $9 OR openid = $10) AND at BETWEEN $11 AND $12))
   AND {not_finished_sql("l.case_id")}
 ORDER BY at DESC, case_id DESC LIMIT $13"""
_REMEMBER = """
INSERT INTO link_candidates (case_id, category, at, lat, lon, district, phone, openid)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (case_id) DO UPDATE SET category = $2, at = $3, lat = $4, lon = $5, district = $6,
    phone = $7, openid = $8"""


class PgCandidates:
    """The candidate read model in PostgreSQL (`link_candidates`, migration 0400)."""

    def __init__(self, pool: asyncpg.Pool, params: LinkParams) -> None:
        self._pool = pool
        self._params = params
        self._inserted = 0

    async def candidates(self, new: CaseSketch) -> list[CaseSketch]:
        """See `CandidateSource.candidates` (same filter as `MemoryCandidates`)."""
        p = self._params
        box: tuple[float | None, ...] = (None, None, None, None)
        if new.lat is not None and new.lon is not None:
            box = bbox(new.lat, new.lon, p.radius_m)
        near, caller = timedelta(minutes=p.window_min), timedelta(minutes=p.caller_window_min)
        rows = await self._pool.fetch(
            _CANDIDATES, new.case_id, new.category, *box, new.at - near, new.at + near,
            new.phone, new.openid, new.at - caller, new.at + caller, p.max_candidates,
        )
        return [CaseSketch(**dict(r)) for r in rows]

    async def remember(self, sketch: CaseSketch) -> None:
        """See `CandidateSource.remember`; now and then drops cases older than every window."""
        await self._pool.execute(_REMEMBER, sketch.case_id, sketch.category, sketch.at, sketch.lat,
                                 sketch.lon, sketch.district, sketch.phone, sketch.openid)
        self._inserted += 1
        if self._inserted % PRUNE_EVERY == 0:
            horizon = sketch.at - 2 * window(self._params)
            await self._pool.execute("DELETE FROM link_candidates WHERE at < $1", horizon)

    async def assign(self, case_ids: Sequence[str], incident_id: str | None) -> None:
        """See `CandidateSource.assign`."""
        await self._pool.execute("UPDATE link_candidates SET incident_id = $2 WHERE case_id = ANY($1)",
                                 list(case_ids), incident_id)

    async def places(self, incident_ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """See `CandidateSource.places`."""
        rows = await self._pool.fetch(
            "SELECT incident_id, avg(lat) AS lat, avg(lon) AS lon FROM link_candidates "
            "WHERE incident_id = ANY($1) AND lat IS NOT NULL AND lon IS NOT NULL GROUP BY incident_id",
            list(incident_ids))
        return {r["incident_id"]: (r["lat"], r["lon"]) for r in rows}

    async def move(self, incident_id: str, to: str | None) -> None:
        """See `CandidateSource.move`."""
        await self._pool.execute("UPDATE link_candidates SET incident_id = $2 WHERE incident_id = $1",
                                 incident_id, to)

    async def recategorise(self, case_id: str, category: str) -> None:
        """See `CandidateSource.recategorise`."""
        await self._pool.execute("UPDATE link_candidates SET category = $2 WHERE case_id = $1",
                                 case_id, category)

    async def relocate(self, case_id: str, lat: float, lon: float, district: str | None) -> None:
        """See `CandidateSource.relocate`."""
        await self._pool.execute(
            "UPDATE link_candidates SET lat = $2, lon = $3, district = $4 WHERE case_id = $1",
            case_id, lat, lon, district)

    async def rephone(self, case_id: str, phone: str) -> None:
        """See `CandidateSource.rephone`."""
        await self._pool.execute("UPDATE link_candidates SET phone = $2 WHERE case_id = $1", case_id, phone)

    async def clear(self) -> None:
        """See `CandidateSource.clear`."""
        await self._pool.execute("TRUNCATE link_candidates")
        self._inserted = 0


async def likely_duplicates(source: CandidateSource, sketch: CaseSketch, params: LinkParams) -> list[Match]:
    """The cases a case about to be registered would be linked with (same caller, same place; the
    policy's own candidates and scores), best first; nothing is remembered or sent."""
    return score_candidates(sketch, await source.candidates(sketch), params)


async def unlinked_from(store: EventStore, case_id: str) -> frozenset[str]:
    """The cases once unlinked from this one (by a person, or reclassified): an unlink sticks,
    the policy judging the case again (a new place) never links such a pair again."""
    return frozenset(str(r.data["other_case_id"]) for r in await store.read_stream(case_stream(case_id))
                     if r.type == "CaseUnlinked")


class LinkingPolicy:
    """Reactor: link each new case to its duplicates and grow incidents (see the module)."""

    name = "linking"
    categories: frozenset[str] | None = frozenset({"case", "incident"})
    types = frozenset({"CaseRegistered", "CaseClassified", "CaseLocated", "CallerPhoneGiven",
                       "CaseAddedToIncident", "IncidentResolved"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""
    partitions = 1
    """Global (eventstore/partitions.py): the cases of one outage are on different streams, and each
    decision must see every case before it in log order, so one incident is opened per outage."""

    def __init__(self, source: CandidateSource, params: LinkParams, *, store: EventStore | None = None,
                 send: Send | None = None) -> None:
        self.source = source
        self.params = params
        self._store = store
        self._send = send

    async def decide_for(self, sketch: CaseSketch) -> Decision:
        """Decide for a new case against the cases before it, and remember it (the shared path)."""
        candidates = await self.source.candidates(sketch)
        incidents = {c.incident_id for c in candidates if c.incident_id}
        places = await self.source.places(incidents) if incidents else {}
        decision = decide(sketch, candidates, self.params, places)
        await self.source.remember(sketch)
        step = decision.incident
        if step is not None:
            for younger in step.absorbed:
                await self.source.move(younger, step.incident_id)
            await self.source.assign(step.case_ids, step.incident_id)
        return decision

    async def react(self, event: RecordedEvent) -> None:
        """Handle the events this policy follows; ignore the rest."""
        if event.type == "CaseRegistered":
            await self._registered(event)
            return
        await self.recall(event, True)
        if event.type == "CaseClassified":
            await self._reclassified(event)
        elif event.type == "CaseLocated":
            await self._judge_again(event, need_place=True)
        elif event.type == "CallerPhoneGiven":
            await self._judge_again(event, need_place=False)

    async def recall(self, event: RecordedEvent, reacted: bool) -> None:
        """Fold a recorded event into the candidates; decide and send nothing (see `Recalling`).

        After the checkpoint only incident memberships count: `decide_for` noted
        those its decisions caused before their events were written. A merge moves
        the absorbed cases by their `CaseAddedToIncident` on the survivor's stream.
        """
        data = event.data
        if event.type == "CaseAddedToIncident" and event.category == "incident":
            await self.source.assign([data["case_id"]], data["incident_id"])
        elif not reacted:
            return
        elif event.type == "CaseRegistered":
            await self.source.remember(CaseSketch.of(from_data(CaseRegistered, data)))
        elif event.type == "IncidentResolved":
            await self.source.move(data["incident_id"], None)
        elif event.type == "CaseClassified":
            await self.source.recategorise(data["case_id"], data["category"])
        elif event.type == "CaseLocated":
            where = data["location"]
            await self.source.relocate(data["case_id"], where["lat"], where["lon"], where.get("district"))
        elif event.type == "CallerPhoneGiven":
            await self.source.rephone(data["case_id"], data["phone"])

    async def forget(self) -> None:
        """Drop the candidates (a rebuild recalls them from the log)."""
        await self.source.clear()

    async def _registered(self, event: RecordedEvent) -> None:
        await self._decide_and_send(CaseSketch.of(from_data(CaseRegistered, event.data)), event)

    async def _judge_again(self, event: RecordedEvent, *, need_place: bool) -> None:
        """A case placed after registration (`CaseLocated`), or whose caller gave a phone number
        after it (`CallerPhoneGiven`: a WeChat follower), is judged as a new case with that place
        and number would be, unless it already belongs to an incident or is finished."""
        if self._store is None:
            return
        case = await load_case(self._store, event.data["case_id"])
        place = case.location
        if place is None and need_place:
            return
        if case.incident_id is not None or case.accepted_at is None or case.status in DONE:
            return
        await self._decide_and_send(CaseSketch(
            case.case_id, case.category, case.accepted_at, place.lat if place else None,
            place.lon if place else None, place.district if place else None,
            case.caller.phone or None, case.caller.openid or None), event,
            await unlinked_from(self._store, case.case_id))

    async def _decide_and_send(self, sketch: CaseSketch, event: RecordedEvent,
                               separated: frozenset[str] = frozenset()) -> None:
        """Decide and send; `separated`: cases once unlinked from this one, never linked again."""
        decision = await self.decide_for(sketch)
        key = f"{self.name}:{event.position}"
        for match in decision.links:
            if match.case_id in separated:
                continue
            await self._command(LinkCases(sketch.case_id, match.case_id, None, match.reason, ACTOR,
                                          match.score, f"{key}:{match.case_id}"))
        step = decision.incident
        if step is None:
            return
        if step.open:
            opened = OpenIncident(step.incident_id, step.district, step.category, step.case_ids, step.lat,
                                  step.lon, f"{key}:incident", ACTOR, self.params.incident_min_cases)
            done, state = await self._command(opened)
            if not done or isinstance(state, IncidentState):  # the cases the incident refused are free
                kept = state.case_ids if isinstance(state, IncidentState) else []
                await self.source.assign([c for c in step.case_ids if c not in kept], None)
            return
        done, _ = await self._command(AddCaseToIncident(step.incident_id, sketch.case_id, f"{key}:incident",
                                                        ACTOR))
        if not done:
            await self.source.assign([sketch.case_id], None)
        for younger in step.absorbed:
            done, _ = await self._command(MergeIncidents(step.incident_id, younger, f"{key}:merge:{younger}",
                                                         ACTOR))
            if not done:
                await self._unmerged(younger)

    async def _unmerged(self, incident_id: str) -> None:
        """A refused merge: the candidates follow the events again (the cases stay where they are)."""
        if self._store is None:
            return
        state = await load_incident(self._store, incident_id)
        await self.source.assign(state.case_ids, incident_id if state.status == "open" else None)

    async def _reclassified(self, event: RecordedEvent) -> None:
        """Links never cross categories: a reclassified case is unlinked from the old category."""
        if self._store is None:
            return
        case = await load_case(self._store, event.data["case_id"])
        for other_id in case.linked_case_ids:
            other = await load_case(self._store, other_id)
            if other.category != case.category:
                await self._command(UnlinkCases(case.case_id, other_id, None, "reclassified", ACTOR,
                                                f"{self.name}:{event.position}:{other_id}"))

    async def _command(self, command: object) -> tuple[bool, object]:
        """Send a command: whether it was done, and its result (None without a bus).

        A refusal is logged (the policy moves on), other errors propagate.
        """
        if self._send is None:
            return True, None
        try:
            return True, await self._send(command)
        except DispatchError as exc:
            log.warning("linking_command_refused", command=type(command).__name__, error=str(exc))
            return False, None


class LinkingSettings(Protocol):
    """The configuration section linking reads."""

    @property
    def linking(self) -> LinkParams:
        """Radii, windows and thresholds of linking and incidents."""
        ...


class LinkingDeps(Deps, Protocol):
    """What the linking capability's hooks use: the common dependencies and its settings."""

    @property
    def settings(self) -> LinkingSettings:
        """The configuration."""
        ...


def reactors(deps: LinkingDeps) -> list[Reactor]:
    """The linking policy and the incident broadcast."""
    params = deps.settings.linking
    send: Send = deps.bus.handle
    return [
        LinkingPolicy(PgCandidates(deps.pool, params), params, store=deps.store, send=send),
        IncidentBroadcast(deps.store, send, deps.texts),
    ]
