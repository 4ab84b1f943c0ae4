"""The auditor's case history: events with who/when/channel/raw, state at an instant, verify, reads."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import auth

CASE = {
    "category": "power_fault", "channel": "phone", "description": "整栋楼停电，电梯困人",
    "caller": {"name": "王五", "phone": "13912345678"}, "account_number": "0123456789",
    "fault": {"type": "outage", "began_at": "2026-11-23T07:50:00+08:00", "scope": "building"},
    "address": "咸阳市秦都区人民路1号", "location": {"lat": 34.33, "lon": 108.70},
}


async def _case_with_two_events(client: Any, n: int = 0) -> tuple[str, list[dict[str, Any]]]:
    """Registered and closed; the `n`th such case has its own caller and place 11 km on,
    so that the linking policy (which would append to it) leaves it alone."""
    case = {**CASE, "caller": {**CASE["caller"], "phone": f"139123{45678 + n}"},
            "location": {"lat": 34.33 + 0.1 * n, "lon": 108.70}}
    created = await client.post("/api/v1/cases", json=case, headers=auth("t-agent"))
    assert created.status == 201, await created.text()
    body = await created.json()
    closed = await client.post(f"/api/v1/cases/{body['case_id']}/close",
                               json={"expected_version": body["version"], "reason": "answered"},
                               headers=auth("t-agent"))
    assert closed.status == 200, await closed.text()
    history = await client.get(f"/api/v1/audit/cases/{body['case_id']}/history", headers=auth("t-auditor"))
    assert history.status == 200
    return body["case_id"], (await history.json())["events"]


async def _history(client: Any, case_id: str) -> Any:
    response = await client.get(f"/api/v1/audit/cases/{case_id}/history", headers=auth("t-auditor"))
    return await response.json()


async def test_history_lists_every_event_with_state_after_each(client: Any) -> None:
    _, events = await _case_with_two_events(client)
    assert [e["type"] for e in events][:1] == ["CaseRegistered"]
    assert len(events) >= 2
    first, last = events[0], events[-1]
    assert first["who"] == "agent:A001" and first["channel"] == "phone"
    assert first["state"]["status"] == "accepted"
    assert first["state"]["caller"]["name"] == "王五"
    assert last["state"]["status"] == "closed"
    assert [e["version"] for e in events] == list(range(len(events)))
    assert all(e["recorded_at"] and e["position"] for e in events)


async def test_as_of_gives_the_state_at_that_instant(client: Any) -> None:
    case_id, events = await _case_with_two_events(client)
    at = quote(events[0]["recorded_at"])
    body = await (await client.get(f"/api/v1/audit/cases/{case_id}/history?as_of={at}",
                                   headers=auth("t-auditor"))).json()
    assert [e["type"] for e in body["events"]] == ["CaseRegistered"]
    assert body["state"]["status"] == "accepted"
    assert body["total_events"] == len(events)
    before = await (await client.get(f"/api/v1/audit/cases/{case_id}/history?as_of=2000-01-01T00:00:00Z",
                                     headers=auth("t-auditor"))).json()
    assert before["events"] == [] and before["state"] is None


async def test_an_as_of_without_a_zone_is_beijing_time(client: Any, settings: Any, capsys: Any) -> None:
    import argparse
    from datetime import datetime, timedelta, timezone

    from gateway.cli import replay

    case_id, events = await _case_with_two_events(client)
    recorded = datetime.fromisoformat(events[0]["recorded_at"]).astimezone(timezone(timedelta(hours=8)))
    before = (recorded - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")  # no zone: Beijing time
    after = (recorded + timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%f")

    async def state_at(at: str) -> Any:
        response = await client.get(f"/api/v1/audit/cases/{case_id}/history?as_of={quote(at)}",
                                    headers=auth("t-auditor"))
        assert response.status == 200, await response.text()
        return await response.json()

    earlier = await state_at(before)  # read as UTC it would be eight hours later: the case closed
    assert earlier["state"] is None and earlier["as_of"].endswith("+08:00")
    assert (await state_at(after))["state"]["status"] == "accepted"

    # the CLI reads it the same way and prints Beijing time; its --json stays the API's ISO
    args = argparse.Namespace(case_id=case_id, as_of=after, json=False)
    assert await replay._replay(args, settings.stores.database_url) == 0
    text = capsys.readouterr().out
    assert f"as of {recorded:%Y-%m-%d %H:%M:%S}+08:00:" in text
    assert f"{recorded:%Y-%m-%d %H:%M:%S}+08:00  #" in text and "status: \"accepted\"" in text


async def test_verify_status_detects_an_altered_event(client: Any, services: Any) -> None:
    case_id, _ = await _case_with_two_events(client)
    body = await _history(client, case_id)
    assert body["verify"]["ok"] is True and body["verify"]["checked"] >= 2
    async with services.pool.acquire() as conn:  # an intruder with superuser rights
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        position = await conn.fetchval(
            "UPDATE events SET data = jsonb_set(data, '{description}', '\"nothing happened\"') "
            "WHERE stream = $1 AND version = 0 RETURNING position", f"case-{case_id}")
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    body = await _history(client, case_id)
    assert body["verify"]["ok"] is False
    assert body["verify"]["first_bad"] == {"stream": f"case-{case_id}", "position": position,
                                           "reason": "content does not match its hash"}


async def test_every_history_read_is_recorded(client: Any, services: Any) -> None:
    case_id, _ = await _case_with_two_events(client)
    await client.get(f"/api/v1/audit/cases/{case_id}/history?as_of=2030-01-01T00:00:00Z",
                     headers=auth("t-auditor"))
    reads = await services.store.read_stream("auditlog-auditor:AU01")
    assert [r.type for r in reads] == ["AuditRead", "AuditRead"]
    assert reads[-1].data["case_id"] == case_id
    assert reads[-1].data["as_of"].startswith("2030-01-01T00:00:00")
    assert reads[-1].metadata["actor"] == "auditor:AU01"


async def test_access_and_bad_input(client: Any) -> None:
    case_id, _ = await _case_with_two_events(client)
    path = f"/api/v1/audit/cases/{case_id}/history"
    assert (await client.get(path)).status == 401
    assert (await client.get(path, headers=auth("t-unit"))).status == 403
    assert (await client.get(path, headers=auth("t-channel"))).status == 403
    bad = await client.get(path + "?as_of=yesterday", headers=auth("t-auditor"))
    assert bad.status == 400 and (await bad.json())["error"]["code"] == "bad_parameter"
    missing = await client.get("/api/v1/audit/cases/C20990101ZZZZZZZZZZ/history", headers=auth("t-auditor"))
    assert missing.status == 404
    weird = await client.get("/api/v1/audit/cases/a%20b/history", headers=auth("t-auditor"))
    assert weird.status == 400


async def test_intake_replay_prints_the_same_history(client: Any, settings: Any, capsys: Any) -> None:
    import argparse
    import json

    from gateway.cli import replay

    case_id, events = await _case_with_two_events(client)
    args = argparse.Namespace(case_id=case_id, as_of=events[0]["recorded_at"], json=True)
    assert await replay._replay(args, settings.stores.database_url) == 0
    out = capsys.readouterr().out  # background tasks may log to stdout too
    printed, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "case_id"'):])
    assert printed["case_id"] == case_id
    assert [e["type"] for e in printed["events"]] == ["CaseRegistered"]
    assert printed["verify"]["ok"] is True
    args = argparse.Namespace(case_id=case_id, as_of=None, json=False)
    assert await replay._replay(args, settings.stores.database_url) == 0
    text = capsys.readouterr().out
    assert f"case {case_id} as of now" in text and "verify: intact" in text and "王五" in text


async def test_the_global_log_pages_in_commit_order_and_reads_are_recorded(
    client: Any, services: Any
) -> None:
    for n in range(3):
        await _case_with_two_events(client, n)
    first = await (await client.get("/api/v1/audit/events?limit=2", headers=auth("t-auditor"))).json()
    assert len(first["items"]) == 2 and first["next"] == first["items"][-1]["position"]
    assert set(first["items"][0]) >= {"position", "stream", "version", "type", "schema_version", "data",
                                      "metadata", "recorded_at"}
    rest = await (await client.get(f"/api/v1/audit/events?after={first['next']}&limit=1000",
                                   headers=auth("t-auditor"))).json()
    positions = [e["position"] for e in first["items"] + rest["items"]]
    assert len(positions) == len(set(positions)) and rest["next"] is None
    assert any(e["type"] == "AuditRead" for e in rest["items"])  # the history reads, not these
    recorded = await services.pool.fetch("SELECT reader, via, ranges FROM access_log ORDER BY seq")
    assert [tuple(r) for r in recorded][:1] == [("auditor:AU01", "api:events", [[0, first["next"]]])]
    assert (await client.get("/api/v1/audit/events", headers=auth("t-dispatcher"))).status == 403
    assert (await client.get("/api/v1/audit/events?after=x", headers=auth("t-auditor"))).status == 400
    assert (await client.get("/api/v1/audit/events?after=999999", headers=auth("t-auditor"))).status == 400


async def test_the_global_log_continues_from_cursor_as_every_list_does(client: Any) -> None:
    """Bug: `?cursor=NEXT` (CONTRACT.md, Lists: "pass ?cursor= to continue") was ignored, so a
    client paging every list alike read the first page again and again, for ever. (The app's
    policies may append after the last page: the whole log read later begins with the pages.)"""
    cases = [await _case_with_two_events(client, n) for n in range(2)]
    items: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(20):
        found = await client.get(f"/api/v1/audit/events?limit=2{cursor}", headers=auth("t-auditor"))
        assert found.status == 200
        body = await found.json()
        items += body["items"]
        if body["next"] is None:
            break
        cursor = f"&cursor={body['next']}"
    everything = await (await client.get("/api/v1/audit/events?limit=1000", headers=auth("t-auditor"))).json()
    paged = [e["position"] for e in items]
    assert paged == [e["position"] for e in everything["items"]][:len(paged)]
    assert {e["position"] for _, history in cases for e in history} <= set(paged)
    both = await client.get("/api/v1/audit/events?after=1&cursor=2", headers=auth("t-auditor"))
    assert both.status == 400 and (await both.json())["error"]["code"] == "bad_parameter"


async def test_verify_checks_the_whole_store(client: Any) -> None:
    await _case_with_two_events(client)
    body = await (await client.get("/api/v1/audit/verify", headers=auth("t-auditor"))).json()
    assert body["ok"] is True and body["checked"] >= 2 and body["first_bad"] is None
    assert (await client.get("/api/v1/audit/verify", headers=auth("t-unit"))).status == 403
