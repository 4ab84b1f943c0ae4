"""Automatic dispatch of fault cases on real PostgreSQL: nearest provider, re-dispatch, surge batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatch.cases.actions import RejectCase
from dispatch.cases.events import CallerInfo, Place
from dispatch.cases.read_model import CasesProjection
from dispatch.cases.registration import RegisterCase
from dispatch.cases.state import load_case
from dispatch.core.clock import FakeClock
from dispatch.gis.auto_dispatch import AutoDispatcher, sync_loads
from dispatch.gis.config import AutoDispatchConfig
from dispatch.gis.holder import ProviderIndexHolder
from dispatch.gis.nearest import Provider
from eventstore.subscriptions import ProjectionRunner
from gateway.bootstrap import build_services, close_services
from gateway.settings import Settings

NEAR = Provider("P-near", "近", 34.330, 108.700, frozenset({"power_repair"}), 2)
FAR = Provider("P-far", "远", 34.400, 108.800, frozenset({"power_repair", "line_repair"}), 50)
PLUMBER = Provider("P-pipe", "水", 34.330, 108.700, frozenset({"plumbing"}), 5)


@pytest.fixture
async def wired(settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    services = await build_services(settings, clock=clock)
    holder = await ProviderIndexHolder.create([NEAR, FAR, PLUMBER])
    services.provider_index = holder
    yield services
    await holder.close()
    await close_services(services)


async def register(services: Any, category: str = "power_fault", priority: int = 2) -> str:
    done = await services.bus.handle(RegisterCase(
        category=category, channel="phone", description="停电", priority=priority,
        caller=CallerInfo(phone="13800138000"), location=Place(34.331, 108.701)))
    return str(done.case_id)


async def dispatch_round(services: Any, config: AutoDispatchConfig | None = None) -> int:
    await ProjectionRunner(services.store, CasesProjection(services.clock)).run_until_caught_up()
    worker = AutoDispatcher(services.pool, services.bus.handle, services.clock, services,
                            config or AutoDispatchConfig())
    return await worker.run_once()


async def test_new_fault_goes_to_the_nearest_skilled_provider(wired: Any) -> None:
    fault = await register(wired)
    consult = await register(wired, "consultation", 4)
    assert await dispatch_round(wired) == 1
    state = await load_case(wired.store, fault)
    assert (state.status, state.assigned_to, state.assignee_kind) == ("dispatched", "P-near", "provider")
    events = await wired.store.read_stream(f"case-{fault}")
    assert events[-1].data["auto"] is True and events[-1].data["distance_m"] < 200
    assert (await load_case(wired.store, consult)).status == "accepted"  # not a fault: left to people
    assert await dispatch_round(wired) == 0  # nothing twice


async def test_rejected_case_goes_to_someone_else(wired: Any) -> None:
    fault = await register(wired)
    await dispatch_round(wired)
    await wired.bus.handle(RejectCase(case_id=fault, expected_version=1, reason="满负荷", actor="provider:x"))
    assert await dispatch_round(wired) == 1
    state = await load_case(wired.store, fault)
    assert (state.assigned_to, state.rejected_by) == ("P-far", ("P-near",))


async def test_surge_is_assigned_in_one_batch_within_capacity(wired: Any) -> None:
    urgent = await register(wired, priority=1)
    others = [await register(wired) for _ in range(9)]
    sent = await dispatch_round(wired, AutoDispatchConfig(surge_threshold=3))
    assert sent == 10
    states = [await load_case(wired.store, c) for c in [urgent, *others]]
    assert states[0].assigned_to == "P-near"  # green channel first
    assert sum(s.assigned_to == "P-near" for s in states) == NEAR.capacity
    assert all(s.status == "dispatched" for s in states)
    holder = wired.provider_index
    await sync_loads(wired.pool, holder)  # loads re-read from the read model
    await ProjectionRunner(wired.store, CasesProjection(wired.clock)).run_until_caught_up()
    await sync_loads(wired.pool, holder)
    assert holder.snapshot.status("P-near") == (True, 2) and holder.snapshot.status("P-far") == (True, 8)


async def test_auto_dispatch_can_be_switched_off(wired: Any) -> None:
    await register(wired)
    assert await dispatch_round(wired, AutoDispatchConfig(skills={})) == 0
