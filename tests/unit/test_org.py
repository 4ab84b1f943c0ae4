"""The organisation tree and the rules moving a case between levels (pure, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.cases.actions import DispatchCase, RejectCase, decide_dispatch, decide_reject
from dispatch.cases.events import CallerInfo, CaseMoved, CaseRegistered, Place
from dispatch.cases.read_model import case_clocks, in_scope
from dispatch.cases.sla import SlaConfig, light
from dispatch.cases.state import CaseState
from dispatch.core.errors import InvalidCommand, NotAllowed
from dispatch.gis.reference import InvalidReference, parse_feature
from dispatch.org.moves import (
    DispatchCaseDown,
    ReportCaseUp,
    RouteCase,
    decide_dispatch_down,
    decide_report_up,
    decide_route,
)
from dispatch.org.tree import OrgNode, OrgTree, Route

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CFG = SlaConfig()
TREE = OrgTree.of([
    OrgNode("CITY", "市中心", "city", None, ("A", "B", "C")),
    OrgNode("SCA", "A分中心", "subcentre", "CITY", ("A",)),
    OrgNode("SCB", "B分中心", "subcentre", "CITY", ("B",)),
    OrgNode("GRID", "供电", "subcentre", "CITY", ()),
    OrgNode("UA1", "A单位", "unit", "SCA", ("A",)),
    OrgNode("UB1", "B单位", "unit", "SCB", ("B",)),
    OrgNode("CREW1", "抢修1组", "unit", "GRID", ("A", "B")),
])
ROUTES = {"power_fault": "GRID"}


def case(category: str = "complaint", district: str | None = "A", priority: int = 3) -> CaseState:
    s = CaseState("C1")
    place = Place(34.3, 108.7, district) if district else None
    s.apply(CaseRegistered("C1", category, priority, "phone", "x", CallerInfo(), T0,
                           T0 + timedelta(minutes=60), location=place), 0)
    return s


def fold(s: CaseState, *events: object) -> CaseState:
    for evt in events:
        s.apply(evt, s.version + 1)  # type: ignore[arg-type]
    return s


def test_subtree_ancestors_and_root() -> None:
    assert TREE.root is not None and TREE.root.id == "CITY"
    assert TREE.subtree("SCA") == {"SCA", "UA1"}
    assert TREE.subtree("CITY") == set(TREE.nodes)
    assert TREE.subtree("NOPE") == frozenset()
    assert TREE.ancestors("UA1") == ["SCA", "CITY"]
    assert TREE.contains("CITY", "CREW1") and not TREE.contains("SCA", "UB1")


def test_routing_by_category_then_district_then_the_city() -> None:
    assert TREE.route("power_fault", "A", ROUTES) == Route("GRID", "category")
    assert TREE.route("complaint", "B", ROUTES) == Route("SCB", "district")
    assert TREE.route("complaint", None, ROUTES) == Route("CITY", "no_place")
    assert TREE.route("complaint", "Z", ROUTES) == Route("CITY", "district")  # no sub-centre serves Z
    # a unit holds nothing; a node not loaded is skipped
    assert TREE.route("power_fault", "A", {"power_fault": "UA1"}) == Route("SCA", "district")
    assert TREE.route("power_fault", "A", {"power_fault": "GONE"}) == Route("SCA", "district")
    assert OrgTree().route("complaint", "A", ROUTES) is None


def test_a_route_is_recorded_once_and_never_over_a_move_by_hand() -> None:
    s = case()
    [moved] = decide_route(s, RouteCase(case_id="C1", owner="SCA", reason="district"), T0)
    assert moved == CaseMoved("C1", "SCA", "routed", T0, None, "district", None)
    fold(s, moved)
    assert s.owner == "SCA" and not s.moved_by_hand
    assert decide_route(s, RouteCase(case_id="C1", owner="SCA", reason="district"), T0) == []
    fold(s, CaseMoved("C1", "CITY", "reported_up", T0, "SCA", "not ours"))
    assert s.moved_by_hand
    assert decide_route(s, RouteCase(case_id="C1", owner="SCB", reason="district"), T0) == []


def test_report_up_goes_to_the_parent_with_a_reason_and_not_above_the_city() -> None:
    s = fold(case(), CaseMoved("C1", "SCA", "routed", T0))
    [up] = decide_report_up(s, ReportCaseUp(case_id="C1", reason="跨区", level="SCA", actor="dispatcher:D2"),
                            TREE, T0)
    assert (up.owner, up.previous, up.move, up.reason, up.by) == ("CITY", "SCA", "reported_up", "跨区",
                                                                 "dispatcher:D2")
    with pytest.raises(InvalidCommand):
        decide_report_up(s, ReportCaseUp(case_id="C1", reason=" ", level="SCA"), TREE, T0)
    with pytest.raises(NotAllowed, match="another level"):
        decide_report_up(s, ReportCaseUp(case_id="C1", reason="x", level="SCB"), TREE, T0)
    fold(s, up)
    with pytest.raises(NotAllowed, match="no level above"):
        decide_report_up(s, ReportCaseUp(case_id="C1", reason="x", level=None), TREE, T0)
    with pytest.raises(NotAllowed, match="another level"):  # the city holds it now: not the sub-centre's
        decide_report_up(s, ReportCaseUp(case_id="C1", reason="x", level="SCA"), TREE, T0)


def test_dispatch_down_to_a_subcentre_or_straight_to_a_unit() -> None:
    s = fold(case(district=None), CaseMoved("C1", "CITY", "routed", T0, None, "no_place"))
    [down] = decide_dispatch_down(s, DispatchCaseDown(case_id="C1", to="SCB", level="CITY"), TREE, T0, CFG)
    assert (down.owner, down.previous, down.move) == ("SCB", "CITY", "dispatched_down")
    [sent] = decide_dispatch_down(s, DispatchCaseDown(case_id="C1", to="UA1", level=None), TREE, T0, CFG)
    assert (sent.assignee, sent.level, sent.confirm_by) == ("UA1", "CITY", T0 + timedelta(minutes=30))
    with pytest.raises(InvalidCommand):
        decide_dispatch_down(s, DispatchCaseDown(case_id="C1", to="NOPE"), TREE, T0, CFG)
    with pytest.raises(NotAllowed, match="another level"):  # a sub-centre cannot take the city's case down
        decide_dispatch_down(s, DispatchCaseDown(case_id="C1", to="UA1", level="SCA"), TREE, T0, CFG)
    fold(s, down)
    with pytest.raises(NotAllowed, match="not under SCB"):
        decide_dispatch_down(s, DispatchCaseDown(case_id="C1", to="SCA", level="SCB"), TREE, T0, CFG)
    with pytest.raises(NotAllowed, match="not under SCB"):
        decide_dispatch_down(s, DispatchCaseDown(case_id="C1", to="SCB", level="SCB"), TREE, T0, CFG)


def test_only_a_waiting_case_moves() -> None:
    s = fold(case(), CaseMoved("C1", "SCA", "routed", T0))
    fold(s, *decide_dispatch(s, DispatchCase(case_id="C1", to="UA1", level="SCA"), T0, CFG))
    with pytest.raises(NotAllowed, match="waiting for dispatch"):
        decide_report_up(s, ReportCaseUp(case_id="C1", reason="x", level="SCA"), TREE, T0)
    assert decide_route(s, RouteCase(case_id="C1", owner="SCB", reason="district"), T0) == []


def test_a_rejection_returns_the_case_to_the_level_that_dispatched_it() -> None:
    s = fold(case(), CaseMoved("C1", "SCA", "routed", T0))
    fold(s, CaseMoved("C1", "CITY", "reported_up", T0, "SCA", "x"))
    fold(s, *decide_dispatch(s, DispatchCase(case_id="C1", to="UB1", level="CITY"), T0, CFG))
    assert (s.owner, s.assigned_to) == ("CITY", "UB1")
    fold(s, *decide_reject(s, RejectCase(case_id="C1", reason="不是我们的", actor="unit:UB1"), T0, CFG))
    assert (s.status, s.owner, s.assigned_to) == ("rejected", "CITY", None)
    auto = fold(case(), CaseMoved("C1", "GRID", "routed", T0))
    fold(auto, *decide_dispatch(auto, DispatchCase(case_id="C1", to="CREW1", auto=True), T0, CFG))
    assert auto.owner == "GRID"  # automatic dispatch records no level: the owner stays


def test_moves_keep_the_response_deadline_and_start_no_confirmation_clock() -> None:
    s = case(priority=3)
    deadline = s.deadline
    later = T0 + timedelta(minutes=50)
    fold(s, CaseMoved("C1", "SCA", "routed", T0), CaseMoved("C1", "CITY", "reported_up", later, "SCA"),
         CaseMoved("C1", "SCB", "dispatched_down", later, "CITY"))
    assert (s.deadline, s.deadline_from, s.dispatched_at, s.confirm_by) == (deadline, T0, None, None)
    assert light(case_clocks(s), CFG, later) == "yellow"  # 50 of 60 minutes gone: near its deadline
    assert light(case_clocks(s), CFG, T0 + timedelta(minutes=61)) == "red"
    fold(s, *decide_dispatch(s, DispatchCase(case_id="C1", to="UB1", level="SCB"), later, CFG))
    assert (s.confirm_by, s.dispatched_at, s.owner) == (later + timedelta(minutes=30), later, "SCB")


def test_scope_sees_what_its_subtree_holds_or_was_given() -> None:
    scope = TREE.subtree("SCA")
    assert in_scope(scope, "SCA", None) and in_scope(scope, "CITY", "UA1")
    assert not in_scope(scope, "SCB", "UB1") and not in_scope(scope, None, None)
    assert in_scope(None, None, None)


def test_org_reference_features() -> None:
    item = parse_feature({"type": "Feature", "geometry": None, "properties": {
        "kind": "org", "id": "SCA", "name": "A", "level": "subcentre", "parent": "CITY", "districts": ["A"]}})
    assert (item.kind, item.geometry, item.properties["parent"]) == ("org", None, "CITY")
    for props, message in [
        ({"level": "branch", "parent": "CITY"}, "level must be"),
        ({"level": "unit"}, "needs a parent"),
        ({"level": "unit", "parent": "X1"}, "another node's id"),
        ({"level": "city", "districts": "A"}, "list of adcodes"),
    ]:
        with pytest.raises(InvalidReference, match=message):
            parse_feature({"type": "Feature", "geometry": None,
                           "properties": {"kind": "org", "id": "X1", "name": "x", **props}})


def test_the_live_stream_leaves_out_changes_of_cases_outside_the_scope() -> None:
    from gateway.sse import in_view

    scope = TREE.subtree("SCA")
    mine = {"topic": "case", "data": {"case_id": "C1", "owner": "SCA", "assigned_to": None}}
    given = {"topic": "case", "data": {"case_id": "C2", "owner": "CITY", "assigned_to": "UA1"}}
    theirs = {"topic": "case", "data": {"case_id": "C3", "owner": "SCB", "assigned_to": "UB1"}}
    unrouted = {"topic": "case", "data": {"case_id": "C4", "owner": None, "assigned_to": None}}
    other = {"topic": "incident", "data": {"incident_id": "I1"}}
    left = {"topic": "case", "data": {"case_id": "C5", "owner": "CITY", "assigned_to": None,
                                      "before": {"owner": "SCA", "assigned_to": None}}}
    came = {"topic": "case", "data": {"case_id": "C6", "owner": "SCB", "assigned_to": None,
                                      "before": {"owner": "CITY", "assigned_to": None}}}
    seen = [in_view(scope, c) for c in (mine, given, theirs, unrouted, other, left, came)]
    assert seen == [True, True, False, False, True, True, False]
    assert all(in_view(None, c) for c in (mine, given, theirs, unrouted, other, left, came))


def test_the_generator_reproduces_the_committed_demo_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    gis = Path(__file__).resolve().parents[2] / "gis_data"
    monkeypatch.syspath_prepend(str(gis))
    spec = importlib.util.spec_from_file_location("generate_org", gis / "generate_org.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.generate(module.DEFAULT_SEED, gis / "districts.geojson")
    committed = (gis / "demo_org.geojson").read_text("utf-8")
    assert module.generate_demo.dump(generated["demo_org.geojson"]) == committed
    sys.modules.pop("generate_demo", None)
    items = [parse_feature(f, i) for i, f in enumerate(generated["demo_org.geojson"])]
    tree = OrgTree.of(OrgNode(i.id, str(i.properties["name"]), str(i.properties["level"]),
                              i.properties.get("parent"), tuple(i.properties.get("districts", [])))
                      for i in items)
    assert tree.root is not None and tree.root.id == "XY12345"
    assert all(n.parent is None or n.parent in tree.nodes for n in tree.nodes.values())
    assert tree.subtree("XY12345") == set(tree.nodes)  # one tree, every node under the city
    xianyang = [str(d) for d in tree.root.districts]
    assert len(xianyang) == 14
    assert all((tree.holder_of(d) or tree.root).id == f"SC{d}" for d in xianyang)
    assert tree.get("U001") is not None and tree.contains("SC610402", "U001")
    crews = [n for n in tree.nodes.values() if n.parent == "GRID"]
    assert len(crews) > 300 and all(n.level == "unit" for n in crews)
