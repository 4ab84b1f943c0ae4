"""Locating cases that came with an address and no coordinates, and correcting a place by hand.

`LocateCase` records `CaseLocated` on the case's stream: the cases read model,
automatic dispatch and the linking policy read the place from it as they read
a place given at registration. `AddressLocator` is the reactor that sends it:
for each `CaseRegistered` without a location it matches the address (else the
description: an SMS or WeChat text) against the gazetteer; a match records
`source: gazetteer` with the place, its score and the words that named it; no
clear match records nothing and the case waits for an agent, who may set or
correct the place (`source: agent`, `POST /api/v1/cases/{case_id}/location`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import structlog

from dispatch.cases.events import LOCATION_SOURCES, CaseLocated, MatchedPlace, Place
from dispatch.cases.state import CaseState, case_stream, fold, load_case
from dispatch.core.bus import Handler, Send
from dispatch.core.capability import Deps
from dispatch.core.clock import Clock
from dispatch.core.errors import DispatchError, InvalidCommand, StaleVersion
from dispatch.core.messages import Command, metadata, to_new_event
from dispatch.gis.reference import PlaceRow, gazetteer_state, places
from dispatch.places.gazetteer import Gazetteer, GazetteerEntry, MatchParams, PlaceMatch
from eventstore import EventStore, RecordedEvent, WrongExpectedVersion

log = structlog.get_logger(__name__)

ACTOR = "policy:places"
NOISE = ("中国", "陕西省", "陕西", "咸阳市", "咸阳")
"""Province and city words that narrow nothing inside the demo city (the districts do)."""


@dataclass(frozen=True, slots=True)
class LocateCase(Command):
    """Give a case its place: from the gazetteer (only while it has none) or from an agent."""

    case_id: str
    location: Place
    source: str
    place: MatchedPlace | None = None
    expected_version: int | None = None
    actor: str | None = None
    idempotency_key: str | None = None


async def locate_case(cmd: LocateCase, *, store: EventStore, clock: Clock) -> CaseState:
    """Record `CaseLocated`; a gazetteer match for a case that has a place meanwhile changes nothing."""
    if cmd.source not in LOCATION_SOURCES[1:]:
        raise InvalidCommand("source must be gazetteer or agent", field="source")
    state = await load_case(store, cmd.case_id)
    if cmd.expected_version is not None and state.version != cmd.expected_version:
        raise StaleVersion(case_stream(cmd.case_id), cmd.expected_version, state.version)
    if cmd.source == "gazetteer" and state.location is not None:
        return state
    evt = CaseLocated(cmd.case_id, cmd.location, cmd.source, clock.now(), cmd.place, cmd.actor)
    meta = metadata(actor=cmd.actor, correlation_id=cmd.case_id)
    try:
        await store.append(case_stream(cmd.case_id), [to_new_event(evt, meta, subject=state.subject)],
                           state.version,
                           idempotency_key=cmd.idempotency_key)
    except WrongExpectedVersion as exc:
        raise StaleVersion(case_stream(cmd.case_id), state.version, exc.actual) from exc
    return fold(cmd.case_id, await store.read_stream(case_stream(cmd.case_id)))


HANDLERS: dict[type[Command], Handler] = {LocateCase: locate_case}


def location_of(match: PlaceMatch, district_names: dict[str, str]) -> tuple[Place, MatchedPlace]:
    """The case place and the recorded match of a gazetteer match."""
    e = match.entry
    district_name = e.district_name or (district_names.get(e.district) if e.district else None)
    return (Place(round(e.lat, 6), round(e.lon, 6), e.district, district_name),
            MatchedPlace(e.id, e.name, e.type, match.score, match.matched))


def _entry(row: PlaceRow, names: dict[str, str]) -> GazetteerEntry:
    """A loaded place as the matcher knows it; a district given by its name becomes its adcode."""
    codes = {name: code for code, name in names.items()}
    district = codes.get(row.district or "", row.district)
    return GazetteerEntry(row.id, row.name, row.type or "", district, names.get(district or ""), row.lat,
                          row.lon, row.aliases)


class GazetteerCache:
    """The matcher over the loaded places, rebuilt (in a thread) when the places or districts change."""

    def __init__(self, pool: asyncpg.Pool, params: MatchParams | None = None) -> None:
        self._pool, self._params = pool, params or MatchParams()
        self._version = -1
        self._gazetteer: Gazetteer | None = None
        self.district_names: dict[str, str] = {}

    async def current(self) -> Gazetteer | None:
        """The matcher over the places loaded now, or None when there are none."""
        version, names = await gazetteer_state(self._pool)
        if version != self._version or names != self.district_names:
            entries = [_entry(row, names) for row in await places(self._pool)]
            self._gazetteer = (await asyncio.to_thread(Gazetteer, entries, names, NOISE, self._params)
                               if entries else None)
            self.district_names, self._version = names, version
        return self._gazetteer


class AddressLocator:
    """Reactor: locates each case registered with an address text and no coordinates."""

    name = "places"
    categories: frozenset[str] | None = frozenset({"case"})
    types = frozenset({"CaseRegistered"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""

    def __init__(self, cache: GazetteerCache, send: Send) -> None:
        self._cache, self._send = cache, send

    async def react(self, event: RecordedEvent) -> None:
        """Match the address (else the description) of an unlocated new case; send `LocateCase`."""
        await self.react_batch([event])

    async def react_batch(self, events: Sequence[RecordedEvent]) -> None:
        """`react` on each, with the gazetteer's version read once for the batch (a `BatchReactor`):
        a storm's cases cost one reference query per runner step, not one each."""
        wanted = [(event, texts) for event in events if (texts := _texts(event))]
        gazetteer = await self._cache.current() if wanted else None
        if gazetteer is None:
            return
        for event, texts in wanted:
            await self._locate(gazetteer, event, texts)

    async def _locate(self, gazetteer: Gazetteer, event: RecordedEvent, texts: list[str]) -> None:
        data = event.data
        match = None
        for text in texts:
            match = await asyncio.to_thread(gazetteer.locate, text)
            if match is not None:
                break
        if match is None:
            log.info("address_not_located", case_id=data["case_id"])
            return
        location, place = location_of(match, self._cache.district_names)
        try:
            await self._send(LocateCase(data["case_id"], location, "gazetteer", place, actor=ACTOR,
                                        idempotency_key=f"{self.name}:{event.position}"))
        except DispatchError as exc:  # changed meanwhile: the case's own events decide
            log.info("locate_refused", case_id=data["case_id"], error=str(exc))


def _texts(event: RecordedEvent) -> list[str]:
    """What to match of a new case without coordinates: its address, else its description."""
    data = event.data
    if event.type != "CaseRegistered" or data.get("location") is not None:
        return []
    return [t for t in (data.get("address"), data.get("description")) if isinstance(t, str) and t]


def reactors(deps: Deps) -> list[AddressLocator]:
    """The address locator."""
    return [AddressLocator(GazetteerCache(deps.pool), deps.bus.handle)]
