"""The reports' read model: the `reports` projection and the one query on it.

`report_facts` keeps one fact per call and per case (dispatch/reports/facts.py) as JSON;
`report_callers` each caller's latest case (repeat contacts); `report_buckets` the sums of
every fact's contributions per (report, grouping, key, local day), as a vector in the order of
the report's `measures`. A report over
any range and period sums day buckets, so a query reads a few thousand rows whatever the
number of contacts. All three tables are rebuilt from the `call-` and `case-` streams
(`intake rebuild reports`).

A grouping is a `dim` value, not a column: another one (the organisation level a case is
owned by, say) is a line in `CaseFact.contributions` and a name in `definitions.REPORTS`,
then `intake rebuild reports`; no migration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias

import asyncpg

from dispatch.cases.events import CaseRegistered
from dispatch.core.capability import Deps
from dispatch.core.messages import from_data, from_recorded, to_data
from dispatch.reports.definitions import REPORTS
from dispatch.reports.facts import (
    AT_ORG,
    ORG_SEPARATOR,
    REPEAT_WINDOW,
    CallFact,
    CaseFact,
    Contributions,
    caller_key,
    delta,
)
from eventstore import RecordedEvent
from eventstore.subscriptions import Change

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
_CALL_KINDS = {"CallOffered": "offered", "CallAnswered": "answered", "CallAbandoned": "abandoned",
               "CallEnded": "ended"}


def _stream_id(event: RecordedEvent) -> str:
    return event.stream.split("-", 1)[1]


class ReportsProjection:
    """Projects call and case streams into the report buckets."""

    name = "reports"
    categories: frozenset[str] | None = frozenset({"call", "case"})
    tables: tuple[str, ...] = ("report_facts", "report_callers", "report_buckets")

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """One event: a batch of one."""
        return await self.apply_batch(conn, [event])

    async def apply_batch(
        self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]
    ) -> Sequence[Change]:
        """Fold the events into their facts and add the change of each fact's contributions.

        Four reads and four writes per batch whatever its size: the facts and callers
        the batch touches, then the changed facts, callers and buckets.
        """
        calls = await _load(conn, "call", {_stream_id(e) for e in events if e.type in _CALL_KINDS}, CallFact)
        decoded = [(e, from_recorded(e)) for e in events if e.category == "case"]
        callers = await _callers(conn, {c for _, evt in decoded
                                        if isinstance(evt, CaseRegistered) and (c := caller_key(evt))})
        wanted = {_stream_id(e) for e, _ in decoded} | {case_id for case_id, _ in callers.values()}
        cases = await _load(conn, "case", wanted, CaseFact)
        # What each fact the batch changes counted for before it: only changed facts count for a
        # change of the buckets (a loaded fact left as it was would add and take the same).
        before: dict[tuple[str, str], Contributions] = {}
        changed_callers: set[str] = set()

        def touch(kind: str, fact: CallFact | CaseFact, fact_id: str) -> None:
            if (kind, fact_id) not in before:
                before[kind, fact_id] = fact.contributions()

        for event in events:
            kind = _CALL_KINDS.get(event.type)
            if kind is not None:
                call = calls.setdefault(_stream_id(event), CallFact(_stream_id(event)))
                touch("call", call, call.call_id)
                at = datetime.fromisoformat(event.data["contact"]["occurred_at"])
                call.apply(kind, at, event.data)
        for event, evt in decoded:
            if evt is None:
                continue
            case = cases.setdefault(_stream_id(event), CaseFact(_stream_id(event)))
            touch("case", case, case.case_id)
            first = case.accepted_at is None
            case.apply(evt, event.metadata.get("actor"))
            if first and case.accepted_at is not None and case.caller:
                previous = _note_repeat(case, callers, cases)
                if previous is not None:
                    touch("case", previous, previous.case_id)
                    previous.followed = True
                changed_callers.add(case.caller)
        changed_calls = {i for kind, i in before if kind == "call"}
        changed_cases = {i for kind, i in before if kind == "case"}
        old: Contributions = Counter()
        new: Contributions = Counter()
        for (kind, fact_id), contributed in before.items():
            old.update(contributed)
            new.update((calls if kind == "call" else cases)[fact_id].contributions())
        await _save(conn, "call", [calls[i] for i in changed_calls])
        await _save(conn, "case", [cases[i] for i in changed_cases])
        await _save_callers(conn, {c: callers[c] for c in changed_callers})
        await _add(conn, delta(old, new))
        return []


def _note_repeat(
    case: CaseFact, callers: dict[str, tuple[str, datetime]], cases: dict[str, CaseFact]
) -> CaseFact | None:
    """A new case of a caller: a repeat when the caller's previous case was recent; that case
    (returned: it was then not resolved at first contact) is marked `followed` by the caller."""
    assert case.caller is not None and case.accepted_at is not None
    previous = callers.get(case.caller)
    callers[case.caller] = (case.case_id, case.accepted_at)
    if previous is not None:
        prev_id, prev_at = previous
        if case.accepted_at - prev_at <= REPEAT_WINDOW and prev_id in cases:
            case.repeat = True
            return cases[prev_id]
    return None


async def _load(conn: asyncpg.Connection, kind: str, ids: set[str], cls: type[Any]) -> dict[str, Any]:
    if not ids:
        return {}
    rows = await conn.fetch("SELECT id, data FROM report_facts WHERE kind = $1 AND id = ANY($2::text[])",
                            kind, sorted(ids))
    return {r["id"]: from_data(cls, r["data"]) for r in rows}


async def _callers(conn: asyncpg.Connection, keys: set[str]) -> dict[str, tuple[str, datetime]]:
    if not keys:
        return {}
    rows = await conn.fetch("SELECT caller, case_id, at FROM report_callers WHERE caller = ANY($1::text[])",
                            sorted(keys))
    return {r["caller"]: (r["case_id"], r["at"]) for r in rows}


async def _save(conn: asyncpg.Connection, kind: str, facts: Sequence[CallFact | CaseFact]) -> None:
    if not facts:
        return
    ids = [f.call_id if isinstance(f, CallFact) else f.case_id for f in facts]
    await conn.execute(
        """INSERT INTO report_facts (kind, id, data)
           SELECT $1, id, data FROM unnest($2::text[], $3::jsonb[]) AS f(id, data)
           ON CONFLICT (kind, id) DO UPDATE SET data = excluded.data""",
        kind, ids, [to_data(f) for f in facts])


async def _save_callers(conn: asyncpg.Connection, callers: dict[str, tuple[str, datetime]]) -> None:
    if not callers:
        return
    keys = sorted(callers)
    await conn.execute(
        """INSERT INTO report_callers (caller, case_id, at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
           ON CONFLICT (caller) DO UPDATE SET case_id = excluded.case_id, at = excluded.at""",
        keys, [callers[k][0] for k in keys], [callers[k][1] for k in keys])


_INDEX = {name: {m: i for i, m in enumerate(r.measures)} for name, r in REPORTS.items()}


async def _add(conn: asyncpg.Connection, change: Contributions) -> None:
    """Add the changes to the buckets: one vector of sums per (report, grouping, key, day)."""
    vectors: dict[tuple[str, str, str, date], list[int]] = {}
    for (report, dim, key, day, measure), value in change.items():
        vector = vectors.setdefault((report, dim, key, day), [0] * len(_INDEX[report]))
        vector[_INDEX[report][measure]] += value
    rows = sorted((k, v) for k, v in vectors.items() if any(v))
    if not rows:
        return
    await conn.execute(
        """INSERT INTO report_buckets AS b (report, dim, key, day, sums)
           SELECT r, d, k, day, v::bigint[]
           FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[]) AS t(r, d, k, day, v)
           ON CONFLICT (report, dim, day, key) DO UPDATE SET sums = ARRAY(
               SELECT coalesce(x, 0) + coalesce(y, 0) FROM unnest(b.sums, excluded.sums) AS u(x, y))""",
        [k[0] for k, _ in rows], [k[1] for k, _ in rows], [k[2] for k, _ in rows], [k[3] for k, _ in rows],
        ["{" + ",".join(map(str, v)) + "}" for _, v in rows])


def projections(deps: Deps) -> list[ReportsProjection]:
    """The reports projection."""
    return [ReportsProjection()]


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a report: the period's first day, the grouping's key, the summed counts."""

    period: date
    key: str
    sums: dict[str, int]


