"""A command run beside a running demo uses the demo's embedded servers and leaves them running.

`intake replay` next to `intake demo` (both without INTAKE_DATABASE_URL / INTAKE_REDIS_URL, one
data directory) used to shut the demo's embedded Redis down when it exited: the console fell
back to polling for good. One process starts real embedded servers here; a second, the CLI,
runs and exits; the servers must still answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest
import redis

from tests.e2e.test_zero_setup import postgres_running

OWNER = """
import sys
from pathlib import Path
from gateway import embedded
servers = embedded.start(Path(sys.argv[1]), postgres=True, redis=True)
print("URL", servers.redis_url, flush=True)
sys.stdin.readline()
servers.stop()
print("STOPPED", flush=True)
"""


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    return env | {"INTAKE_DATA_DIR": str(data_dir), "INTAKE_LOG_FORMAT": "console",
                  "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _line(stream: IO[str], mark: str) -> str:
    """The first line the owner printed starting with `mark` (its log lines go to stdout too)."""
    for line in stream:
        if line.startswith(mark):
            return line.removeprefix(mark).strip()
    raise AssertionError(f"the owner ended without printing {mark}")


def _socket_of(url: str) -> str:
    assert url.startswith("unix://"), url
    return url.removeprefix("unix://")


@pytest.mark.timeout(120)
def test_a_cli_command_leaves_the_servers_another_process_started(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(data_dir)], env=_env(data_dir),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        assert owner.stdout is not None and owner.stdin is not None
        url = _line(owner.stdout, "URL ")
        socket = _socket_of(url)
        assert redis.Redis(unix_socket_path=socket).ping()
        redis.Redis(unix_socket_path=socket).set("owner-key", "kept")

        # a second process: the CLI, on the same data directory, runs a command and exits
        done = subprocess.run([sys.executable, "-m", "gateway.cli.main", "replay", "C20260101AAAAAAAAAA"],
                              env=_env(data_dir), capture_output=True, text=True, timeout=90, check=False)
        assert "embedded_redis_shared" in done.stdout + done.stderr, done.stdout + done.stderr
        time.sleep(0.5)

        # the owner's servers still run: the socket is there, Redis answers, PostgreSQL too
        assert Path(socket).exists(), "the CLI removed the demo's Redis socket"
        client = redis.Redis(unix_socket_path=socket)
        assert client.ping() and client.get("owner-key") == b"kept"
        assert postgres_running(data_dir)

        # the owner stops its own servers when it ends
        owner.stdin.write("\n")
        owner.stdin.flush()
        _line(owner.stdout, "STOPPED")
        owner.wait(timeout=60)
        assert not postgres_running(data_dir)
        with pytest.raises(redis.ConnectionError):
            redis.Redis(unix_socket_path=socket, socket_connect_timeout=2).ping()
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.communicate(timeout=60)
