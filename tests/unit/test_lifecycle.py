"""Case lifecycle on the in-memory store with a fake clock: every operator action and its rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dispatch.cases import CASES
from dispatch.cases.actions import (
    ArchiveCase,
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
    SupplementCase,
)
from dispatch.cases.events import CallerInfo, Fault, Place
from dispatch.cases.registration import RegisterCase
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import CaseState, load_case
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from dispatch.core.errors import InvalidCommand, KeyReused, NotAllowed, StaleVersion
from dispatch.supervision import SUPERVISION
from eventstore.memory import MemoryEventStore

DISP, U1 = "dispatcher:D1", "unit:U001"
DOMAIN = (CASES, SUPERVISION)


@pytest.fixture
def bus(clock: FakeClock) -> MessageBus:
    store = MemoryEventStore(clock.now)
    return MessageBus(collect_handlers(DOMAIN), {"store": store, "clock": clock, "sla": SlaConfig()})


def store_of(bus: MessageBus) -> Any:
    return bus._deps["store"]


async def new_case(bus: MessageBus, **kw: Any) -> str:
    cmd = RegisterCase(
        category=kw.pop("category", "power_fault"), channel="phone", description="停电",
        caller=CallerInfo(name="张三", phone="13800138000"), priority=kw.pop("priority", 2),
        location=Place(34.33, 108.70, "610402"), address="秦都区人民路1号", account_number="A1",
        fault=Fault("outage", "2026-11-23T07:50:00+00:00", "building"), **kw,
    )
    return (await bus.handle(cmd)).case_id


async def test_full_lifecycle(bus: MessageBus, clock: FakeClock) -> None:
    case_id = await new_case(bus)
    s = await bus.handle(ClassifyCase(case_id=case_id, expected_version=0, priority=1, actor="agent:A001"))
    assert (s.status, s.priority) == ("classified", 1)
    assert s.deadline == s.accepted_at + timedelta(minutes=15)
    s = await bus.handle(DispatchCase(case_id=case_id, expected_version=1, to="U001", actor=DISP))
    assert (s.status, s.assigned_to) == ("dispatched", "U001")
    assert s.confirm_by == clock.now() + timedelta(minutes=30)
    clock.advance(600)
    s = await bus.handle(ConfirmCase(case_id=case_id, expected_version=2, actor=U1))
    assert s.status == "confirmed"
    assert s.deadline == s.complete_by == clock.now() + timedelta(hours=4)
    until = clock.now() + timedelta(hours=8)
    s = await bus.handle(RequestExtension(case_id=case_id, expected_version=3, until=until, reason="材料",
                                          actor=U1))
    assert s.pending_extension == until
    s = await bus.handle(DecideExtension(case_id=case_id, expected_version=4, approve=True, actor=DISP))
    assert (s.pending_extension, s.deadline, s.complete_by) == (None, until, until)
    s = await bus.handle(GiveFeedback(case_id=case_id, expected_version=5, text="抢修中", actor=U1))
    assert s.status == "in_progress"
    s = await bus.handle(CompleteCase(case_id=case_id, expected_version=6, result="已恢复", actor=U1))
    assert (s.status, s.handler) == ("completed", "U001")
    assert s.callback_by == clock.now() + timedelta(hours=12)
    s = await bus.handle(RecordCallback(case_id=case_id, expected_version=7, outcome="satisfied",
                                        actor="agent:A001"))
    assert (s.status, s.callback_outcome) == ("called_back", "satisfied")
    s = await bus.handle(ArchiveCase(case_id=case_id, actor="system:archive"))
    assert s.status == "archived"
    with pytest.raises(NotAllowed, match="supplemented from"):
        await bus.handle(SupplementCase(case_id=case_id, expected_version=9, text="补充", actor="agent:A001"))
    clock.advance(timedelta(days=7))
    s = await bus.handle(SupplementCase(case_id=case_id, expected_version=9, text="补充", actor="agent:A001"))
    assert (s.status, s.supplement_count, s.version) == ("archived", 1, 10)
    assert (await load_case(store_of(bus), case_id)).version == 10


async def test_stale_version_is_refused(bus: MessageBus) -> None:
    case_id = await new_case(bus)
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    with pytest.raises(StaleVersion):
        await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U002"))


async def test_only_the_assigned_unit_acts(bus: MessageBus) -> None:
    case_id = await new_case(bus)
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    with pytest.raises(NotAllowed, match="not assigned to you"):
        await bus.handle(ConfirmCase(case_id=case_id, expected_version=1, actor="unit:U002"))
    s = await bus.handle(ConfirmCase(case_id=case_id, expected_version=1, actor=DISP))
    assert s.status == "confirmed"


async def test_rejection_and_wrong_rejection(bus: MessageBus) -> None:
    case_id = await new_case(bus)
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    with pytest.raises(InvalidCommand):
        await bus.handle(RejectCase(case_id=case_id, expected_version=1, reason=" ", actor=U1))
    s = await bus.handle(RejectCase(case_id=case_id, expected_version=1, reason="非本辖区", actor=U1))
    assert (s.status, s.assigned_to, s.rejected_by) == ("rejected", None, ("U001",))
    s = await bus.handle(DispatchCase(case_id=case_id, expected_version=2, to="U001"))
    events = await store_of(bus).read_stream(f"case-{case_id}")
    assert events[-1].data["wrong_rejection_of"] == "U001"
    s = await bus.handle(RejectCase(case_id=case_id, expected_version=3, reason="again", actor=U1))
    await bus.handle(DispatchCase(case_id=case_id, expected_version=4, to="U009"))
    events = await store_of(bus).read_stream(f"case-{case_id}")
    assert events[-1].data["wrong_rejection_of"] is None


async def test_a_rejection_stays_wrong_when_the_case_is_reclassified_before_dispatch(bus: MessageBus) -> None:
    """The center may re-classify a rejected case before dispatching it again: sent back to the unit
    that rejected it (or marked `wrong_rejection`), that rejection is still tracked as wrong."""
    case_id = await new_case(bus)
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    await bus.handle(RejectCase(case_id=case_id, expected_version=1, reason="非本辖区", actor=U1))
    s = await bus.handle(ClassifyCase(case_id=case_id, expected_version=2, priority=1, actor=DISP))
    assert s.status == "classified"
    await bus.handle(DispatchCase(case_id=case_id, expected_version=3, to="U001", actor=DISP))
    events = await store_of(bus).read_stream(f"case-{case_id}")
    assert events[-1].data["wrong_rejection_of"] == "U001"
    await bus.handle(RejectCase(case_id=case_id, expected_version=4, reason="again", actor=U1))
    await bus.handle(ClassifyCase(case_id=case_id, expected_version=5, category="complaint", actor=DISP))
    await bus.handle(DispatchCase(case_id=case_id, expected_version=6, to="U009", wrong_rejection=True,
                                  actor=DISP))
    events = await store_of(bus).read_stream(f"case-{case_id}")
    assert events[-1].data["wrong_rejection_of"] == "U001"


async def test_transitions_out_of_order_are_refused(bus: MessageBus, clock: FakeClock) -> None:
    case_id = await new_case(bus)
    with pytest.raises(NotAllowed):
        await bus.handle(ConfirmCase(case_id=case_id, expected_version=0))
    with pytest.raises(NotAllowed):
        await bus.handle(RecordCallback(case_id=case_id, expected_version=0, outcome="satisfied"))
    with pytest.raises(NotAllowed):
        await bus.handle(DecideExtension(case_id=case_id, expected_version=0, approve=True))
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    await bus.handle(ConfirmCase(case_id=case_id, expected_version=1))
    with pytest.raises(InvalidCommand, match="after the current deadline"):
        await bus.handle(RequestExtension(case_id=case_id, expected_version=2, until=clock.now(), reason="x"))
    s = await bus.handle(CloseCase(case_id=case_id, expected_version=2, reason="重复", actor="agent:A001"))
    assert s.status == "closed"
    with pytest.raises(NotAllowed):
        await bus.handle(CloseCase(case_id=case_id, expected_version=3, reason="again"))


async def test_an_extension_request_needs_a_reason(bus: MessageBus) -> None:
    """The reason of an extension is what the center decides on and what the citizen is told
    (`supervision.extended`): a blank one is refused (400), like a rejection's, and nothing is asked."""
    case_id = await new_case(bus)
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    s = await bus.handle(ConfirmCase(case_id=case_id, expected_version=1, actor=U1))
    assert s.complete_by is not None
    for blank in ("", "   "):
        with pytest.raises(InvalidCommand, match="reason"):
            await bus.handle(RequestExtension(case_id=case_id, expected_version=2, actor=U1,
                                              until=s.complete_by + timedelta(days=1), reason=blank))
    assert (await load_case(store_of(bus), case_id)).pending_extension is None


