"""A case's history for auditors: every event, the state after each, the state
at any instant, and whether its hash chain is intact.

`case_history` is the one implementation behind both
`GET /api/v1/audit/cases/{case_id}/history` and `intake replay`. Every read is
itself recorded as an `AuditRead` event on the reader's `auditlog-` stream.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from dispatch.cases.state import case_stream, fold, states
from dispatch.core.clock import Clock, SystemClock
from dispatch.core.errors import InvalidCommand, NotFound
from dispatch.core.messages import Event, Json, JsonValue, event, metadata, to_data, to_new_event
from dispatch.core.texts import LOCAL_TIME
from eventstore import ANY, EventStore, RecordedEvent
from eventstore.errors import InvalidStreamName
from eventstore.records import check_stream_name
from eventstore.tamper import check_chains
from gateway.settings import Settings

RAW_PREVIEW = 160
_STREAM_ID = re.compile(r"[^A-Za-z0-9_.:\-]")


@event
@dataclass(frozen=True, slots=True)
class AuditRead(Event):
    """Someone read a case's history or the global log (auditors' reads are audited too)."""

    reader: str
    via: str
    at: datetime
    case_id: str | None = None
    as_of: datetime | None = None
    after: int | None = None


@dataclass(frozen=True, slots=True)
class CaseHistory:
    """Every event of a case up to `as_of`, with the state after each."""

    case_id: str
    as_of: datetime | None
    events: tuple[Json, ...]
    state: Json | None
    total_events: int

    def as_json(self, verify: Json | None) -> Json:
        """The shape the audit API answers and `intake replay --json` prints."""
        return {
            "case_id": self.case_id,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "events": list(self.events),
            "state": self.state,
            "total_events": self.total_events,
            "verify": verify,
        }


def parse_as_of(raw: str | None) -> datetime | None:
    """An ISO-8601 instant; one that names no zone is Beijing time (Asia/Shanghai), as the
    people who type it read their clocks. `InvalidCommand` if malformed."""
    if raw is None or raw.strip() == "":
        return None
    try:
        text = raw.strip().replace("Z", "+00:00").replace("z", "+00:00")  # RFC 3339 5.6: `z` too
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidCommand(f"as_of {raw[:40]!r} is not an ISO-8601 instant", field="as_of") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=LOCAL_TIME)


_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)$")


def local(value: object) -> object:
    """A value as the terminal shows it: instants (datetimes, ISO-8601 strings with a zone) in
    Beijing time, `2026-12-06 20:05:09+08:00`; lists and mappings item by item; the rest as is."""
    if isinstance(value, str) and _ISO.match(value):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(LOCAL_TIME).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, list):
        return [local(v) for v in value]
    if isinstance(value, dict):
        return {k: local(v) for k, v in value.items()}
    return value


def raw_payload(record: RecordedEvent) -> JsonValue:
    """The raw inbound payload an event keeps, if any."""
    contact = record.data.get("contact")
    nested = contact if isinstance(contact, dict) else {}
    for source in (record.data, nested, record.metadata):
        for key in ("raw", "raw_payload", "payload"):
            if source.get(key) is not None:
                return source[key]
    return None


def _entry(record: RecordedEvent, state: Json | None) -> Json:
    entry = record.as_json()
    entry["who"] = record.metadata.get("actor")
    entry["channel"] = record.metadata.get("channel")
    entry["raw"] = raw_payload(record)
    if state is not None:
        entry["state"] = state
    return entry


async def _contacts(store: EventStore, records: list[RecordedEvent]) -> list[Json]:
    """Events of the inbound contact streams a case refers to (their raw payloads)."""
    streams = sorted({str(r.data["contact_stream"]) for r in records
                      if isinstance(r.data.get("contact_stream"), str)})
    found: list[Json] = []
    for stream in streams:
        found.extend(_entry(r, None) for r in await store.read_stream(stream))
    return found


async def case_history(store: EventStore, case_id: str, as_of: datetime | None = None) -> CaseHistory:
    """The history of a case up to `as_of` (all of it when None); `NotFound` if no such case."""
    records = await store.read_stream(check_stream_name(case_stream(case_id)))
    if not records:
        raise NotFound(f"case {case_id} not found")
    shown = [r for r in records if as_of is None or r.recorded_at <= as_of]
    entries = [_entry(r, to_data(state)) for r, state in zip(shown, states(case_id, shown), strict=True)]
    related = [c for c in await _contacts(store, shown)
               if as_of is None or datetime.fromisoformat(c["recorded_at"]) <= as_of]
    merged = sorted(entries + related, key=lambda e: (e["recorded_at"], e["position"]))
    state = to_data(fold(case_id, shown)) if shown else None
    return CaseHistory(case_id, as_of, tuple(merged), state, len(records))


async def verify_stream(pool: asyncpg.Pool, stream: str) -> Json:
    """Check one stream's hash chain: `{"ok", "checked", "first_bad"}` like `/audit/verify`.

    The check is `eventstore.tamper.check_chains`; the reason names what exactly
    is wrong (e.g. "content does not match its hash").
    """
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        checked, broken = await check_chains(conn, stream)
    first_bad = None if broken is None else {
        "stream": broken.stream, "position": broken.position, "reason": broken.detail}
    return {"ok": broken is None, "checked": checked, "first_bad": first_bad}


def auditlog_stream(reader: str) -> str:
    """The stream recording one reader's audit reads."""
    return "auditlog-" + (_STREAM_ID.sub("_", reader)[:150] or "unknown")


