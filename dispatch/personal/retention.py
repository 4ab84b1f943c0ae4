"""Retention (PIPL Art. 19 and 47(1)): a person's data is erased once every case of theirs has
been archived or closed for longer than its category's period.

`INTAKE_RETENTION` (`default=3y,complaint=5y,elderly_emergency=1y`) gives the periods; a
category not named keeps the default (3 years). Periods are calendar years and days, added in
PostgreSQL (`make_interval`), so 3y after 2024-02-29 is 2027-03-01.

`RetentionJob` (a worker of the personal capability) runs once a day: in ONE transaction it
takes an advisory lock and claims the day's row in `retention_runs`, so a second worker - or a
restarted one - does not run it again that day, and a crashed run is taken over (its claim
rolls back). `plan` chooses the people: an identifier (number, OpenID, elder, e-mail) that still has a
key, all of whose cases are due, widened to the person's other identifiers exactly as the
erasure widens it, whose every case is due too and who has had no contact (an SMS, a
WeChat message, a call) within the default period. Each is erased through the bus (`EraseSubject`,
legal basis `retention`) with the cases it was chosen on: a case that arrived since, or a legal
hold set since, makes that erasure refuse, and the person waits for a later day.

People without any case (a missed call, an SMS that opened none) are not chosen: their records
have no archiving to count from.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import asyncpg
import structlog

from dispatch.cases.registration import CATEGORIES
from dispatch.core.capability import Deps, Task
from dispatch.core.clock import Clock
from dispatch.core.errors import DispatchError, InvalidConfig
from dispatch.personal.erasure import EraseSubject, cases_of, person_of, widen

log = structlog.get_logger(__name__)

ACTOR = "system:retention"
REASON = "retention period ended"
_LOCK = 0x24_5245_54  # pg advisory lock key of the retention job ("24 RET")
_PERIOD = re.compile(r"(?:(\d{1,3})y)?(?:(\d{1,5})d)?")


@dataclass(frozen=True, slots=True)
class Period:
    """A retention period: whole calendar years and days."""

    years: int = 0
    days: int = 0

    def __str__(self) -> str:
        return "".join(f"{n}{unit}" for n, unit in ((self.years, "y"), (self.days, "d")) if n) or "0d"


def _default_period() -> Period:
    return Period(years=3)


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long after a case ends (archived or closed) its person's data is kept, by category."""

    default: Period = field(default_factory=_default_period)
    by_category: Mapping[str, Period] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, period in (("default", self.default), *self.by_category.items()):
            if name != "default" and name not in CATEGORIES:
                raise InvalidConfig("by_category", f"names an unknown category {name!r} "
                                    f"(categories: {', '.join(CATEGORIES)})")
            if period.years == 0 and period.days == 0:
                raise InvalidConfig("by_category", f"gives {name} no period (at least 1d)")

    def period(self, category: str) -> Period:
        """The period of a category."""
        return self.by_category.get(category, self.default)

    def args(self) -> tuple[list[str], list[int], list[int], int, int]:
        """The SQL arguments $2..$6: categories, their years and days, the default's."""
        names = sorted(self.by_category)
        return (names, [self.by_category[n].years for n in names], [self.by_category[n].days for n in names],
                self.default.years, self.default.days)

    def __str__(self) -> str:
        named = (f"{k}={v}" for k, v in sorted(self.by_category.items()))
        return ",".join([f"default={self.default}", *named])


def parse_retention(raw: str) -> RetentionConfig:
    """`default=3y,complaint=5y,elderly_emergency=1y,consultation=180d` (`ValueError` saying why)."""
    periods: dict[str, Period] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        name, sep, text = (s.strip() for s in part.partition("="))
        match = _PERIOD.fullmatch(text.lower())
        if not sep or not name or not text or match is None:
            raise ValueError(f"entry {part!r} is not category=period (a period is years and/or days: "
                             "3y, 180d, 1y30d)")
        if name in periods:
            raise ValueError(f"names {name!r} twice")
        periods[name] = Period(int(match.group(1) or 0), int(match.group(2) or 0))
    default = periods.pop("default", _default_period())
    try:
        return RetentionConfig(default, periods)
    except InvalidConfig as exc:
        raise ValueError(str(exc)) from exc


_DUE = """(c.status IN ('archived', 'closed')
  AND coalesce(c.archived_at, c.closed_at)
      + make_interval(years => coalesce(p.years, $5), days => coalesce(p.days, $6)) <= $1
  AND coalesce(c.data->'legal_hold', 'null'::jsonb) = 'null'::jsonb)"""
"""Whether case `c` is due: ended, its period ($1 now; `p` its category's, else $5 years $6 days)
over, no legal hold."""
_PERIODS = "LEFT JOIN unnest($2::text[], $3::int[], $4::int[]) AS p(category, years, days) USING (category)"

