"""An SMS that names a place but gives no coordinates, as a dispatcher sees it in headless Chromium:
located by the gazetteer, on the map at the place, and the detail saying where the point came from."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from gateway.services import SERVICES
from gateway.settings import Settings, TwilioSettings
from tests.e2e.test_console_browser import CHROMIUM, _page, _shot, browser, console  # noqa: F401 - fixtures
from tests.integration.test_places_pg import load_gazetteer
from tests.integration.test_sms import TOKEN, post_sms

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Twilio configured, so that the SMS comes in through the signed webhook."""
    return dataclasses.replace(settings, twilio=TwilioSettings(TOKEN))


async def _located_case(client: Any, within: float = 20.0) -> dict[str, Any]:
    services = client.app[SERVICES]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        row = await services.pool.fetchrow(
            "SELECT stream FROM events WHERE type = 'CaseLocated' ORDER BY position LIMIT 1")
        if row is not None:
            response = await client.get(f"/api/v1/cases/{row['stream'].split('-', 1)[1]}",
                                         headers={"Authorization": "Bearer t-dispatcher"})
            found: dict[str, Any] = await response.json()
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("the SMS's case was never located")


async def test_an_address_only_sms_appears_on_the_map_at_its_place(
        browser: Any, console: Any, tmp_path: Path) -> None:  # noqa: F811
    await load_gazetteer(console.app[SERVICES], tmp_path)
    response = await post_sms(console, "SMmap0001", "渭城区渭阳超市旁边停电了，一片都黑了")
    assert response.status == 200
    case = await _located_case(console)
    assert case["channel"] == "sms" and case["address"] is None
    assert case["location"]["source"] == "gazetteer" and case["location"]["place"]["name"] == "渭阳超市"
    assert (case["location"]["lat"], case["location"]["lon"]) == (34.371, 108.741)
    case_id = case["case_id"]
    async with _page(browser, str(console.make_url("/")) + f"?token=t-dispatcher#case/{case_id}") as page:
        marker = page.locator(f"circle[data-case='{case_id}']")
        await marker.wait_for()
        located = page.locator(".detail [data-place=T3]")
        await located.wait_for()
        assert "渭阳超市" in (await located.text_content() or "")
        assert "地名库匹配" in (await located.text_content() or "")
        await _shot(page, "sms-on-map")
        # the marker sits inside the Weicheng district's outline, where the place is
        inside = await page.evaluate("""(id) => {
          const dot = document.querySelector(`circle[data-case='${id}']`).getBoundingClientRect();
          const area = document.querySelector("path[data-adcode='610404']").getBoundingClientRect();
          const x = dot.x + dot.width / 2, y = dot.y + dot.height / 2;
          return x >= area.left && x <= area.right && y >= area.top && y <= area.bottom;
        }""", case_id)
        assert inside