async def record_read(
    store: EventStore, clock: Clock, *, reader: str, via: str, case_id: str | None = None,
    as_of: datetime | None = None, after: int | None = None,
) -> None:
    """Append an `AuditRead` for one audit read (before the answer is given)."""
    evt = AuditRead(reader=reader, via=via, at=clock.now(), case_id=case_id, as_of=as_of, after=after)
    meta = metadata(actor=reader, channel=via, correlation_id=case_id)
    await store.append(auditlog_stream(reader), [to_new_event(evt, meta)], ANY)


def _preview(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= RAW_PREVIEW else text[: RAW_PREVIEW - 1] + "…"


def render_text(history: CaseHistory, verify: Json | None) -> str:
    """The history as an operator reads it in a terminal (times in Beijing time; `--json`
    gives the API's ISO instants)."""
    when = local(history.as_of) if history.as_of else "now"
    shown = sum(1 for e in history.events if e["stream"] == f"case-{history.case_id}")
    lines = [f"case {history.case_id} as of {when}: {shown} of {history.total_events} case events shown"
             f" (+{len(history.events) - shown} of its inbound contacts)"]
    if verify is not None:
        bad = verify["first_bad"]
        lines.append(f"verify: intact ({verify['checked']} events checked)" if verify["ok"] else
                     f"verify: BROKEN at {bad['stream']} position {bad['position']}: {bad['reason']}")
    lines.append("")
    for e in history.events:
        lines.append(f"{local(e['recorded_at'])}  #{e['position']:<8} {e['stream']}@{e['version']:<3} "
                     f"{e['type']:<24} by {e['who'] or '-'} via {e['channel'] or '-'}")
        if e["raw"] is not None:
            lines.append(f"    raw: {_preview(e['raw'])}")
    lines.append("")
    lines.append("state:" if history.state else "state: (the case did not exist yet)")
    for key, value in (history.state or {}).items():
        if value not in (None, "", [], {}):
            lines.append(f"  {key}: {_preview(local(value))}")
    return "\n".join(lines)


async def _replay(args: argparse.Namespace, database_url: str) -> int:
    from eventstore.migrate import migrate
    from eventstore.postgres import PostgresEventStore, create_pool
    from gateway.schema import SCHEMA

    pool = await create_pool(database_url)
    store = PostgresEventStore(pool)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, SCHEMA)
        history = await case_history(store, args.case_id, parse_as_of(args.as_of))
        verify = await verify_stream(pool, case_stream(args.case_id))
        await record_read(store, SystemClock(), reader=f"cli:{getpass.getuser()}",
                          case_id=args.case_id, as_of=history.as_of, via="cli")
    finally:
        await store.close()
        await pool.close()
    if args.json:
        print(json.dumps(history.as_json(verify), ensure_ascii=False, indent=2, default=str))
    else:
        print(render_text(history, verify))
    return 0 if verify["ok"] else 1


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """`intake replay CASE_ID [--as-of ISO8601] [--json]`: 0 intact, 1 not found or broken, 2 bad input."""
    from gateway.cli.stores import stores

    try:
        parse_as_of(args.as_of)
        async with stores(settings) as live:
            assert live.stores.database_url is not None
            return await _replay(args, live.stores.database_url)
    except NotFound as exc:
        print(f"intake replay: {exc}", file=sys.stderr)
        return 1
    except (InvalidCommand, InvalidStreamName) as exc:
        print(f"intake replay: {exc}", file=sys.stderr)
        return 2
