"""Benchmark: report queries over a month of 500,000 contacts (issue 22, target p99 <= 200 ms).

    intake bench reports [--contacts 500000] [--rounds 3] [--dsn POSTGRES_DSN]

In a scratch database (created and dropped here, migrated like the app's): a per-contact
table of one month (half calls, half cases, 200 agents, 100 units, 14 districts, every
category and channel, call-backs with scores; fixed seed), and the `reports` projection's
`report_buckets` filled from it in bulk - per report, grouping, key and day the vector of sums
the projection keeps.

Timed, each question once per round, in random order: every report in every grouping and
period over the whole month and over a random range of 3-20 days, answered as the endpoint
answers (`dispatch.reports.export.build`: the bucket query and the table). Baseline in the
same run: the same question (period, grouping, the report's sums) by a plain GROUP BY over
the per-contact table (with an index on kind and day). One question per report is checked
to give the same sums both ways.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import date, timedelta

import asyncpg

from bench.scratch import add_server_arguments, create_database, drop_database, load_average
from dispatch.reports.definitions import PERIODS, REPORTS
from dispatch.reports.export import build

TARGET_P99_MS = 200.0
START = date(2026, 11, 1)
DAYS = 30
CATEGORIES = ("power_fault", "voltage_anomaly", "consultation", "complaint", "report", "suggestion", "praise",
              "home_service", "elderly_emergency", "elderly_care", "enterprise_service", "public_affairs",
              "simple_affair", "todo")

CONTACTS = """
CREATE TABLE bench_contacts AS
SELECT g AS id, $2::date + (floor(random() * $3))::int AS day,
       CASE WHEN g % 2 = 0 THEN 'call' ELSE 'case' END AS kind,
       'q' || (g % 5) AS queue, 'A' || lpad(floor(random() * 200)::text, 3, '0') AS agent,
       (ARRAY[{categories}])[1 + floor(random() * 14)::int] AS category,
       '6104' || lpad(floor(random() * 14)::text, 2, '0') AS district,
       (ARRAY['phone', 'sms', 'web', 'wechat'])[1 + floor(random() * 4)::int] AS channel,
       'U' || lpad(floor(random() * 100)::text, 3, '0') AS unit,
       random() < 0.93 AS answered, floor(random() * 90000)::int AS wait_ms,
       floor(random() * 600000)::int AS handle_ms, random() < 0.1 AS repeat, random() < 0.85 AS resolved,
       random() < 0.8 AS dispatched, random() < 0.9 AS on_time, random() < 0.05 AS rejected,
       random() < 0.02 AS wrong, random() < 0.7 AS called_back, floor(random() * 3)::int AS outcome,
       1 + floor(random() * 5)::int AS score
