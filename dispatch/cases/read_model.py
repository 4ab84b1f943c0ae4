"""The `cases` read model (migration 0300): its projection and every query on it.

Other capabilities read cases only through the functions here (typed rows),
so the table's columns are known in one module; per-unit assessment counters
(`case_unit_stats`) and overdue lists live here too.

The projection folds each case event into the `CaseState` kept in `cases.data`
with the aggregate's own `CaseState.apply`, then writes the queryable columns
from that state, so the board never disagrees with the aggregate. Lights depend
on time: the row keeps the instants the light changes (`yellow_at`, `red_at`),
queries evaluate `LIGHT_SQL` at the clock's now, and `LightRefresher` keeps the
stored `light` column current for readers that use it directly.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeAlias

import asyncpg

from dispatch.cases.events import (
    CallbackRecorded,
    CaseChased,
    CaseCompleted,
    CaseConfirmed,
    CaseDispatched,
    CaseRejected,
    ReminderDue,
)
from dispatch.cases.registration import CASE_ID
from dispatch.cases.sla import Clocks, SlaConfig, light, light_changes
from dispatch.cases.state import CaseState, case_stream, fold
from dispatch.cases.status import BUSY, CALLBACK_DUE, DONE, WAITING, WORKING, CaseStatus
from dispatch.core.capability import Deps, Task
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand
from dispatch.core.messages import Event, from_data, from_recorded, to_data
from eventstore import EventStore, RecordedEvent
from eventstore.postgres import read_streams_on
from eventstore.subscriptions import Change


def _sql_list(statuses: frozenset[CaseStatus]) -> str:
    """A status group as a SQL literal list (`'a', 'b'`) for `IN (...)`: literals, not a parameter,
    so the planner can match partial indexes on `status`."""
    return ", ".join(f"'{s.value}'" for s in sorted(statuses))


_DONE_SQL = _sql_list(DONE)
LIGHT_SQL = (
    f"(CASE WHEN status IN ({_DONE_SQL}) THEN light WHEN red_at <= $1 THEN 'red' "
    "WHEN yellow_at <= $1 THEN 'yellow' ELSE 'green' END)"
)
"""The light at the instant `$1` (mirrors `sla.light`)."""
OVERDUE: dict[str, tuple[str, str]] = {
    "confirmation": ("confirm_by", f"status = '{CaseStatus.DISPATCHED.value}'"),
    "completion": ("complete_by", f"status IN ({_sql_list(WORKING)})"),
    "callback": ("callback_by", "completed_at IS NOT NULL AND callback_outcome IS NULL AND status IN "
                                f"({_sql_list(CALLBACK_DUE)})"),
}
"""Overdue list kind -> (due column, condition of the stage still running)."""
FILTERS: dict[str, str] = {
    "status": "status = ${}",
    "category": "category = ${}",
    "district": "district = ${}",
    "assigned_to": "assigned_to = ${}",
    "incident_id": "incident_id = ${}",
    "linked_to": "linked_case_ids @> ARRAY[${}]::text[]",
    "light": LIGHT_SQL + " = ${}",
    # search (values: text, canonical phone or None, LIKE pattern; `q_own` adds the unit whose
    # cases' personal fields may match): case id, caller's number, name or address
    "q": "(case_id = ${0} OR caller_phone = ${1} OR caller_name ILIKE ${2} OR address ILIKE ${2})",
    "q_own": "(case_id = ${0} OR (assigned_to = ${3} AND (caller_phone = ${1} OR caller_name ILIKE ${2} "
             "OR address ILIKE ${2})))",
    # which queue (value `main` or `harassment`): a case registered from a number blacklisted at the
    # time (the callers projection's `caller_contacts`, dispatch.customers) is in the harassment queue
    "queue": "EXISTS (SELECT 1 FROM caller_contacts b WHERE b.case_id = cases.case_id AND b.kind = 'case' "
             "AND b.blacklisted) = (${} = 'harassment')",
}
QUEUES = ("main", "harassment", "all")
"""The board's queues: `main` (the default), `harassment` (cases of blacklisted numbers), `all`."""
_COLUMNS = (
    "status", "category", "priority", "channel", "caller_name", "caller_phone", "caller_openid",
    "caller_email", "lat", "lon", "district", "address", "description", "light", "deadline",
    "assigned_to", "incident_id", "linked_case_ids", "flags", "elder_id", "version", "created_at",
    "accepted_at", "updated_at", "closed_at", "assignee_kind", "dispatched_at", "confirm_by",
    "confirmed_at", "complete_by", "completed_at", "callback_by", "callback_outcome",
    "archived_at", "last_touched_at", "yellow_at", "red_at", "data", "owner",
)
_UPSERT = (
    f"INSERT INTO cases (case_id, {', '.join(_COLUMNS)}) VALUES "
    f"($1, {', '.join(f'${i}' for i in range(2, len(_COLUMNS) + 2))}) "
    f"ON CONFLICT (case_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS)
)
_STAT_COLUMNS = frozenset({"dispatched", "confirmed", "rejected", "wrong_rejections", "completed",
                           "chased", "satisfied", "unsatisfied", "not_confirmed"})