_TRUNC = {"day": "day", "week": "week", "month": "month"}


async def report_sums(db: Db, name: str, group: str, start: date, end: date, by: str,
                      scope: frozenset[str] | None = None) -> list[Row]:
    """The sums of report `name` grouped by `group` per period `by` over the days [start, end];
    with `scope` (organisation nodes), of the cases held by or dispatched to one of them only
    (groupings `facts.ORG_GROUPS` of the case report)."""
    measures = REPORTS[name].measures
    sums = ", ".join(f"coalesce(sum(sums[{i}]), 0)::bigint AS m{i}" for i in range(1, len(measures) + 1))
    key, args, held = "key", [name, group, start, end], ""
    if scope is not None:  # keys `facts.org_key(owner, unit, key)`
        key = "split_part(key, $6, 3)"
        args = [name, group + AT_ORG, start, end, sorted(scope), ORG_SEPARATOR]
        held = "AND (split_part(key, $6, 1) = ANY($5::text[]) OR split_part(key, $6, 2) = ANY($5::text[]))"
    rows = await db.fetch(
        f"""SELECT date_trunc('{_TRUNC[by]}', day)::date AS period, {key} AS key, {sums}
            FROM report_buckets
            WHERE report = $1 AND dim = $2 AND day >= $3 AND day <= $4 {held}
            GROUP BY 1, 2 ORDER BY 1, 2""",
        *args)
    found = []
    for r in rows:
        values = {m: int(r[f"m{i}"]) for i, m in enumerate(measures, 1)}
        if any(values.values()):
            found.append(Row(r["period"], r["key"], values))
    return found


def known(name: str) -> bool:
    """Whether a report of this name exists."""
    return name in REPORTS
