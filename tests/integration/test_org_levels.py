"""The organisation's levels over HTTP on real PostgreSQL: routing, reporting up, dispatching
down, a rejection returning to the dispatching level, and what a sub-centre's token may see and
do (each crossing: another sub-centre's case answers 404, a case held elsewhere 403)."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.read_model import CasesProjection
from dispatch.cases.registration import RegisterCase
from dispatch.core.clock import FakeClock
from dispatch.org.directory import OrgDirectory
from dispatch.org.moves import CaseRouter
from dispatch.org.tree import OrgTree
from dispatch.places.locate import LocateCase
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from gateway.cli.loader import catch_up_reference, load_paths
from gateway.settings import HttpSettings, Settings, Token
from tests.conftest import TOKENS, auth

SCA, SCB = "SC610402", "SC610404"
QINDU = Place(34.33, 108.70, "610402", "秦都区")
WEICHENG = Place(34.371, 108.741, "610404", "渭城区")
TREE = [
    ("XY", "咸阳市12345中心", "city", None, ["610402", "610404"]),
    (SCA, "秦都区分中心", "subcentre", "XY", ["610402"]),
    (SCB, "渭城区分中心", "subcentre", "XY", ["610404"]),
    ("GRID", "抢修指挥中心", "subcentre", "XY", []),
    ("U1", "秦都区供水所", "unit", SCA, ["610402"]),
    ("U2", "渭城区供水所", "unit", SCB, ["610404"]),
    ("CREW1", "抢修1组", "unit", "GRID", ["610402", "610404"]),
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The common test tokens, plus dispatchers scoped to the city and to each sub-centre."""
    tokens = {**TOKENS, "t-city": Token("dispatcher", "D100", org="XY"),
              "t-sca": Token("dispatcher", "D101", org=SCA), "t-scb": Token("dispatcher", "D102", org=SCB),
              "t-u1": Token("unit", "U1"), "t-lost": Token("dispatcher", "D199", org="GONE"),
              "t-audit-sca": Token("auditor", "AU02", org=SCA)}
    return dataclasses.replace(settings, http=HttpSettings(tokens=tokens))


async def load_tree(services: Any, tmp_path: Path) -> None:
    features = [{"type": "Feature", "geometry": None, "properties": {
        "kind": "org", "id": i, "name": n, "level": lv, "districts": d, **({"parent": p} if p else {})}}
        for i, n, lv, p, d in TREE]
    path = tmp_path / "org.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False))
    assert (await load_paths(services, [path])).errors == []
    await catch_up_reference(services)


class CountingDirectory(OrgDirectory):
    """The organisation directory, counting how often the router asks it for the tree."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def tree(self, db: Any) -> OrgTree:
        self.reads += 1
        return await super().tree(db)


async def settle(services: Any) -> int:
    """Route what arrived, then bring the cases read model up to date; answers the tree's reads."""
    directory = CountingDirectory()
    router = CaseRouter(services.store, services.pool, services.settings.org.routes, services.bus.handle,
                        directory)
    await ReactorRunner(services.store, router).run_until_caught_up()
    await ProjectionRunner(services.store, CasesProjection(services.clock)).run_until_caught_up()
    return directory.reads


async def register(services: Any, place: Place | None, category: str = "complaint") -> str:
    done = await services.bus.handle(RegisterCase(
        category=category, channel="phone", description="投诉", caller=CallerInfo(phone="13800138000"),
        location=place))
    return str(done.case_id)


async def call(api: Any, method: str, path: str, token: str, status: int = 200, body: Any = None) -> Any:
    resp = await api.request(method, path, json=body, headers=auth(token))
    data = await resp.json()
    assert resp.status == status, data
    return data


async def act(api: Any, cid: str, action: str, token: str, status: int = 200, **body: Any) -> Any:
    state = await call(api, "GET", f"/api/v1/cases/{cid}", "t-dispatcher")
    return await call(api, "POST", f"/api/v1/cases/{cid}/{action}", token, status,
                      {"expected_version": state["version"], **body})