def case_clocks(s: CaseState) -> Clocks:
    """The instants of a case that its light depends on."""
    unconfirmed = s.confirm_by is not None and s.last_dispatched_at is not None and (
        s.confirmed_at is None or s.confirmed_at < s.last_dispatched_at)
    return Clocks(
        status=s.status, deadline=s.deadline, deadline_from=s.deadline_from,
        dispatched_at=s.dispatched_at, last_touched_at=s.last_touched_at,
        finished_at=s.completed_at or s.closed_at or s.archived_at,
        confirm_by=s.confirm_by if unconfirmed else None,
        confirm_from=s.last_dispatched_at if unconfirmed else None,
    )


def state_from_json(data: dict[str, Any]) -> CaseState:
    """A `CaseState` from the JSON kept in `cases.data` (decoded by the pool's jsonb codec)."""
    return from_data(CaseState, data)


def _row(s: CaseState, cfg: SlaConfig, now: datetime, updated_at: datetime) -> list[Any]:
    done = s.status in DONE
    yellow_at, red_at = (None, None) if done else light_changes(case_clocks(s), cfg)
    loc, caller = s.location, s.caller
    return [
        s.status, s.category, s.priority, s.channel, caller.name, caller.phone, caller.openid,
        caller.email, loc.lat if loc else None, loc.lon if loc else None,
        loc.district if loc else None, s.address, s.description, light(case_clocks(s), cfg, now),
        s.deadline, s.assigned_to, s.incident_id, list(s.linked_case_ids), list(s.flags),
        s.elder_id, s.version, s.created_at, s.accepted_at, updated_at, s.closed_at,
        s.assignee_kind, s.dispatched_at, s.confirm_by, s.confirmed_at, s.complete_by,
        s.completed_at, s.callback_by, s.callback_outcome, s.archived_at, s.last_touched_at,
        yellow_at, red_at, to_data(s), s.owner,
    ]


def _stat_updates(evt: Event) -> list[tuple[str, str]]:
    """(unit, counter) pairs an event adds one to."""
    if isinstance(evt, CaseDispatched):
        wrong = [(evt.wrong_rejection_of, "wrong_rejections")] if evt.wrong_rejection_of else []
        return [(evt.assignee, "dispatched"), *wrong]
    if isinstance(evt, (CaseConfirmed, CaseRejected, CaseChased)):
        kind = {CaseConfirmed: "confirmed", CaseRejected: "rejected", CaseChased: "chased"}
        return [(evt.unit, kind[type(evt)])]
    if isinstance(evt, CaseCompleted) and evt.handler:
        return [(evt.handler, "completed")]
    if isinstance(evt, CallbackRecorded) and evt.handler:
        return [(evt.handler, evt.outcome)]
    return []


