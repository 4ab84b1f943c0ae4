"""What a sub-centre's token sees and acts on beyond cases, on the real API and PostgreSQL:
incidents, call-back tasks, notifications, providers and units, the unit assessment, reports,
the heat map and the caller card. Each crossing: sub-centre A is refused (404 / 403) or shown
nothing of sub-centre B's rows; the city (and an unscoped token) sees them all."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dispatch.cases.read_model import CasesProjection
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import Provider
from dispatch.linking.incidents import OpenIncident
from dispatch.linking.policy import reactors as linking_reactors
from dispatch.linking.read_model import LinksProjection
from dispatch.missed_calls.policy import AssignCallbackTask, RecordMissedCall
from dispatch.missed_calls.read_model import CallsProjection
from dispatch.notify.outbox import RequestNotification
from dispatch.reports.read_model import ReportsProjection
from eventstore.subscriptions import ProjectionRunner, ReactorRunner
from gateway.cli.loader import catch_up_reference, load_paths
from gateway.settings import HttpSettings, Settings, Token
from tests.integration.test_org_levels import (
    QINDU,
    SCA,
    SCB,
    WEICHENG,
    act,
    call,
    load_tree,
    register,
    settle,
)
from tests.integration.test_org_levels import settings as org_settings

PHONE = "13800138000"  # the caller of every case `register` makes


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The scoped tokens of the levels' tests, plus a dispatcher of the grid's branch."""
    scoped = org_settings.__wrapped__(settings)  # type: ignore[attr-defined]
    tokens = {**scoped.http.tokens, "t-grid": Token("dispatcher", "D103", org="GRID")}
    return dataclasses.replace(scoped, http=HttpSettings(tokens=tokens))


async def load_features(services: Any, tmp_path: Path, features: list[dict[str, Any]]) -> None:
    path = tmp_path / "more.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False))
    assert (await load_paths(services, [path])).errors == []
    await catch_up_reference(services)


def _feature(kind: str, props: dict[str, Any], point: tuple[float, float] | None = None) -> dict[str, Any]:
    geometry = None if point is None else {"type": "Point", "coordinates": [point[1], point[0]]}
    return {"type": "Feature", "geometry": geometry, "properties": {"kind": kind, **props}}


REFERENCE = [
    _feature("agent", {"id": "A1", "name": "秦都坐席", "org": SCA}),
    _feature("agent", {"id": "A2", "name": "渭城坐席", "org": SCB}),
    _feature("unit", {"id": "U1", "name": "秦都区供水所", "phone": "029-1", "district": "610402"}),
    _feature("unit", {"id": "U2", "name": "渭城区供水所", "phone": "029-2", "district": "610404"}),
    _feature("provider", {"id": "P1", "name": "秦都维修", "skills": ["plumbing"], "capacity": 3,
                          "phone": "13900000001", "districts": ["610402"]}, (34.33, 108.70)),
    _feature("provider", {"id": "P2", "name": "渭城维修", "skills": ["plumbing"], "capacity": 3,
                          "phone": "13900000002", "districts": ["610404"]}, (34.371, 108.741)),
]


async def catch_up(services: Any) -> None:
    await settle(services)
    for projection in (LinksProjection(), CallsProjection(), ReportsProjection(),
                       CasesProjection(services.clock)):
        await ProjectionRunner(services.store, projection).run_until_caught_up()


async def two_subcentres(services: Any, tmp_path: Path) -> tuple[str, str]:
    """A case of each sub-centre, each dispatched by the city to its sub-centre's unit."""
    await load_tree(services, tmp_path)
    await load_features(services, tmp_path, REFERENCE)
    mine, theirs = await register(services, QINDU), await register(services, WEICHENG)
    await settle(services)
    return mine, theirs


def _ids(body: Any, key: str) -> set[str]:
    return {str(item[key]) for item in body["items"]}


