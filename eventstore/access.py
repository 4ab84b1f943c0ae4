"""The access record: who read which range of the log, when - kept beside the log, not in it.

Reading the log must not add to it: a reader tailing the audit feed has to
reach the head and find it still while nothing else happens. Reads of the log
(and of the tamper check) are recorded in `access_log` instead (migration
0004): one row per reader, channel and minute, append-only (triggers; the app
role has INSERT and SELECT only) and hash-chained like the seals, an
HMAC-SHA256 under `INTAKE_SEAL_KEY` when it is set. `check_access` (part of
`tamper.verify`, so of `intake verify`) finds a rewritten, removed or
reordered row. Each row's hash is logged (`access_recorded`), so logs can
witness the newest rows too.

Coalescing: the first read of a reader in a minute is written before it is
answered; the reads after it in that minute are written as one more row once
the minute is over (within `FLUSH_EVERY` seconds, or when the process stops).
A crash loses at most the count and ranges of those later reads, never the
fact that the reader read in that minute.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

log = structlog.get_logger(__name__)

FLUSH_EVERY = 15.0
"""Seconds between writes of the minutes that are over."""
_LOCK = 0x1A7A5C  # serialises appends to the chain (a few per reader and minute)
_DOMAIN = b"intake-access-v1"
_COLUMNS = "seq, reader, via, minute, reads, ranges, first_at, last_at, keyed, prev_hash, hash"

Range = tuple[int, int]
"""Positions read: after (exclusive) to last (inclusive), in commit order."""


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def access_hash(key: bytes | None, *, seq: int, prev_hash: bytes, reader: str, via: str,
                minute: datetime, reads: int, ranges: list[list[int]], first_at: datetime,
                last_at: datetime) -> bytes:
    """The hash of one access row: HMAC-SHA256 under `key`, plain SHA-256 without one."""
    body = json.dumps([seq, reader, via, _instant(minute), reads, ranges, _instant(first_at),
                       _instant(last_at)], ensure_ascii=False, separators=(",", ":")).encode()
    material = b"|".join((_DOMAIN, prev_hash, body))
    if key is None:
        return hashlib.sha256(material).digest()
    return hmac.new(key, material, hashlib.sha256).digest()


@dataclass(slots=True)
class _Reads:
    """Reads of one reader, channel and minute, not written yet."""

    reader: str
    via: str
    minute: datetime
    first_at: datetime
    last_at: datetime
    reads: int = 0
    ranges: list[list[int]] = field(default_factory=list)

    def add(self, at: datetime, span: Range | None) -> None:
        self.reads += 1
        self.first_at, self.last_at = min(self.first_at, at), max(self.last_at, at)
        if span is None:
            return
        after, last = span
        if self.ranges and self.ranges[-1][1] == after:  # a tailing reader: one growing range
            self.ranges[-1][1] = last
        elif not self.ranges or self.ranges[-1] != [after, last]:
            self.ranges.append([after, last])


async def _append(pool: asyncpg.Pool, reads: _Reads, key: bytes | None) -> int:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
        last = await conn.fetchrow("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1")
        seq = 1 if last is None else int(last["seq"]) + 1
        prev_hash = b"" if last is None else bytes(last["hash"])
        digest = access_hash(key, seq=seq, prev_hash=prev_hash, reader=reads.reader, via=reads.via,
                             minute=reads.minute, reads=reads.reads, ranges=reads.ranges,
                             first_at=reads.first_at, last_at=reads.last_at)
        await conn.execute(
            f"INSERT INTO access_log ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            seq, reads.reader, reads.via, reads.minute, reads.reads, reads.ranges, reads.first_at,
            reads.last_at, key is not None, prev_hash, digest)
    log.info("access_recorded", seq=seq, reader=reads.reader, via=reads.via, reads=reads.reads,
             hash=digest.hex())
    return seq


class AccessRecorder:
    """Records reads of the log for one process, coalesced per reader, channel and minute."""

    def __init__(self, pool: asyncpg.Pool, *, key: bytes | None = None) -> None:
        """`key`: INTAKE_SEAL_KEY (the rows' HMAC key), None for plain SHA-256."""
        self._pool = pool
        self._key = key
        self._written: set[tuple[str, str, datetime]] = set()
        self._later: dict[tuple[str, str, datetime], _Reads] = {}

    async def record(self, reader: str, via: str, at: datetime, span: Range | None = None) -> None:
        """One read by `reader` through `via` at `at`, of the positions `span` (None: no range)."""
        minute = at.replace(second=0, microsecond=0)
        await self.flush(before=minute)
        key = (reader, via, minute)
        if key in self._written:
            self._later.setdefault(key, _Reads(reader, via, minute, at, at)).add(at, span)
            return
        first = _Reads(reader, via, minute, at, at)
        first.add(at, span)
        self._written.add(key)
        try:
            await _append(self._pool, first, self._key)
        except BaseException:
            self._written.discard(key)
            raise

    async def flush(self, before: datetime | None = None) -> None:
        """Write the coalesced reads of the minutes before `before` (of every minute when None)."""
        for key in sorted(k for k in self._later if before is None or k[2] < before):
            reads = self._later.pop(key)
            try:
                await _append(self._pool, reads, self._key)
            except BaseException:
                self._later[key] = reads  # kept for the next flush
                raise
        self._written = {k for k in self._written if before is not None and k[2] >= before}

    async def run(self, now: Callable[[], datetime]) -> None:
        """Write each minute's coalesced reads soon after it ends, until cancelled."""
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            try:
                await self.flush(before=now().replace(second=0, microsecond=0))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("access_flush_failed", error=str(exc))


@dataclass(frozen=True, slots=True)
class AccessCheck:
    """The outcome of `check_access`: rows checked, the first bad one (seq and why)."""

    checked: int
    bad_seq: int | None = None
    reason: str | None = None
    keyed_unchecked: int = 0


async def check_access(conn: asyncpg.Connection, key: bytes | None) -> AccessCheck:
    """Recompute the access record's chain: a missing, reordered or rewritten row is named."""
    prev_hash, expected, unchecked = b"", 1, 0
    async for row in conn.cursor(f"SELECT {_COLUMNS} FROM access_log ORDER BY seq", prefetch=256):
        seq = int(row["seq"])
        problem = None
        if seq != expected:
            problem = f"access record row {expected} is missing (deleted)"
        elif bytes(row["prev_hash"]) != prev_hash:
            problem = f"access record row {seq} does not chain the previous row's hash"
        elif row["keyed"] and key is None:
            unchecked += 1
        elif access_hash(key if row["keyed"] else None, seq=seq, prev_hash=prev_hash, reader=row["reader"],
                         via=row["via"], minute=row["minute"], reads=row["reads"], ranges=row["ranges"],
                         first_at=row["first_at"], last_at=row["last_at"]) != bytes(row["hash"]):
            problem = f"access record row {seq} does not match its hash (rewritten)"
        if problem is not None:
            return AccessCheck(expected - 1, seq, problem, unchecked)
        prev_hash, expected = bytes(row["hash"]), seq + 1
    return AccessCheck(expected - 1, keyed_unchecked=unchecked)
