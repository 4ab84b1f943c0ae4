"""`intake serve` with no database or Redis configured starts embedded servers and stops them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

STARTUP_LIMIT_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, deadline: float, proc: subprocess.Popen[str]) -> bool:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def postgres_running(data_dir: Path) -> bool:
    pid_file = data_dir / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(90)
def test_serve_from_empty_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env |= {
        "INTAKE_DATA_DIR": str(data_dir),
        "INTAKE_HTTP_PORT": str(port),
        "INTAKE_SIA_PORT": "0",
        "INTAKE_TOKENS": "secret-admin-token-0001:admin:ops",
        "INTAKE_LOG_FORMAT": "console",
    }
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "serve"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        healthy = wait_healthy(f"http://127.0.0.1:{port}/health", started + STARTUP_LIMIT_S, proc)
        elapsed = time.monotonic() - started
        assert healthy, f"not healthy within {STARTUP_LIMIT_S}s"
        assert elapsed < STARTUP_LIMIT_S
        assert postgres_running(data_dir)
        long_line = f"http://127.0.0.1:{port}/health?pad=" + "x" * 40_000  # an Open311 poll of 1,000 ids
        with urllib.request.urlopen(long_line, timeout=5) as response:
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"intake listening on http://127.0.0.1:{port}" in output
    assert "postgres:" in output and "redis:" in output
    assert "as intake_app" in output  # the embedded default uses the restricted role too
    # pgserver's own chatter (every initdb and pg_ctl command line and output) stays out.
    assert "Running commandline" not in output and "Successful postgres command" not in output
    assert not postgres_running(data_dir), "embedded PostgreSQL left running"


def test_serve_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env["INTAKE_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", "serve"], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "INTAKE_TOKENS" in result.stderr