async def test_incidents_of_another_subcentre_are_unknown_and_a_shared_one_is_read_only(
    api: Any, wired: Any, tmp_path: Path
) -> None:
    mine, theirs = await two_subcentres(wired, tmp_path)
    also_mine, also_theirs = await register(wired, QINDU), await register(wired, WEICHENG)
    await settle(wired)
    for incident, cases in (("INC-A", (mine,)), ("INC-B", (theirs,)), ("INC-AB", (also_mine, also_theirs))):
        await wired.bus.handle(OpenIncident(incident, "610402", "complaint", cases))
    await catch_up(wired)
    assert _ids(await call(api, "GET", "/api/v1/incidents", "t-sca"), "incident_id") == {"INC-A", "INC-AB"}
    assert _ids(await call(api, "GET", "/api/v1/incidents", "t-scb"), "incident_id") == {"INC-B", "INC-AB"}
    assert _ids(await call(api, "GET", "/api/v1/incidents", "t-city"), "incident_id") == {
        "INC-A", "INC-B", "INC-AB"}
    err = await call(api, "GET", "/api/v1/incidents/INC-B", "t-sca", 404)
    assert err["error"]["code"] == "not_found"
    await call(api, "GET", "/api/v1/incidents/INC-AB", "t-sca")
    cause = {"cause": "管网检修", "expected_restoration_at": "2026-12-31T08:00:00Z"}
    await call(api, "POST", "/api/v1/incidents/INC-B/cause", "t-sca", 404, cause)
    await call(api, "POST", "/api/v1/incidents/INC-B/resolve", "t-sca", 404, {})
    err = await call(api, "POST", "/api/v1/incidents/INC-AB/resolve", "t-sca", 403, {})
    assert err["error"]["code"] == "forbidden"  # half of it is held by the other sub-centre
    done = await call(api, "POST", "/api/v1/incidents/INC-A/cause", "t-sca", 200, cause)
    assert done["cause"] == "管网检修"
    done = await call(api, "POST", "/api/v1/incidents/INC-AB/resolve", "t-city", 200, {})
    assert done["status"] == "resolved"


async def test_callback_tasks_belong_to_the_node_of_their_agent(api: Any, wired: Any, tmp_path: Path) -> None:
    await two_subcentres(wired, tmp_path)
    at = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    for n, caller in enumerate(("13700000001", "13700000002", "13700000003")):
        await wired.bus.handle(RecordMissedCall(caller, f"c{n}", "12345", at))
    await catch_up(wired)
    tasks = {t["caller"]: t["task_id"] for t in (await call(api, "GET", "/api/v1/missed-calls",
                                                            "t-dispatcher"))["items"]}
    ours, theirs, nobodys = tasks["13700000001"], tasks["13700000002"], tasks["13700000003"]
    await wired.bus.handle(AssignCallbackTask(ours, "A1", "presence"))
    await wired.bus.handle(AssignCallbackTask(theirs, "A2", "presence"))
    await catch_up(wired)
    assert _ids(await call(api, "GET", "/api/v1/missed-calls", "t-sca"), "task_id") == {ours}
    assert _ids(await call(api, "GET", "/api/v1/missed-calls", "t-scb"), "task_id") == {theirs}
    everyone = await call(api, "GET", "/api/v1/missed-calls", "t-city")
    assert _ids(everyone, "task_id") == {ours, theirs, nobodys}
    for task in (theirs, nobodys):  # another's, or nobody's yet (the city's)
        await call(api, "POST", f"/api/v1/missed-calls/{task}/reassign", "t-sca", 404, {"agent_id": "A1"})
        await call(api, "POST", f"/api/v1/missed-calls/{task}/outcome", "t-sca", 404, {"outcome": "reached"})
    err = await call(api, "POST", f"/api/v1/missed-calls/{ours}/reassign", "t-sca", 403, {"agent_id": "A2"})
    assert err["error"]["code"] == "forbidden"  # not to another level's agent either
    await call(api, "POST", f"/api/v1/missed-calls/{ours}/outcome", "t-sca", 200, {"outcome": "no_answer"})
    await call(api, "PUT", "/api/v1/agents/A2/presence", "t-sca", 403, {"status": "online"})
    await call(api, "PUT", "/api/v1/agents/A1/presence", "t-sca", 200, {"status": "online"})
    await call(api, "POST", f"/api/v1/missed-calls/{theirs}/reassign", "t-city", 200, {"agent_id": "A1"})
    await call(api, "PUT", "/api/v1/agents/A2/presence", "t-city", 200, {"status": "busy"})
    assert _ids(await call(api, "GET", "/api/v1/agents/presence", "t-sca"), "agent_id") == {"A1"}
    assert _ids(await call(api, "GET", "/api/v1/agents/presence", "t-city"), "agent_id") >= {"A1", "A2"}
    kpis = await call(api, "GET", "/api/v1/kpis", "t-scb")
    assert kpis["kpis"]["open_missed_calls"]["value"] == 1
    assert (await call(api, "GET", "/api/v1/kpis", "t-city"))["kpis"]["open_missed_calls"]["value"] == 3
    await call(api, "GET", "/api/v1/reports/abandoned-calls", "t-sca", 403)  # the hotline's queues
    await call(api, "GET", "/api/v1/reports/abandoned-calls", "t-city")


