"""The citizen's web form (`/citizen/`) in headless Chromium against the real gateway: in Chinese by
default, a report taken is answered with its number, and while the database is down (a real outage:
the TCP path to PostgreSQL cut) the citizen is told that nothing was sent yet and to submit again,
and the same submission then goes through once, under the same Idempotency-Key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.test_console_browser import CHROMIUM, _page, _shot, browser  # noqa: F401 - fixtures
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_store_outage import outage_client, proxy  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (`python -m tests.browser_setup`)"),
]


async def _fill(page: Any) -> None:
    await page.select_option("#service_code", "complaint")
    await page.fill("#description", "小区路灯全部不亮，晚上很危险")
    await page.fill("#address_string", "咸阳市秦都区人民路1号")
    await page.fill("#phone", "13700002222")


async def _requests(client: Any) -> list[Any]:
    response = await client.get("/open311/v2/requests.json", params={"service_code": "complaint"})
    assert response.status == 200
    return list(await response.json())


async def test_a_report_is_taken_and_an_outage_is_told_as_not_sent_then_sent_once(
        browser: Any, outage_client: Any, proxy: TcpProxy) -> None:  # noqa: F811
    # the address without its slash leads to the form, the portal's key kept
    url = str(outage_client.make_url("/citizen")) + "?api_key=t-channel"
    async with _page(browser, url) as page:
        assert page.url.endswith("/citizen/?api_key=t-channel")
        await page.locator("label[for=description]", has_text="描述").wait_for()
        await page.locator("#service_code option[value=complaint]").wait_for(state="attached")
        await _fill(page)
        await proxy.cut()
        await page.click("button[type=submit]")
        result = page.locator("#result.err")
        await result.wait_for()
        assert "尚未提交" in (await result.text_content() or "")
        assert await page.input_value("#description") == "小区路灯全部不亮，晚上很危险"  # nothing lost
        await proxy.start()
        for _ in range(3):  # the pool may need a moment to find the database again
            await page.click("button[type=submit]")
            await page.locator("#result:not(.err), #result.err").wait_for()
            if await page.locator("#result.ok").count():
                break
            await page.wait_for_timeout(1000)
        taken = page.locator("#result.ok")
        await taken.wait_for()
        text = await taken.text_content() or ""
        assert "已受理" in text
        await _shot(page, "citizen-taken")
    case_id = text.split("：")[-1].strip()
    found = await _requests(outage_client)
    assert [r["service_request_id"] for r in found] == [case_id]  # once, whatever was tried before


async def test_a_power_fault_without_the_account_number_or_a_phone_is_taken(
        browser: Any, client: Any) -> None:  # noqa: F811
    """A citizen who does not know the account number (用电户号), when the fault began or its scope,
    and gives no phone, still gets the report in: the form asks for those fields (marked *) but does
    not refuse the contact for them; the case lists them in `missing_fields` for an agent."""
    async with _page(browser, str(client.make_url("/citizen/")) + "?api_key=t-channel") as page:
        await page.locator("input[name='attribute[account_number]']").wait_for()
        await page.fill("#description", "家里突然停电了")
        await page.fill("#address_string", "咸阳市秦都区人民路1号")
        await page.click("button[type=submit]")
        taken = page.locator("#result.ok")
        await taken.wait_for(timeout=3_000)
        assert "已受理" in (await taken.text_content() or "")
    [request] = await (await client.get("/open311/v2/requests.json",
                                        params={"service_code": "power_fault"})).json()
    case = await (await client.get(f"/api/v1/cases/{request['service_request_id']}",
                                   headers={"Authorization": "Bearer t-agent"})).json()
    assert "account_number" in case["missing_fields"]
