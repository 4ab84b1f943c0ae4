"""The elderly one-touch emergency flow (老年人一键通).

`ReceiveAlarm` records every device signal as `AlarmReceived` (stream
`alarm-<id>`, idempotent on the channel's key; a frame without a timestamp is
a repeat only within 10 minutes, `dispatch.intake.contact.repeat_key`). A real alarm then runs
`respond_to_alarm`, idempotent step by step on keys derived from the alarm:
it opens a priority-1 `elderly_emergency` case at the elder's home (or the
device-reported position), asks the outbox to text every registered contact at
once, notes the nearest available medical provider from the shared provider
index (the auto-dispatch worker sends it when `INTAKE_AUTO_DISPATCH` lists
`elderly_emergency:medical`; otherwise the priority-1 case leads the queue),
and records `ElderlyAlertOpened` whose `callback_due_at` (30 minutes later) is
when an agent must have confirmed that someone reached the elder
(`ConfirmElderReached`). An unknown account still opens a case, flagged
`unregistered_device`. Test, restore and status signals open no case.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg
import structlog

from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.registration import RegisterCase
from dispatch.core.bus import Handler, MessageBus
from dispatch.core.capability import Deps
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, KeyReused, NotFound
from dispatch.core.messages import Command, Event, Json, JsonValue, event, from_data, metadata, to_new_event
from dispatch.core.personal import ERASED, PERSONAL, pseudonym, subject
from dispatch.core.phone import mask_phone, normalise_phone
from dispatch.core.texts import CHINESE, LOCAL_TIME, Texts
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import NearestQuery
from dispatch.gis.reference import elder_of_device
from dispatch.gis.skills import CATEGORY_SKILLS
from dispatch.intake.contact import InboundContact, repeat_key
from dispatch.notify.outbox import Lane, RequestNotification
from eventstore import ANY, NO_STREAM, EventStore, RecordedEvent

log = structlog.get_logger(__name__)

CALLBACK_AFTER = timedelta(minutes=30)
BURST_WINDOW = timedelta(minutes=10)
"""Alarms from one device account within this long of the first join the case it opened: a
frightened elder presses again and again, a faulty or forged device floods; either way one
case and one round of texts to the contacts, not one per press."""
"""An agent must confirm that someone reached the elder within this time."""
UNREGISTERED = "unregistered_device"
ALARM_KINDS = ("alarm", "test", "restore", "status")


@dataclass(frozen=True, slots=True)
class Contact:
    """Someone to alert: family, community liaison, doctor or security."""

    role: str
    name: str
    phone: str


@dataclass(frozen=True, slots=True)
class Elder:
    """A registered elder as the alarm flow needs them (WGS84 home)."""

    id: str
    name: str
    phone: str
    lat: float
    lon: float
    district: str | None = None
    address: str | None = None
    conditions: tuple[str, ...] = ()
    contacts: tuple[Contact, ...] = ()


class ElderDirectory(Protocol):
    """Finds the elder an alarm device account belongs to."""

    async def elder_for_device(self, account: str) -> Elder | None:
        """The elder registered with this device account, if any."""
        ...


class PgElderDirectory:
    """The elder registry read models `ref_devices` / `ref_elders` in PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def elder_for_device(self, account: str) -> Elder | None:
        """See `ElderDirectory`; device accounts compare case-insensitively (hex)."""
        async with self._pool.acquire() as conn:
            row = await elder_of_device(conn, account)
        return None if row is None else elder_from_row(row)


def elder_from_row(row: Json) -> Elder:
    """An `Elder` from a `ref_elders` row."""
    props = row.get("props") or {}
    contacts = tuple(
        Contact(str(c.get("role", "")), str(c.get("name", "")), str(c.get("phone", "")))
        for c in row.get("contacts") or [] if isinstance(c, dict) and c.get("phone")
    )
    return Elder(
        id=row["id"], name=row["name"], phone=row["phone"], lat=row["lat"], lon=row["lon"],
        district=row.get("district"), address=props.get("address"),
        conditions=tuple(str(c) for c in row.get("conditions") or []), contacts=contacts,
    )