async def test_notifications_of_another_subcentres_cases_are_left_out(
    api: Any, wired: Any, tmp_path: Path
) -> None:
    mine, theirs = await two_subcentres(wired, tmp_path)
    for key, case in (("n-a", mine), ("n-b", theirs), ("n-none", None)):
        await wired.bus.handle(RequestNotification(key, "sms", PHONE, "您的诉求已受理", case_id=case))
    await catch_up(wired)

    async def cases_of(token: str, query: str = "") -> list[Any]:
        body = await call(api, "GET", f"/api/v1/notifications{query}", token)
        return [n["case_id"] for n in body["items"]]

    assert await cases_of("t-sca") == [mine]
    assert await cases_of("t-scb") == [theirs]
    assert await cases_of("t-sca", f"?case_id={theirs}") == []
    assert sorted(await cases_of("t-city"), key=str) == sorted([mine, theirs, None], key=str)
    # the registration form's duplicate candidates (same caller): its own open case only
    for reactor in linking_reactors(wired):  # the linking policy remembers the candidates
        await ReactorRunner(wired.store, reactor).run_until_caught_up()
    candidates = "/api/v1/cases/candidates?category=complaint&phone=" + PHONE
    assert {c["case"]["case_id"] for c in (await call(api, "GET", candidates, "t-sca"))["items"]} == {mine}
    assert {c["case"]["case_id"] for c in (await call(api, "GET", candidates, "t-city"))["items"]} == {
        mine, theirs}


async def test_providers_units_and_dispatch_stay_within_the_subtree(
    api: Any, wired: Any, tmp_path: Path
) -> None:
    mine, theirs = await two_subcentres(wired, tmp_path)
    wired.provider_index = await ProviderIndexHolder.create([
        Provider("P1", "秦都维修", 34.33, 108.70, frozenset({"plumbing"}), 3, frozenset({"610402"})),
        Provider("P2", "渭城维修", 34.371, 108.741, frozenset({"plumbing"}), 3, frozenset({"610404"})),
        Provider("CREW1", "抢修1组", 34.34, 108.72, frozenset({"power_repair"}), 3,
                 frozenset({"610402", "610404"}))])

    async def near(token: str, place: Any) -> set[str]:
        path = f"/api/v1/providers/nearest?lat={place.lat}&lon={place.lon}&district={place.district}&k=5"
        return _ids(await call(api, "GET", path, token), "id")

    assert await near("t-sca", QINDU) == {"P1", "CREW1"}  # the grid's crew serves Qindu too
    assert await near("t-sca", WEICHENG) == set()  # not a district it serves
    assert await near("t-city", WEICHENG) == {"P2", "CREW1"}
    assert await near("t-grid", WEICHENG) == {"CREW1"}  # a branch serving no district: its crews
    assert _ids(await call(api, "GET", "/api/v1/units", "t-sca"), "id") == {"U1"}
    assert _ids(await call(api, "GET", "/api/v1/units", "t-city"), "id") == {"U1", "U2"}
    assert _ids(await call(api, "GET", "/api/v1/units", "t-grid"), "id") == set()  # not the districts' units
    err = await act(api, mine, "dispatch", "t-sca", 403, to="U2")
    assert err["error"]["code"] == "forbidden"
    await act(api, mine, "dispatch", "t-sca", 403, to="P2", kind="provider")
    await act(api, mine, "dispatch", "t-sca", to="U1")
    await act(api, theirs, "dispatch", "t-city", to="U2")
    await catch_up(wired)
    assert _ids(await call(api, "GET", "/api/v1/assessment/units", "t-sca"), "unit_id") == {"U1"}
    assert _ids(await call(api, "GET", "/api/v1/assessment/units?unit_id=U2", "t-sca"), "unit_id") == set()
    assert _ids(await call(api, "GET", "/api/v1/assessment/units", "t-city"), "unit_id") == {"U1", "U2"}