async def test_refused_extension_keeps_the_deadline(bus: MessageBus, clock: FakeClock) -> None:
    case_id = await new_case(bus)
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    s = await bus.handle(ConfirmCase(case_id=case_id, expected_version=1))
    before = s.deadline
    await bus.handle(RequestExtension(case_id=case_id, expected_version=2, until=before + timedelta(days=1),
                                      reason="x"))
    s = await bus.handle(DecideExtension(case_id=case_id, expected_version=3, approve=False))
    assert (s.deadline, s.pending_extension) == (before, None)


async def test_callback_outcomes_and_late_callback_after_archive(bus: MessageBus) -> None:
    case_id = await new_case(bus)
    await bus.handle(DispatchCase(case_id=case_id, expected_version=0, to="U001"))
    await bus.handle(CompleteCase(case_id=case_id, expected_version=1, actor=U1))
    with pytest.raises(InvalidCommand):
        await bus.handle(RecordCallback(case_id=case_id, expected_version=2, outcome="meh"))
    s = await bus.handle(ArchiveCase(case_id=case_id))
    assert s.status == "archived"
    events = await store_of(bus).read_stream(f"case-{case_id}")
    assert events[-1].data["callback_missing"] is True
    s = await bus.handle(RecordCallback(case_id=case_id, expected_version=3, outcome="not_confirmed"))
    assert (s.status, s.callback_outcome, s.handler) == ("archived", "not_confirmed", "U001")
    assert (await bus.handle(ArchiveCase(case_id=case_id))).version == 4  # nothing more to do


