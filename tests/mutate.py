"""`make mutate`: mutation testing of the core with mutmut; the last line is the verdict.

Runs `mutmut run` part by part (`PARTS`): each part's mutants against that part's
tests only, in a directory of its own (`mutants-work/<part>`, from scratch: kept
results would keep stale verdicts), then prints each part's killed and survived
mutants and, as the last line, `mutation: K killed, S survived`. Killed counts
mutants a test failed on or timed out on; survived counts those every test of the
part passed with, and those none of them reached. `--resume` continues a run;
`cd mutants-work/<part> && mutmut show NAME` shows a mutant.
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
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from mutmut.stats import status_by_exit_code

from bench.scratch import create_database, drop_database
from eventstore.migrate import migrate
from gateway.schema import SCHEMA
from tests.conftest import REUSE_PREFIX


@dataclass(frozen=True, slots=True)
class Part:
    """A part of the core: its mutants (mutmut name patterns, `module.*function*`) and its tests."""

    mutants: tuple[str, ...]
    tests: tuple[str, ...]
    waits: bool = False
    """Its tests mostly wait on PostgreSQL: twice as many mutants run at once as there are cores."""

    def files(self) -> list[str]:
        """The source files its mutants are in."""
        return sorted({p.split(".*")[0].replace(".", "/") + ".py" for p in self.mutants})


PARTS: dict[str, Part] = {
    # The append path of the PostgreSQL store (reads, NOTIFY and pools are left out), and its twin:
    # the event store contract suite on both stores (group commit once: `append` hands its arguments
    # to it) and the races of the PostgreSQL store.
    "append": Part(
        ("eventstore.postgres.*append*", "eventstore.postgres.*_same_stream_*",
         "eventstore.postgres.*_stored_key_*", "eventstore.memory.*", "eventstore.records.*"),
        ("-k", "not postgres+group or test_idempotent_append_returns_original",
         "tests/unit/test_eventstore_contract.py", "tests/unit/test_records.py",
         *(f"tests/integration/test_eventstore_pg.py::{name}" for name in (
             "test_the_loser_of_a_version_race_is_told_the_winners_version",
             "test_an_any_append_that_loses_a_race_is_written_after_the_winner",
             "test_in_a_snapshot_that_misses_the_winner_the_loser_is_told_the_stream_is_new",
             "test_a_key_taken_after_a_transactions_snapshot_fails_the_append",
             "test_concurrent_duplicates_wait_for_the_first_transaction",
             "test_concurrent_reuse_of_a_key_on_another_stream_conflicts",
             "test_duplicate_of_a_rolled_back_append_is_written",
             "test_expected_version_race_has_one_winner",
             "test_a_database_error_mid_append_writes_nothing",
             "test_several_appends_in_one_transaction_each_get_their_own_answer_in_order",
             "test_more_appends_than_one_statement_takes_are_all_written_in_order",
             "test_appends_of_a_transaction_that_rolls_back_are_not_written",
             "test_an_append_that_races_another_transaction_is_settled_on_its_own"))), waits=True),
    # Group commit: batches in stream order, each append's status, the new subjects' keys a flush
    # stores with its events (and the appends refused for them), the appends retried alone.
    "group": Part(
        ("eventstore.group.*",),
        ("tests/integration/test_eventstore_group.py", "tests/integration/test_subject_keys_pg.py"),
        waits=True),
    # The tamper check (not the CLI and worker glue around it).
    "tamper": Part(
        tuple(f"eventstore.tamper.*{name}_*" for name in (
            "as_json", "bad_event", "_long", "check_chains", "_check_link", "_compare", "_check_range",
            "_check_seals", "_seal_anchor", "verify")),
        ("tests/integration/test_eventstore_tamper.py", "tests/integration/test_eventstore_tamper_fields.py",
         "tests/integration/test_eventstore_verify.py", "tests/unit/test_tamper_report.py",
         "tests/integration/test_audit_feed.py"), waits=True),
    "sla": Part(
        ("dispatch.cases.sla.*",),
        ("tests/unit/test_sla.py", "tests/unit/test_sla_limits.py", "tests/unit/test_sla_score.py",
         "tests/unit/test_sla_config.py")),
    # Authorisation, channel scopes and the masking of personal data (the API, the stream and logs).
    "auth": Part(("gateway.auth.*", "gateway.privacy.*", "gateway.logging.*mask*"),
                 ("tests/unit/test_auth.py", "tests/unit/test_privacy.py", "tests/unit/test_logging.py",
                  "tests/integration/test_channel_scopes.py", "tests/integration/test_unit_isolation.py"),
                 waits=True),
    # Missed-call fairness: the task's rules and the assignment plan.
    "missed_calls": Part(
        ("dispatch.missed_calls.task.*", "dispatch.missed_calls.policy.*choose_agent_*",
         "dispatch.missed_calls.policy.*ǁ_Boardǁ*", "dispatch.missed_calls.policy.*plan_assignments_*"),
        ("tests/unit/test_missed_calls.py", "tests/unit/test_callback_decisions.py")),
    # Linking decisions: scoring, choosing, the incident rule, the candidate search's box and window
    # (the in-memory candidate index is a twin of the SQL one for tests and the benchmark: not mutated).
    "linking": Part(
        tuple(f"dispatch.linking.clustering.*{name}_*" for name in (
            "LinkParamsǁ__post_init__", "CaseSketchǁof", "bbox", "same_caller", "_minutes",
            "score_candidates", "incident_id_for", "_oldest_first", "one_place", "_incident", "_choose",
            "decide", "window")),
        tuple(f"tests/unit/test_{name}.py" for name in (
            "linking_decisions", "duplicates", "linking_policy", "linking_storm", "link_params", "incidents",
            "incident_merges"))),
    # Messages as JSON: every appended event and projected state is written by `to_data` (a function
    # made per type from its field hints) and every event read is rebuilt by `from_data`.
    "messages": Part(
        ("dispatch.core.messages.*",),
        ("-k", "not test_every_appended_event_is_a_declared_type",  # reads the (mutated) sources
         "tests/unit/test_messages.py", "tests/unit/test_duplicates.py", "tests/unit/test_places.py",
         "tests/unit/test_case_status.py", "tests/unit/test_legal_hold_decider.py",
         "tests/unit/test_personal_fields.py")),
    # Personal data with an end: which fields of a message are personal and whose (the subject)...
    "personal": Part(("dispatch.core.personal.*",), ("tests/unit/test_personal_fields.py",)),
    # ... and sealing and opening the box, the keyring (cache, erasure, notices), and the exact
    # JSON the sealed events travel in.
    "shredding": Part(
        ("eventstore.shredding.*", "eventstore.jsontext.*"),
        ("tests/unit/test_shredding.py", "tests/unit/test_jsontext.py",
         "tests/integration/test_shredding_pg.py", "tests/integration/test_subject_keys_pg.py",
         "tests/integration/test_erasure_race.py", "tests/integration/test_jsonb_exact_pg.py"), waits=True),
    # Scale-out: the partitions of a runner (hash, spread, checkpoints and leases in PostgreSQL),
    # the workers sharing them, and a reactor's checkpoints after a batch with failures.
    "partitions": Part(
        ("eventstore.partitions.*", "eventstore.leadership.*", "eventstore.subscriptions.*ǁPartitioningǁ*",
         "eventstore.subscriptions.*ReactorRunnerǁ_advance*"),
        ("tests/unit/test_partitions.py", "tests/integration/test_partitions_pg.py",
         "tests/unit/test_keyed_reactors.py", "tests/unit/test_batch_reactors.py",
         "tests/unit/test_runner_types.py", "tests/unit/test_eventstore_contract.py"), waits=True),
    # One read of the log per process: the shared tail's window, its refreshes shared by the reads
    # that arrive while one is in flight, and the pages it answers (the same as a read of one's own).
    "tail": Part(
        ("eventstore.tail.*",),
        ("tests/integration/test_log_tail_pg.py",), waits=True),
}
"""The core named in docs/testing.md, by part."""

WORK = Path("mutants-work")
_LINKED = ("eventstore", "dispatch", "gateway", "channels", "gis_data", "bench", "tests", "pyproject.toml")

_MUTMUT = """
import json, os, sys
from mutmut.configuration import config
from mutmut.__main__ import cli
part = json.loads(os.environ["INTAKE_MUTATE_PART"])
config().only_mutate = part["files"]
config().pytest_add_cli_args_test_selection = part["tests"]
cli(sys.argv[1:])
"""
"""`mutmut` with one part's files and tests in place of pyproject.toml's. It imports nothing of
the project: mutmut must import the mutated copies, not the sources."""

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


def run_part(name: str, part: Part, args: argparse.Namespace, env: dict[str, str]) -> tuple[int, str]:
    """Run mutmut over one part in `mutants-work/<name>`; its exit code and output."""
    work = WORK / name
    if not args.resume:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    for entry in _LINKED:
        if not (work / entry).exists():
            (work / entry).symlink_to(Path.cwd() / entry)
    selection = {"files": part.files(), "tests": list(part.tests)}
    run = subprocess.run(
        [sys.executable, "-c", _MUTMUT, "run", "--max-children", str(args.max_children * (1 + part.waits)),
         *part.mutants],
        check=False, cwd=work, stdout=None if args.verbose else subprocess.PIPE, text=True,
        env={**env, "INTAKE_MUTATE_PART": json.dumps(selection)},
    )
    return run.returncode, run.stdout or ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume", action="store_true", help="keep each part's mutants and verdicts")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2,
                        help="mutants run at once (twice as many in parts whose tests wait on PostgreSQL)")
    parser.add_argument("--verbose", action="store_true", help="show mutmut's progress")
    parser.add_argument("--part", action="append", choices=sorted(PARTS),
                        help="only this part of the core (repeatable; default: all)")
    args = parser.parse_args()
    admin_dsn = os.environ.get("INTAKE_TEST_DATABASE_URL")
    if not admin_dsn:
        print("make mutate needs INTAKE_TEST_DATABASE_URL (a PostgreSQL server it may create databases on)")
        return 2
    prefix, count = f"intake_mut_{os.getpid()}_", 4 * args.max_children + 2
    started = time.monotonic()
    env = {**os.environ, "INTAKE_TEST_TEMPLATE": f"{prefix}tpl", REUSE_PREFIX: prefix}
    env.pop("PYTHONPATH", None)  # the sources must not be importable beside their mutated copies
    killed = survived = 0
    failed: list[str] = []
    print(f"{'part':13} {'file':34} {'killed':>7} {'survived':>9} {'min':>5}")
    try:
        asyncio.run(prepare_databases(admin_dsn, prefix, count))  # dropped even if this fails halfway
        for name in args.part or PARTS:
            began = time.monotonic()
            code, output = run_part(name, PARTS[name], args, env)
            minutes = (time.monotonic() - began) / 60
            names: list[str] = []
            for source, statuses in tally(WORK / name / "mutants").items():
                counts = Counter(statuses.values())
                k = sum(n for s, n in counts.items() if s in KILLED)
                s_ = sum(n for s, n in counts.items() if s in SURVIVED)
                killed, survived = killed + k, survived + s_
                names += [f"{n} ({status})" for n, status in statuses.items() if status in SURVIVED]
                if k or s_:
                    print(f"{name:13} {source:34} {k:>7} {s_:>9} {minutes:>5.1f}", flush=True)
            for n in names:
                print("  ", n)
            if code != 0 or not any(tally(WORK / name / "mutants").values()):
                print(output[-3000:])
                failed.append(f"{name} (mutmut exited with {code})")
    finally:
        asyncio.run(drop_databases(admin_dsn, prefix, count))
    print(f"{(time.monotonic() - started) / 60:.1f} min")
    if failed:  # e.g. a test failed before any mutant
        print(f"mutation: failed: {', '.join(failed)}")
        return 1
    print(f"mutation: {killed} killed, {survived} survived")
    return 0


if __name__ == "__main__":
    sys.exit(main())