@dataclass(frozen=True, slots=True)
class ReceiveAlarm(Command):
    """Record one signal of a one-touch alarm device (and respond to a real alarm).

    The one command of both alarm channels (SIA DC-09 and HTTPS). The contact names
    the device (`caller.device_account`), its position if it sent one, the text and
    the raw frame; `device_time` is the time the device stamped, None if it did not.
    With `repeat_window` the contact's key names the frame's content, not a delivery:
    a repeat counts as one only within `REPEAT_WINDOW` of the first (CONTRACT).
    """

    contact: InboundContact
    protocol: str
    code: str
    kind: str
    transport: str
    device_time: datetime | None = None
    zone: str | None = None
    qualifier: str | None = None
    repeat_window: bool = False
    actor: str | None = None


@event
@dataclass(frozen=True, slots=True)
class AlarmReceived(Event):
    """A device signal arrived (`kind`: alarm, test, restore or status); lat/lon in WGS84."""

    alarm_id: str
    account: str = field(metadata=PERSONAL)
    protocol: str
    code: str
    kind: str
    transport: str
    received_at: datetime
    occurred_at: datetime | None = None
    zone: str | None = None
    qualifier: str | None = None
    lat: float | None = field(default=None, metadata=PERSONAL)
    lon: float | None = field(default=None, metadata=PERSONAL)
    text: str | None = field(default=None, metadata=PERSONAL)
    raw: JsonValue = field(default=None, metadata=PERSONAL)

    def data_subject(self) -> str | None:
        """The alarm device's (the elder who carries it)."""
        return subject("device", self.account)


@event
@dataclass(frozen=True, slots=True)
class ElderlyAlertOpened(Event):
    """An alarm became a case; contacts were asked to be alerted; a call-back is due."""

    case_id: str
    alarm_id: str
    account: str = field(metadata=PERSONAL)
    elder_id: str | None
    registered: bool
    notified: tuple[str, ...] = field(metadata=PERSONAL)
    opened_at: datetime
    callback_due_at: datetime
    nearest_help: Json | None = None

    def data_subject(self) -> str | None:
        """The elder's, else the device's."""
        return subject("elder", self.elder_id) or subject("device", self.account)


@event
@dataclass(frozen=True, slots=True)
class AlarmJoinedAlert(Event):
    """Another alarm of the account within `BURST_WINDOW` joined the alert (and case) that its
    first alarm opened: no new case, no new texts, but on record with the case."""

    case_id: str
    alarm_id: str
    account: str = field(metadata=PERSONAL)
    received_at: datetime


@event
@dataclass(frozen=True, slots=True)
class ElderReachConfirmed(Event):
    """An agent's call-back: did someone reach the elder?"""

    case_id: str
    outcome: str
    confirmed_at: datetime
    note: str = field(default="", metadata=PERSONAL)
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmElderReached(Command):
    """Record the call-back that closes the alert's 30-minute check."""

    case_id: str
    outcome: str
    note: str = ""
    actor: str | None = None


OUTCOMES = ("reached", "not_reached", "false_alarm")


@dataclass(frozen=True, slots=True)
class AlarmOutcome:
    """What receiving a signal did: its alarm id, the case (for alarms), whether repeated."""

    alarm_id: str
    case_id: str | None
    duplicate: bool
    kind: str = "alarm"
    flags: tuple[str, ...] = field(default_factory=tuple)


def device_actor(account: str) -> str:
    """Who an alarm's events name as their actor: the device, by its account's pseudonym (metadata
    is never sealed, so it may not hold the account itself)."""
    return f"device:{pseudonym(account)}"


def alarm_id_for(key: str) -> str:
    """A short stable id for an alarm from its channel idempotency key."""
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def alert_stream(case_id: str) -> str:
    """The stream of an elderly alert (one per case)."""
    return f"elderalert-{case_id}"


def _caller(elder: Elder | None, account: str) -> CallerInfo:
    if elder is None:
        return CallerInfo(device_account=account)
    try:
        phone: str | None = normalise_phone(elder.phone)
    except InvalidCommand:
        phone = None  # a bad registry number must never block an alarm
    return CallerInfo(name=elder.name, phone=phone, device_account=account)


