"""Read models of links and incidents: `case_links`, `incidents`, `incident_cases`.

`case_links` holds each case's side of its links (reason, score, when);
`incidents` / `incident_cases` are the storm view. The columns
`cases.linked_case_ids` and `cases.incident_id` are NOT written here: the cases
projection folds every case event into `CaseState`, whose applier registry
(`case_events.APPLIERS`) this package extends with `CaseLinked`,
`CaseUnlinked` and `CaseAddedToIncident` - one fold, one writer per table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from dispatch.core.capability import Deps
from eventstore import RecordedEvent
from eventstore.subscriptions import Change

_SQL: dict[str, str] = {
    "link": """INSERT INTO case_links (case_id, other_case_id, reason, score, linked_at)
        VALUES ($1, $2, $3, $4, $5) ON CONFLICT (case_id, other_case_id)
        DO UPDATE SET reason = $3, score = $4, linked_at = $5""",
    "unlink": "DELETE FROM case_links WHERE case_id = $1 AND other_case_id = $2",
    "opened": """INSERT INTO incidents (incident_id, status, category, district, lat, lon, opened_at,
        version) VALUES ($1, 'open', $2, $3, $4, $5, $6, $7) ON CONFLICT (incident_id) DO NOTHING""",
    "member": """WITH added AS (INSERT INTO incident_cases (incident_id, case_id, added_at)
        VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1)
        UPDATE incidents SET case_count = case_count + (SELECT count(*) FROM added), version = $4
        WHERE incident_id = $1""",
    "cause": """UPDATE incidents SET cause = $2, expected_restoration_at = $3, cause_revision = $4,
        version = $5 WHERE incident_id = $1""",
    "resolved": """UPDATE incidents SET status = 'resolved', resolved_at = $2, version = $3
        WHERE incident_id = $1""",
    "merged": """UPDATE incidents SET status = 'merged', merged_into = $2, version = $3
        WHERE incident_id = $1""",
    "absorbed": """UPDATE incidents SET merged_from = array_append(merged_from, $2), version = $3
        WHERE incident_id = $1 AND NOT $2 = ANY(merged_from)""",
}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _linked(conn: asyncpg.Connection, e: RecordedEvent) -> list[Change]:
    d = e.data
    await conn.execute(_SQL["link"], d["case_id"], d["other_case_id"], d["reason"], d.get("score"),
                       e.recorded_at)
    return [Change("case_link", {"case_id": d["case_id"], "other_case_id": d["other_case_id"],
                                 "linked": True})]


async def _unlinked(conn: asyncpg.Connection, e: RecordedEvent) -> list[Change]:
    d = e.data
    await conn.execute(_SQL["unlink"], d["case_id"], d["other_case_id"])
    return [Change("case_link", {"case_id": d["case_id"], "other_case_id": d["other_case_id"],
                                 "linked": False})]


async def _opened(conn: asyncpg.Connection, e: RecordedEvent) -> list[Change]:
    d = e.data
    await conn.execute(_SQL["opened"], d["incident_id"], d["category"], d["district"], d.get("lat"),
                       d.get("lon"), _ts(d["opened_at"]), e.version)
    return [Change("incident", {"incident_id": d["incident_id"], "status": "open"})]


async def _member(conn: asyncpg.Connection, e: RecordedEvent) -> list[Change]:
    d = e.data
    if e.category == "case":
        return []  # the case's side: folded by the cases projection
    await conn.execute(_SQL["member"], d["incident_id"], d["case_id"], e.recorded_at, e.version)
    return [Change("incident", {"incident_id": d["incident_id"], "case_id": d["case_id"]})]


async def _cause(conn: asyncpg.Connection, e: RecordedEvent) -> list[Change]:
    d = e.data
    await conn.execute(_SQL["cause"], d["incident_id"], d["cause"], _ts(d["expected_restoration_at"]),
                       d["revision"], e.version)
    return [Change("incident", {"incident_id": d["incident_id"], "cause_revision": d["revision"]})]


async def _resolved(conn: asyncpg.Connection, e: RecordedEvent) -> list[Change]:
    d = e.data
    await conn.execute(_SQL["resolved"], d["incident_id"], _ts(d["resolved_at"]), e.version)
    return [Change("incident", {"incident_id": d["incident_id"], "status": "resolved"})]


async def _merged(conn: asyncpg.Connection, e: RecordedEvent) -> list[Change]:
    d = e.data
    await conn.execute(_SQL["merged"], d["incident_id"], d["into_incident_id"], e.version)
    return [Change("incident", {"incident_id": d["incident_id"], "status": "merged",
                                "merged_into": d["into_incident_id"]})]


async def _absorbed(conn: asyncpg.Connection, e: RecordedEvent) -> list[Change]:
    d = e.data
    await conn.execute(_SQL["absorbed"], d["incident_id"], d["absorbed_incident_id"], e.version)
    return [Change("incident", {"incident_id": d["incident_id"], "merged_from": d["absorbed_incident_id"]})]


_APPLY: dict[str, Callable[[asyncpg.Connection, RecordedEvent], Awaitable[list[Change]]]] = {
    "CaseLinked": _linked, "CaseUnlinked": _unlinked, "IncidentOpened": _opened,
    "CaseAddedToIncident": _member, "IncidentCauseSet": _cause, "IncidentResolved": _resolved,
    "IncidentMerged": _merged, "IncidentAbsorbed": _absorbed,
}


class LinksProjection:
    """Projects link and incident events into `case_links`, `incidents` and `incident_cases`."""

    name = "links"
    categories: frozenset[str] | None = frozenset({"case", "incident"})
    tables: tuple[str, ...] = ("case_links", "incidents", "incident_cases")

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Apply one event (others are ignored)."""
        step = _APPLY.get(event.type)
        return None if step is None else await step(conn, event)


def projections(deps: Deps) -> list[LinksProjection]:
    """The links projection."""
    return [LinksProjection()]