async def ids(api: Any, path: str, token: str) -> set[str]:
    return {c["case_id"] for c in (await call(api, "GET", path, token))["items"]}


async def test_new_cases_go_to_their_district_their_category_or_stay_with_the_city(
    api: Any, wired: Any, tmp_path: Path
) -> None:
    await load_tree(wired, tmp_path)
    qindu, weicheng = await register(wired, QINDU), await register(wired, WEICHENG)
    fault, nowhere = await register(wired, QINDU, "power_fault"), await register(wired, None)
    assert await settle(wired) == 1  # one version query for the runner's batch, not one per case
    owners = {r["case_id"]: r["owner"] for r in await wired.pool.fetch("SELECT case_id, owner FROM cases")}
    assert owners == {qindu: SCA, weicheng: SCB, fault: "GRID", nowhere: "XY"}
    detail = await call(api, "GET", f"/api/v1/cases/{qindu}", "t-sca")
    assert detail["owner"] == SCA
    history = await call(api, "GET", f"/api/v1/audit/cases/{qindu}/history", "t-auditor")
    [moved] = [e for e in history["events"] if e["type"] == "CaseMoved"]
    data = moved["data"]
    assert (data["move"], data["reason"], data["owner"]) == ("routed", "district", SCA)
    # located later (an agent sets the place): routed then, from the city to the sub-centre
    await wired.bus.handle(LocateCase(nowhere, WEICHENG, "agent", actor="agent:A001"))
    await settle(wired)
    assert (await call(api, "GET", f"/api/v1/cases/{nowhere}", "t-scb"))["owner"] == SCB


async def test_a_subcentre_sees_its_subtree_only_and_the_city_sees_everything(
    api: Any, wired: Any, tmp_path: Path
) -> None:
    await load_tree(wired, tmp_path)
    mine, theirs = await register(wired, QINDU), await register(wired, WEICHENG)
    city = await register(wired, None)
    await settle(wired)
    assert await ids(api, "/api/v1/cases", "t-sca") == {mine}
    assert await ids(api, "/api/v1/queue", "t-sca") == {mine}
    assert await ids(api, "/api/v1/cases", "t-scb") == {theirs}
    assert await ids(api, "/api/v1/cases", "t-city") == await ids(api, "/api/v1/cases", "t-dispatcher") == {
        mine, theirs, city}
    assert await ids(api, "/api/v1/cases", "t-lost") == set()  # a node not loaded sees nothing
    for path in (f"/api/v1/cases/{theirs}", f"/api/v1/cases/{city}"):
        err = await call(api, "GET", path, "t-sca", 404)
        assert err["error"]["code"] == "not_found"
    await act(api, theirs, "close", "t-sca", 404, reason="不是我们的")
    await act(api, theirs, "dispatch", "t-sca", 404, to="U1")
    await call(api, "GET", f"/api/v1/audit/cases/{theirs}/history", "t-sca", 404)
    await call(api, "GET", f"/api/v1/audit/cases/{mine}/history", "t-audit-sca")
    err = await call(api, "GET", "/api/v1/audit/events", "t-audit-sca", 403)  # the whole log is not its
    assert err["error"]["code"] == "forbidden"
    await call(api, "GET", "/api/v1/audit/events", "t-auditor")
    kpis = await call(api, "GET", "/api/v1/kpis", "t-sca")
    assert kpis["kpis"]["cases_by_light"]["value"] == 1
    assert (await call(api, "GET", "/api/v1/kpis", "t-city"))["kpis"]["cases_by_light"]["value"] == 3
    org = await call(api, "GET", "/api/v1/org", "t-sca")
    assert org["node"]["id"] == SCA and {n["id"] for n in org["nodes"]} == {SCA, "U1"}
    assert [n["id"] for n in org["down_to"]] == ["U1"] and org["up_to"]["id"] == "XY"
    everything = await call(api, "GET", "/api/v1/org", "t-dispatcher")
    assert everything["node"]["id"] == "XY" and len(everything["nodes"]) == len(TREE)
    assert [n["id"] for n in everything["down_to"]] == ["GRID", SCA, SCB, "CREW1", "U1", "U2"]


