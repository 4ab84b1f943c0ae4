"""`intake bench worker` runs end to end on a small backlog (so it does not rot between runs).

In a process of its own, as it is run: it configures logging and runs its own event loop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_worker_benchmark_takes_in_a_small_backlog(pg_admin_dsn: str, redis_server_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker", "--dsn", pg_admin_dsn, "--redis", redis_server_url,
         "--sms", "60", "--senders", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[1] for row in rows[1:]] == ["60 SMS"] * 3 + ["60 events"] * 2


def test_the_whole_worker_alone_reports_its_statements_and_transactions(
    pg_admin_dsn: str, redis_server_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker", "--dsn", pg_admin_dsn, "--redis", redis_server_url,
         "--sms", "40", "--senders", "10", "--only", "whole", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["items"] == 40
    assert 0 < found["transactions"] < found["statements"]