FROM generate_series(1, $1) AS g
"""

CALLED = "c.kind = 'case' AND c.called_back"
ANSWERED = "c.kind = 'call' AND c.answered"
COMPLAINT = "c.category = 'complaint'"


def _flag(condition: str) -> str:
    return f"({condition})::int"


def _when(condition: str, value: str) -> str:
    return f"CASE WHEN {condition} THEN {value} ELSE 0 END"


MEASURES: dict[str, tuple[str, list[tuple[str, str]], list[tuple[str, str]]]] = {
    "calls": ("c.kind = 'call'", [("all", "''"), ("queue", "c.queue")], [
        ("offered", "1"), ("answered", _flag("c.answered")), ("abandoned", _flag("NOT c.answered")),
        ("wait_ms", _when("c.answered", "c.wait_ms")), ("waits", _flag("c.answered")),
        ("handle_ms", _when("c.answered", "c.handle_ms")), ("handled", _flag("c.answered"))]),
    "cases": ("c.kind = 'case'", [("all", "''"), ("category", "c.category"), ("district", "c.district"),
                                  ("channel", "c.channel"), ("unit", "c.unit"), ("agent", "c.agent")], [
        ("cases", "1"), ("transferred", _flag("c.dispatched")), ("dispatches", _flag("c.dispatched")),
        ("with_caller", "1"), ("repeat_contacts", _flag("c.repeat")),
        ("first_contact_resolved", _flag("c.resolved")), ("praise", _flag("c.category = 'praise'")),
        ("criticism", _flag(COMPLAINT))]),
    "satisfaction": ("c.kind = 'case'", [("all", "''"), ("unit", "c.unit"), ("agent", "c.agent")], [
        ("callbacks", _flag(CALLED)), ("satisfied", _flag(f"{CALLED} AND c.outcome = 0")),
        ("unsatisfied", _flag(f"{CALLED} AND c.outcome = 1")),
        ("not_confirmed", _flag(f"{CALLED} AND c.outcome = 2")),
        ("case_score", _when(CALLED, "c.score")), ("case_scores", _flag(CALLED)),
        ("unit_score", _when(CALLED, "6 - c.score")), ("unit_scores", _flag(CALLED)),
        ("praise", _flag("c.category = 'praise'")), ("criticism", _flag(COMPLAINT))]),
    "units": ("c.kind = 'case'", [("unit", "c.unit")], [
        ("dispatched", _flag("c.dispatched")), ("confirmed", _flag("c.dispatched")),
        ("confirmed_on_time", _flag("c.dispatched AND c.on_time")), ("completed", _flag("c.dispatched")),
        ("completed_on_time", _flag("c.dispatched AND c.on_time")), ("rejected", _flag("c.rejected")),
        ("wrong_rejections", _flag("c.wrong")), ("complaints", _flag(COMPLAINT)),
        ("complaints_responded_7d", _flag(f"{COMPLAINT} AND c.on_time")),
        ("complaints_resolved_10d", _flag(f"{COMPLAINT} AND c.resolved")),
        ("callbacks", _flag(CALLED)), ("satisfied", _flag(f"{CALLED} AND c.outcome = 0")),
        ("unit_score", _when(CALLED, "6 - c.score")), ("unit_scores", _flag(CALLED))]),
    "agents": ("true", [("agent", "c.agent")], [
        ("answered_calls", _flag(ANSWERED)), ("handle_ms", _when(ANSWERED, "c.handle_ms")),
        ("handled", _flag(ANSWERED)), ("cases", _flag("c.kind = 'case'")), ("callbacks", _flag(CALLED)),
        ("satisfied", _flag(f"{CALLED} AND c.outcome = 0")), ("case_score", _when(CALLED, "c.score")),
        ("case_scores", _flag(CALLED)), ("unit_score", _when(CALLED, "6 - c.score")),
        ("unit_scores", _flag(CALLED))]),
}
"""Per report: which contacts, its groupings (dim, key expression) and measures (name, value expression)."""


def _values(pairs: list[tuple[str, str]]) -> str:
    return "(VALUES " + ", ".join(f"('{name}', {expr})" for name, expr in pairs) + ")"


async def populate(conn: asyncpg.Connection, contacts: int) -> float:
    """The per-contact table and the buckets from it; seconds taken."""
    started = time.perf_counter()
    await conn.execute("SELECT setseed(0.22)")
    categories = ", ".join(f"'{c}'" for c in CATEGORIES)
    await conn.execute(CONTACTS.format(categories=categories), contacts, START, DAYS)
    await conn.execute("CREATE INDEX ON bench_contacts (kind, day)")
    for report, (where, dims, measures) in MEASURES.items():
        exprs = dict(measures)
        vector = ", ".join(f"sum({exprs.get(m, '0')})" for m in REPORTS[report].measures)
        await conn.execute(f"""
            INSERT INTO report_buckets (report, dim, key, day, sums)
            SELECT '{report}', d.dim, d.key, c.day, ARRAY[{vector}]::bigint[]
            FROM bench_contacts c, LATERAL {_values(dims)} AS d(dim, key)
            WHERE {where} GROUP BY 1, 2, 3, 4""")
    await conn.execute("ANALYZE bench_contacts")
    await conn.execute("ANALYZE report_buckets")
    return time.perf_counter() - started


def baseline_sql(report: str, group: str, by: str) -> str:
    """The same question as a plain GROUP BY over the contacts: period, key, each measure's sum."""
    where, dims, measures = MEASURES[report]
    key = dict(dims)[group]
    sums = ", ".join(f"sum({expr}) AS {name}" for name, expr in measures)
    return (f"SELECT date_trunc('{by}', c.day)::date AS period, {key} AS key, {sums} FROM bench_contacts c "
            f"WHERE {where} AND c.day >= $1 AND c.day <= $2 GROUP BY 1, 2 ORDER BY 1, 2")


