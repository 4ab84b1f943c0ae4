"""`intake serve` with INTAKE_ROLE=worker runs at the worker's niceness, and says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.settings import WORKER_NICE
from tests.e2e.test_zero_setup import free_port, wait_healthy


def _niceness(pid: int) -> int:
    # /proc/<pid>/stat: field 19 is the niceness; the name (field 2) may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("role", "nice", "expected"), [
    ("worker", None, WORKER_NICE), ("gateway", None, 0), ("worker", "3", 3),
])
def test_serve_takes_its_roles_niceness(
    pg_dsn: str, redis_server_url: str, redis_prefix: str,
    role: str, nice: str | None, expected: int,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env |= {
        "INTAKE_DATABASE_URL": pg_dsn, "INTAKE_REDIS_URL": redis_server_url,
        "INTAKE_REDIS_PREFIX": redis_prefix, "INTAKE_ROLE": role,
        "INTAKE_HTTP_PORT": str(port), "INTAKE_SIA_PORT": "0",
        "INTAKE_TOKENS": "secret-admin-token-0001:admin:ops", "INTAKE_LOG_FORMAT": "console",
        "INTAKE_ALLOW_OWNER": "1",  # the test database's superuser
    }
    if nice is not None:
        env["INTAKE_NICE"] = nice
    base = os.getpriority(os.PRIO_PROCESS, 0)
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/health"
        assert wait_healthy(url, time.monotonic() + 40, proc)
        assert _niceness(proc.pid) == max(base, expected)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"role:     {role}, niceness {max(base, expected)}" in output
