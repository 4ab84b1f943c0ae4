"""An Open311 report with coordinates gets the district it lies in, as an agent's registration does.

Bug this catches: a web report registered without its district, which linking never gathers
into a district's outage incident (the multi-gateway storm test's incidents come from web reports).
"""

from __future__ import annotations

from typing import Any

from dispatch.cases.state import load_case
from tests.conftest import auth
from tests.integration.test_linking_pg import _load_district


async def _report(client: Any, lat: float, lon: float, key: str) -> str:
    form = {"api_key": "t-web", "service_code": "power_fault", "lat": str(lat), "long": str(lon),
            "description": "片区停电"}
    response = await client.post("/open311/v2/requests.json", data=form, headers={"Idempotency-Key": key})
    assert response.status == 201, await response.text()
    return str((await response.json())[0]["service_request_id"])


async def test_a_web_report_inside_a_district_names_it(client: Any, services: Any) -> None:
    await _load_district(services, "610402")
    inside = await _report(client, 34.33, 108.70, "in")
    outside = await _report(client, 30.0, 100.0, "out")  # no district loaded there
    place = (await load_case(services.store, inside)).location
    assert place is not None and (place.district, place.district_name) == ("610402", "秦都区")
    assert (place.lat, place.lon) == (34.33, 108.70)
    far = (await load_case(services.store, outside)).location
    assert far is not None and far.district is None
    body = await (await client.get(f"/api/v1/cases/{inside}", headers=auth("t-dispatcher"))).json()
    assert body["location"]["district"] == "610402"
