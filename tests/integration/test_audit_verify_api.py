"""`GET /api/v1/audit/verify` on the running app names an event a superuser altered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from tests.conftest import auth

CASE = {"category": "complaint", "channel": "phone", "caller": {"name": "钱七", "phone": "13800000002"},
        "description": "路灯不亮"}


async def test_verify_endpoint_reports_intact_then_names_the_tampered_event(client: Any, pg_dsn: str) -> None:
    created = await client.post("/api/v1/cases", json=CASE, headers=auth("t-agent"))
    assert created.status == 201
    case_id = (await created.json())["case_id"]

    deadline = time.monotonic() + 10
    while True:  # the background sealer seals the log in read order
        report = await (await client.get("/api/v1/audit/verify", headers=auth("t-auditor"))).json()
        if report["ok"] and report["seals"] > 0 and report["unsealed"] == 0:
            break
        assert time.monotonic() < deadline, report
        await asyncio.sleep(0.1)

    superuser = await asyncpg.connect(pg_dsn)
    try:
        await superuser.execute("SET session_replication_role = replica")
        position = await superuser.fetchval(
            "UPDATE events SET data = jsonb_set(data, '{description}', '\"篡改\"') "
            "WHERE stream = $1 AND version = 0 RETURNING position", f"case-{case_id}")
    finally:
        await superuser.close()

    response = await client.get("/api/v1/audit/verify", headers=auth("t-auditor"))
    report = await response.json()
    assert report["ok"] is False
    assert report["first_bad"]["stream"] == f"case-{case_id}"
    assert report["first_bad"]["position"] == position

    denied = await client.get("/api/v1/audit/verify", headers=auth("t-agent"))
    assert denied.status == 403