async def test_reports_heat_map_and_caller_card_show_the_subtree(
    api: Any, wired: Any, tmp_path: Path
) -> None:
    mine, theirs = await two_subcentres(wired, tmp_path)
    await act(api, mine, "dispatch", "t-city", to="U1")
    await act(api, theirs, "dispatch", "t-city", to="U2")
    await catch_up(wired)
    day = wired.clock.now().date().isoformat()

    async def groups(token: str, report: str, group: str) -> set[str]:
        path = f"/api/v1/reports/{report}?group={group}&from={day}&to={day}"
        return _ids(await call(api, "GET", path, token), "group")

    assert (await call(api, "GET", "/api/v1/me", "t-sca"))["scoped"] is True  # the reports page asks
    assert (await call(api, "GET", "/api/v1/me", "t-city"))["scoped"] is False
    assert await groups("t-sca", "units", "unit") == {"U1"}
    assert await groups("t-city", "units", "unit") == {"U1", "U2"}
    assert await groups("t-sca", "cases", "district") == {"610402"}
    assert await groups("t-city", "cases", "district") == {"610402", "610404"}


    async def cases(token: str, group: str) -> int:
        body = await call(api, "GET", f"/api/v1/reports/cases?group={group}&from={day}&to={day}", token)
        return sum(int(item["cases"]) for item in body["items"])

    # by category, channel or in all, the case report sums the cases the subtree holds
    for group in ("category", "channel", "all"):
        assert (await cases("t-sca", group), await cases("t-scb", group), await cases("t-city", group)) == (
            1, 1, 2), group
    err = await call(api, "GET", f"/api/v1/reports/calls?group=all&from={day}&to={day}", "t-sca", 403)
    assert err["error"]["code"] == "forbidden"  # the hotline's calls belong to no sub-centre
    # no grouping of the calls report is the subtree's: the message says so, not "may group it by "
    assert not err["error"]["message"].rstrip().endswith("by"), err
    err = await call(api, "GET", f"/api/v1/reports/satisfaction?group=all&from={day}&to={day}", "t-sca", 403)
    assert "unit, agent" in err["error"]["message"]

    async def cells(token: str) -> int:
        body = await call(api, "GET", f"/api/v1/heatmap?from={day}&to={day}", token)
        return sum(c["count"] for c in body["items"])

    assert (await cells("t-sca"), await cells("t-city")) == (1, 2)
    card = await call(api, "GET", f"/api/v1/callers/{PHONE}", "t-sca")
    assert [c["case_id"] for c in card["cases"]] == [mine]
    card = await call(api, "GET", f"/api/v1/callers/{PHONE}", "t-city")
    assert {c["case_id"] for c in card["cases"]} == {mine, theirs}
    add = {"call_id": "call-9", "case_id": theirs}
    await call(api, "POST", f"/api/v1/callers/{PHONE}/add-to-case", "t-sca", 404, add)
    await call(api, "PUT", f"/api/v1/customers/{PHONE}", "t-sca", 403, {"tier": "vip", "reason": "x"})
    await call(api, "GET", f"/api/v1/cases/{theirs}/calls", "t-sca", 404)