class CasesProjection:
    """Projection of `case-` streams into `cases` and `case_unit_stats`."""

    name = "cases"
    categories: frozenset[str] | None = frozenset({"case"})
    tables: tuple[str, ...] = ("cases", "case_unit_stats")

    def __init__(self, clock: Clock, cfg: SlaConfig | None = None) -> None:
        self._clock = clock
        self._cfg = cfg or SlaConfig()

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Fold the event into the stored state and rewrite the row."""
        return await self.apply_batch(conn, [event])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
    ) -> Sequence[Change]:
        """Fold the events into their cases' stored states; rewrite each changed row once.

        Three statements per batch whatever its size: read the states, write
        the rows, add to the unit counters.
        """
        ids = list(dict.fromkeys(event.stream.split("-", 1)[1] for event in events))
        rows = await conn.fetch("SELECT case_id, data FROM cases WHERE case_id = ANY($1::text[])", ids)
        states = {r["case_id"]: state_from_json(r["data"]) for r in rows}
        now = self._clock.now()
        touched: dict[str, datetime] = {}
        counts: Counter[tuple[str, str]] = Counter()
        changes: list[Change] = []
        for event in events:
            case_id = event.stream.split("-", 1)[1]
            state = states.setdefault(case_id, CaseState(case_id))
            held = (state.owner, state.assigned_to)
            evt = from_recorded(event)
            if evt is not None:
                state.apply(evt, event.version)
            else:
                state.version = event.version
            if state.accepted_at is None:
                continue  # nothing to show before the registration event
            touched[case_id] = event.recorded_at
            counts.update(pair for pair in (_stat_updates(evt) if evt is not None else [])
                          if pair[1] in _STAT_COLUMNS)
            summary = _summary(state, self._cfg, now)
            if held != (state.owner, state.assigned_to):  # who held it before sees it leave
                summary["before"] = {"owner": held[0], "assigned_to": held[1]}
            changes.append(Change("case", summary))
            if isinstance(evt, ReminderDue):
                changes.append(Change("reminder", {
                    "case_id": case_id, "agent": evt.agent, "note": evt.note,
                    "remind_at": evt.remind_at.isoformat()}))
        if touched:
            await conn.executemany(_UPSERT, [
                (case_id, *_row(states[case_id], self._cfg, now, at)) for case_id, at in touched.items()])
        for (unit, counter), n in sorted(counts.items()):
            await conn.execute(
                f"INSERT INTO case_unit_stats (unit_id, {counter}) VALUES ($1, $2) "
                f"ON CONFLICT (unit_id) DO UPDATE SET {counter} = case_unit_stats.{counter} + $2",
                unit, n)
        return changes


async def refold(conn: asyncpg.Connection, case_ids: Sequence[str], cfg: SlaConfig, now: datetime) -> None:
    """Rewrite the cases' rows from their events as they read now, on `conn` (in its
    transaction): after an erasure in it, with the erased fields (`dispatch/personal`)."""
    found = await read_streams_on(conn, [case_stream(case_id) for case_id in case_ids])
    rows = [(case_id, *_row(fold(case_id, records), cfg, now, records[-1].recorded_at))
            for case_id in case_ids if (records := found[case_stream(case_id)])]
    if rows:
        await conn.executemany(_UPSERT, rows)


def _summary(s: CaseState, cfg: SlaConfig, now: datetime) -> dict[str, Any]:
    """What live views are told about a change (no personal data)."""
    return {
        "case_id": s.case_id, "status": s.status, "category": s.category, "priority": s.priority,
        "light": light(case_clocks(s), cfg, now), "assigned_to": s.assigned_to,
        "district": s.location.district if s.location else None, "version": s.version,
        "owner": s.owner,
    }


Scope: TypeAlias = Collection[str] | None
"""The organisation nodes a caller sees (a subtree, `dispatch.org`); None: every case."""


def scope_sql(scope: Scope, args: list[Any]) -> str:
    """A condition keeping the cases held by, or assigned to, a node of `scope` (appends its
    parameter to `args`); TRUE for no scope."""
    if scope is None:
        return "TRUE"
    args.append(sorted(scope))
    return f"(owner = ANY(${len(args)}::text[]) OR assigned_to = ANY(${len(args)}::text[]))"


def in_scope(scope: Scope, owner: str | None, assigned_to: str | None) -> bool:
    """Whether a case held by `owner` and assigned to `assigned_to` is within `scope`."""
    return scope is None or owner in scope or assigned_to in scope


def encode_cursor(*values: Any) -> str:
    """An opaque cursor from the sort key of the last item."""
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (instant, case_id) sort key a cursor stands for."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, case_id = json.loads(raw)
        return datetime.fromisoformat(at), str(case_id)
    except (ValueError, TypeError) as exc:
        raise InvalidCommand("cursor is not valid", field="cursor") from exc


async def list_cases(
    db: asyncpg.Pool | asyncpg.Connection, now: datetime, filters: Mapping[str, str | tuple[str | None, ...]],
    *, limit: int, cursor: str | None = None, scope: Scope = None,
) -> tuple[list[tuple[CaseState, str]], str | None]:
    """Cases matching the filters (a filter's SQL takes one value, or a tuple for `{0}`, `{1}`...)
    within `scope`, newest first: (state, light now) pairs and the next cursor."""
    args = list[Any]([now])
    where = [scope_sql(scope, args)]
    for name, value in filters.items():
        values = value if isinstance(value, tuple) else (value,)
        args.extend(values)
        where.append(FILTERS[name].format(*range(len(args) - len(values) + 1, len(args) + 1)))
    if cursor is not None:
        at, case_id = decode_cursor(cursor)
        args += [at, case_id]
        where.append(f"(accepted_at, case_id) < (${len(args) - 1}, ${len(args)})")
    rows = await db.fetch(
        f"SELECT case_id, accepted_at, data, {LIGHT_SQL} AS light_now FROM cases "
        f"WHERE {' AND '.join(where)} ORDER BY accepted_at DESC, case_id DESC LIMIT {limit + 1}",
        *args)
    return _paged(rows, limit, "accepted_at")


async def cases_by_id(
    db: asyncpg.Pool | asyncpg.Connection, now: datetime, case_ids: Sequence[str],
) -> dict[str, tuple[CaseState, str]]:
    """These cases (those the read model has) by id: (state, light now)."""
    rows = await db.fetch(
        f"SELECT case_id, data, {LIGHT_SQL} AS light_now FROM cases WHERE case_id = ANY($2)",
        now, list(case_ids))
    return {r["case_id"]: (state_from_json(r["data"]), r["light_now"]) for r in rows}


async def overdue(
    db: asyncpg.Pool | asyncpg.Connection, kind: str, now: datetime, *, limit: int,
    cursor: str | None = None, assigned_to: str | None = None, scope: Scope = None, queue: str = "main",
) -> tuple[list[tuple[CaseState, str]], str | None]:
    """Cases overdue for confirmation, completion or call-back (within `scope`, in `queue`: the
    cases of blacklisted numbers are kept off `main`), most overdue first."""
    if kind not in OVERDUE:
        raise InvalidCommand(f"kind must be one of {', '.join(OVERDUE)}", field="kind")
    column, running = OVERDUE[kind]
    args = list[Any]([now])
    where = [running, f"{column} < $1", scope_sql(scope, args)]
    if assigned_to is not None:
        args.append(assigned_to)
        where.append(f"assigned_to = ${len(args)}")
    if queue != "all":
        args.append(queue)
        where.append(FILTERS["queue"].format(len(args)))
    if cursor is not None:
        at, case_id = decode_cursor(cursor)
        args += [at, case_id]
        where.append(f"({column}, case_id) > (${len(args) - 1}, ${len(args)})")
    rows = await db.fetch(
        f"SELECT case_id, {column} AS due, data, {LIGHT_SQL} AS light_now FROM cases "
        f"WHERE {' AND '.join(where)} ORDER BY {column}, case_id LIMIT {limit + 1}", *args)
    return _paged(rows, limit, "due")


def _paged(
    rows: Sequence[asyncpg.Record], limit: int, key: str
) -> tuple[list[tuple[CaseState, str]], str | None]:
    items = [(state_from_json(r["data"]), r["light_now"]) for r in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return items, (encode_cursor(last[key], last["case_id"]) if last is not None else None)


async def unit_stats(
    db: asyncpg.Pool | asyncpg.Connection, unit_id: str | None = None
) -> list[dict[str, Any]]:
    """Assessment counters per unit (rejections, wrong rejections, call-back answers...)."""
    rows = await db.fetch(
        "SELECT * FROM case_unit_stats WHERE $1::text IS NULL OR unit_id = $1 ORDER BY unit_id",
        unit_id)
    return [dict(r) for r in rows]


class LightRefresher:
    """Worker: keeps the stored `light` column current as time passes, publishing changes."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock,
                 publish: Callable[[Sequence[Change]], Awaitable[None]], interval: float = 5.0) -> None:
        self._pool, self._clock, self._publish, self._interval = pool, clock, publish, interval

    async def refresh(self) -> int:
        """Update lights that changed since the last pass; the number updated."""
        rows = await self._pool.fetch(
            f"UPDATE cases SET light = {LIGHT_SQL} WHERE status NOT IN ({_DONE_SQL}) "
            f"AND light <> {LIGHT_SQL} RETURNING case_id, status, light, version, owner, assigned_to",
            self._clock.now())
        await self._publish([Change("case", dict(r)) for r in rows])
        return len(rows)

    async def run(self) -> None:
        """Refresh every `interval` seconds until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval)


Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
"""Where a query runs: the pool, or a connection already in a transaction."""


async def newest_open_case_of_phone(db: Db, phone: str) -> str | None:
    """The newest case of a caller's (canonical) number that is not finished, if any."""
    found = await db.fetchval(
        f"SELECT case_id FROM cases WHERE caller_phone = $1 AND status NOT IN ({_DONE_SQL}) "
        "ORDER BY created_at DESC LIMIT 1", phone)
    return None if found is None else str(found)


