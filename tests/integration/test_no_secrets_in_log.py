"""Credentials sent with channel traffic never reach the append-only log."""

from __future__ import annotations

import re
from typing import Any

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
