"""The servers a benchmark runs against, and scratch databases on them (one run or one test)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """`--dsn` (allowed to CREATE DATABASE) and `--redis`, defaulting to INTAKE_BENCH_* or local."""
    parser.add_argument("--dsn", default=os.environ.get("INTAKE_BENCH_DATABASE_URL", DEFAULT_DSN))
    parser.add_argument("--redis", default=os.environ.get("INTAKE_BENCH_REDIS_URL", DEFAULT_REDIS))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as recorded next to each result."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def database_dsn(dsn: str, name: str) -> str:
    """The same server and options as `dsn`, database `name`."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(admin_dsn: str, name: str, *, template: str | None = None) -> str:
    """Create database `name` (a copy of `template`, if given) and return its DSN."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        clone = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clone}')
    finally:
        await admin.close()
    return database_dsn(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database `name`, closing the sessions still connected to it."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def wal_flushes(admin_dsn: str) -> int | None:
    """The server's WAL flushes so far (`pg_stat_wal.wal_sync`, PostgreSQL 14+; else None).

    Cluster-wide: a delta over a scenario counts every database's commits, so
    nothing else should write meanwhile.
    """
    conn = await asyncpg.connect(admin_dsn)
    try:
        return int(await conn.fetchval("SELECT wal_sync FROM pg_stat_wal"))
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


@contextlib.contextmanager
def release_tree(ref: str) -> Iterator[Path]:
    """A checkout of git `ref` of this repository in a temporary directory (`git worktree`), removed after.

    Run a release's code from it with this venv's Python: `cwd` and `PYTHONPATH` the tree.
    """
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=Path(__file__).parent,
                         capture_output=True, text=True, check=True).stdout.strip()
    tmp = Path(tempfile.mkdtemp(prefix="intake-release-"))
    tree = tmp / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(tree), ref], cwd=top, check=True)
    try:
        yield tree
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=top, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