async def newest_completed_case_of_phone(db: Db, phone: str, since: datetime) -> str | None:
    """The case of a caller's (canonical) number completed most recently, since `since`, if any."""
    found = await db.fetchval(
        "SELECT case_id FROM cases WHERE caller_phone = $1 AND completed_at >= $2 "
        "ORDER BY completed_at DESC LIMIT 1", phone, since)
    return None if found is None else str(found)


async def newest_open_cases_of_phones(db: Db, phones: Collection[str]) -> dict[str, str]:
    """`newest_open_case_of_phone` of several numbers in one statement (numbers without one left out)."""
    rows = await db.fetch(
        f"SELECT DISTINCT ON (caller_phone) caller_phone, case_id FROM cases "
        f"WHERE caller_phone = ANY($1::text[]) AND status NOT IN ({_DONE_SQL}) "
        "ORDER BY caller_phone, created_at DESC", list(phones))
    return {str(r["caller_phone"]): str(r["case_id"]) for r in rows}


async def assignees(db: Db, case_ids: Collection[str]) -> dict[str, str | None]:
    """Who each of these cases is assigned to now (cases not in the read model are left out)."""
    rows = await db.fetch("SELECT case_id, assigned_to FROM cases WHERE case_id = ANY($1)", list(case_ids))
    return {r["case_id"]: r["assigned_to"] for r in rows}


