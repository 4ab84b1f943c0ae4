"""`intake bench shredding` runs end to end, tiny (so it does not rot between runs).

In a process of its own, as it is run: it configures logging and runs its own event loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--appends", "40", "--senders", "10", "--writers", "4", "--cases", "2", "--reads", "5",
        "--against", ""]


def bench(pg_admin_dsn: str, *extra: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bench.shredding", "--dsn", pg_admin_dsn, *TINY, *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_one_run_seals_every_registration_and_reads_erased_neighbours(pg_admin_dsn: str) -> None:
    found = json.loads(bench(pg_admin_dsn, "--json").strip().splitlines()[-1])
    assert found["appends"] == 40
    assert found["sealed"] == 40 + 4 * 4  # and the warm-up's 16 registrations
    assert 4 * 4 < found["keys"] <= 4 * 4 + 10  # one per sender seen (the warm-up's own 16)
    assert found["erased"] == 2 * 9  # every tenth event of each case, after the first
    assert sorted(found["reads"]) == sorted(
        f"{way}, {cache} keys" for way in ("read_stream", "history") for cache in ("warm", "cold"))
    assert all(len(times) == 5 and min(times) > 0 for times in found["reads"].values())


def test_the_tables_name_each_way_of_reading(pg_admin_dsn: str) -> None:
    out = bench(pg_admin_dsn, "--rounds", "1")
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| this tree")]
    assert rows[0][1] == rows[0][2] and rows[0][3] == "1.00x"  # one round: its rate is the median
    assert [row[1] for row in rows[1:]] == [
        "read_stream, warm keys", "history, warm keys", "read_stream, cold keys", "history, cold keys"]
    assert all(row[2] == "5" for row in rows[1:])
