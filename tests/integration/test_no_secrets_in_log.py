"""Credentials sent with channel traffic never reach the append-only log."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp

from tests.conftest import TOKENS, auth, stored_events


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
    # and what the sealed personal fields hold (a token in them would be stored, only encrypted)
    opened = await stored_events(pg_pool)
    stored += " ".join(json.dumps([e.data, e.metadata], ensure_ascii=False) for e in opened)
    assert "InputRejected" in await pg_pool.fetchval("SELECT string_agg(type, ' ') FROM events")
    for token in [*TOKENS, "not-a-token-but-secret"]:
        # whole words only: the test principal "test-channel" contains "t-channel"
        assert not re.search(rf"(?<![\w-]){re.escape(token)}(?![\w-])", stored), token


def _multipart(fields: dict[str, str]) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    return form


async def test_a_multipart_open311_request_with_a_photo_is_accepted(client: Any, pg_pool: Any) -> None:
    """Portals post multipart/form-data when a photo goes with the report: the fields are read,
    the photo is not a field (it was refused 400 "form is not readable" before)."""
    form = _multipart({"api_key": "t-channel", "service_code": "complaint", "lat": "34.33",
                       "long": "108.71", "description": "小区路灯全部不亮"})
    form.add_field("media", b"\x89PNG\r\n\x1a\n", filename="lamp.png", content_type="image/png")
    response = await client.post("/open311/v2/requests.json", data=form)
    assert response.status == 201, await response.text()
    [registered] = await stored_events(pg_pool, "type = 'CaseRegistered'")
    data = registered.data
    assert data["description"] == "小区路灯全部不亮" and data["location"]["lat"] == 34.33


async def test_the_open311_api_key_is_redacted_from_rejected_multipart_bodies(
    client: Any, pg_pool: Any
) -> None:
    """FixMyStreet and other portals may post multipart/form-data (with photos); the key is a part."""
    good = {"api_key": "t-channel", "service_code": "complaint", "lat": "north", "long": "108.7123",
            "description": "小区路灯全部不亮"}
    wrong = dict(good, api_key="not-a-token-but-secret")
    for form, status in ((good, 400), (wrong, 403)):  # lat "north"; an unknown key
        response = await client.post("/open311/v2/requests.json", data=_multipart(form))
        assert response.status == status, await response.text()
    raws = [e.data["raw"] for e in await stored_events(pg_pool, "type = 'InputRejected'")]
    assert len(raws) == 2 and all('name="api_key"' in raw for raw in raws), raws
    for raw in raws:
        assert "t-channel" not in raw and "not-a-token-but-secret" not in raw, raw  # main kept both
        assert 'name="api_key"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n***' in raw or (
            'name="api_key"\r\n\r\n***' in raw), raw
