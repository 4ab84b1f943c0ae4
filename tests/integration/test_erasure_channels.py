"""Erasing a person who contacted us on every channel (issue 24's test), on the real app.

One person calls (a case, then a missed call and its call-back), texts by SMS,
writes in WeChat and gives his number there, files an Open311 web request, is
put in the customer registry, is sent an acknowledgement, and his case gets a
supplement and a reminder; another person contacts us alongside. After he is
erased, a search of every column of every table and of every Redis key (names
and values) finds none of his plaintext; the other person's data are whole;
the log verifies, reads show his fields erased, rebuilt read models hold none
of it either and keep the counts, and tampering is still caught.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import asyncpg
import pytest
from twilio.request_validator import RequestValidator

from channels.wechat_crypto import signature
from dispatch.core.clock import FakeClock
from dispatch.core.personal import ERASED
from eventstore.postgres import PostgresEventStore
from eventstore.seals import Sealer
from eventstore.subscriptions import ProjectionRunner, ReactorRunner, Recalling
from eventstore.tamper import verify
from gateway.bootstrap import build_services, close_services, projections, reactors
from gateway.services import SERVICES
from gateway.settings import Settings, TwilioSettings, WechatSettings
from tests.conftest import auth, until
from tests.integration.alarm_helpers import ELDER_ACCOUNT, HOME, register_elder

TWILIO = "twilio-erasure-token"
WECHAT = "wechat-erasure-token"

PHONE = "13912345678"
NAME = "欧阳铁柱"
ADDRESS = "秦都区玉泉路77号"
OPENID = "oErasure_Ouyang_7f3a"
EMAIL = "tiezhu.ouyang@example.cn"
TEXTS = {
    "case": "甲乙丙丁楼道灯坏了一个月",
    "sms": "戊己庚辛我家停电了整栋楼",
    "wechat": "壬癸子丑路灯不亮了好几天",
    "web": "寅卯辰巳井盖缺失很危险",
    "registry": "雷电霜雪反复来电的理由",
    "callback": "午未申酉回电无人接听备注",
    "dispatch": "乾坤震巽派单时写的备注",
    "reject": "庚午辛未单位退单的理由",
    "close": "壬申癸酉办结时答复的内容",
    "feedback": "坎离艮兑单位反馈的进展",
    "result": "甲子乙丑处理结果的说明",
    "case_callback": "丙寅丁卯回访市民的记录",
    "supplement": "戌亥金木补充说明的内容",
    "reminder": "水火土风提醒自己的备注",
}
SECRETS = [PHONE, "+86" + PHONE, "139 1234 5678", NAME, ADDRESS, OPENID, EMAIL, *TEXTS.values()]
"""Every plaintext of the person that must be gone after his erasure."""

OTHER = "13800000000"
OTHER_NAME = "李四"
OTHER_TEXT = "渭阳路噪音扰民半夜施工"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Twilio (no proxy: the request URL is what Twilio signed) and WeChat in plain mode."""
    return dataclasses.replace(settings, twilio=TwilioSettings(TWILIO), wechat=WechatSettings(WECHAT))