def case_text(alarm: AlarmReceived, elder: Elder | None, texts: Texts = CHINESE) -> str:
    """The description dispatchers read on the case an alarm opens, in the configured language."""
    signal = {"protocol": alarm.protocol, "code": alarm.code, "zone": alarm.zone or "-",
              "account": alarm.account}
    if elder is None:
        return texts.say("elderly.case_unregistered", **signal)
    text = texts.say("elderly.case", elder_id=elder.id, **signal)
    if elder.conditions:
        conditions = texts.say("elderly.separator").join(elder.conditions)
        text += texts.say("elderly.case_conditions", conditions=conditions)
    return text


def decide_case(alarm: AlarmReceived, elder: Elder | None, texts: Texts = CHINESE) -> RegisterCase:
    """The case an alarm opens (pure): priority 1 at the device position or the elder's home."""
    if alarm.lat is not None and alarm.lon is not None:
        place: Place | None = Place(alarm.lat, alarm.lon, elder.district if elder else None)
    elif elder is not None:
        place = Place(elder.lat, elder.lon, elder.district)
    else:
        place = None
    text = case_text(alarm, elder, texts)
    return RegisterCase(
        category="elderly_emergency", channel="alarm", description=text,
        caller=_caller(elder, alarm.account), priority=1, location=place,
        address=elder.address if elder else None,
        flags=() if elder else (UNREGISTERED,), elder_id=elder.id if elder else None,
        contact_stream=f"alarm-{alarm.alarm_id}", idempotency_key=f"alarm-case:{alarm.alarm_id}",
        actor=device_actor(alarm.account), correlation_id=alarm.alarm_id, received_at=alarm.received_at,
    )


def alert_text(elder: Elder, case_id: str, alarm: AlarmReceived, texts: Texts = CHINESE) -> str:
    """The SMS every contact receives."""
    where = elder.address or f"{elder.lat:.5f},{elder.lon:.5f}"
    return texts.say("elderly.alert", name=elder.name, at=alarm.received_at.astimezone(LOCAL_TIME),
                     where=where, case_id=case_id)


HELP_SKILL = CATEGORY_SKILLS["elderly_emergency"].required
HELP_PREFERRED = CATEGORY_SKILLS["elderly_emergency"].preferred


class ElderlyDeps(Deps, Protocol):
    """What the elderly capability's hooks use: the common dependencies and two shared resources."""

    @property
    def provider_index(self) -> ProviderIndexHolder | None:
        """The shared provider index (None until loaded, or in a process without one)."""
        ...

    @property
    def elder_directory(self) -> ElderDirectory | None:
        """An elder directory to use instead of the registry in PostgreSQL (tests)."""
        ...


def nearest_help(holder: ProviderIndexHolder | None, place: Place | None) -> Json | None:
    """The nearest available provider with medical skills serving the place's district, from the
    shared provider index."""
    if holder is None or place is None:
        return None
    query = NearestQuery(place.lat, place.lon, k=5, skill=HELP_SKILL, district=place.district,
                         preferred_skills=HELP_PREFERRED)
    found = holder.snapshot.best(query)
    return None if found is None else dict(found.as_dict())


