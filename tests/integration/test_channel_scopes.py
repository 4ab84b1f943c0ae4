"""A channel token posts only to the channels its scope names (`token:channel:subject:web`).

The citizen form's token sits in a public page: with scope `web` it opens web
requests and nothing else - no CTI events, no one-touch alarms. A token with no
scope keeps meaning every channel. Every refused crossing is a 403 and is
recorded in short as input that came without an accepted credential.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from channels.rejected import MAX_UNAUTHENTICATED
from tests.conftest import auth
from tests.integration.alarm_helpers import events_of


@pytest.fixture
async def client(aiohttp_client: Any, settings: Any, services: Any) -> Any:
    from gateway.app import create_app

    return await aiohttp_client(create_app(settings, services=services, background=False))


def _cti(n: int) -> dict[str, Any]:
    return {"event_id": f"e{n}", "type": "offered", "call_id": f"c{n}", "caller": "13912345678",
            "queue": "95598", "at": "2026-11-23T08:00:00Z"}


def _alarm(n: int) -> dict[str, Any]:
    return {"event_id": f"a{n}", "account": "7001", "code": "MA", "at": datetime.now(UTC).isoformat()}


def _web(token: str) -> dict[str, str]:
    return {"api_key": token, "service_code": "complaint", "lat": "34.3455", "long": "108.7123",
            "description": "小区路灯全部不亮", "phone": "13700001111"}


async def _post(client: Any, channel: str, token: str, n: int) -> int:
    if channel == "cti":
        response = await client.post("/channels/cti/events", json=_cti(n), headers=auth(token))
    elif channel == "alarm":
        response = await client.post("/channels/alarm/events", json=_alarm(n), headers=auth(token))
    else:
        response = await client.post("/open311/v2/requests.json", data=_web(token))
    return int(response.status)


MAY = {"t-web": {"web"}, "t-cti": {"cti"}, "t-alarm": {"alarm"}, "t-channel": {"web", "cti", "alarm"},
       "t-admin": {"web", "cti", "alarm"}, "t-agent": set()}


@pytest.mark.parametrize("token", sorted(MAY))
async def test_each_token_posts_to_the_channels_of_its_scope_only(
    client: Any, services: Any, token: str
) -> None:
    refused = 0
    for n, channel in enumerate(("web", "cti", "alarm")):
        status = await _post(client, channel, token, n)
        if channel in MAY[token]:
            assert status == 201, (token, channel, status)
        else:
            assert status == 403, (token, channel, status)  # on main: t-web posted CTI and alarms
            refused += 1
    rejected = await events_of(services, "InputRejected")
    assert len(rejected) == refused
    assert {r["data"]["code"] for r in rejected} <= {"forbidden"}


async def test_a_refused_crossing_is_recorded_in_short(client: Any, services: Any) -> None:
    body = b'{"event_id": "x", "pad": "' + b"A" * 65_000 + b'"}'
    response = await client.post("/channels/alarm/events", data=body,
                                 headers={**auth("t-web"), "Content-Type": "application/json"})
    assert response.status == 403 and response.content_type == "application/json"
    error = (await response.json())["error"]  # the JSON error envelope, saying why
    assert (error["code"], error["message"]) == ("forbidden", "this channel token may not post to alarm")
    anonymous = await client.post("/channels/cti/events", json=_cti(1))
    assert (anonymous.status, anonymous.content_type, anonymous.headers["WWW-Authenticate"]) == (
        401, "application/json", "Bearer")
    assert (await anonymous.json())["error"]["code"] == "unauthorized"
    rejected, unauthorized = await events_of(services, "InputRejected")
    assert (unauthorized["data"]["channel"], unauthorized["data"]["code"]) == ("cti", "unauthorized")
    data = rejected["data"]
    assert (data["channel"], data["code"], data["raw_length"]) == ("alarm", "forbidden", len(body))
    assert data["raw_sha256"] == hashlib.sha256(body).hexdigest()
    assert len(data["raw"].encode()) == MAX_UNAUTHENTICATED and body.startswith(data["raw"].encode())
