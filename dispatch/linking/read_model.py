"""Read models of links and incidents: `case_links`, `incidents`, `incident_cases`, and their queries.

`case_links` holds each case's side of its links (reason, score, when);
`incidents` / `incident_cases` are the storm view. The columns
`cases.linked_case_ids` and `cases.incident_id` are NOT written here: the cases
projection folds every case event into `CaseState`, whose applier registry
(`dispatch.cases.state.APPLIERS`) folds `CaseLinked`,
`CaseUnlinked` and `CaseAddedToIncident` - one fold, one writer per table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

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
    types = frozenset(_APPLY)
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""
    partitions = 1
    """Global (eventstore/partitions.py): a link and an incident's membership are rows of two streams."""
    tables: tuple[str, ...] = ("case_links", "incidents", "incident_cases")

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Apply one event (others are ignored)."""
        step = _APPLY.get(event.type)
        return None if step is None else await step(conn, event)


def projections(deps: Deps) -> list[LinksProjection]:
    """The links projection."""
    return [LinksProjection()]


Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
"""Where a query runs: the pool, or a connection already in a transaction."""


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An incident as the storm view lists it, with its cases in the order they joined."""

    incident_id: str
    status: str
    category: str
    district: str
    lat: float | None
    lon: float | None
    opened_at: datetime
    case_count: int
    cause: str | None
    expected_restoration_at: datetime | None
    cause_revision: int
    resolved_at: datetime | None
    merged_into: str | None
    merged_from: list[str]
    version: int
    case_ids: list[str]


_INCIDENT_COLUMNS = """incident_id, status, category, district, lat, lon, opened_at, case_count, cause,
    expected_restoration_at, cause_revision, resolved_at, merged_into, merged_from, version"""


async def list_incidents(
    db: Db, *, status: str | None, district: str | None, category: str | None,
    before: tuple[datetime, str] | None, limit: int, scope: Collection[str] | None = None,
) -> list[IncidentRow]:
    """Incidents matching the filters (None: any), newest first, opened before the `before` sort key;
    at most `limit`; with a `scope` (organisation nodes), only those with a case held by or assigned
    to one of them."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (("status", status), ("district", district), ("category", category)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if before is not None:
        args.extend(before)
        where.append(f"(opened_at, incident_id) < (${len(args) - 1}, ${len(args)})")
    if scope is not None:
        args.append(sorted(scope))
        where.append(f"""EXISTS (SELECT 1 FROM incident_cases ic JOIN cases c ON c.case_id = ic.case_id
            WHERE ic.incident_id = incidents.incident_id
              AND (c.owner = ANY(${len(args)}::text[]) OR c.assigned_to = ANY(${len(args)}::text[])))""")
    rows = await db.fetch(
        f"SELECT {_INCIDENT_COLUMNS} FROM incidents {'WHERE ' + ' AND '.join(where) if where else ''} "
        f"ORDER BY opened_at DESC, incident_id DESC LIMIT {int(limit)}", *args)
    members = await db.fetch(
        "SELECT incident_id, array_agg(case_id ORDER BY added_at, case_id) AS ids FROM incident_cases "
        "WHERE incident_id = ANY($1) GROUP BY incident_id", [r["incident_id"] for r in rows])
    ids = {m["incident_id"]: list(m["ids"]) for m in members}
    return [IncidentRow(**{**dict(r), "merged_from": list(r["merged_from"]),
                           "case_ids": ids.get(r["incident_id"], [])}) for r in rows]
