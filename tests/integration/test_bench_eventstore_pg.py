"""`intake bench eventstore` measures group commit's rows per commit and sizes its batched ceiling by it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.eventstore import batched_shape, rows_per_commit
from eventstore import NO_STREAM, NewEvent
from eventstore.postgres import PostgresEventStore

ROOT = Path(__file__).resolve().parents[2]


async def test_rows_per_commit_counts_the_events_of_each_transaction(
        pg_store: PostgresEventStore, pg_dsn: str) -> None:
    three = await pg_store.append("bench-a", [NewEvent("Received", {"n": n}) for n in range(3)], NO_STREAM)
    one = await pg_store.append("bench-b", [NewEvent("Received", {"n": 3})], NO_STREAM)
    assert await rows_per_commit(pg_dsn, [*three.positions, *one.positions]) == 2.0
    assert await rows_per_commit(pg_dsn, list(one.positions)) == 1.0


def test_the_batched_ceiling_commits_as_many_rows_as_group_commit_did(pg_admin_dsn: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.eventstore", "--dsn", pg_admin_dsn, "--seconds", "0.5",
         "--writers", "4", "--skip", "ours,eventsourcing", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {cells[0]: cells for line in done.stdout.splitlines() if line.startswith("| ")
            for cells in [[cell.strip() for cell in line.strip("|").split("|")]]}
    group = rows["intake event store (group commit)"]
    batched = rows["raw INSERT, group commit's rows per commit (batched ceiling)"]
    assert float(group[10]) > 1.0  # 2 writers per process: their appends met in flushes
    assert float(batched[10]) == batched_shape(4, float(group[10]))[1]
    assert batched[9] == "100%" and rows["raw INSERT loop, one row per commit (per-row ceiling)"][4] == "100%"