async def respond_to_alarm(
    alarm: AlarmReceived, *, bus: MessageBus, store: EventStore, directory: ElderDirectory,
    index: ProviderIndexHolder | None = None, texts: Texts = CHINESE,
) -> tuple[str, tuple[str, ...]]:
    """Open the case, alert the contacts, note the nearest help, schedule the call-back.

    Safe to repeat: every step is idempotent on a key derived from the alarm.
    """
    elder = await directory.elder_for_device(alarm.account)
    cmd = replace(decide_case(alarm, elder, texts), idempotency_key=await _case_key(store, alarm))
    registered = await bus.handle(cmd)
    case_id: str = registered.case_id
    contacts = elder.contacts if elder else ()
    await asyncio.gather(*(
        bus.handle(RequestNotification(
            dedup_key=f"elder-alert:{case_id}:{pseudonym(c.phone)[:16]}", channel="sms", to=c.phone,
            text=alert_text(elder, case_id, alarm, texts), case_id=case_id,
            reason=f"elderly_emergency:{c.role}", actor="policy:elderly", lane=Lane.URGENT))
        for c in contacts if elder is not None
    ))
    opened = ElderlyAlertOpened(
        case_id=case_id, alarm_id=alarm.alarm_id, account=alarm.account,
        elder_id=elder.id if elder else None, registered=elder is not None,
        notified=tuple(c.phone for c in contacts), opened_at=alarm.received_at,
        callback_due_at=alarm.received_at + CALLBACK_AFTER,
        nearest_help=nearest_help(index, cmd.location),
    )
    meta = metadata(actor="policy:elderly", channel="alarm", correlation_id=alarm.alarm_id)
    first = await store.append(alert_stream(case_id), [to_new_event(opened, meta)], NO_STREAM,
                               idempotency_key=f"elder-alert-opened:{case_id}")
    if first.duplicate and (await _stored_alert(store, case_id)).alarm_id != alarm.alarm_id:
        joined = AlarmJoinedAlert(case_id, alarm.alarm_id, alarm.account, alarm.received_at)
        await store.append(alert_stream(case_id), [to_new_event(joined, meta)], ANY,
                           idempotency_key=f"elder-alarm-joined:{alarm.alarm_id}")
    log.info("elderly_alert_opened", case_id=case_id, account=alarm.account,
             contacts=[mask_phone(c.phone) for c in contacts], registered=elder is not None)
    return case_id, cmd.flags


async def _case_key(store: EventStore, alarm: AlarmReceived) -> str:
    """The idempotency key of the case an alarm opens or joins: its device's within
    `BURST_WINDOW` (`repeat_key`), named by the account's pseudonym (a key is never erased).

    A case opened by an earlier release keeps its key, so that a catch-up after an upgrade
    opens no second case for its alarm nor for a burst around it: an alarm answered before
    bursts were joined had a key of its own, and a burst's key named the account itself
    (looked up only, never written again)."""
    own = f"alarm-case:{alarm.alarm_id}"
    if await store.find_by_idempotency_key(own) is not None:
        return own
    earlier = await repeat_key(store, f"alarm-case:account:{alarm.account}", alarm.received_at, BURST_WINDOW)
    if await store.find_by_idempotency_key(earlier) is not None:
        return earlier
    return await repeat_key(store, f"alarm-case:device:{pseudonym(alarm.account)}", alarm.received_at,
                            BURST_WINDOW)


def directory_of(deps: ElderlyDeps) -> ElderDirectory:
    """The given elder directory, else the registry in PostgreSQL."""
    return deps.elder_directory or PgElderDirectory(deps.pool)


async def _stored_alert(store: EventStore, case_id: str) -> ElderlyAlertOpened:
    records = await store.read_stream(alert_stream(case_id), limit=1)
    return from_data(ElderlyAlertOpened, records[0].data)


async def _stored_alarm(store: EventStore, alarm_id: str) -> AlarmReceived:
    records = await store.read_stream(f"alarm-{alarm_id}", limit=1)
    return from_data(AlarmReceived, records[0].data)


HTTPS = "https"
"""The transport of `POST /channels/alarm/events`, whose key is the vendor's `event_id`: an id
already used for another signal is refused (409), not answered as the first. A DC-09 frame's key
is its account, sequence and time, which a device reuses only to retransmit; it gets the first
answer, as a NAK would make the device repeat the frame for ever."""


def _same_signal(stored: AlarmReceived, alarm: AlarmReceived) -> bool:
    """Whether a stored alarm says what a repeat of its key says: the signal and the device's time,
    and the device and its position unless they were erased since."""
    said = (stored.protocol, stored.code, stored.zone, stored.qualifier, stored.occurred_at)
    if said != (alarm.protocol, alarm.code, alarm.zone, alarm.qualifier, alarm.occurred_at):
        return False
    return stored.account == ERASED or (stored.account.upper(), stored.lat, stored.lon) == (
        alarm.account.upper(), alarm.lat, alarm.lon)


