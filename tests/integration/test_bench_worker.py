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


def test_several_worker_processes_report_each_ones_cpu_and_the_servers(
    pg_admin_dsn: str, redis_server_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker", "--dsn", pg_admin_dsn, "--redis", redis_server_url,
         "--sms", "40", "--senders", "10", "--workers", "1,2", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    assert [row[0] for row in rows] == ["| 1", "| 2"]
    for row in rows:
        processes = int(row[0][2:])
        assert len(row[3].split(" + ")) == processes  # the CPU of each worker process
        assert all(float(cpu) > 0 for cpu in row[3].split(" + "))
        worker_ms, server_ms, total_ms = (float(row[i]) for i in (4, 5, 6))
        assert worker_ms > 0 and server_ms > 0  # the PostgreSQL backends serving them count too
        assert abs(worker_ms + server_ms - total_ms) < 0.02
