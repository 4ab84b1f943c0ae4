"""`make mutate`: mutation testing of the core with mutmut; the last line is the verdict.

Runs `mutmut run` over the modules and tests named in `[tool.mutmut]` of
pyproject.toml (from scratch: a kept `mutants/` would keep stale verdicts),
then prints the surviving mutants per file and, as the last line,
`mutation: K killed, S survived`. Killed counts mutants a test failed on or
timed out on; survived counts those every selected test passed with, and those
no selected test reached. `python -m tests.mutate --resume` continues a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import asyncpg
from mutmut.stats import status_by_exit_code

from bench.scratch import create_database, drop_database
from eventstore.migrate import migrate
from gateway.schema import SCHEMA
from tests.conftest import REUSE_PREFIX

PARTS: dict[str, tuple[str, ...]] = {
    # The append path of the PostgreSQL store (reads, NOTIFY and pools are left out), and its twin.
    "append": ("eventstore.postgres.*append*", "eventstore.postgres.*_same_stream_*",
               "eventstore.postgres.*_stored_key_*", "eventstore.memory.*", "eventstore.records.*"),
    # The tamper check (not the CLI and worker glue around it).
    "tamper": tuple(f"eventstore.tamper.*{name}_*" for name in (
        "as_json", "bad_event", "_long", "check_chains", "_check_link", "_compare", "_check_range",
        "_check_seals", "_seal_anchor", "verify")),
    "sla": ("dispatch.cases.sla.*",),
    # Authorisation and role masking; the masking of logs (not the logger set-up).
    "auth": ("gateway.auth.*", "gateway.logging.*mask*"),
    # Missed-call fairness: the task's rules and the assignment plan.
    "missed_calls": ("dispatch.missed_calls.task.*", "dispatch.missed_calls.policy.*choose_agent_*",
                     "dispatch.missed_calls.policy.*ǁ_Boardǁ*",
                     "dispatch.missed_calls.policy.*plan_assignments_*"),
    # Linking decisions: scoring, choosing, the incident rule and the candidate search.
    "linking": tuple(f"dispatch.linking.clustering.*{name}_*" for name in (
        "from_settings", "CaseSketchǁof", "bbox", "same_caller", "_minutes", "score_candidates",
        "incident_id_for", "_oldest_first", "one_place", "_incident", "_choose", "decide",
        "MemoryCandidatesǁcandidates", "window")),
}
"""The mutants run, by part, as mutmut name patterns: the core named in docs/testing.md."""

KILLED = frozenset({"killed", "timeout", "caught by type check", "segfault"})
SURVIVED = frozenset({"survived", "no tests", "suspicious"})


def tally(root: Path) -> dict[str, dict[str, str]]:
    """Each mutant's status by source file, from mutmut's `*.meta` files under `root`."""
    found: dict[str, dict[str, str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        source = str(meta.relative_to(root))[: -len(".meta")]
        found[source] = {name: status_by_exit_code[code] for name, code in codes.items()}
    return found


async def prepare_databases(admin_dsn: str, prefix: str, count: int) -> None:
    """A migrated template and `count` databases cloned from it, for tests to borrow (tests/conftest.py)."""
    template = f"{prefix}tpl"
    conn = await asyncpg.connect(await create_database(admin_dsn, template))
    try:
        await migrate(conn, SCHEMA)
        tables = [r[0] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        seeded = [t for t in tables if await conn.fetchval(f'SELECT EXISTS (SELECT FROM "{t}")')]
    finally:
        await conn.close()
    admin = await asyncpg.connect(admin_dsn)
    try:
        for n in range(count):
            await create_database(admin_dsn, f"{prefix}{n}", template=template)
            await admin.execute(f"ALTER DATABASE \"{prefix}{n}\" SET intake.seeded = '{','.join(seeded)}'")
    finally:
        await admin.close()


async def drop_databases(admin_dsn: str, prefix: str, count: int) -> None:
    """Drop what `prepare_databases` made."""
    for name in [f"{prefix}{n}" for n in range(count)] + [f"{prefix}tpl"]:
        await drop_database(admin_dsn, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", action="store_true", help="keep mutants/ and its verdicts")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--verbose", action="store_true", help="show mutmut's progress")
    parser.add_argument("--part", action="append", choices=sorted(PARTS),
                        help="only this part of the core (repeatable; default: all)")
    args = parser.parse_args()
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    if not args.resume:
        shutil.rmtree("mutants", ignore_errors=True)
    admin_dsn = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not admin_dsn:
        print("make mutate needs INTAKE_TEST_DATABASE_URL (a PostgreSQL server it may create databases on)")
        return 2
    prefix, count = f"intake_mut_{os.getpid()}_", 2 * args.max_children + 2
    started = time.monotonic()
    asyncio.run(prepare_databases(admin_dsn, prefix, count))
    env = {**os.environ, "INTAKE_TEST_TEMPLATE": f"{prefix}tpl", REUSE_PREFIX: prefix}
    try:
        scope = [pattern for part in (args.part or PARTS) for pattern in PARTS[part]]
        output = None if args.verbose else subprocess.PIPE
        run = subprocess.run([mutmut, "run", "--max-children", str(args.max_children), *scope],
                             check=False, stdout=output, env=env, text=True)
    finally:
        asyncio.run(drop_databases(admin_dsn, prefix, count))
    minutes = (time.monotonic() - started) / 60
    by_file = tally(Path("mutants"))
    killed = survived = unchecked = 0
    names: list[str] = []
    print(f"{'file':40} {'killed':>7} {'survived':>9}")
    for source, statuses in by_file.items():
        counts = Counter(statuses.values())
        k = sum(n for s, n in counts.items() if s in KILLED)
        s_ = sum(n for s, n in counts.items() if s in SURVIVED)
        killed, survived, unchecked = killed + k, survived + s_, unchecked + counts["not checked"]
        names += [f"{name} ({status})" for name, status in statuses.items() if status in SURVIVED]
        if k or s_:
            print(f"{source:40} {k:>7} {s_:>9}")
    for name in names:
        print("  ", name)
    print(f"{minutes:.1f} min; {unchecked} mutants outside the parts run")
    if run.returncode != 0 or killed + survived == 0:  # e.g. a selected test failed before any mutant
        print((run.stdout or "")[-3000:])
        print(f"mutation: failed, mutmut exited with {run.returncode}")
        return 1
    print(f"mutation: {killed} killed, {survived} survived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
