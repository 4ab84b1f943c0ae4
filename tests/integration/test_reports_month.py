"""Reports against brute force: a generated month of calls and cases (across categories,
districts, units and agents; rejections, wrong rejections, extensions, complaints, call-backs
with scores) is recorded through the domain's commands on real PostgreSQL; every report, in
every grouping and period, is recomputed here from the events alone and compared with what
`GET /api/v1/reports/{name}` answers - after the projection ran in small batches, and again
after `intake rebuild reports`.

The brute force below shares no code with dispatch/reports: it reads the log, folds each call
and case its own way, and sums per Beijing-time day, week (from Monday) and month.
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dispatch.cases.actions import (
    ClassifyCase,
    CloseCase,
    CompleteCase,
    ConfirmCase,
    DecideExtension,
    DispatchCase,
    GiveFeedback,
    RecordCallback,
    RejectCase,
    RequestExtension,
)
from dispatch.cases.events import CallerInfo, Fault, Place
from dispatch.cases.registration import RegisterCase
from dispatch.core.clock import FakeClock
from dispatch.core.messages import from_recorded
from dispatch.intake.calls import RecordCall
from dispatch.intake.contact import InboundContact
from dispatch.reports.read_model import ReportsProjection
from eventstore import Checkpoint, RecordedEvent
from eventstore.subscriptions import ProjectionRunner
from gateway.cli import rebuild
from gateway.settings import Settings
from tests.conftest import auth

BEIJING = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 1, tzinfo=BEIJING)
CATEGORIES = ["complaint", "praise", "consultation", "home_service", "report", "power_fault",
              "public_affairs", "suggestion"]
DISTRICTS = ["610402", "610404", "610481", None]
UNITS = ["U1", "U2", "U3", "U4"]
AGENTS = ["A1", "A2", "A3"]
PHONES = [f"1391234{n:04d}" for n in range(25)]
QUEUES = ["power", "city", None]

Step = tuple[datetime, int, Callable[[], Any]]


def plan_case(  # noqa: C901 (one case's story, read top to bottom)
    rng: random.Random, n: int, at: datetime, clock: FakeClock, bus: Any
) -> list[Step]:
    """The commands of one case, each with the instant it happens."""
    case_id = f"C{n:04d}"
    category = rng.choice(CATEGORIES)
    district = rng.choice(DISTRICTS)
    agent = rng.choice([*AGENTS, None])
    steps: list[tuple[datetime, Callable[[], Any]]] = []

    def register() -> Any:
        power = category == "power_fault"
        return bus.handle(RegisterCase(
            case_id=case_id, category=category, channel=rng.choice(["phone", "web", "wechat", "sms"]),
            description="事项", caller=CallerInfo(name="李四", phone=rng.choice(PHONES)),
            location=Place(34.3, 108.7, district) if district else None,
            account_number="A1" if power else None, fault=Fault("outage", None, "home") if power else None,
            actor=f"agent:{agent}" if agent else "channel:cti"))

    def act(cmd_type: type, unit: str | None = None, **kw: Any) -> Callable[[], Any]:
        actor = f"unit:{unit}" if unit else "dispatcher:D1"
        return lambda: bus.handle(cmd_type(case_id=case_id, actor=actor, **kw))

    steps.append((at, register))
    t = at
    if rng.random() < 0.15:
        t += timedelta(minutes=rng.randint(1, 30))
        steps.append((t, act(ClassifyCase, category=rng.choice(CATEGORIES))))
    if rng.random() < 0.2:
        t += timedelta(minutes=rng.randint(1, 20))
        steps.append((t, act(CloseCase, reason="一次办结")))
        return [(when, n, fn) for when, fn in steps]
    unit = rng.choice(UNITS)
    t += timedelta(minutes=rng.randint(5, 90))
    steps.append((t, act(DispatchCase, to=unit)))
    if rng.random() < 0.2:  # rejected, then dispatched again (to the same unit: a wrong rejection)
        t += timedelta(minutes=rng.randint(5, 60))
        steps.append((t, act(RejectCase, unit, reason="非本单位")))
        again = unit if rng.random() < 0.5 else rng.choice(UNITS)
        t += timedelta(minutes=rng.randint(5, 60))
        steps.append((t, act(DispatchCase, to=again, wrong_rejection=rng.random() < 0.3)))
        unit = again
    if rng.random() < 0.1:
        return [(when, n, fn) for when, fn in steps]  # never confirmed
    t += timedelta(minutes=rng.choice([5, 20, 29, 30, 31, 45, 120]))
    steps.append((t, act(ConfirmCase, unit)))
    if rng.random() < 0.2:
        t += timedelta(hours=1)
        until = t + timedelta(days=rng.randint(4, 12))
        steps.append((t, act(RequestExtension, unit, until=until, reason="备件")))
        t += timedelta(minutes=30)
        steps.append((t, act(DecideExtension, approve=rng.random() < 0.7)))
    edge = category == "complaint" and rng.random() < 0.5 and t < at + timedelta(days=7)
    if edge:  # a complaint answered exactly 7 days and resolved exactly 10 days after acceptance
        steps.append((at + timedelta(days=7), act(GiveFeedback, unit, text="已答复")))
        t = at + timedelta(days=10)
        steps.append((t, act(CompleteCase, unit, result="已处理")))
    else:
        if rng.random() < 0.5:
            t += timedelta(hours=rng.randint(1, 24 * 8))
            steps.append((t, act(GiveFeedback, unit, text="处理中")))
        if rng.random() < 0.15:
            return [(when, n, fn) for when, fn in steps]  # still being handled
        t += timedelta(hours=rng.choice([1, 5, 30, 24 * 6, 24 * 9, 24 * 12]))
        steps.append((t, act(CompleteCase, unit, result="已处理")))
    if rng.random() < 0.8:
        t += timedelta(hours=rng.randint(1, 48))
        scores = {"case_score": rng.choice([None, 1, 2, 3, 4, 5]), "unit_score": rng.choice([None, 2, 4, 5])}
        steps.append((t, lambda: bus.handle(RecordCallback(
            case_id=case_id, outcome=rng.choice(["satisfied", "unsatisfied", "not_confirmed"]),
            actor="agent:A1", **scores))))
    return [(when, n, fn) for when, fn in steps]


def plan_call(rng: random.Random, n: int, at: datetime, bus: Any) -> list[Step]:
    """The channel events of one call."""
    call_id, phone, queue = f"K{n:04d}", rng.choice(PHONES), rng.choice(QUEUES)

    def record(kind: str, when: datetime, agent: str | None = None, answered: bool = False) -> Step:
        contact = InboundContact(channel="phone", kind=f"call_{kind}",
                                 idempotency_key=f"cti:{call_id}:{kind}:{agent}",
                                 caller=CallerInfo(phone=phone), occurred_at=when, received_at=when,
                                 extra={"source": "cti"})
        return (when, 100_000 + n, lambda: bus.handle(RecordCall(
            kind=kind, call_id=call_id, contact=contact, queue=queue, agent=agent, answered=answered)))

    steps = [record("offered", at)]
    t = at + timedelta(seconds=rng.randint(3, 200))
    if rng.random() < 0.2:
        return [*steps, record("abandoned", t)]
    first = rng.choice(AGENTS)
    steps.append(record("answered", t, first))
    if rng.random() < 0.15:
        t += timedelta(seconds=rng.randint(30, 300))
        steps.append(record("answered", t, rng.choice([a for a in AGENTS if a != first])))
    if rng.random() < 0.9:
        t += timedelta(seconds=rng.randint(20, 900))
        steps.append(record("ended", t, answered=True))
    return steps


async def generate(bus: Any, clock: FakeClock, seed: int = 22) -> None:
    """A month of cases and calls, their commands run in time order on the fake clock."""
    rng = random.Random(seed)
    heap: list[Step] = []
    month = 30 * 24 * 3600
    for n in range(140):
        for step in plan_case(rng, n, START + timedelta(seconds=rng.randint(0, month)), clock, bus):
            heapq.heappush(heap, step)
    for n in range(220):
        for step in plan_call(rng, n, START + timedelta(seconds=rng.randint(0, month)), bus):
            heapq.heappush(heap, step)
    while heap:
        when, _, run = heapq.heappop(heap)
        clock.set(when.astimezone(UTC))
        await run()


# ---------------------------------------------------------------- brute force, from the events


def day_of(at: datetime) -> date:
    return at.astimezone(BEIJING).date()


def brute_force(  # noqa: C901 (the whole recomputation in one straight reading, on purpose)
    events: list[RecordedEvent],
) -> dict[tuple[str, str, str, date], Counter[str]]:
    """(report, group, key, day) -> measures, computed straight from the log."""
    out: dict[tuple[str, str, str, date], Counter[str]] = defaultdict(Counter)
    calls: dict[str, dict[str, Any]] = {}
    cases: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    for e in events:
        key = e.stream.split("-", 1)[1]
        if e.category == "call":
            c = calls.setdefault(key, {"times": {}, "agents": [], "answered": False, "queue": None})
            kind = e.type.removeprefix("Call").lower()
            at = datetime.fromisoformat(e.data["contact"]["occurred_at"])
            c["times"].setdefault(kind, at)
            c["queue"] = e.data.get("queue") or c["queue"]
            if kind == "answered":
                c["answered"] = True
                if e.data["agent"] and (not c["agents"] or c["agents"][-1] != e.data["agent"]):
                    c["agents"].append(e.data["agent"])
            if kind == "ended" and e.data.get("answered"):
                c["answered"] = True
            continue
        evt = from_recorded(e)
        if e.type == "CaseRegistered":
            assert evt is not None
            actor = e.metadata.get("actor", "")
            cases[key] = {"at": evt.accepted_at, "category": evt.category, "channel": evt.channel,
                          "district": evt.location.district if evt.location else None,
                          "agent": actor[6:] if actor.startswith("agent:") else None,
                          "phone": evt.caller.phone, "disp": [], "handler": None, "responded": None,
                          "resolved": None, "cb": None}
            order.append(key)
            continue
        c = cases[key]
        live = [d for d in c["disp"] if d["rejected"] is None]
        if e.type == "CaseClassified":
            c["category"] = e.data["category"]
        elif e.type == "CaseDispatched":
            for d in reversed(c["disp"]):
                if e.data["wrong_rejection_of"] == d["unit"] and d["rejected"] is not None:
                    d["wrong"] = True
                    break
            c["disp"].append({"unit": e.data["assignee"], "at": evt.dispatched_at,  # type: ignore[union-attr]
                              "confirm_by": evt.confirm_by, "confirmed": None,  # type: ignore[union-attr]
                              "complete_by": None, "completed": None, "rejected": None, "wrong": False})
        elif e.type == "CaseConfirmed":
            live[-1].update(confirmed=evt.confirmed_at, complete_by=evt.complete_by)  # type: ignore[union-attr]
        elif e.type == "CaseRejected":
            live[-1]["rejected"] = evt.rejected_at  # type: ignore[union-attr]
        elif e.type == "ExtensionDecided" and e.data["approved"]:
            live[-1]["complete_by"] = evt.until  # type: ignore[union-attr]
        elif e.type == "FeedbackGiven":
            c["responded"] = c["responded"] or evt.at  # type: ignore[union-attr]
        elif e.type in ("CaseCompleted", "CaseClosed"):
            at = evt.completed_at if e.type == "CaseCompleted" else evt.at  # type: ignore[union-attr]
            if e.type == "CaseCompleted":
                if live and live[-1]["completed"] is None:
                    live[-1]["completed"] = at
                c["handler"] = e.data["handler"]
            c["responded"] = c["responded"] or at
            c["resolved"] = c["resolved"] or at
        elif e.type == "CallbackRecorded":
            c["cb"] = e.data | {"at": evt.at}  # type: ignore[union-attr]

    for c in calls.values():
        times = c["times"]
        day = day_of(times.get("offered") or min(times.values()))
        m: Counter[str] = Counter(offered=1)
        if c["answered"]:
            m["answered"] += 1
        elif "abandoned" in times:
            m["abandoned"] += 1
        if "answered" in times and "offered" in times:
            m["wait_ms"] += round((times["answered"] - times["offered"]).total_seconds() * 1000)
            m["waits"] += 1
        handle: Counter[str] = Counter()
        if "answered" in times and "ended" in times:
            handle["handle_ms"] += round((times["ended"] - times["answered"]).total_seconds() * 1000)
            handle["handled"] += 1
        m["transfers"] += max(0, len(c["agents"]) - 1)
        for group, k in (("all", ""), ("queue", c["queue"] or "-")):
            out["calls", group, k, day].update(m + handle)
        if c["agents"] and c["answered"]:
            out["agents", "agent", c["agents"][0], day].update(Counter(answered_calls=1) + handle)

    last_of: dict[str, str] = {}
    for key in order:  # repeat contacts: the caller's previous case within 7 days
        c = cases[key]
        prev = last_of.get(c["phone"])
        c["repeat"] = prev is not None and c["at"] - cases[prev]["at"] <= timedelta(days=7)
        c["followed"] = False
        if c["repeat"]:
            cases[prev]["followed"] = True  # type: ignore[index]
        last_of[c["phone"]] = key
    for c in cases.values():
        day = day_of(c["at"])
        live = [d for d in c["disp"] if d["rejected"] is None]
        unit = live[-1]["unit"] if live else (c["handler"] or "-")
        agent = c["agent"] or "-"
        m = Counter(cases=1, with_caller=1, repeat_contacts=int(c["repeat"]),
                    first_contact_resolved=int(not c["followed"]),
                    praise=int(c["category"] == "praise"), criticism=int(c["category"] == "complaint"))
        if c["disp"]:
            m.update(transferred=1, dispatches=len(c["disp"]))
        for group, k in (("all", ""), ("category", c["category"]), ("district", c["district"] or "-"),
                         ("channel", c["channel"]), ("unit", unit), ("agent", agent)):
            out["cases", group, k, day].update(m)
        for group, k in (("all", ""), ("unit", unit), ("agent", agent)):
            out["satisfaction", group, k, day].update(praise=m["praise"], criticism=m["criticism"])
        if c["agent"]:
            out["agents", "agent", c["agent"], day]["cases"] += 1
        for d in c["disp"]:
            u = out["units", "unit", d["unit"], day_of(d["at"])]
            u["dispatched"] += 1
            if d["confirmed"]:
                u.update(confirmed=1, confirmed_on_time=int(d["confirmed"] <= d["confirm_by"]))
            if d["completed"]:
                u.update(completed=1, completed_on_time=int(d["complete_by"] is None
                                                            or d["completed"] <= d["complete_by"]))
            if d["rejected"]:
                u.update(rejected=1, wrong_rejections=int(d["wrong"]))
        if c["category"] == "complaint":
            u = out["units", "unit", unit, day]
            u["complaints"] += 1
            u["complaints_responded_7d"] += int(c["responded"] is not None
                                                and c["responded"] - c["at"] <= timedelta(days=7))
            u["complaints_resolved_10d"] += int(c["resolved"] is not None
                                                and c["resolved"] - c["at"] <= timedelta(days=10))
        cb = c["cb"]
        if cb:
            scored = Counter({"callbacks": 1, cb["outcome"]: 1})
            for name in ("case_score", "unit_score"):
                if cb[name] is not None:
                    scored.update({name: cb[name], f"{name}s": 1})
            cb_day, handler = day_of(cb["at"]), cb["handler"] or unit
            for group, k in (("all", ""), ("unit", handler), ("agent", agent)):
                out["satisfaction", group, k, cb_day].update(scored)
            out["units", "unit", handler, cb_day].update(scored)
            if c["agent"]:
                out["agents", "agent", c["agent"], cb_day].update(scored)
    return out


def ratio(num: str, den: str, scale: float = 1.0, digits: int = 4) -> Callable[[Counter[str]], Any]:
    return lambda m: round(m[num] / m[den] / scale, digits) if m[den] else None


DERIVED: dict[str, Callable[[Counter[str]], Any]] = {
    "answer_rate": ratio("answered", "offered"),
    "average_wait_s": ratio("wait_ms", "waits", 1000, 1),
    "average_handling_s": ratio("handle_ms", "handled", 1000, 1),
    "repeat_contact_rate": ratio("repeat_contacts", "with_caller"),
    "first_contact_resolution": ratio("first_contact_resolved", "with_caller"),
    "satisfaction_rate": ratio("satisfied", "callbacks"),
    "average_case_score": ratio("case_score", "case_scores", 1, 2),
    "average_unit_score": ratio("unit_score", "unit_scores", 1, 2),
    "on_time_confirmation": ratio("confirmed_on_time", "dispatched"),
    "on_time_completion": ratio("completed_on_time", "completed"),
    "complaints_responded_7d_rate": ratio("complaints_responded_7d", "complaints"),
    "complaints_resolved_10d_rate": ratio("complaints_resolved_10d", "complaints"),
}


def period_of(day: date, by: str) -> str:
    if by == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    return day.strftime("%Y-%m") if by == "month" else day.isoformat()


def expected(facts: dict[tuple[str, str, str, date], Counter[str]], report: str, group: str, by: str,
             start: date, end: date, columns: list[str]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for (name, g, key, day), measures in facts.items():
        if name == report and g == group and start <= day <= end:
            rows[period_of(day, by), key].update(measures)
    items = []
    for (period, key), m in sorted(rows.items()):
        if not any(m.values()):
            continue
        item: dict[str, Any] = {"period": period, "group": key}
        for column in columns[3:]:  # after period, group and name (test_reports_api names rows)
            item[column] = DERIVED[column](m) if column in DERIVED else m[column]
        items.append(item)
    return items


GROUPS = {"calls": ["all", "queue"], "cases": ["category", "district", "channel", "unit", "agent", "all"],
          "satisfaction": ["unit", "agent", "all"], "units": ["unit"], "agents": ["agent"]}


async def answers(api: Any, start: str, end: str) -> dict[tuple[str, str, str], Any]:
    found = {}
    for report, groups in GROUPS.items():
        for group in groups:
            for by in ("day", "week", "month"):
                resp = await api.get(f"/api/v1/reports/{report}?from={start}&to={end}&by={by}&group={group}",
                                     headers=auth("t-auditor"))
                assert resp.status == 200, await resp.text()
                found[report, group, by] = await resp.json()
    return found


async def all_events(store: Any) -> list[RecordedEvent]:
    events: list[RecordedEvent] = []
    after = Checkpoint()
    while batch := await store.read_all(after, limit=1000):
        events += [e for _, e in batch]
        after = batch[-1][0]
    return events


async def test_every_report_matches_brute_force_and_a_rebuild(
    api: Any, wired: Any, clock: FakeClock, settings: Settings
) -> None:
    await generate(wired.bus, clock)
    await ProjectionRunner(wired.store, ReportsProjection(), batch_size=7).run_until_caught_up()
    facts = brute_force(await all_events(wired.store))
    def total(report: str, group: str, measure: str) -> int:
        return sum(m[measure] for (r, g, _, _), m in facts.items() if (r, g) == (report, group))

    assert total("satisfaction", "all", "case_scores") > 20 and total("units", "unit", "wrong_rejections") > 0
    assert total("cases", "all", "repeat_contacts") > 5 and total("calls", "all", "transfers") > 0
    assert total("units", "unit", "complaints_responded_7d") > 0 and total("calls", "all", "abandoned") > 0
    ranges = [("2026-11-01", "2026-11-30"), ("2026-11-04", "2026-11-19"), ("2026-10-01", "2026-12-31")]
    first = {}
    for start, end in ranges:
        found = await answers(api, start, end)
        for (report, group, by), body in found.items():
            want = expected(facts, report, group, by, date.fromisoformat(start), date.fromisoformat(end),
                            body["columns"])
            sums = [{k: v for k, v in item.items() if k != "name"} for item in body["items"]]
            assert sums == want, (report, group, by, start, end)
            assert len(body["headers"]) == len(body["columns"])
        assert any(body["items"] for body in found.values())
        first[start, end] = found
    assert await rebuild.run(argparse.Namespace(projection="reports"), settings) == 0
    for start, end in ranges:
        assert await answers(api, start, end) == first[start, end]
