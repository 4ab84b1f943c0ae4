"""Read models of calls (`calls`) and call-back tasks (`missed_calls`), and every query on them.

`calls` also links a call (and its recording) to the case registered from it.
Both tables can be dropped and rebuilt from the `call-`, `callback-` and
`case-` streams.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from dispatch.cases.events import CaseRegistered
from dispatch.cases.state import registered_call
from dispatch.core.capability import Deps
from dispatch.core.messages import Event, from_recorded
from dispatch.core.personal import ERASED
from dispatch.intake.sms import callable_number
from dispatch.missed_calls.task import (
    CallbackAttemptRecorded,
    CallbackMissedAgain,
    CallbackTaskAssigned,
    CallbackTaskClosed,
    CallbackTaskOpened,
)
from eventstore import RecordedEvent
from eventstore.subscriptions import Change

_STATUS_COLUMN = {
    "CallOffered": ("offered", "offered_at"),
    "CallAnswered": ("answered", "answered_at"),
    "CallAbandoned": ("abandoned", "abandoned_at"),
    "CallEnded": ("ended", "ended_at"),
}


_PROGRESS = "ARRAY['offered', 'answered', 'ended', 'abandoned']::text[]"
"""A call's statuses in the order a call goes through them: its status never goes back, so events a
PBX delivers out of order (the end before the answer) leave it as the last of them says; a call
abandoned stays abandoned (as before, whatever came after)."""


async def _apply_call(conn: asyncpg.Connection, event: RecordedEvent) -> list[Change]:
    status, column = _STATUS_COLUMN[event.type]
    data = event.data
    contact = data["contact"]
    at = datetime.fromisoformat(contact["occurred_at"])
    caller = callable_number(contact["caller"]["phone"]) or contact["caller"]["phone"]
    shown = await conn.fetchval(
        f"""INSERT INTO calls (call_id, caller, queue, agent, source, status, {column}, reason,
                recording, version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (call_id) DO UPDATE SET
                caller = coalesce(calls.caller, $2), queue = coalesce($3, calls.queue),
                agent = coalesce($4, calls.agent),
                status = CASE WHEN array_position({_PROGRESS}, calls.status)
                                   >= array_position({_PROGRESS}, $6) THEN calls.status ELSE $6 END,
                {column} = coalesce(calls.{column}, $7), reason = coalesce($8, calls.reason),
                recording = coalesce($9, calls.recording), version = $10
            RETURNING status""",
        data["call_id"], caller, data.get("queue"), data.get("agent"),
        contact.get("extra", {}).get("source"), status, at, data.get("reason"),
        data.get("recording"), event.version,
    )
    return [Change("call", {"call_id": data["call_id"], "status": shown})]


def _caller(evt: CallbackTaskOpened) -> str:
    """The task's caller; an erased one (`dispatch/core/personal.py`) is no other task's caller: one
    open task per caller must not make the erased callers' open tasks collide."""
    return f"{ERASED} {evt.task_id}" if evt.caller == ERASED else evt.caller


async def _apply_callback(conn: asyncpg.Connection, evt: Event, event: RecordedEvent) -> list[Change]:
    if isinstance(evt, CallbackTaskOpened):
        await conn.execute(
            """INSERT INTO missed_calls (task_id, stream, caller, queue, status, attempts,
                   first_missed_at, last_missed_at, call_ids, version)
               VALUES ($1, $2, $3, $4, 'open', 1, $5, $5, ARRAY[$6], $7)""",
            evt.task_id, event.stream, _caller(evt), evt.queue, evt.missed_at, evt.call_id, event.version,
        )
    elif isinstance(evt, CallbackMissedAgain):
        await conn.execute(
            """UPDATE missed_calls SET attempts = attempts + 1,
                   last_missed_at = greatest(last_missed_at, $2), call_ids = array_append(call_ids, $3::text),
                   queue = coalesce($4, queue), version = $5 WHERE task_id = $1""",
            evt.task_id, evt.missed_at, evt.call_id, evt.queue, event.version,
        )
    elif isinstance(evt, CallbackTaskAssigned):
        await conn.execute(
            """UPDATE missed_calls SET assigned_to = $2, assigned_at = $3, pinned = $4, version = $5
               WHERE task_id = $1""",
            evt.task_id, evt.agent_id, evt.at, evt.reason == "manual", event.version,
        )
    elif isinstance(evt, CallbackAttemptRecorded):
        await conn.execute(
            """UPDATE missed_calls SET callback_attempts = $2, outcome = $3, due_at = $4, version = $5
               WHERE task_id = $1""",
            evt.task_id, evt.attempt, evt.outcome, evt.due_at, event.version,
        )
    elif isinstance(evt, CallbackTaskClosed):
        await conn.execute(
            """UPDATE missed_calls SET status = 'closed', close_reason = $2, closed_at = $3,
                   version = $4 WHERE task_id = $1""",
            evt.task_id, evt.reason, evt.at, event.version,
        )
    else:
        return []
    return [Change("missed_call", {"task_id": getattr(evt, "task_id", None), "type": event.type})]


async def _link_case(conn: asyncpg.Connection, evt: CaseRegistered) -> list[Change]:
    call_id = registered_call(evt)
    if call_id is None and evt.recording_id is None:
        return []
    linked = await conn.fetch(
        """UPDATE calls SET case_id = $1 WHERE call_id = $2 OR (recording IS NOT NULL AND recording = $3)
           RETURNING call_id""",
        evt.case_id, call_id, evt.recording_id,
    )
    return [Change("call", {"call_id": r["call_id"], "case_id": evt.case_id}) for r in linked]


class CallsProjection:
    """Projects call and call-back streams into `calls` and `missed_calls`."""

    name = "calls"
    categories: frozenset[str] | None = frozenset({"call", "callback", "case"})
    types = frozenset({*_STATUS_COLUMN, "CaseRegistered", "CallbackTaskOpened", "CallbackMissedAgain",
                       "CallbackTaskAssigned", "CallbackAttemptRecorded", "CallbackTaskClosed"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""
    partitions = 1
    """Global (eventstore/partitions.py): a case's registration links the row of a call on another stream."""
    tables: tuple[str, ...] = ("calls", "missed_calls")

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Update the row the event concerns."""
        if event.type in _STATUS_COLUMN:
            return await _apply_call(conn, event)
        if event.category == "case" and event.type != "CaseRegistered":
            return None
        evt = from_recorded(event)
        if isinstance(evt, CaseRegistered):
            return await _link_case(conn, evt)
        if evt is None or event.category != "callback":
            return None
        return await _apply_callback(conn, evt, event)


def projections(deps: Deps) -> list[CallsProjection]:
    """The calls projection."""
    return [CallsProjection()]


Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
"""Where a query runs: the pool, or a connection already in a transaction."""


@dataclass(frozen=True, slots=True)
class MissedCallRow:
    """A call-back task as the API lists it."""

    task_id: str
    caller: str
    queue: str | None
    status: str
    attempts: int
    callback_attempts: int
    first_missed_at: datetime
    last_missed_at: datetime
    assigned_to: str | None
    assigned_at: datetime | None
    due_at: datetime | None
    outcome: str | None
    closed_at: datetime | None
    close_reason: str | None
    call_ids: list[str]


async def missed_call_tasks(
    db: Db, status: str | None, agent_id: str | None, after: datetime | None, after_id: str, limit: int,
    scope: Collection[str] | None = None,
) -> list[MissedCallRow]:
    """Tasks by status and assignee (None: any), oldest missed first, after the given sort key;
    with a `scope` (organisation nodes), only those of its agents (`IN_SCOPE`)."""
    rows = await db.fetch(
        f"""SELECT task_id, caller, queue, status, attempts, callback_attempts, first_missed_at,
                  last_missed_at, assigned_to, assigned_at, due_at, outcome, closed_at, close_reason, call_ids
           FROM missed_calls
           WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR assigned_to = $2)
             AND ($3::timestamptz IS NULL OR (first_missed_at, task_id) > ($3, $4))
             AND {IN_SCOPE.format(n=6)}
           ORDER BY first_missed_at, task_id LIMIT $5""", status, agent_id, after, after_id, limit,
        None if scope is None else sorted(scope))
    return [MissedCallRow(**{**dict(r), "call_ids": list(r["call_ids"])}) for r in rows]


IN_SCOPE = """(${n}::text[] IS NULL OR EXISTS (SELECT 1 FROM ref_agents a
    WHERE a.id = missed_calls.assigned_to AND a.props->>'org' = ANY(${n}::text[])))"""
"""A call-back task belongs to the organisation node its assigned agent works for (the agent
reference data's `org`); one not assigned, or assigned to an agent of no node, to the city only."""


async def open_task_count(db: Db, scope: Collection[str] | None = None) -> int:
    """How many call-back tasks are open (of the agents of `scope`, when given)."""
    return int(await db.fetchval(
        f"SELECT count(*) FROM missed_calls WHERE status = 'open' AND {IN_SCOPE.format(n=1)}",
        None if scope is None else sorted(scope)))


async def task_in_scope(db: Db, task_id: str, scope: Collection[str]) -> bool:
    """Whether a call-back task belongs to a node of `scope`."""
    found: bool = await db.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM missed_calls WHERE task_id = $2 AND {IN_SCOPE.format(n=1)})",
        sorted(scope), task_id)
    return found


async def open_tasks(db: Db) -> list[tuple[str, str | None, bool]]:
    """(task id, assignee, pinned by hand) of every open task, oldest missed first; tasks of
    blacklisted numbers (dispatch.customers) are never assigned: they are not called back."""
    rows = await db.fetch("""SELECT task_id, assigned_to, pinned FROM missed_calls m WHERE status = 'open'
                             AND NOT EXISTS (SELECT 1 FROM customers k WHERE k.phone = m.caller
                                 AND k.tier = 'blacklisted'
                                 AND (k.expires_at IS NULL OR k.expires_at > now()))
                             ORDER BY first_missed_at, task_id""")
    return [(r["task_id"], r["assigned_to"], r["pinned"]) for r in rows]


async def pending_assignments(db: Db, task_ids: Sequence[str], agents: Sequence[str]) -> int:
    """How many of these (task, agent) assignments the read model does not show yet."""
    return int(await db.fetchval(
        """SELECT count(*) FROM unnest($1::text[], $2::text[]) AS m(task_id, agent)
           JOIN missed_calls c USING (task_id)
           WHERE c.status = 'open' AND c.assigned_to IS DISTINCT FROM m.agent""",
        list(task_ids), list(agents)))


@dataclass(frozen=True, slots=True)
class QueueHour:
    """Calls of one queue in one hour (local to the report's time zone)."""

    queue: str | None
    hour: datetime
    calls: int
    abandoned: int
    answered: int


async def calls_by_queue_hour(
    db: Db, start: datetime, end: datetime, tz: str, queue: str | None,
) -> list[QueueHour]:
    """Calls, abandoned and answered per queue and hour in [start, end) (the abandoned-call report)."""
    rows = await db.fetch(
        """WITH c AS (
               SELECT queue, coalesce(offered_at, abandoned_at, answered_at, ended_at) AS at,
                      abandoned_at, answered_at FROM calls)
           SELECT queue, date_trunc('hour', at AT TIME ZONE $3) AS hour, count(*) AS calls,
               count(*) FILTER (WHERE abandoned_at IS NOT NULL) AS abandoned,
               count(*) FILTER (WHERE answered_at IS NOT NULL) AS answered
           FROM c WHERE at >= $1 AND at < $2 AND ($4::text IS NULL OR queue = $4)
           GROUP BY 1, 2 ORDER BY 2, 1""", start, end, tz, queue)
    return [QueueHour(r["queue"], r["hour"], r["calls"], r["abandoned"], r["answered"]) for r in rows]


@dataclass(frozen=True, slots=True)
class Answering:
    """Calls offered since an instant, how many were answered, the mean wait (s) of those."""

    offered: int
    answered: int
    wait: float | None


async def answering_since(db: Db, since: datetime) -> Answering:
    """The answer rate's figures for calls offered since `since`."""
    row = await db.fetchrow(
        """SELECT count(*) AS offered, count(answered_at) AS answered,
                  avg(extract(epoch FROM answered_at - offered_at))
                      FILTER (WHERE answered_at IS NOT NULL) AS wait
           FROM calls WHERE offered_at >= $1""", since)
    wait = row["wait"]
    return Answering(row["offered"], row["answered"], None if wait is None else float(wait))


async def abandoned_per_hour(db: Db, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """(hour, abandoned calls) for every hour from start's to end's, empty hours included."""
    rows = await db.fetch(
        """SELECT h AS hour, count(c.call_id) AS n
           FROM generate_series(date_trunc('hour', $1::timestamptz), date_trunc('hour', $2::timestamptz),
                                interval '1 hour') AS h
           LEFT JOIN calls c ON c.abandoned_at >= h AND c.abandoned_at < h + interval '1 hour'
           GROUP BY h ORDER BY h""", start, end)
    return [(r["hour"], r["n"]) for r in rows]


@dataclass(frozen=True, slots=True)
class CaseCall:
    """A call of a case (the one it was registered from, or one linked to it) and its recording."""

    call_id: str
    caller: str | None
    queue: str | None
    agent: str | None
    status: str
    offered_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    recording: str | None


async def calls_of_case(db: Db, case_id: str, call_ids: Sequence[str] = ()) -> list[CaseCall]:
    """The calls linked to a case, and those named (its own call, before the projection links it),
    oldest first."""
    rows = await db.fetch(
        """SELECT call_id, caller, queue, agent, status, offered_at, answered_at, ended_at, recording
           FROM calls WHERE case_id = $1 OR call_id = ANY($2::text[])
           ORDER BY coalesce(offered_at, answered_at, abandoned_at, ended_at), call_id""",
        case_id, list(call_ids))
    return [CaseCall(**dict(r)) for r in rows]