@pytest.fixture
async def services(settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    """Wired services on the fake clock: a closed case may be supplemented only days later."""
    wired = await build_services(settings, clock=clock)
    yield wired
    await close_services(wired)


async def sms(client: Any, sid: str, sender: str, text: str) -> None:
    params = {"MessageSid": sid, "From": sender, "To": "+8695598", "Body": text, "NumMedia": "0"}
    sign = RequestValidator(TWILIO).compute_signature(str(client.make_url("/channels/twilio/sms")), params)
    response = await client.post("/channels/twilio/sms", data=urlencode(params).encode(),
                                 headers={"X-Twilio-Signature": sign,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200, await response.text()


_msg_ids = iter(range(int(time.time() * 1000), 2**62))


async def wechat(client: Any, openid: str, text: str) -> str:
    """A WeChat text push in plain mode, signed now; the reply."""
    ts, nonce = str(int(client.app[SERVICES].clock.now().timestamp())), uuid.uuid4().hex[:16]
    xml = (f"<xml><ToUserName><![CDATA[gh_intake]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
           f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
           f"<Content><![CDATA[{text}]]></Content><MsgId>{next(_msg_ids)}</MsgId></xml>")
    response = await client.post("/channels/wechat", data=xml.encode(), headers={"Content-Type": "text/xml"},
                                 params={"signature": signature(WECHAT, ts, nonce), "timestamp": ts,
                                         "nonce": nonce, "openid": openid})
    assert response.status == 200, await response.text()
    return str(await response.text())


async def api(client: Any, method: str, path: str, token: str = "t-agent", status: int = 200,
              **body: Any) -> Any:
    response = await client.request(method, path, headers=auth(token), json=body or None)
    assert response.status == status, (path, await response.text())
    return await response.json()


async def act(client: Any, case_id: str, action: str, token: str = "t-agent", **body: Any) -> Any:
    """A case action at the case's version (again while the read model lags behind the log)."""

    async def attempt() -> Any:
        current = await api(client, "GET", f"/api/v1/cases/{case_id}")
        response = await client.post(f"/api/v1/cases/{case_id}/{action}", headers=auth(token),
                                     json={"expected_version": current["version"], **body})
        text = await response.text()
        assert response.status == 200 or "version" in text, (action, text)
        return await response.json() if response.status == 200 else None

    return await until(attempt, 8.0)


async def contact_on_every_channel(client: Any) -> dict[str, Any]:
    """The person's contacts on every channel, and the other person's; what the test needs later."""
    pool, clock = client.app[SERVICES].pool, client.app[SERVICES].clock
    mine = await api(client, "POST", "/api/v1/cases", status=201, category="complaint", channel="phone",
                     description=TEXTS["case"], caller={"name": NAME, "phone": "+86 139 1234 5678"},
                     address=ADDRESS)
    theirs = await api(client, "POST", "/api/v1/cases", status=201, category="complaint", channel="phone",
                       description=OTHER_TEXT, caller={"name": OTHER_NAME, "phone": OTHER},
                       address="渭阳路1号")
    await act(client, mine["case_id"], "reminder", note=TEXTS["reminder"],
              remind_at=(clock.now() + timedelta(days=1)).isoformat())
    await act(client, mine["case_id"], "close", reason=TEXTS["close"])
    clock.advance(8 * 24 * 3600)  # a closed case is supplemented a week later
    await act(client, mine["case_id"], "supplement", text=TEXTS["supplement"])
    await api(client, "PUT", f"/api/v1/customers/{PHONE}", "t-dispatcher", tier="blacklisted",
              reason=TEXTS["registry"])

    # a missed call (offered, abandoned) and its call-back with a note
    for event_id, kind in (("x1", "offered"), ("x2", "abandoned")):
        await api(client, "POST", "/channels/cti/events", "t-channel", 201, event_id=event_id, type=kind,
                  call_id="call-erase-1", caller="+86" + PHONE, queue="12345",
                  at=clock.now().isoformat())
    tasks = await until(lambda: _items(client, "/api/v1/missed-calls?status=open"), 8.0)
    await api(client, "POST", f"/api/v1/missed-calls/{tasks[0]['task_id']}/outcome", "t-dispatcher",
              outcome="no_answer", note=TEXTS["callback"])

    await sms(client, "SMerase01", "+86" + PHONE, TEXTS["sms"])
    await sms(client, "SMerase02", "+86" + OTHER, "另一个人的短信内容")

    # WeChat: a complaint, then the number given there (which links the OpenID to it)
    await wechat(client, OPENID, TEXTS["wechat"])
    await wechat(client, OPENID, "139 1234 5678")

    web = await client.post("/open311/v2/requests.json", data={
        "api_key": "t-web", "service_code": "complaint", "description": TEXTS["web"],
        "address_string": ADDRESS, "first_name": NAME, "phone": PHONE, "email": EMAIL})
    assert web.status == 201, await web.text()

    # the web request's case through its whole life: dispatched, worked, completed, called back
    web_case = (await web.json())[0]["service_request_id"]
    await until(lambda: _listed(client, web_case), 8.0)
    await act(client, web_case, "dispatch", "t-dispatcher", to="U001")
    await act(client, web_case, "reject", "t-unit", reason=TEXTS["reject"])
    await act(client, web_case, "dispatch", "t-dispatcher", to="U001", note=TEXTS["dispatch"])
    await act(client, web_case, "confirm", "t-unit")
    await act(client, web_case, "feedback", "t-unit", text=TEXTS["feedback"])
    await act(client, web_case, "complete", "t-unit", result=TEXTS["result"])
    await act(client, web_case, "callback", outcome="satisfied", note=TEXTS["case_callback"], case_score=5)

    async def settled() -> bool:
        async with pool.acquire() as conn:
            linked = await conn.fetchval("SELECT count(*) FROM openid_phones WHERE openid = $1", OPENID)
            sms_cases = await conn.fetchval("SELECT count(*) FROM cases WHERE channel = 'sms'")
            web_cases = await conn.fetchval("SELECT count(*) FROM cases WHERE channel = 'web'")
            sent = await conn.fetchval(
                "SELECT count(*) FROM notification_outbox WHERE to_addr = $1 AND status = 'sent'", PHONE)
            customers = await conn.fetchval("SELECT count(*) FROM customers WHERE phone = $1", PHONE)
        status = await (await client.get("/api/v1/status", headers=auth("t-admin"))).json()
        caught_up = all(r["lag_events"] == 0 for r in status["runners"])  # the result reaches cases.data late
        return bool(linked and sms_cases and web_cases and sent and customers and caught_up)

    await until(settled, 15.0)
    found = await hits(pool, client.app[SERVICES])
    # the search finds them before (in the read models: the log holds them sealed)
    assert {n for n, _ in found} >= {PHONE, NAME, ADDRESS, OPENID, EMAIL, TEXTS["case"], TEXTS["sms"],
                                     TEXTS["wechat"], TEXTS["web"], TEXTS["registry"], TEXTS["reminder"],
                                     TEXTS["result"]}
    return {"mine": mine, "theirs": theirs}


async def _listed(client: Any, case_id: str) -> bool:
    return (await client.get(f"/api/v1/cases/{case_id}", headers=auth("t-agent"))).status == 200


async def _items(client: Any, path: str) -> Any:
    return (await api(client, "GET", path, "t-dispatcher"))["items"]


def _forms(needle: str) -> list[str]:
    """A plaintext as it may be stored: itself, and escaped in JSON (`ensure_ascii`)."""
    return list(dict.fromkeys([needle, json.dumps(needle)[1:-1]]))


def _around(text: str, secret: str) -> str:
    """Where in `text` a plaintext is, for the failure message."""
    at = max((text.find(f) for f in _forms(secret)), default=-1)
    return text[max(0, at - 200):at + 100]


_TABLES = """SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
    ORDER BY 1"""


async def table_hits(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(plaintext, where) for every row of every table that holds one of the person's plaintexts,
    in any column (the row as text: text, jsonb, arrays, keys, stream names alike)."""
    found: list[tuple[str, str]] = []
    for (table,) in await conn.fetch(_TABLES):
        for secret in SECRETS:
            patterns = ["%" + f.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                        for f in _forms(secret)]
            row = await conn.fetchval(f"SELECT t::text FROM {table} t WHERE t::text LIKE ANY($1) LIMIT 1",
                                      patterns)
            if row is not None:
                found.append((secret, f"{table}: {_around(row, secret)}"))
    return found


async def redis_hits(redis: Any, prefix: str) -> list[tuple[str, str]]:
    """(plaintext, key) for every Redis key of the test's prefix whose name or value holds one."""
    found: list[tuple[str, str]] = []
    async for key in redis.scan_iter(match=f"{prefix}*", count=500):
        kind = (await redis.type(key)).decode()
        parts: list[bytes] = [key]
        if kind == "string":
            parts.append(await redis.get(key) or b"")
        elif kind == "hash":
            parts.extend(b for kv in (await redis.hgetall(key)).items() for b in kv)
        elif kind == "list":
            parts.extend(await redis.lrange(key, 0, -1))
        elif kind == "set":
            parts.extend(await redis.smembers(key))
        elif kind == "zset":
            parts.extend(await redis.zrange(key, 0, -1))
        elif kind == "stream":
            parts.extend(b for _, fields in await redis.xrange(key) for kv in fields.items() for b in kv)
        text = b"\n".join(parts).decode(errors="replace")
        for secret in SECRETS:
            if any(f in text for f in _forms(secret)):
                found.append((secret, f"redis {kind} {key.decode()}: {_around(text, secret)}"))
    return found


async def hits(pool: asyncpg.Pool, services: Any) -> list[tuple[str, str]]:
    async with pool.acquire() as conn:
        found = await table_hits(conn)
    if services.redis is not None:
        found += await redis_hits(services.redis, services.settings.stores.redis_prefix)
    return found


async def read_models(pool: asyncpg.Pool) -> dict[str, Any]:
    """What an erasure and a rebuild must keep: the cases, their categories and channels, links."""
    async with pool.acquire() as conn:
        cases = [tuple(r) for r in await conn.fetch(
            "SELECT case_id, category, channel, status FROM cases ORDER BY case_id")]
        other = await conn.fetchrow("SELECT caller_name, description FROM cases WHERE caller_phone = $1",
                                    OTHER)
    return {"cases": cases, "other": tuple(other)}


async def test_a_person_erased_after_contacts_on_every_channel_leaves_no_plaintext(
    client: Any, pg_pool: asyncpg.Pool
) -> None:
    services = client.app[SERVICES]
    made = await contact_on_every_channel(client)
    before = await read_models(pg_pool)
    assert before["other"] == (OTHER_NAME, OTHER_TEXT)

    done = await api(client, "POST", f"/api/v1/subjects/{PHONE}/erase", "t-admin",
                     reason="公民申请删除个人信息", legal_basis="request")
    assert made["mine"]["case_id"] in done["case_ids"] and made["theirs"]["case_id"] not in done["case_ids"]
    assert len(done["case_ids"]) >= 3  # phone, SMS, WeChat (and the web request)

    # (a) no table, no Redis key holds any of his plaintext
    found = await hits(pg_pool, services)
    assert found == [], "\n".join(map(str, found))
    # (b) the other person's data are whole, every case is still there with its category
    after = await read_models(pg_pool)
    assert after == before | {"cases": after["cases"]}
    assert [c[:3] for c in after["cases"]] == [c[:3] for c in before["cases"]]
    card = await api(client, "GET", f"/api/v1/callers/{OTHER}")
    assert card["cases"] and card["cases"][0]["case_id"] == made["theirs"]["case_id"]
    # (c) the log still verifies
    assert (await api(client, "GET", "/api/v1/audit/verify", "t-auditor"))["ok"]
    # (d) his case's history and the streams read erased
    history = await api(client, "GET", f"/api/v1/audit/cases/{made['mine']['case_id']}/history", "t-auditor")
    assert ERASED in json.dumps(history, ensure_ascii=False)
    assert not any(s in json.dumps(history, ensure_ascii=False) for s in SECRETS)
    store = PostgresEventStore(pg_pool)
    registered = (await store.read_stream(f"case-{made['mine']['case_id']}"))[0]
    assert (registered.data["caller"]["name"], registered.data["description"]) == (ERASED, ERASED)
    theirs = (await store.read_stream(f"case-{made['theirs']['case_id']}"))[0]
    assert theirs.data["caller"]["name"] == OTHER_NAME

    # (e) every read model rebuilt from the erased log: still no plaintext, the same cases
    await client.close()  # the app's runners stop: a rebuild must not race them
    for projection in projections(services):
        await ProjectionRunner(services.store, projection).rebuild()
    for reactor in reactors(services):
        if isinstance(reactor, Recalling):
            await ReactorRunner(services.store, reactor).rebuild()
    assert await hits(pg_pool, services) == []
    rebuilt = await read_models(pg_pool)
    assert [c[:3] for c in rebuilt["cases"]] == [c[:3] for c in before["cases"]]
    assert rebuilt["other"] == before["other"]

    # (f) the tamper checks still catch a modified, an inserted and a deleted event
    await tamper_is_still_caught(pg_pool, f"case-{made['mine']['case_id']}")


async def tamper_is_still_caught(pool: asyncpg.Pool, stream: str) -> None:
    async with pool.acquire() as conn:
        await until(lambda: Sealer(pool).seal_pending(), 10.0)
        assert (await verify(pool)).ok
        first, last = await conn.fetchrow(
            "SELECT min(position), max(position) FROM events WHERE stream = $1", stream)
        last_version = await conn.fetchval("SELECT max(version) FROM events WHERE stream = $1", stream)
        await conn.execute("SET session_replication_role = replica")
        original = await conn.fetchval("SELECT data FROM events WHERE position = $1", first)
        await conn.execute("UPDATE events SET data = jsonb_set(data, '{category}', '\"other\"') "
                           "WHERE position = $1", first)
        await _caught(pool, stream, "modified")
        await conn.execute("UPDATE events SET data = $2 WHERE position = $1", first, original)
        assert (await verify(pool)).ok
        forged = await conn.fetchval(
            """INSERT INTO events (stream, category, version, type, schema_version, data, metadata,
                                   prev_hash, hash)
               VALUES ($1, 'case', $2, 'Forged', 1, '{}', '{}', '\\x00', '\\x00') RETURNING position""",
            stream, last_version + 1)
        await _caught(pool, stream, "modified")
        await conn.execute("DELETE FROM events WHERE position = $1", forged)
        assert (await verify(pool)).ok
        await conn.execute("DELETE FROM events WHERE position = $1", last)
        await _caught(pool, stream, "deleted")


async def _caught(pool: asyncpg.Pool, stream: str, reason: str) -> None:
    report = await verify(pool)
    assert not report.ok and report.first_bad is not None
    assert report.first_bad.stream == stream and report.first_bad.reason.startswith(reason), report.first_bad


ELDER = {"name": "曹英霞", "phone": "18984796809", "address": "秦都区建设路195号",
         "lat": str(HOME[0]), "lon": str(HOME[1]), "note": "子丑寅卯老人家属已到场"}


async def test_an_elder_erased_after_an_alarm_leaves_no_plaintext(
    client: Any, pg_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = client.app[SERVICES]
    monkeypatch.setattr(sys.modules[__name__], "SECRETS", [*ELDER.values(), ELDER_ACCOUNT])
    await register_elder(services)
    response = await client.post("/channels/alarm/events", headers=auth("t-alarm"), json={
        "event_id": "v-1", "account": ELDER_ACCOUNT, "code": "MA", "at": services.clock.now().isoformat()})
    assert response.status == 201, await response.text()
    case_id = (await response.json())["case_id"]
    await until(lambda: _items(client, "/api/v1/elderly/alerts"), 8.0)
    await api(client, "POST", f"/api/v1/elderly/alerts/{case_id}/confirm", outcome="reached",
              note=ELDER["note"])
    other = await api(client, "POST", "/api/v1/cases", status=201, category="complaint", channel="phone",
                      description=OTHER_TEXT, caller={"name": OTHER_NAME, "phone": OTHER})
    await until(lambda: pg_pool.fetchval("SELECT count(*) FROM cases WHERE case_id = $1", other["case_id"]),
                8.0)
    before = await read_models(pg_pool)
    found = await hits(pg_pool, services)
    assert {n for n, _ in found} >= {ELDER["name"], ELDER["phone"], ELDER["address"]}

    done = await api(client, "POST", "/api/v1/subjects/elder:ELD00001/erase", "t-admin",
                     reason="老人已故，家属申请删除", legal_basis="purpose_fulfilled")
    assert done["case_ids"] == [case_id]
    found = await hits(pg_pool, services)
    assert found == [], "\n".join(map(str, found))
    assert (await read_models(pg_pool)) == before | {"cases": (await read_models(pg_pool))["cases"]}
    assert (await api(client, "GET", "/api/v1/audit/verify", "t-auditor"))["ok"]

    await client.close()
    for projection in projections(services):
        await ProjectionRunner(services.store, projection).rebuild()
    for reactor in reactors(services):
        if isinstance(reactor, Recalling):
            await ReactorRunner(services.store, reactor).rebuild()
    found = await hits(pg_pool, services)
    assert found == [], "\n".join(map(str, found))
    rebuilt = await read_models(pg_pool)
    assert [c[:3] for c in rebuilt["cases"]] == [c[:3] for c in before["cases"]]
