"""Incidents: the cases of one district outage, gathered in one stream `incident-<id>`.

An incident is opened by the linking policy when power-fault or voltage cases
in one district form a dense space-time cluster; later linked cases join it.
A dispatcher records its cause and expected restoration time, and every caller
of the incident is told once per revision through the notifications outbox, so
they need not call again; callers who join later are told the current cause.
Membership is recorded on both streams (`CaseAddedToIncident`), like links.

Two incidents that turn out to be one outage are merged: the younger records
`IncidentMerged` (it takes no more cases and no cause), the survivor records
`IncidentAbsorbed` and a `CaseAddedToIncident` (with `merged_from`) for each
of the absorbed incident's cases, on both streams - so its callers hear the
survivor's cause like any late joiner.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from dispatch.cases.events import CaseAddedToIncident
from dispatch.cases.state import CaseState, case_stream, load_case
from dispatch.core.bus import Handler, Send
from dispatch.core.clock import Clock
from dispatch.core.errors import DispatchError, InvalidCommand, NotAllowed, NotFound, StaleVersion
from dispatch.core.messages import Command, Event, Json, event, from_recorded, metadata, to_new_event
from dispatch.core.texts import CHINESE, Texts
from eventstore import NO_STREAM, EventStore, RecordedEvent, WrongExpectedVersion

log = structlog.get_logger(__name__)

MAX_CAUSE = 200
LOCAL_TIME = ZoneInfo("Asia/Shanghai")


def incident_stream(incident_id: str) -> str:
    """The stream name of an incident."""
    return f"incident-{incident_id}"


@event
@dataclass(frozen=True, slots=True)
class IncidentOpened(Event):
    """A dense cluster of cases in one district became an incident."""

    incident_id: str
    district: str
    category: str
    opened_at: datetime
    lat: float | None = None
    lon: float | None = None
    seed_case_id: str | None = None


@event
@dataclass(frozen=True, slots=True)
class IncidentCauseSet(Event):
    """The known cause and expected restoration time; `revision` counts from 1."""

    incident_id: str
    cause: str
    expected_restoration_at: datetime
    revision: int
    set_at: datetime


@event
@dataclass(frozen=True, slots=True)
class IncidentResolved(Event):
    """The outage is over; new cases no longer join this incident."""

    incident_id: str
    resolved_at: datetime
    note: str = ""


@event
@dataclass(frozen=True, slots=True)
class IncidentMerged(Event):
    """This incident is part of `into_incident_id`: its cases moved there, it takes no new ones."""

    incident_id: str
    into_incident_id: str
    merged_at: datetime


@event
@dataclass(frozen=True, slots=True)
class IncidentAbsorbed(Event):
    """The survivor's side of a merge: `absorbed_incident_id`'s cases join this incident."""

    incident_id: str
    absorbed_incident_id: str
    absorbed_at: datetime


@dataclass(slots=True)
class IncidentState:
    """An incident folded from its stream."""

    incident_id: str
    version: int = -1
    status: str = "new"
    district: str = ""
    category: str = ""
    opened_at: datetime | None = None
    lat: float | None = None
    lon: float | None = None
    case_ids: list[str] = field(default_factory=list)
    cause: str | None = None
    expected_restoration_at: datetime | None = None
    cause_revision: int = 0
    resolved_at: datetime | None = None
    merged_into: str | None = None
    merged_from: list[str] = field(default_factory=list)

    def apply(self, evt: Event, version: int) -> None:
        """Fold one event into the state."""
        self.version = version
        if isinstance(evt, IncidentOpened):
            self.status, self.district, self.category = "open", evt.district, evt.category
            self.opened_at, self.lat, self.lon = evt.opened_at, evt.lat, evt.lon
        elif isinstance(evt, CaseAddedToIncident) and evt.case_id not in self.case_ids:
            self.case_ids.append(evt.case_id)
        elif isinstance(evt, IncidentCauseSet):
            self.cause, self.expected_restoration_at = evt.cause, evt.expected_restoration_at
            self.cause_revision = evt.revision
        elif isinstance(evt, IncidentResolved):
            self.status, self.resolved_at = "resolved", evt.resolved_at
        elif isinstance(evt, IncidentMerged):
            self.status, self.merged_into = "merged", evt.into_incident_id
        elif isinstance(evt, IncidentAbsorbed) and evt.absorbed_incident_id not in self.merged_from:
            self.merged_from.append(evt.absorbed_incident_id)

    def as_json(self) -> Json:
        """The API shape of an incident."""
        return {
            "incident_id": self.incident_id, "status": self.status, "category": self.category,
            "district": self.district, "opened_at": self.opened_at, "lat": self.lat, "lon": self.lon,
            "case_ids": list(self.case_ids), "case_count": len(self.case_ids), "cause": self.cause,
            "expected_restoration_at": self.expected_restoration_at,
            "cause_revision": self.cause_revision, "resolved_at": self.resolved_at,
            "merged_into": self.merged_into, "merged_from": list(self.merged_from), "version": self.version,
        }


async def load_incident(store: EventStore, incident_id: str) -> IncidentState:
    """Read and fold an incident; raise `NotFound` if it has no events."""
    state = IncidentState(incident_id)
    for record in await store.read_stream(incident_stream(incident_id)):
        evt = from_recorded(record)
        if evt is not None:
            state.apply(evt, record.version)
    if state.version < 0:
        raise NotFound(f"incident {incident_id} not found")
    return state


@dataclass(frozen=True, slots=True)
class OpenIncident(Command):
    """Open an incident with its first cases (sent by the linking policy).

    `min_cases`: refused unless at least that many of the cases are free to join it (a case
    of a resolved incident, reclassified or in another incident is not).
    """

    incident_id: str
    district: str
    category: str
    case_ids: tuple[str, ...]
    lat: float | None = None
    lon: float | None = None
    idempotency_key: str | None = None
    actor: str | None = None
    min_cases: int = 1


@dataclass(frozen=True, slots=True)
class AddCaseToIncident(Command):
    """Add a case to an open incident of its category."""

    incident_id: str
    case_id: str
    idempotency_key: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class MergeIncidents(Command):
    """Merge `absorbed_id` into the older open incident `incident_id` (sent by the linking policy)."""

    incident_id: str
    absorbed_id: str
    idempotency_key: str | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class SetIncidentCause(Command):
    """Record the cause and expected restoration time (dispatcher); callers get told."""

    incident_id: str
    cause: str
    expected_restoration_at: datetime
    expected_version: int | None = None
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class ResolveIncident(Command):
    """Close an incident: the outage is over."""

    incident_id: str
    note: str = ""
    expected_version: int | None = None
    actor: str | None = None


async def _append(store: EventStore, stream: str, events: list[Event], expected: int,
                  actor: str | None, key: str | None, correlation: str) -> int:
    meta = metadata(actor=actor, correlation_id=correlation)
    result = await store.append(stream, [to_new_event(e, meta) for e in events], expected,
                                idempotency_key=key)
    return result.last_version


async def _case_side(store: EventStore, incident_id: str, case: CaseState, actor: str | None,
                     key: str | None, merged_from: str | None = None) -> None:
    """Record the membership on the case's stream unless it is there already."""
    for _ in range(3):
        if case.incident_id == incident_id:
            return
        try:
            await _append(store, case_stream(case.case_id),
                          [CaseAddedToIncident(incident_id, case.case_id, merged_from)],
                          case.version, actor, key and f"{key}:{case.case_id}", case.case_id)
            return
        except WrongExpectedVersion:
            case = await load_case(store, case.case_id)


