"""Read models of calls (`calls`) and call-back tasks (`missed_calls`).

`calls` also links a call (and its recording) to the case registered from it.
Both tables can be dropped and rebuilt from the `call-`, `callback-` and
`case-` streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from dispatch.cases.registration import CaseRegistered
from dispatch.core.capability import Deps
from dispatch.core.messages import Event, from_recorded
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


async def _apply_call(conn: asyncpg.Connection, event: RecordedEvent) -> list[Change]:
    status, column = _STATUS_COLUMN[event.type]
    data = event.data
    contact = data["contact"]
    at = datetime.fromisoformat(contact["occurred_at"])
    caller = callable_number(contact["caller"]["phone"]) or contact["caller"]["phone"]
    await conn.execute(
        f"""INSERT INTO calls (call_id, caller, queue, agent, source, status, {column}, reason,
                recording, version)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (call_id) DO UPDATE SET
                caller = coalesce(calls.caller, $2), queue = coalesce($3, calls.queue),
                agent = coalesce($4, calls.agent),
                status = CASE WHEN calls.status = 'abandoned' THEN calls.status ELSE $6 END,
                {column} = coalesce(calls.{column}, $7), reason = coalesce($8, calls.reason),
                recording = coalesce($9, calls.recording), version = $10""",
        data["call_id"], caller, data.get("queue"), data.get("agent"),
        contact.get("extra", {}).get("source"), status, at, data.get("reason"),
        data.get("recording"), event.version,
    )
    return [Change("call", {"call_id": data["call_id"], "status": status})]


async def _apply_callback(conn: asyncpg.Connection, evt: Event, event: RecordedEvent) -> list[Change]:
    if isinstance(evt, CallbackTaskOpened):
        await conn.execute(
            """INSERT INTO missed_calls (task_id, stream, caller, queue, status, attempts,
                   first_missed_at, last_missed_at, call_ids, version)
               VALUES ($1, $2, $3, $4, 'open', 1, $5, $5, ARRAY[$6], $7)""",
            evt.task_id, event.stream, evt.caller, evt.queue, evt.missed_at, evt.call_id, event.version,
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
    stream = evt.contact_stream or ""
    call_id = stream.removeprefix("call-") if stream.startswith("call-") else None
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
