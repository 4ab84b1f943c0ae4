"""Dispatching on real PostgreSQL: units picked from `GET /api/v1/units`, an unknown unit or
provider id refused with a 400 that says so (nothing recorded), suggestions by the category's
skills from the live provider index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dispatch.cases.read_model import CasesProjection
from eventstore.subscriptions import ProjectionRunner
from gateway.cli.loader import catch_up_reference, load_paths
from tests.conftest import auth
from tests.integration.test_cases_api import FAULT, post
from tests.integration.test_nearest_api import GIS, XIANYANG, wait_for


async def test_units_are_listed_and_an_unknown_id_is_refused(api: Any, wired: Any, tmp_path: Path) -> None:
    provider = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [108.7, 34.33]},
                "properties": {"kind": "provider", "id": "PX1", "name": "测试电工",
                               "skills": ["power_repair"], "capacity": 2, "phone": "13800000000"}}
    one = tmp_path / "one.geojson"
    one.write_text(json.dumps({"type": "FeatureCollection", "features": [provider]}), "utf-8")
    await load_paths(wired, [GIS / "districts.geojson", GIS / "demo_units.geojson", one])
    await catch_up_reference(wired)
    listed = await api.get("/api/v1/units", headers=auth("t-dispatcher"))
    assert listed.status == 200
    units = {u["id"]: u for u in (await listed.json())["items"]}
    assert len(units) == 60
    assert units["U001"] == {"id": "U001", "name": "秦都区供电分公司", "department": "power",
                             "district": "610402", "district_name": "秦都区", "load": 0}
    assert (await api.get("/api/v1/units", headers=auth("t-unit"))).status == 403

    case = await post(api, "/api/v1/cases", FAULT, "t-agent", 201)
    base = f"/api/v1/cases/{case['case_id']}"
    refused = await post(api, f"{base}/dispatch", {"expected_version": 0, "to": "NOSUCHUNIT"}, status=400)
    assert refused["error"]["code"] == "unknown_assignee" and "NOSUCHUNIT" in refused["error"]["message"]
    refused = await post(api, f"{base}/dispatch", {"expected_version": 0, "to": "U001", "kind": "provider"},
                         status=400)
    assert refused["error"]["code"] == "unknown_assignee"  # a unit's id is no provider's
    state = await (await api.get(base, headers=auth("t-dispatcher"))).json()
    assert (state["status"], state["version"]) == ("accepted", 0)  # nothing recorded

    done = await post(api, f"{base}/dispatch", {"expected_version": 0, "to": "U001"})
    assert (done["status"], done["assigned_to"]) == ("dispatched", "U001")
    await ProjectionRunner(wired.store, CasesProjection(wired.clock)).run_until_caught_up()
    listed = await api.get("/api/v1/units", headers=auth("t-agent"))
    assert {u["id"]: u["load"] for u in (await listed.json())["items"]}["U001"] == 1


async def test_suggestions_follow_the_category(services: Any, aiohttp_client: Any, settings: Any) -> None:
    from gateway.app import create_app

    await load_paths(services, [GIS / "districts.geojson", GIS / "demo_providers.geojson"])
    await catch_up_reference(services)
    client = await aiohttp_client(create_app(settings, services=services))
    where = {"lat": XIANYANG[0], "lon": XIANYANG[1], "k": 5}

    async def ask(**params: Any) -> Any:
        response = await client.get("/api/v1/providers/nearest", params={**where, **params},
                                    headers=auth("t-dispatcher"))
        return response.status, await response.json()

    async def loaded() -> bool:
        return bool((await ask())[0] == 200)

    await wait_for(loaded)
    status, power = await ask(category="power_fault")
    assert status == 200 and len(power["items"]) == 5
    for item in power["items"]:
        assert set(item["skills"]) & {"power_repair", "line_repair"}
        assert "养老" not in item["name"] and "医疗" not in item["name"]
        assert {"load", "capacity", "skills", "score"} <= set(item)
    assert [i["score"] for i in power["items"]] == sorted(i["score"] for i in power["items"])
    _, alarm = await ask(category="elderly_emergency")
    assert alarm["items"] and all(set(i["skills"]) & {"medical", "elderly_care"} for i in alarm["items"])
    assert not any("抢修" in i["name"] for i in alarm["items"])
    assert (await ask(category="complaint"))[1] == {"items": [], "next": None, "needs": []}  # a unit's job
    assert power["needs"] == ["power_repair", "line_repair"]
    status, bad = await ask(category="nonsense")
    assert status == 400 and bad["error"]["code"] == "bad_parameter"