async def test_report_up_then_dispatch_down_to_another_subcentre(
    api: Any, wired: Any, tmp_path: Path
) -> None:
    await load_tree(wired, tmp_path)
    cid = await register(wired, QINDU)
    await settle(wired)
    err = await act(api, cid, "report-up", "t-sca", 400, reason=" ")
    assert "reason" in err["error"]["message"]
    up = await act(api, cid, "report-up", "t-sca", reason="涉及两个区")
    assert (up["owner"], up["status"]) == ("XY", "accepted")
    await call(api, "GET", f"/api/v1/cases/{cid}", "t-sca", 404)  # the city holds it now
    await act(api, cid, "report-up", "t-city", 409, reason="再上报")  # nothing above the city
    await act(api, cid, "dispatch-down", "t-city", 400, to="NOPE")
    down = await act(api, cid, "dispatch-down", "t-city", to=SCB, note="渭城区处理")
    assert (down["owner"], down["sla"]["dispatched_at"], down["sla"]["confirm_by"]) == (SCB, None, None)
    assert down["deadline"] == up["deadline"]  # the response deadline keeps running from acceptance
    await settle(wired)
    assert await ids(api, "/api/v1/cases", "t-scb") == {cid}
    assert await ids(api, "/api/v1/cases", "t-sca") == set()
    await act(api, cid, "dispatch-down", "t-scb", 409, to=SCA)  # a sideways move is not down
    history = await call(api, "GET", f"/api/v1/audit/cases/{cid}/history", "t-auditor")
    moves = [(e["data"]["move"], e["data"]["previous"], e["data"]["owner"], e["who"])
             for e in history["events"] if e["type"] == "CaseMoved"]
    assert moves == [("routed", None, SCA, "policy:org"), ("reported_up", SCA, "XY", "dispatcher:D101"),
                     ("dispatched_down", "XY", SCB, "dispatcher:D100")]


async def test_a_rejection_returns_the_case_to_the_level_that_dispatched_it(
    api: Any, wired: Any, tmp_path: Path, clock: FakeClock
) -> None:
    await load_tree(wired, tmp_path)
    by_city, by_sub = await register(wired, QINDU), await register(wired, QINDU)
    await settle(wired)
    # the city takes a sub-centre's case straight to a unit of that sub-centre: the city holds it
    sent = await act(api, by_city, "dispatch-down", "t-city", to="U1")
    assert (sent["owner"], sent["assigned_to"], sent["status"]) == ("XY", "U1", "dispatched")
    assert sent["sla"]["confirm_by"] == (clock.now() + timedelta(minutes=30)).isoformat()
    await settle(wired)
    seen = await call(api, "GET", f"/api/v1/cases/{by_city}", "t-sca")  # its unit has it: visible
    assert seen["owner"] == "XY"
    err = await act(api, by_city, "close", "t-sca", 403, reason="x")  # but another level holds it
    assert err["error"]["code"] == "forbidden"
    back = await act(api, by_city, "reject", "t-u1", reason="不属于本单位")
    assert (back["status"], back["owner"], back["assigned_to"]) == ("rejected", "XY", None)
    await settle(wired)
    await call(api, "GET", f"/api/v1/cases/{by_city}", "t-sca", 404)
    assert by_city in await ids(api, "/api/v1/queue", "t-city")
    # the sub-centre dispatches its own case: the rejection comes back to the sub-centre
    await act(api, by_sub, "dispatch", "t-sca", to="U1")
    back = await act(api, by_sub, "reject", "t-u1", reason="不属于本单位")
    assert (back["status"], back["owner"]) == ("rejected", SCA)
    clock.advance(timedelta(minutes=20))
    again = await act(api, by_sub, "dispatch", "t-sca", to="U1", wrong_rejection=True)
    assert (again["status"], again["owner"]) == ("dispatched", SCA)
    assert again["sla"]["confirm_by"] == (clock.now() + timedelta(minutes=30)).isoformat()  # restarted