def _questions(rng: random.Random) -> list[tuple[str, str, str, date, date]]:
    out = []
    for report, spec in REPORTS.items():
        for group in spec.groups:
            for by in PERIODS:
                out.append((report, group, by, START, START + timedelta(days=DAYS - 1)))
                first = START + timedelta(days=rng.randint(0, DAYS - 20))
                out.append((report, group, by, first, first + timedelta(days=rng.randint(2, 19))))
    return out


def _ms(samples: Sequence[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered):7.1f} ms  p99 {p99:7.1f} ms  max {ordered[-1]:7.1f} ms"


async def run(args: argparse.Namespace) -> int:
    """Populate, check, time; exit 1 when the p99 misses the target or the two ways disagree."""
    from eventstore.migrate import migrate
    from gateway.schema import SCHEMA

    name = f"intake_bench_reports_{uuid.uuid4().hex[:8]}"
    scratch = await create_database(args.dsn, name)
    try:
        pool = await asyncpg.create_pool(scratch, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, SCHEMA)
                took = await populate(conn, args.contacts)
                buckets = await conn.fetchval("SELECT count(*) FROM report_buckets")
            print(f"{args.contacts:,} contacts over {DAYS} days; {buckets:,} bucket rows; "
                  f"populated in {took:.1f} s; load average {load_average()}")
            agree = await _check(pool)
            return await _time(pool, args) or int(not agree)
        finally:
            await pool.close()
    finally:
        await drop_database(args.dsn, name)


async def _check(pool: asyncpg.Pool) -> bool:
    """One question per report, by month over the whole month: the same sums both ways."""
    end = START + timedelta(days=DAYS - 1)
    agree = True
    for report, spec in REPORTS.items():
        group = spec.groups[0]
        table = await build(pool, report, group, START, end, "month")
        rows = await pool.fetch(baseline_sql(report, group, "month"), START, end)
        counts = [c for c in spec.counts if c in set(rows[0].keys())] if rows else []
        mine = {(i["group"], c): i[c] for i in table.items for c in counts}
        theirs = {(r["key"], c): r[c] for r in rows for c in counts if r[c]}
        same = {k: v for k, v in mine.items() if v} == theirs
        agree &= same
        print(f"check {report} by {group}: {len(table.items)} rows, {'same sums' if same else 'DIFFERENT'}")
    return agree


async def _time(pool: asyncpg.Pool, args: argparse.Namespace) -> int:
    rng = random.Random(22)
    ours: dict[str, list[float]] = {r: [] for r in REPORTS}
    plain: dict[str, list[float]] = {r: [] for r in REPORTS}
    for _ in range(args.rounds):
        questions = _questions(rng)
        rng.shuffle(questions)
        for report, group, by, start, end in questions:
            began = time.perf_counter()
            await build(pool, report, group, start, end, by)
            ours[report].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            await pool.fetch(baseline_sql(report, group, by), start, end)
            plain[report].append((time.perf_counter() - began) * 1000)
    every = [x for v in ours.values() for x in v]
    print(f"\n{len(every)} questions ({args.rounds} rounds); load average {load_average()}")
    print(f"{'report':<14} {'buckets (the endpoint)':<48} plain GROUP BY over contacts")
    for report in REPORTS:
        print(f"{report:<14} {_ms(ours[report]):<48} {_ms(plain[report])}")
    print(f"{'all':<14} {_ms(every):<48} {_ms([x for v in plain.values() for x in v])}")
    p99 = sorted(every)[min(len(every) - 1, int(0.99 * len(every)))]
    verdict = "met" if p99 <= TARGET_P99_MS else "MISSED"
    print(f"target p99 <= {TARGET_P99_MS:.0f} ms: {verdict} ({p99:.1f} ms)")
    return int(p99 > TARGET_P99_MS)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `intake bench reports`."""
    parser = argparse.ArgumentParser(prog="intake bench reports")
    parser.add_argument("--contacts", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    add_server_arguments(parser)
    return asyncio.run(run(parser.parse_args(list(argv or []))))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