async def busy_loads(db: Db) -> dict[str, int]:
    """Assignee -> number of cases it holds (dispatched .. in progress); {} before the table exists."""
    if not await db.fetchval("SELECT to_regclass('cases') IS NOT NULL"):
        return {}
    rows = await db.fetch(
        "SELECT assigned_to, count(*) AS n FROM cases WHERE assigned_to IS NOT NULL "
        "AND status = ANY($1::text[]) GROUP BY assigned_to", sorted(BUSY))
    return {r["assigned_to"]: int(r["n"]) for r in rows}


@dataclass(frozen=True, slots=True)
class WaitingRow:
    """A located case waiting for (re-)dispatch, as automatic dispatch sees it."""

    case_id: str
    category: str
    priority: int
    lat: float
    lon: float
    district: str | None
    version: int
    rejected_by: tuple[str, ...]


async def waiting_located(db: Db, categories: Collection[str], limit: int) -> list[WaitingRow]:
    """Located cases of these categories waiting for dispatch and not flagged for a person,
    most urgent first (priority, then the oldest)."""
    rows = await db.fetch(
        f"""SELECT case_id, category, priority, lat, lon, district, version,
                  coalesce(data->'rejected_by', '[]'::jsonb) AS rejected_by
           FROM cases WHERE status IN ({_sql_list(WAITING)})
             AND category = ANY($1::text[]) AND lat IS NOT NULL AND lon IS NOT NULL
             AND NOT ('manual_dispatch' = ANY(flags))
           ORDER BY priority, accepted_at LIMIT $2""", list(categories), limit)
    return [WaitingRow(r["case_id"], r["category"], r["priority"], r["lat"], r["lon"], r["district"],
                       r["version"], tuple(r["rejected_by"])) for r in rows]