async def test_idempotency_key_repeats_change_nothing(bus: MessageBus) -> None:
    case_id = await new_case(bus)
    cmd = DispatchCase(case_id=case_id, expected_version=0, to="U001", idempotency_key="k1")
    first, again = await bus.handle(cmd), await bus.handle(cmd)
    assert first.version == again.version == 1



async def _pending_extension(bus: MessageBus, case_id: str, unit: str, version: int) -> CaseState:
    """Dispatch the case (at `version`) to `unit`, which confirms it and asks for two more hours."""
    await bus.handle(DispatchCase(case_id=case_id, expected_version=version, to=unit))
    s = await bus.handle(ConfirmCase(case_id=case_id, expected_version=version + 1, actor=f"unit:{unit}"))
    assert s.deadline is not None
    s = await bus.handle(RequestExtension(case_id=case_id, expected_version=version + 2,
                                          until=s.deadline + timedelta(hours=2), reason="缺材料",
                                          actor=f"unit:{unit}"))
    assert s.pending_extension is not None
    return s


async def test_a_rejecting_units_extension_request_goes_with_it(bus: MessageBus) -> None:
    """The next unit may ask for time, and nobody can approve the first unit's request to move
    the next unit's deadline."""
    case_id = await new_case(bus)
    await _pending_extension(bus, case_id, "U001", 0)
    s = await bus.handle(RejectCase(case_id=case_id, expected_version=3, reason="非本单位", actor=U1))
    assert s.pending_extension is None
    await bus.handle(DispatchCase(case_id=case_id, expected_version=4, to="U002"))
    with pytest.raises(NotAllowed, match="no extension request pending"):
        await bus.handle(DecideExtension(case_id=case_id, expected_version=5, approve=True, actor=DISP))
    s = await bus.handle(ConfirmCase(case_id=case_id, expected_version=5, actor="unit:U002"))
    assert s.deadline is not None
    until = s.deadline + timedelta(hours=3)
    s = await bus.handle(RequestExtension(case_id=case_id, expected_version=6, until=until, reason="夜间施工",
                                          actor="unit:U002"))
    assert s.pending_extension == until


@pytest.mark.parametrize("ending", ["reassigned", "completed", "closed"])
async def test_an_extension_request_ends_with_the_assignment(bus: MessageBus, ending: str) -> None:
    """Reassigned, completed or closed: the pending request has nothing left to extend."""
    case_id = await new_case(bus)
    before = await _pending_extension(bus, case_id, "U001", 0)
    action = {"reassigned": DispatchCase(case_id=case_id, expected_version=3, to="U002"),
              "completed": CompleteCase(case_id=case_id, expected_version=3, actor=U1),
              "closed": CloseCase(case_id=case_id, expected_version=3, reason="撤单", actor=DISP)}[ending]
    s = await bus.handle(action)
    assert (s.pending_extension, s.deadline) == (None, before.deadline)
    with pytest.raises(NotAllowed, match="no extension request pending"):
        await bus.handle(DecideExtension(case_id=case_id, expected_version=4, approve=True, actor=DISP))


async def test_an_idempotency_key_of_another_cases_action_is_refused_not_answered(bus: MessageBus) -> None:
    """Bug: an `Idempotency-Key` used for an action on one case, sent again with an action on another
    case, answered 200 with the other case's state unchanged: the close was never done, and the
    client was told it was. The key names an earlier, different request: 409 idempotency_conflict."""
    first, other = await new_case(bus), await new_case(bus)
    await bus.handle(DispatchCase(case_id=first, expected_version=0, to="U001", idempotency_key="api:k-1"))
    with pytest.raises(KeyReused):
        await bus.handle(CloseCase(case_id=other, expected_version=0, reason="重复", actor=DISP,
                                   idempotency_key="api:k-1"))
    assert (await load_case(store_of(bus), other)).status == "accepted"
    again = await bus.handle(DispatchCase(case_id=first, expected_version=0, to="U001",
                                          idempotency_key="api:k-1"))
    assert (again.status, again.version) == ("dispatched", 1)  # a retry on its own case: as the first
