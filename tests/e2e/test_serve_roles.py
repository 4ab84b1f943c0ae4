"""`intake serve` refuses a superuser or the log's owner before it listens, unless INTAKE_ALLOW_OWNER=1.

Bugs these catch: the check missing or after the port is open; INTAKE_ALLOW_OWNER
ignored; the application role refused (a check that refuses everyone).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateway.schema import prepare
from tests.e2e.test_bad_settings import free_port, serve_until_exit
from tests.e2e.test_zero_setup import wait_healthy
from tests.integration.test_db_roles import as_role, drop_role

STARTUP_LIMIT_S = 30.0


def serve_env(dsn: str, redis_url: str, prefix: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    return env | {
        "INTAKE_DATABASE_URL": dsn, "INTAKE_REDIS_URL": redis_url, "INTAKE_REDIS_PREFIX": prefix,
        "INTAKE_HTTP_PORT": str(port), "INTAKE_SIA_PORT": "0", "INTAKE_LOG_FORMAT": "console",
        "INTAKE_TOKENS": "secret-admin-token:admin:ops",
    }


def test_serve_refuses_a_superuser_before_it_listens(
    pg_dsn: str, redis_server_url: str, redis_prefix: str
) -> None:
    port = free_port()
    env = serve_env(pg_dsn, redis_server_url, redis_prefix, port)
    code, out, err, listened, _ = serve_until_exit(env, port)
    assert code == 2, (out, err)
    assert not listened and "listening" not in out
    [line] = err.splitlines()
    assert line.startswith("intake serve: refusing to serve: role 'postgres' is a superuser"), line
    assert "INTAKE_ALLOW_OWNER=1" in line


def run_until_healthy(env: dict[str, str], port: int) -> str:
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        healthy = wait_healthy(f"http://127.0.0.1:{port}/health", started + STARTUP_LIMIT_S, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert healthy, output
    assert proc.returncode == 0, output
    return output


def test_serve_as_owner_with_allow_owner(pg_dsn: str, redis_server_url: str, redis_prefix: str) -> None:
    port = free_port()
    env = serve_env(pg_dsn, redis_server_url, redis_prefix, port) | {"INTAKE_ALLOW_OWNER": "1"}
    assert "as postgres" in run_until_healthy(env, port)


@pytest.fixture
async def app_dsn(pg_dsn: str, pg_admin_dsn: str) -> AsyncIterator[str]:
    role = f"intake_app_{uuid.uuid4().hex[:8]}"
    owner = await asyncpg.connect(pg_dsn)
    try:
        await prepare(owner, role)
    finally:
        await owner.close()
    yield as_role(pg_dsn, role)
    await drop_role(pg_admin_dsn, pg_dsn, role)


def test_serve_as_the_app_role(app_dsn: str, redis_server_url: str, redis_prefix: str) -> None:
    port = free_port()
    output = run_until_healthy(serve_env(app_dsn, redis_server_url, redis_prefix, port), port)
    assert "as intake_app_" in output
