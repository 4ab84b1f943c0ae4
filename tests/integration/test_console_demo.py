"""The demo storm goes through the real channel endpoints and brings the console's read models alive."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from gateway.cli.demo import Storm, demo_files
from gateway.cli.loader import catch_up_reference, load_paths
from gateway.settings import Settings, TwilioSettings
from tests.conftest import auth

TWILIO = "demo-twilio-secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with a Twilio auth token, so signed SMS are accepted."""
    return dataclasses.replace(settings, twilio=TwilioSettings(TWILIO))


async def _eventually(client: Any, path: str, enough: Any, token: str = "t-dispatcher") -> Any:
    async with asyncio.timeout(20):
        while True:
            response = await client.get(path, headers=auth(token))
            body = await response.json() if response.status == 200 else None
            if body is not None and enough(body):
                return body
            await asyncio.sleep(0.1)


async def test_the_storm_creates_cases_missed_calls_and_dispatches(client: Any, services: Any) -> None:
    stats = await load_paths(services, demo_files())
    assert not stats.errors
    await catch_up_reference(services)
    tokens = {"channel": "t-channel", "dispatcher": "t-dispatcher", "admin": "t-admin"}
    storm = Storm(str(client.make_url("")).rstrip("/"), tokens, TWILIO, pace=0.05, waves=6)
    sent = await storm.play()

    assert storm.skipped == set(), f"channels skipped: {storm.skipped}"
    assert sent["cti"] >= 6 * 3 * 2 and sent["sms"] == 6 and sent["web"] == 6 and sent["alarm"] >= 1
    cases = await _eventually(client, "/api/v1/cases?limit=500", lambda b: len(b["items"]) >= 12)
    assert {c["channel"] for c in cases["items"]} >= {"sms", "web"}
    await _eventually(client, "/api/v1/missed-calls?status=open", lambda b: len(b["items"]) >= 2)
    kpis = await _eventually(client, "/api/v1/kpis", lambda b: b["kpis"]["answer_rate"]["value"] is not None)
    assert 0 < kpis["kpis"]["answer_rate"]["value"] < 1
    assert kpis["kpis"]["abandoned_per_hour"]["total"] >= 1
    assert kpis["kpis"]["cases_by_light"]["value"] >= 12
    assert sent.get("dispatch", 0) >= 1