async def receive_alarm(
    cmd: ReceiveAlarm, *, store: EventStore, clock: Clock, services: ElderlyDeps
) -> AlarmOutcome:
    """Commit the signal; for an alarm also respond (a repeat re-runs the idempotent steps)."""
    if cmd.kind not in ALARM_KINDS:
        raise InvalidCommand(f"kind must be one of {', '.join(ALARM_KINDS)}", field="kind")
    contact, account = cmd.contact, cmd.contact.caller.device_account
    if not account:
        raise InvalidCommand("an alarm names its device account", field="account")
    key = contact.idempotency_key
    if cmd.repeat_window:
        key = await repeat_key(store, key, contact.received_at)
    alarm_id = alarm_id_for(key)
    place = contact.location
    alarm = AlarmReceived(
        alarm_id=alarm_id, account=account, protocol=cmd.protocol, code=cmd.code,
        kind=cmd.kind, transport=cmd.transport, received_at=clock.now(),
        occurred_at=cmd.device_time, zone=cmd.zone, qualifier=cmd.qualifier,
        lat=place.lat if place else None, lon=place.lon if place else None, text=contact.text,
        raw=contact.raw,
    )
    meta = metadata(actor=cmd.actor or device_actor(account), channel="alarm",
                    correlation_id=alarm_id, received_at=alarm.received_at)
    result = await store.append(f"alarm-{alarm_id}", [to_new_event(alarm, meta)], NO_STREAM,
                                idempotency_key=key)
    if result.duplicate:  # the key is the first delivery's: a repeat saying something else changes nothing
        stored = await _stored_alarm(store, alarm_id)
        if cmd.transport == HTTPS and not _same_signal(stored, alarm):
            raise KeyReused("this event_id was already used for another alarm")
        alarm = stored
    if alarm.kind != "alarm":
        return AlarmOutcome(alarm_id, None, result.duplicate, alarm.kind)
    case_id, flags = await respond_to_alarm(
        alarm, bus=services.bus, store=store, directory=directory_of(services),
        index=services.provider_index, texts=services.texts)
    return AlarmOutcome(alarm_id, case_id, result.duplicate, alarm.kind, flags)


async def confirm_elder_reached(cmd: ConfirmElderReached, *, store: EventStore, clock: Clock) -> int:
    """Record the agent's call-back on the alert; answer the alert stream's version."""
    if cmd.outcome not in OUTCOMES:
        raise InvalidCommand(f"outcome must be one of {', '.join(OUTCOMES)}", field="outcome")
    stream = alert_stream(cmd.case_id)
    version = await store.stream_version(stream)
    if version < 0:
        raise NotFound(f"no elderly alert for case {cmd.case_id}")
    evt = ElderReachConfirmed(cmd.case_id, cmd.outcome, clock.now(), cmd.note, cmd.actor)
    result = await store.append(stream, [to_new_event(evt, metadata(actor=cmd.actor))], version)
    return result.last_version


HANDLERS: dict[type[Command], Handler] = {
    ReceiveAlarm: receive_alarm,
    ConfirmElderReached: confirm_elder_reached,
}


class ElderlyAlarmReactor:
    """Finishes the response to a committed alarm whose inline response was cut short.

    It waits until `GRACE` after the alarm was received, so it does not race
    the inline response of a live alarm; every step it repeats is idempotent.
    """

    name = "elderly-alarms"
    categories: frozenset[str] | None = frozenset({"alarm"})
    partitions = 1
    """Global (eventstore/partitions.py): alarms of one elder, on streams of their own, join one alert."""
    GRACE = timedelta(seconds=30)

    def __init__(self, services: ElderlyDeps) -> None:
        self._services = services

    async def react(self, event: RecordedEvent) -> None:
        """Re-run the idempotent response for a real alarm."""
        if event.type != "AlarmReceived" or event.data.get("kind") != "alarm":
            return
        services = self._services
        alarm = from_data(AlarmReceived, event.data)
        wait = (alarm.received_at + self.GRACE - services.clock.now()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        await respond_to_alarm(alarm, bus=services.bus, store=services.store,
                               directory=directory_of(services), index=services.provider_index,
                               texts=services.texts)


def reactors(deps: ElderlyDeps) -> Sequence[ElderlyAlarmReactor]:
    """The alarm-response reactor."""
    return [ElderlyAlarmReactor(deps)]