def not_finished_sql(case_id: str) -> str:
    """A SQL condition: the case whose id is the expression `case_id` is not known finished
    (for another read model's query that must skip finished cases in the same statement)."""
    return (f"NOT EXISTS (SELECT 1 FROM cases c WHERE c.case_id = {case_id} "
            f"AND c.status IN ({_DONE_SQL}))")


async def open_lights(db: Db, scope: Scope = None) -> dict[str, int]:
    """How many unfinished cases (within `scope`) show each light (a light not yet set counts as green)."""
    lights = {"green": 0, "yellow": 0, "red": 0}
    args: list[Any] = []
    where = scope_sql(scope, args)
    for row in await db.fetch(
            f"SELECT light, count(*) AS n FROM cases WHERE status NOT IN ({_DONE_SQL}) AND {where} "
            "GROUP BY light", *args):
        lights[str(row["light"] or "green")] = row["n"]
    return lights


@dataclass(frozen=True, slots=True)
class FirstContact:
    """Cases with a caller number since an instant, and those whose caller had no other case."""

    cases: int
    single: int


async def first_contact(db: Db, since: datetime, scope: Scope = None) -> FirstContact:
    """First-contact resolution since `since`: cases (within `scope`) whose caller opened no other
    case then."""
    args: list[Any] = [since]
    where = scope_sql(scope, args)
    row = await db.fetchrow(
        f"""SELECT count(*) AS cases,
                  count(*) FILTER (WHERE NOT EXISTS (
                      SELECT 1 FROM cases o WHERE o.case_id <> c.case_id AND o.created_at >= $1
                        AND o.caller_phone = c.caller_phone)) AS single
           FROM cases c WHERE c.created_at >= $1 AND c.caller_phone IS NOT NULL AND {where}""", *args)
    return FirstContact(row["cases"], row["single"])


@dataclass(frozen=True, slots=True)
class WebRequest:
    """A case opened from the web channel, as Open311 shows it (no personal data)."""

    case_id: str
    status: CaseStatus
    category: str
    assigned_to: str | None
    accepted_at: datetime
    updated_at: datetime
    deadline: datetime | None
    lat: float | None
    lon: float | None


