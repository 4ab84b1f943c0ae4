"""The case history behind the audit API and `intake replay`: events, state after each, as_of."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dispatch.cases.events import CallerInfo
from dispatch.cases.registration import RegisterCase, register_case
from dispatch.cases.state import case_stream
from dispatch.core.clock import FakeClock
from dispatch.core.errors import InvalidCommand, NotFound
from dispatch.core.messages import metadata
from eventstore import NewEvent
from eventstore.memory import MemoryEventStore
from gateway.cli.replay import auditlog_stream, case_history, parse_as_of, raw_payload, render_text


async def _case(store: MemoryEventStore, clock: FakeClock) -> str:
    cmd = RegisterCase(category="power_fault", channel="sms", description="停电了，整条街都没电",
                       caller=CallerInfo(name="张三", phone="13800138000"), actor="channel:twilio",
                       raw={"MessageSid": "SM1", "Body": "停电了"})
    return (await register_case(cmd, store=store, clock=clock)).case_id


async def test_history_has_every_event_with_who_channel_raw_and_state_after() -> None:
    clock = FakeClock()
    store = MemoryEventStore(now=clock.now)
    case_id = await _case(store, clock)
    clock.advance(60)
    await store.append(case_stream(case_id), [NewEvent("CaseNoteAdded", {"text": "x"}, 1,
                                                       metadata(actor="agent:A001", channel="phone"))], 0)
    history = await case_history(store, case_id)
    assert [e["type"] for e in history.events] == ["CaseRegistered", "CaseNoteAdded"]
    first, second = history.events
    assert first["who"] == "channel:twilio"
    assert first["channel"] == "sms"
    assert first["raw"] == {"MessageSid": "SM1", "Body": "停电了"}
    assert first["state"]["status"] == "accepted"
    assert first["state"]["caller"]["name"] == "张三"
    assert second["who"] == "agent:A001"
    assert second["state"]["version"] == 1
    assert history.state is not None and history.state["version"] == 1


async def test_as_of_folds_only_events_recorded_by_then() -> None:
    clock = FakeClock()
    store = MemoryEventStore(now=clock.now)
    case_id = await _case(store, clock)
    registered_at = clock.now()
    clock.advance(600)
    await store.append(case_stream(case_id), [NewEvent("CaseNoteAdded", {}, 1, {})], 0)

    at_start = await case_history(store, case_id, registered_at + timedelta(seconds=1))
    assert [e["type"] for e in at_start.events] == ["CaseRegistered"]
    assert at_start.state is not None and at_start.state["version"] == 0
    assert at_start.total_events == 2

    before = await case_history(store, case_id, registered_at - timedelta(seconds=1))
    assert before.events == () and before.state is None


async def test_unknown_case_is_not_found() -> None:
    with pytest.raises(NotFound):
        await case_history(MemoryEventStore(), "C20260101AAAAAAAAAA")


def test_parse_as_of_accepts_iso_and_reads_a_time_without_a_zone_as_beijing_time() -> None:
    assert parse_as_of("2026-11-23T08:00:00Z") == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert parse_as_of("2026-11-23T16:00:00") == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert parse_as_of("2026-11-23 16:00:00") == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert parse_as_of("2026-11-23T16:00:00+08:00") == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert parse_as_of(None) is None
    with pytest.raises(InvalidCommand):
        parse_as_of("yesterday")


async def test_text_rendering_shows_events_raw_state_and_verify() -> None:
    clock = FakeClock()
    store = MemoryEventStore(now=clock.now)
    case_id = await _case(store, clock)
    history = await case_history(store, case_id)
    text = render_text(history, {"ok": True, "checked": 1, "first_bad": None})
    assert f"case {case_id} as of now" in text
    assert "verify: intact (1 events checked)" in text
    assert "CaseRegistered" in text and "by channel:twilio via sms" in text
    assert 'raw: {"MessageSid": "SM1", "Body": "停电了"}' in text
    assert "status: \"accepted\"" in text
    # times in Beijing time: the registration recorded at 08:00 UTC reads 16:00+08:00
    recorded = history.events[0]["recorded_at"]
    shown = datetime.fromisoformat(recorded).astimezone(timezone(timedelta(hours=8)))
    assert f"{shown:%Y-%m-%d %H:%M:%S}+08:00  #" in text and f"{recorded}  #" not in text
    at = render_text(replace(history, as_of=datetime(2026, 11, 23, 8, tzinfo=UTC)), None)
    assert "as of 2026-11-23 16:00:00+08:00:" in at
    bad = {"stream": "case-x", "position": 7, "reason": "broken hash chain"}
    broken = render_text(history, {"ok": False, "checked": 1, "first_bad": bad})
    assert "verify: BROKEN at case-x position 7: broken hash chain" in broken


def test_raw_payload_and_auditlog_stream_names() -> None:
    assert auditlog_stream("auditor:AU01") == "auditlog-auditor:AU01"
    assert auditlog_stream("cli:some user/x") == "auditlog-cli:some_user_x"
    from eventstore import RecordedEvent
    record = RecordedEvent(1, "case-x", 0, "T", 1, {}, {"raw": "<xml/>"}, datetime.now(UTC))
    assert raw_payload(record) == "<xml/>"


@pytest.mark.parametrize("as_of", ["now", "1765000000", "2026-13-01"])
def test_replay_refuses_a_bad_as_of_on_stderr_leaving_stdout_to_the_history(
    as_of: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`intake replay C --as-of now --json | jq` gets no error text in place of its JSON: the
    refusal (exit 2) goes to stderr, before any store is opened."""
    from gateway.cli.main import main
    from gateway.settings import VARIABLES

    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INTAKE_DATABASE_URL", "postgresql://intake@127.0.0.1:9/none")
    monkeypatch.setenv("INTAKE_REDIS_URL", "redis://127.0.0.1:9/0")
    assert main(["replay", "C1", "--as-of", as_of, "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"intake replay: as_of {as_of!r} is not an ISO-8601 instant"]
