"""`intake serve` with an invalid setting stops at once: one line naming it, before any port or store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXIT_LIMIT_S = 20.0  # the interpreter and the app's imports; a refusal itself takes no time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def serve_until_exit(env: dict[str, str], port: int) -> tuple[int, str, str, bool, float]:
    """Run `intake serve` until it exits (at most `EXIT_LIMIT_S`, then stopped): its exit code,
    stdout, stderr, whether `port` ever answered, and the seconds it ran."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    listened = False
    try:
        while proc.poll() is None and time.monotonic() - started < EXIT_LIMIT_S:
            listened = listened or answers(port)
            time.sleep(0.05)
    finally:
        if proc.poll() is None:  # it started after all: stop it cleanly (and its embedded servers)
            proc.terminate()
        out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err, listened, time.monotonic() - started


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "raw", "allowed"), [
    ("INTAKE_SLA_NEAR_FRACTION", "1.5", "must be a number from 0 to 1"),
    ("INTAKE_DISPATCH_WEIGHT_LOAD", "heavy", "is not a number"),
])
def test_serve_refuses_an_invalid_value_before_it_listens(
    tmp_path: Path, name: str, raw: str, allowed: str
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env |= {
        "INTAKE_DATA_DIR": str(data_dir),  # an embedded PostgreSQL would be created here
        "INTAKE_HTTP_PORT": str(port),
        "INTAKE_SIA_PORT": "0",
        "INTAKE_TOKENS": "secret-admin-token-0001:admin:ops",
        name: raw,
    }
    code, out, err, listened, ran = serve_until_exit(env, port)
    assert code == 2, (out, err)
    assert ran < EXIT_LIMIT_S
    assert err.splitlines() == [f"intake: configuration error: {name}={raw!r} {allowed}"]
    assert not listened and "listening" not in out
    assert not data_dir.exists(), "a store was started"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("command", [["status"], ["verify"], ["replay", "C1"], ["migrate"], ["serve"]])
def test_a_command_that_cannot_reach_postgresql_says_so_in_one_line(command: list[str]) -> None:
    """An unreachable `INTAKE_DATABASE_URL` (nothing listens there, or no such database) is
    one line on stderr naming PostgreSQL and exit code 3, not a traceback - and not verify's 1,
    which means the log was altered."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env |= {"INTAKE_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/intake",
            "INTAKE_REDIS_URL": "redis://127.0.0.1:1/0", "INTAKE_HTTP_PORT": str(free_port()),
            "INTAKE_SIA_PORT": "0", "INTAKE_TOKENS": "secret-admin-token-0001:admin:ops",
            "INTAKE_LOG_LEVEL": "critical"}
    done = subprocess.run([sys.executable, "-m", "gateway.cli.main", *command], env=env,
                          capture_output=True, text=True, timeout=80)
    lines = done.stderr.splitlines()
    assert done.returncode == 3 and len(lines) == 1, (done.returncode, done.stderr[-2000:])
    assert lines[0].startswith(f"intake {command[0]}: ") and "PostgreSQL" in lines[0], lines