_WEB = "case_id, status, category, assigned_to, accepted_at, updated_at, deadline, lat, lon"


def _web(row: asyncpg.Record) -> WebRequest:
    return WebRequest(row["case_id"], CaseStatus(row["status"]), row["category"], row["assigned_to"],
                      row["accepted_at"], row["updated_at"], row["deadline"], row["lat"], row["lon"])


async def web_requests_by_id(
    db: Db, case_ids: Sequence[str], store: EventStore | None = None
) -> list[WebRequest]:
    """The web channel's cases among these ids, newest first; with `store`, those the
    projection has not caught up with yet are folded from their streams (read your writes)."""
    rows = await db.fetch(
        f"SELECT {_WEB} FROM cases WHERE channel = 'web' AND case_id = ANY($1::text[]) "
        "ORDER BY accepted_at DESC LIMIT 1000", list(case_ids))
    found = [_web(r) for r in rows]
    if store is not None:
        known = {r.case_id for r in found}
        for case_id in dict.fromkeys(case_ids):
            if case_id not in known and len(found) < 1000:
                folded = await web_request_from_log(store, case_id)
                found += [folded] if folded is not None else []
        found.sort(key=lambda r: r.accepted_at, reverse=True)
    return found


async def web_request_from_log(store: EventStore, case_id: str) -> WebRequest | None:
    """A web case folded from its stream: what the read model will show once it catches up."""
    if not CASE_ID.match(case_id):
        return None  # not an id this system hands out: no stream to read
    records = await store.read_stream(case_stream(case_id))
    state = fold(case_id, records) if records else None
    if state is None or state.channel != "web" or state.accepted_at is None:
        return None
    loc = state.location
    return WebRequest(case_id, state.status, state.category, state.assigned_to, state.accepted_at,
                      records[-1].recorded_at, state.deadline, loc.lat if loc else None,
                      loc.lon if loc else None)


async def web_requests(
    db: Db, start: datetime, end: datetime | None, categories: Sequence[str], finished: bool | None,
) -> list[WebRequest]:
    """The web channel's cases accepted in [start, end] of these categories (all when empty),
    only finished or unfinished ones when `finished` says so; newest first, at most 1,000."""
    done = "" if finished is None else f"AND status {'' if finished else 'NOT '}IN ({_DONE_SQL}) "
    rows = await db.fetch(
        f"SELECT {_WEB} FROM cases WHERE channel = 'web' AND accepted_at >= $1 "
        "AND ($2::timestamptz IS NULL OR accepted_at <= $2) "
        f"AND (cardinality($3::text[]) = 0 OR category = ANY($3::text[])) {done}"
        "ORDER BY accepted_at DESC LIMIT 1000", start, end, list(categories))
    return [_web(r) for r in rows]


async def web_request(db: Db, case_id: str, store: EventStore | None = None) -> WebRequest | None:
    """One case of the web channel, or None; with `store`, one the projection has not
    caught up with yet is folded from its stream (an id once answered is never unknown)."""
    row = await db.fetchrow(f"SELECT {_WEB} FROM cases WHERE case_id = $1 AND channel = 'web'", case_id)
    if row is not None:
        return _web(row)
    return None if store is None else await web_request_from_log(store, case_id)


class SlaSettings(Protocol):
    """The configuration section the cases read model reads."""

    @property
    def sla(self) -> SlaConfig:
        """Response limits and light thresholds."""
        ...


class CasesDeps(Deps, Protocol):
    """What the cases capability's hooks use: the common dependencies and the SLA settings."""

    @property
    def settings(self) -> SlaSettings:
        """The configuration."""
        ...


def projections(deps: CasesDeps) -> list[CasesProjection]:
    """The cases projection."""
    return [CasesProjection(deps.clock, deps.settings.sla)]


def workers(deps: Deps) -> list[Task]:
    """The light refresher."""
    return [LightRefresher(deps.pool, deps.clock, deps.publish).run]
