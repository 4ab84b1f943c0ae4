"""Read model of elderly alerts: which call-backs are due and which are overdue.

The 30-minute call-back is modelled as `callback_due_at` on this read model
(not a durable timer): an alert is overdue while it is unconfirmed past that
instant, and the overdue list is a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from dispatch.core.capability import Deps
from dispatch.core.messages import Json
from eventstore import RecordedEvent
from eventstore.subscriptions import Change

_OPEN = """INSERT INTO elderly_alerts (case_id, alarm_id, account, elder_id, registered, notified,
    opened_at, callback_due_at, nearest_help) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (case_id) DO NOTHING"""
_CONFIRM = """UPDATE elderly_alerts SET confirmed_at = $2, outcome = $3, confirmed_by = $4
    WHERE case_id = $1"""


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


class ElderlyAlertsProjection:
    """Projects `ElderlyAlertOpened` / `ElderReachConfirmed` into `elderly_alerts`."""

    name = "elderly_alerts"
    categories: frozenset[str] | None = frozenset({"elderalert"})
    tables: tuple[str, ...] = ("elderly_alerts",)

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Insert the alert on opening, stamp it on confirmation."""
        d = event.data
        if event.type == "ElderlyAlertOpened":
            await conn.execute(
                _OPEN, d["case_id"], d["alarm_id"], d["account"], d.get("elder_id"),
                d["registered"], len(d.get("notified") or ()), _ts(d["opened_at"]),
                _ts(d["callback_due_at"]), d.get("nearest_help"))
        elif event.type == "ElderReachConfirmed":
            await conn.execute(_CONFIRM, d["case_id"], _ts(d["confirmed_at"]), d["outcome"],
                               d.get("actor"))
        else:
            return None
        return [Change("elderly_alert", {"case_id": d["case_id"], "event": event.type})]


def projections(deps: Deps) -> list[ElderlyAlertsProjection]:
    """The elderly alerts read model."""
    return [ElderlyAlertsProjection()]


_COLUMNS = ("case_id, alarm_id, account, elder_id, registered, notified, opened_at, "
            "callback_due_at, confirmed_at, outcome, confirmed_by")


async def list_alerts(
    conn: asyncpg.Connection, *, now: datetime, overdue: bool, limit: int, after: str | None
) -> list[Json]:
    """Alerts newest first (or only unconfirmed ones past their call-back time)."""
    where = ["($1::text IS NULL OR case_id < $1)"]
    if overdue:
        where.append("confirmed_at IS NULL AND callback_due_at <= $3")
    sql = (f"SELECT {_COLUMNS} FROM elderly_alerts WHERE {' AND '.join(where)} "
           "ORDER BY case_id DESC LIMIT $2")
    args: list[object] = [after, limit] + ([now] if overdue else [])
    rows = await conn.fetch(sql, *args)
    return [{**dict(r), "overdue": r["confirmed_at"] is None and r["callback_due_at"] <= now}
            for r in rows]