def _eligible(case: CaseState, category: str, incident_id: str) -> bool:
    return case.category == category and case.incident_id in (None, incident_id)


async def open_incident(cmd: OpenIncident, *, store: EventStore, clock: Clock) -> IncidentState:
    """Open the incident (once: a repeat finds it) and record every member on both streams."""
    cases = [await load_case(store, cid) for cid in dict.fromkeys(cmd.case_ids)]
    members = [c for c in cases if _eligible(c, cmd.category, cmd.incident_id)]
    if len(members) < max(cmd.min_cases, 1):
        raise NotAllowed(f"{len(members)} case(s) of {cmd.category} free to form incident {cmd.incident_id}, "
                         f"fewer than {max(cmd.min_cases, 1)}")
    opened = IncidentOpened(cmd.incident_id, cmd.district, cmd.category, clock.now(), cmd.lat, cmd.lon,
                            members[0].case_id)
    events: list[Event] = [opened, *(CaseAddedToIncident(cmd.incident_id, c.case_id) for c in members)]
    try:
        await _append(store, incident_stream(cmd.incident_id), events, NO_STREAM, cmd.actor,
                      cmd.idempotency_key, cmd.incident_id)
    except WrongExpectedVersion:
        log.info("incident_exists", incident_id=cmd.incident_id)
    state = await load_incident(store, cmd.incident_id)
    for case in members:
        if case.case_id in state.case_ids:
            await _case_side(store, cmd.incident_id, case, cmd.actor, cmd.idempotency_key)
    return state


