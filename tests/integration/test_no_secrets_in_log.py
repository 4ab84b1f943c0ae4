"""Credentials sent with channel traffic never reach the append-only log."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp

from tests.conftest import TOKENS, auth


async def test_tokens_are_not_stored_from_accepted_or_rejected_requests(client: Any, pg_pool: Any) -> None:
    good = {"service_code": "complaint", "api_key": "t-channel", "lat": "34.3455", "long": "108.7123",
            "description": "小区路灯全部不亮", "phone": "13700001111"}
    assert (await client.post("/open311/v2/requests.json", data=good)).status == 201
    bad = dict(good, lat="north")
    assert (await client.post("/open311/v2/requests.json", data=bad)).status == 400
    wrong = dict(good, api_key="not-a-token-but-secret")
    assert (await client.post("/open311/v2/requests.json", data=wrong)).status == 403
    cti = await client.post("/channels/cti/events", data=b"{not json", headers=auth("t-channel"))
    assert cti.status == 400

    async with pg_pool.acquire() as conn:
        stored = await conn.fetchval("SELECT string_agg(data::text || metadata::text, ' ') FROM events")
    assert "InputRejected" in await pg_pool.fetchval("SELECT string_agg(type, ' ') FROM events")
    for token in [*TOKENS, "not-a-token-but-secret"]:
        # whole words only: the test principal "test-channel" contains "t-channel"
        assert not re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", stored), token


def _multipart(fields: dict[str, str]) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def test_the_open311_api_key_is_redacted_from_rejected_multipart_bodies(
    client: Any, pg_pool: Any
) -> None:
    """FixMyStreet and other portals may post multipart/form-data (with photos); the key is a part."""
    good = {"api_key": "t-channel", "service_code": "complaint", "lat": "north", "long": "108.7123",
            "description": "小区路灯全部不亮"}
    wrong = dict(good, api_key="not-a-token-but-secret")
    for form in (good, wrong):
        response = await client.post("/open311/v2/requests.json", data=_multipart(form))
        assert response.status in (400, 403)
    rows = await pg_pool.fetch("SELECT data FROM events WHERE type = 'InputRejected' ORDER BY position")
    raws = [json.loads(r["data"])["raw"] if isinstance(r["data"], str) else r["data"]["raw"] for r in rows]
    assert len(raws) == 2 and all('name="api_key"' in raw for raw in raws), raws
    for raw in raws:
        assert "t-channel" not in raw and "not-a-token-but-secret" not in raw, raw  # main kept both
        assert 'name="api_key"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n***' in raw or (
            'name="api_key"\r\n\r\n***' in raw), raw
