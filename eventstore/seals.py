"""Seals over the global log: the sealer and the seal hash.

A seal is a manifest of a consecutive range of the log in read order
(`tx_id`, `position`): the position, stream and hash of every event in it.
Seals chain: each one's hash covers the previous seal's hash, its range and
a digest of its manifest; given a key (`INTAKE_SEAL_KEY`) the hash is an
HMAC-SHA256 under that key, so rewriting seals needs the key. Ranges only
ever cover rows below the commit horizon, so no later commit can land inside
a sealed range: an event found there later was inserted behind our back.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import structlog

from eventstore.errors import EventStoreError
from eventstore.postgres import UNAVAILABLE

log = structlog.get_logger(__name__)

_DOMAIN = b"intake-seal-v1"


@dataclass(frozen=True, slots=True)
class Seal:
    """One seal: a signed manifest of the events in one range of the log."""

    seq: int
    after: tuple[int, int]
    last: tuple[int, int]
    positions: tuple[int, ...]
    streams: tuple[str, ...]
    hashes: tuple[bytes, ...]
    keyed: bool
    prev_hash: bytes
    hash: bytes


def manifest_digest(
    positions: Sequence[int], streams: Sequence[str], hashes: Sequence[bytes]
) -> bytes:
    """SHA-256 over the manifest (position, stream, event hash) in read order."""
    digest = hashlib.sha256()
    for position, stream, event_hash in zip(positions, streams, hashes, strict=True):
        encoded = stream.encode("utf-8")
        digest.update(position.to_bytes(8, "big"))
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
        digest.update(event_hash)
    return digest.digest()


def seal_hash(
    key: bytes | None,
    *,
    seq: int,
    prev_hash: bytes,
    after: tuple[int, int],
    last: tuple[int, int],
    positions: Sequence[int],
    streams: Sequence[str],
    hashes: Sequence[bytes],
) -> bytes:
    """The hash of a seal: HMAC-SHA256 under `key`, plain SHA-256 without one."""
    header = f"{seq}|{after[0]}:{after[1]}|{last[0]}:{last[1]}|{len(positions)}|".encode()
    material = b"|".join(
        (_DOMAIN, prev_hash, header, manifest_digest(positions, streams, hashes))
    )
    if key is None:
        return hashlib.sha256(material).digest()
    return hmac.new(key, material, hashlib.sha256).digest()


def seal_from_row(row: asyncpg.Record) -> Seal:
    """A `Seal` from a row of the `seals` table."""
    return Seal(
        seq=row["seq"],
        after=(row["after_tx"], row["after_position"]),
        last=(row["last_tx"], row["last_position"]),
        positions=tuple(row["positions"]),
        streams=tuple(row["streams"]),
        hashes=tuple(bytes(h) for h in row["hashes"]),
        keyed=row["keyed"],
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
    )


LOG_START: tuple[int, int] = (0, 0)
"""The (transaction id, position) before the first event: where the first seal starts."""

SEAL_COLUMNS = (
    "seq, after_tx::text::bigint AS after_tx, after_position, last_tx::text::bigint AS last_tx, "
    "last_position, positions, streams, hashes, keyed, prev_hash, hash"
)


class Sealer:
    """Background task sealing the log in read order, a range at a time.

    Several sealers (one per process) may run: a seal's number is its primary
    key, so only one of two racing sealers writes a given seal.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        key: bytes | None = None,
        interval: float = 5.0,
        max_events: int = 10_000,
    ) -> None:
        self._pool = pool
        self._key = key
        self._interval = interval
        self._max_events = max_events

    async def run(self) -> None:
        """Seal whatever is readable every `interval` seconds, forever (cancel to stop)."""
        delay = self._interval
        while True:
            try:
                await self.seal_pending()
                delay = self._interval
            except asyncio.CancelledError:
                raise
            except (EventStoreError, asyncpg.PostgresError, *UNAVAILABLE) as exc:
                log.warning("sealer_failed", error=str(exc), retry_in=delay)
                delay = min(delay * 2, 60.0)
            await asyncio.sleep(delay)

    async def seal_pending(self) -> int:
        """Write seals until every readable event is sealed; the number of seals written."""
        written = 0
        while True:
            seal = await self.seal_once()
            if seal is None:
                return written
            written += 1
            if len(seal.positions) < self._max_events:
                return written

    async def seal_once(self) -> Seal | None:
        """Seal the next range of readable events, if any; None when nothing is new."""
        async with self._pool.acquire() as conn:
            previous = await conn.fetchrow(
                f"SELECT {SEAL_COLUMNS} FROM seals ORDER BY seq DESC LIMIT 1"
            )
            prev = seal_from_row(previous) if previous is not None else None
            after = prev.last if prev is not None else LOG_START
            rows = await conn.fetch(
                "SELECT tx_id::text::bigint AS tx, position, stream, hash FROM events "
                "WHERE (tx_id, position) > ($1::text::xid8, $2) "
                "AND tx_id < (SELECT intake_horizon()) "
                "ORDER BY tx_id, position LIMIT $3",
                str(after[0]),
                after[1],
                self._max_events,
            )
            if not rows:
                return None
            seal = self._make(prev, after, rows)
            try:
                await conn.execute(
                    "INSERT INTO seals (seq, after_tx, after_position, last_tx, last_position, "
                    "event_count, positions, streams, hashes, keyed, prev_hash, hash) VALUES "
                    "($1, $2::text::xid8, $3, $4::text::xid8, $5, $6, $7, $8, $9, $10, $11, $12)",
                    seal.seq, str(seal.after[0]), seal.after[1], str(seal.last[0]), seal.last[1],
                    len(seal.positions), list(seal.positions), list(seal.streams),
                    list(seal.hashes), seal.keyed, seal.prev_hash, seal.hash,
                )
            except asyncpg.UniqueViolationError:
                log.info("seal_raced", seq=seal.seq)
                return None
        log.info("sealed", seq=seal.seq, events=len(seal.positions), last=seal.last[1],
                 hash=seal.hash.hex())
        return seal

    def _make(self, prev: Seal | None, after: tuple[int, int], rows: list[asyncpg.Record]) -> Seal:
        positions = tuple(int(r["position"]) for r in rows)
        streams = tuple(str(r["stream"]) for r in rows)
        hashes = tuple(bytes(r["hash"]) for r in rows)
        seq = prev.seq + 1 if prev is not None else 1
        prev_hash = prev.hash if prev is not None else b""
        last = (int(rows[-1]["tx"]), positions[-1])
        digest = seal_hash(self._key, seq=seq, prev_hash=prev_hash, after=after, last=last,
                           positions=positions, streams=streams, hashes=hashes)
        return Seal(seq, after, last, positions, streams, hashes, self._key is not None,
                    prev_hash, digest)