async def add_case_to_incident(cmd: AddCaseToIncident, *, store: EventStore) -> IncidentState:
    """Add a case to an open incident of the same category; a repeat changes nothing."""
    case = await load_case(store, cmd.case_id)
    for _ in range(3):
        state = await load_incident(store, cmd.incident_id)
        if state.status != "open":
            raise NotAllowed(f"incident {cmd.incident_id} is {state.status}")
        if not _eligible(case, state.category, cmd.incident_id):
            raise NotAllowed(f"case {cmd.case_id} cannot join incident {cmd.incident_id}")
        if cmd.case_id in state.case_ids:
            break
        try:
            await _append(store, incident_stream(cmd.incident_id),
                          [CaseAddedToIncident(cmd.incident_id, cmd.case_id)], state.version, cmd.actor,
                          cmd.idempotency_key, cmd.incident_id)
        except WrongExpectedVersion:
            continue
        state = await load_incident(store, cmd.incident_id)
        break
    await _case_side(store, cmd.incident_id, case, cmd.actor, cmd.idempotency_key)
    return state


def _check_merge(survivor: IncidentState, absorbed: IncidentState) -> None:
    """Only two open incidents of one category and district merge (never across either)."""
    if survivor.incident_id == absorbed.incident_id:
        raise InvalidCommand("an incident cannot be merged into itself", field="absorbed_id")
    for state in (survivor, absorbed):
        if state.status != "open":
            raise NotAllowed(f"incident {state.incident_id} is {state.status}")
    if (survivor.category, survivor.district) != (absorbed.category, absorbed.district):
        raise NotAllowed(f"incidents of {absorbed.category}/{absorbed.district} and "
                         f"{survivor.category}/{survivor.district} are never merged")


async def _absorb(store: EventStore, cmd: MergeIncidents, absorbed: IncidentState, now: datetime) -> None:
    """The survivor's side: `IncidentAbsorbed` and each absorbed case it lacks (retried if raced)."""
    for attempt in range(3):
        survivor = await load_incident(store, cmd.incident_id)
        if cmd.absorbed_id in survivor.merged_from:
            return
        events: list[Event] = [IncidentAbsorbed(cmd.incident_id, cmd.absorbed_id, now)]
        events += [CaseAddedToIncident(cmd.incident_id, c, cmd.absorbed_id)
                   for c in absorbed.case_ids if c not in survivor.case_ids]
        try:
            await _append(store, incident_stream(cmd.incident_id), events, survivor.version, cmd.actor,
                          cmd.idempotency_key and f"{cmd.idempotency_key}:survivor", cmd.incident_id)
            return
        except WrongExpectedVersion as exc:
            if attempt == 2:
                raise StaleVersion(exc.stream, exc.expected, exc.actual) from exc


async def merge_incidents(cmd: MergeIncidents, *, store: EventStore, clock: Clock) -> IncidentState:
    """Merge an incident into an older one: both streams, then every moved case's stream.

    A repeat (or a retry after a partial failure) completes what is missing and writes nothing else.
    """
    absorbed = await load_incident(store, cmd.absorbed_id)
    now = clock.now()
    if absorbed.merged_into != cmd.incident_id:
        _check_merge(await load_incident(store, cmd.incident_id), absorbed)
        try:
            key = cmd.idempotency_key and f"{cmd.idempotency_key}:absorbed"
            await _append(store, incident_stream(cmd.absorbed_id),
                          [IncidentMerged(cmd.absorbed_id, cmd.incident_id, now)], absorbed.version,
                          cmd.actor, key, cmd.absorbed_id)
        except WrongExpectedVersion as exc:
            raise StaleVersion(exc.stream, exc.expected, exc.actual) from exc
    await _absorb(store, cmd, absorbed, now)
    for case_id in absorbed.case_ids:
        await _case_side(store, cmd.incident_id, await load_case(store, case_id), cmd.actor,
                         cmd.idempotency_key, cmd.absorbed_id)
    return await load_incident(store, cmd.incident_id)


async def _current(store: EventStore, incident_id: str, expected: int | None) -> IncidentState:
    state = await load_incident(store, incident_id)
    if expected is not None and expected != state.version:
        raise StaleVersion(incident_stream(incident_id), expected, state.version)
    return state


async def set_incident_cause(cmd: SetIncidentCause, *, store: EventStore, clock: Clock) -> IncidentState:
    """Record a new revision of the cause on an open incident."""
    cause = cmd.cause.strip()
    if not cause or len(cause) > MAX_CAUSE:
        raise InvalidCommand(f"cause must be 1-{MAX_CAUSE} characters", field="cause")
    if cmd.expected_restoration_at.tzinfo is None:
        raise InvalidCommand("expected_restoration_at needs a time zone", field="expected_restoration_at")
    state = await _current(store, cmd.incident_id, cmd.expected_version)
    if state.status != "open":
        raise NotAllowed(f"incident {cmd.incident_id} is {state.status}")
    evt = IncidentCauseSet(cmd.incident_id, cause, cmd.expected_restoration_at, state.cause_revision + 1,
                           clock.now())
    try:
        await _append(store, incident_stream(cmd.incident_id), [evt], state.version, cmd.actor, None,
                      cmd.incident_id)
    except WrongExpectedVersion as exc:
        raise StaleVersion(exc.stream, exc.expected, exc.actual) from exc
    return await load_incident(store, cmd.incident_id)


