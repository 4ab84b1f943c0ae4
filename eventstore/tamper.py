"""Tamper evidence: verify the per-stream hash chains and the seals.

Detects, and names the first bad stream and position of:
- a modified event (its content no longer matches its hash);
- a deleted event: mid-stream by the version gap / chain break of the next
  event; a stream's tail or a lone event by the seal that lists it;
- an inserted event: by a chain break or version gap in its stream, or, when
  it forges a valid chain, by the seal whose range it lands in;
- a rewritten hash chain: by the seal manifest that still lists the old hash;
- removed, reordered or rewritten seals: by the seal chain (with
  `INTAKE_SEAL_KEY`, rewriting seals needs the key);
- a removed, reordered or rewritten row of the access record (who read the
  log, `eventstore/access.py`): by its own chain.

Not detectable (see eventstore/README.md): events appended after the last
seal and deleted before the next one; forged events appended at a stream's
tail with a valid hash (indistinguishable from a real append); and, without a
seal key, a superuser who rewrites every later hash and every later seal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from eventstore.access import check_access
from eventstore.seals import (
    LOG_START,
    SEAL_COLUMNS,
    Seal,
    Sealer,
    seal_from_row,
    seal_hash,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = [
    "ACCESS_LOG", "VERIFY_TIMEOUT", "BadEvent", "ChainBreak", "Sealer", "VerifyReport", "check_chains",
    "verify", "workers",
]

ACCESS_LOG = "access_log"
"""What `first_bad.stream` names when a row of the access record (`eventstore/access.py`) is bad;
its `position` is then the row's `seq`."""

VERIFY_TIMEOUT = 3600.0
"""Seconds one query of a verification may take: it reads the whole log."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BadEvent:
    """Where the log was found tampered with, and how."""

    stream: str
    position: int
    reason: str

    def as_json(self) -> dict[str, Any]:
        """The shape of `first_bad` in `GET /api/v1/audit/verify`."""
        return {"stream": self.stream, "position": self.position, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of `verify`: intact or not, how much was checked, the first bad event."""

    ok: bool
    checked: int
    first_bad: BadEvent | None
    seals: int = 0
    unsealed: int = 0
    warnings: tuple[str, ...] = ()
    access_checked: int = 0

    def as_json(self) -> dict[str, Any]:
        """The answer of `GET /api/v1/audit/verify`."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad": self.first_bad.as_json() if self.first_bad else None,
            "seals": self.seals,
            "unsealed": self.unsealed,
            "warnings": list(self.warnings),
            "access_checked": self.access_checked,
        }


_CHAIN_FAULTS: dict[str, tuple[str, str]] = {
    "category": ("modified", "category does not match the stream"),
    "content": ("modified", "content does not match its hash"),
    "gap": ("version gap", "events before this one are missing (deleted)"),
    "link": ("chain break", "previous hash does not match (inserted or replaced)"),
}
"""What a chain fault means: its kind (the start of a `verify` reason) and what exactly."""

_CHAIN_SQL = r"""
SELECT position, stream, fault FROM (
    SELECT position, stream,
        CASE
            WHEN category <> split_part(stream, '-', 1) THEN 'category'
            WHEN intake_event_hash(prev_hash, stream, version, type, schema_version,
                                   data, metadata, recorded_at) <> hash THEN 'content'
            WHEN version <> coalesce(lag(version) OVER w + 1, 0) THEN 'gap'
            WHEN prev_hash <> coalesce(lag(hash) OVER w, '\x'::bytea) THEN 'link'
        END AS fault
    FROM events {where} WINDOW w AS (PARTITION BY stream ORDER BY version)
) t WHERE fault IS NOT NULL ORDER BY position LIMIT 1
"""
_COUNT_SQL = "SELECT count(*) FROM events {where}"
_ONE_STREAM = "WHERE stream = $1"
_EVERY_STREAM = ""
_RANGE_SQL = """SELECT position, stream, hash FROM events
    WHERE (tx_id, position) > ($1::text::xid8, $2) AND (tx_id, position) <= ($3::text::xid8, $4)
    ORDER BY tx_id, position"""
_UNSEALED_SQL = "SELECT count(*) FROM events WHERE (tx_id, position) > ($1::text::xid8, $2)"
_SEALS_SQL = f"SELECT {SEAL_COLUMNS} FROM seals ORDER BY seq"


async def _long(query: Callable[..., Awaitable[T]], sql: str, *args: object) -> T:
    """One query of a verification, allowed `VERIFY_TIMEOUT`: it may read the whole log, so the
    pool's command timeout (a few seconds, for requests) would cut `GET /api/v1/audit/verify` short."""
    return await query(sql, *args, timeout=VERIFY_TIMEOUT)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first event, by position, where a stream's hash chain does not hold."""

    stream: str
    position: int
    kind: str
    detail: str

    def bad_event(self) -> BadEvent:
        """As `verify` reports it: the reason is `<kind>: <detail>`."""
        return BadEvent(self.stream, self.position, f"{self.kind}: {self.detail}")


async def check_chains(conn: asyncpg.Connection, stream: str | None = None
                       ) -> tuple[int, ChainBreak | None]:
    """Recompute the hash chains of every stream, or of one: the events checked, the first break.

    Run it inside a repeatable-read transaction for one consistent snapshot.
    """
    where, args = (_ONE_STREAM, [stream]) if stream is not None else (_EVERY_STREAM, [])
    checked = int(await _long(conn.fetchval, _COUNT_SQL.format(where=where), *args))
    row = await _long(conn.fetchrow, _CHAIN_SQL.format(where=where), *args)
    if row is None:
        return checked, None
    return checked, ChainBreak(row["stream"], row["position"], *_CHAIN_FAULTS[row["fault"]])