_CANDIDATES = f"""
WITH c AS (SELECT c.caller_phone, c.caller_openid, c.elder_id, c.caller_email, {_DUE} AS due
           FROM cases c {_PERIODS}),
s AS (SELECT 'phone:' || caller_phone AS subject, due FROM c WHERE caller_phone IS NOT NULL
      UNION ALL SELECT 'openid:' || caller_openid, due FROM c WHERE caller_openid IS NOT NULL
      UNION ALL SELECT 'elder:' || elder_id, due FROM c WHERE elder_id IS NOT NULL
      UNION ALL SELECT 'email:' || caller_email, due FROM c WHERE caller_email IS NOT NULL)
SELECT s.subject FROM s JOIN subject_keys k USING (subject)
GROUP BY s.subject HAVING bool_and(s.due) ORDER BY s.subject"""
"""Identifiers with a key whose every case is due (the erased read as `[erased]`: no key)."""

_DUE_AMONG = f"""SELECT c.case_id, c.category, {_DUE} AS due FROM cases c {_PERIODS}
                 WHERE c.case_id = ANY($7::text[])"""
_RECENT_CONTACT = """SELECT EXISTS (SELECT 1 FROM caller_contacts
    WHERE (phone = ANY($1::text[]) OR openid = ANY($2::text[]))
      AND at > $3::timestamptz - make_interval(years => $4, days => $5))"""


@dataclass(frozen=True, slots=True)
class Due:
    """A person to erase: the identifier chosen, how many identifiers they have, their cases."""

    subject: str
    identifiers: int
    case_ids: tuple[str, ...]
    categories: tuple[str, ...]


async def plan(
    conn: asyncpg.Connection, cfg: RetentionConfig, now: datetime, *, limit: int = 1000
) -> list[Due]:
    """The people whose data the retention erases now, at most `limit` of them (the rest on a
    later day; people passed over - a newer case under another identifier - never block them)."""
    args = cfg.args()
    chosen: list[Due] = []
    seen: set[str] = set()
    for row in await conn.fetch(_CANDIDATES, now, *args):
        if len(chosen) >= limit:
            break
        if row["subject"] in seen:
            continue
        person = await widen(conn, person_of(row["subject"]))
        seen.update(person.subjects)
        phones, openids, _, _, _ = person.args()
        case_ids = await cases_of(conn, person)
        due = await conn.fetch(_DUE_AMONG, now, *args, case_ids)
        if not case_ids or len(due) != len(case_ids) or not all(r["due"] for r in due):
            continue
        if await conn.fetchval(_RECENT_CONTACT, phones, openids, now, cfg.default.years, cfg.default.days):
            continue
        chosen.append(Due(row["subject"], len(person.subjects), tuple(case_ids),
                          tuple(sorted(r["category"] for r in due))))
    return chosen


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """What one run did."""

    erased: int
    skipped: int
    cases: int


Send = Callable[[Any], Awaitable[Any]]


class RetentionJob:
    """Worker: once a day (checked every `interval` seconds), erase the people `plan` chooses."""

    def __init__(self, pool: asyncpg.Pool, clock: Clock, send: Send, cfg: RetentionConfig,
                 *, interval: float = 3600.0, limit: int = 1000) -> None:
        self._pool, self._clock, self._send, self._cfg = pool, clock, send, cfg
        self._interval, self._limit = interval, limit

    async def run_once(self) -> RetentionRun | None:
        """Today's run, unless another worker holds it or it ran today (None)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                return None
            now = self._clock.now()
            claimed = await conn.fetchval(
                "INSERT INTO retention_runs (day, started_at) VALUES ($1, $2) ON CONFLICT (day) DO NOTHING "
                "RETURNING day", now.date(), now)
            if claimed is None:
                return None
            done = await self.erase(await plan(conn, self._cfg, now, limit=self._limit))
            await conn.execute("UPDATE retention_runs SET finished_at = $2, erased = $3, skipped = $4 "
                               "WHERE day = $1", now.date(), self._clock.now(), done.erased, done.skipped)
        log.info("retention_run", erased=done.erased, skipped=done.skipped, cases=done.cases)
        return done

    async def erase(self, people: list[Due]) -> RetentionRun:
        """Erase each person (one erasure each); a refusal (a new case, a hold) skips them."""
        erased = skipped = cases = 0
        for due in people:
            try:
                await self._send(EraseSubject(due.subject, REASON, "retention", ACTOR,
                                              expect_case_ids=due.case_ids))
            except DispatchError as exc:
                skipped += 1
                log.info("retention_skipped", code=exc.code, cases=len(due.case_ids))
            else:
                erased += 1
                cases += len(due.case_ids)
        return RetentionRun(erased, skipped, cases)

    async def run(self) -> None:
        """Check every `interval` seconds until cancelled; a failed check is logged and retried."""
        while True:
            try:
                await self.run_once()
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("retention_run_failed", error=type(exc).__name__, detail=str(exc))
            await asyncio.sleep(self._interval)


class RetentionSettings(Protocol):
    """The configuration section the retention job reads."""

    @property
    def retention(self) -> RetentionConfig:
        """The periods."""
        ...


class RetentionDeps(Deps, Protocol):
    """What the retention job uses: the common dependencies and the periods."""

    @property
    def settings(self) -> RetentionSettings:
        """The configuration."""
        ...


def workers(deps: RetentionDeps) -> list[Task]:
    """The daily retention job."""
    return [RetentionJob(deps.pool, deps.clock, deps.bus.handle, deps.settings.retention).run]