async def resolve_incident(cmd: ResolveIncident, *, store: EventStore, clock: Clock) -> IncidentState:
    """Resolve an open incident; resolving a resolved one changes nothing."""
    state = await _current(store, cmd.incident_id, cmd.expected_version)
    if state.status == "resolved":
        return state
    if state.status == "merged":
        raise NotAllowed(f"incident {cmd.incident_id} is merged into {state.merged_into}")
    try:
        await _append(store, incident_stream(cmd.incident_id),
                      [IncidentResolved(cmd.incident_id, clock.now(), cmd.note)], state.version, cmd.actor,
                      None, cmd.incident_id)
    except WrongExpectedVersion as exc:
        raise StaleVersion(exc.stream, exc.expected, exc.actual) from exc
    return await load_incident(store, cmd.incident_id)


HANDLERS: dict[type[Command], Handler] = {
    OpenIncident: open_incident, AddCaseToIncident: add_case_to_incident, MergeIncidents: merge_incidents,
    SetIncidentCause: set_incident_cause, ResolveIncident: resolve_incident,
}


def broadcast_text(state: IncidentState, case_id: str, texts: Texts = CHINESE) -> str:
    """The SMS / WeChat text telling a caller the cause and expected restoration time."""
    assert state.expected_restoration_at is not None
    return texts.say("incident.broadcast", matter=texts.name("incident.matter", state.category),
                     case_id=case_id, cause=state.cause,
                     when=state.expected_restoration_at.astimezone(LOCAL_TIME))


async def _then_and_now(store: EventStore, event: RecordedEvent) -> tuple[IncidentState, IncidentState]:
    """The incident as of an event of its stream, and as it is now."""
    then = now = IncidentState(event.data["incident_id"])
    for record in await store.read_stream(event.stream):
        evt = from_recorded(record)
        if evt is not None:
            now.apply(evt, record.version)
        if record.version == event.version:
            then = replace(now, case_ids=list(now.case_ids))
    return then, now


class IncidentBroadcast:
    """Reactor: tell every caller of an incident its cause, once per revision (outbox dedup keys)."""

    name = "incident_broadcast"
    categories: frozenset[str] | None = frozenset({"incident"})

    def __init__(self, store: EventStore, send: Send, texts: Texts = CHINESE) -> None:
        self._store = store
        self._send = send
        self._texts = texts

    async def react(self, event: RecordedEvent) -> None:
        """On a cause, notify its members; on a member joining after a cause, notify it."""
        if event.type not in ("IncidentCauseSet", "CaseAddedToIncident"):
            return
        then, now = await _then_and_now(self._store, event)
        if then.cause is None or now.status != "open" or now.cause_revision != then.cause_revision:
            return  # no cause yet, over, or a newer revision tells everyone
        if event.type == "IncidentCauseSet":
            told: set[tuple[str, str]] = set()  # a caller with several cases here is one person
            for case_id in then.case_ids:
                await self._notify(then, await load_case(self._store, case_id), told)
        else:
            await self._notify_joiner(then, event.data["case_id"])

    async def _notify_joiner(self, state: IncidentState, case_id: str) -> None:
        """Tell a late member, unless its caller was told already through an earlier case.

        The earlier cases of the same caller are found through the joiner's links (the
        linking policy links a caller's cases as `same_caller` first), not by reading every
        member: a join in a storm of thousands costs a few case reads, not thousands.
        """
        case = await load_case(self._store, case_id)
        earlier = set(state.case_ids[: state.case_ids.index(case_id)]) if case_id in state.case_ids else set()
        told = {(await load_case(self._store, other)).caller.reach()
                for other in case.linked_case_ids if other in earlier}
        await self._notify(state, case, {t for t in told if t is not None})

    async def _notify(self, state: IncidentState, case: CaseState, told: set[tuple[str, str]]) -> None:
        from dispatch.notify.outbox import Lane, RequestNotification

        contact, case_id = case.caller.reach(), case.case_id
        if contact is None or contact in told:
            return
        told.add(contact)
        channel, to = contact
        cmd = RequestNotification(
            dedup_key=f"incident:{state.incident_id}:{case_id}:{state.cause_revision}",
            channel=channel, to=to, text=broadcast_text(state, case_id, self._texts), case_id=case_id,
            reason="incident_cause", actor="policy:incident_broadcast", lane=Lane.BULK,
        )
        try:
            await self._send(cmd)
        except DispatchError as exc:
            log.warning("incident_notify_refused", incident_id=state.incident_id, case_id=case_id,
                        error=str(exc))