def _check_link(seal: Seal, prev: Seal | None, key: bytes | None) -> str | None:
    """What is wrong with a seal itself or its link to the previous one, if anything."""
    expected_seq = prev.seq + 1 if prev is not None else 1
    if seal.seq != expected_seq:
        return f"seal {expected_seq} is missing (seals deleted)"
    if seal.after != (prev.last if prev is not None else LOG_START):
        return f"seal {seal.seq} does not start where the previous seal ended"
    if seal.prev_hash != (prev.hash if prev is not None else b""):
        return f"seal {seal.seq} does not chain the previous seal's hash"
    if seal.keyed and key is None:
        return None
    expected = seal_hash(
        key if seal.keyed else None, seq=seal.seq, prev_hash=seal.prev_hash, after=seal.after,
        last=seal.last, positions=seal.positions, streams=seal.streams, hashes=seal.hashes,
    )
    if expected != seal.hash:
        return f"seal {seal.seq} hash does not match its manifest (seal rewritten)"
    return None


def _compare(seal: Seal, rows: list[asyncpg.Record]) -> BadEvent | None:
    """The first difference between a seal's manifest and the events now in its range."""
    sealed = {p: (s, h) for p, s, h in zip(seal.positions, seal.streams, seal.hashes, strict=True)}
    found = {r["position"]: (r["stream"], bytes(r["hash"])) for r in rows}
    bad: list[BadEvent] = []
    for position, (stream, event_hash) in sealed.items():
        if position not in found:
            bad.append(BadEvent(stream, position, f"deleted: sealed in seal {seal.seq}, now missing"))
        elif found[position] != (stream, event_hash):
            bad.append(BadEvent(stream, position, f"modified: differs from seal {seal.seq}"))
    for position, (stream, _) in found.items():
        if position not in sealed:
            bad.append(BadEvent(stream, position, f"inserted: not in seal {seal.seq} of its range"))
    if not bad and [r["position"] for r in rows] != list(seal.positions):
        first = next(r for i, r in enumerate(rows) if r["position"] != seal.positions[i])
        bad.append(BadEvent(first["stream"], first["position"], "reordered within its seal"))
    return min(bad, key=lambda b: b.position) if bad else None


async def _check_range(conn: asyncpg.Connection, seal: Seal) -> BadEvent | None:
    rows = await _long(conn.fetch, _RANGE_SQL, str(seal.after[0]), seal.after[1], str(seal.last[0]),
                       seal.last[1])
    return _compare(seal, rows)


@dataclass(frozen=True, slots=True)
class _SealCheck:
    bad: BadEvent | None
    seals: int
    last: tuple[int, int]
    keyed_unchecked: int


async def _check_seals(conn: asyncpg.Connection, key: bytes | None) -> _SealCheck:
    prev: Seal | None = None
    count = unchecked = 0
    async for row in conn.cursor(_SEALS_SQL, prefetch=16):
        seal = seal_from_row(row)
        count += 1
        unchecked += int(seal.keyed and key is None)
        problem = _check_link(seal, prev, key)
        if problem is not None:
            stream, position = _seal_anchor(seal)
            return _SealCheck(BadEvent(stream, position, problem), count, seal.last, unchecked)
        bad = await _check_range(conn, seal)
        if bad is not None:
            return _SealCheck(bad, count, seal.last, unchecked)
        prev = seal
    return _SealCheck(None, count, prev.last if prev else LOG_START, unchecked)


def _seal_anchor(seal: Seal) -> tuple[str, int]:
    return (seal.streams[0], seal.positions[0]) if seal.positions else ("", seal.after[1])


async def verify(pool: asyncpg.Pool, *, key: bytes | None = None) -> VerifyReport:
    """Check every hash chain and every seal; name the first bad stream and position.

    `key`: the seals' HMAC key (`INTAKE_SEAL_KEY`), None when none is configured. Runs
    in one snapshot (an event committed meanwhile is neither checked nor counted unsealed);
    it only reads, so it neither blocks writers nor holds back readers' commit horizon.
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        checked, broken = await check_chains(conn)
        seals = await _check_seals(conn, key)
        access = await check_access(conn, key)
        unsealed = int(await _long(conn.fetchval, _UNSEALED_SQL, str(seals.last[0]), seals.last[1]))
    chain_bad = broken.bad_event() if broken is not None else None
    found = [b for b in (chain_bad, seals.bad) if b is not None]
    first = min(found, key=lambda b: b.position) if found else None
    if first is None and access.bad_seq is not None:  # the log is intact; its access record is not
        first = BadEvent(ACCESS_LOG, access.bad_seq, access.reason or "")
    warnings: list[str] = []
    if seals.keyed_unchecked:
        warnings.append(f"{seals.keyed_unchecked} keyed seals not authenticated: "
                        "INTAKE_SEAL_KEY is not set")
    if access.keyed_unchecked:
        warnings.append(f"{access.keyed_unchecked} keyed access record rows not authenticated: "
                        "INTAKE_SEAL_KEY is not set")
    if unsealed:
        warnings.append(f"{unsealed} events are not sealed yet (deletions there are undetectable)")
    return VerifyReport(first is None and access.bad_seq is None, checked, first, seals.seals, unsealed,
                        tuple(warnings), access.checked)


def workers(pool: asyncpg.Pool, key: bytes | None) -> list[Callable[[], Awaitable[None]]]:
    """Background tasks for the gateway's bootstrap: the sealer (`key`: INTAKE_SEAL_KEY)."""
    return [Sealer(pool, key=key).run]
