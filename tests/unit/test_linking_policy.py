"""The linking policy as a reactor on the in-memory store, driven by the real runner and bus."""

from __future__ import annotations

from datetime import timedelta

from dispatch.cases import CASES
from dispatch.cases.actions import ClassifyCase
from dispatch.cases.events import CallerInfo, CallerPhoneGiven, Place
from dispatch.cases.registration import RegisterCase
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import load_case
from dispatch.core.bus import MessageBus
from dispatch.core.capability import collect_handlers
from dispatch.core.clock import FakeClock
from dispatch.core.messages import metadata, to_new_event
from dispatch.linking import LINKING
from dispatch.linking.clustering import LinkParams, MemoryCandidates, UnlinkCases
from dispatch.linking.incidents import ResolveIncident, load_incident
from dispatch.linking.policy import LinkingPolicy
from dispatch.places import PLACES
from dispatch.places.locate import LocateCase
from eventstore import Checkpoint
from eventstore.memory import MemoryEventStore
from eventstore.subscriptions import ReactorRunner

CAPABILITIES = (CASES, LINKING, PLACES)


def _wire() -> tuple[MemoryEventStore, FakeClock, MessageBus, LinkingPolicy]:
    clock = FakeClock()
    store = MemoryEventStore(clock.now)
    bus = MessageBus(collect_handlers(CAPABILITIES), {"store": store, "clock": clock, "sla": SlaConfig()})
    params = LinkParams()
    return store, clock, bus, LinkingPolicy(MemoryCandidates(params), params, store=store, send=bus.handle)


async def _register(bus: MessageBus, clock: FakeClock, north_m: float, *, category: str = "power_fault",
                    phone: str = "13800138000") -> str:
    clock.advance(timedelta(minutes=3))
    cmd = RegisterCase(category=category, channel="phone", description="停电",
                       caller=CallerInfo(name="张", phone=phone),
                       location=Place(34.33 + north_m / 111_320, 108.70, "610402"))
    return str((await bus.handle(cmd)).case_id)


async def test_storm_cases_are_linked_and_gathered_in_one_incident() -> None:
    store, clock, bus, policy = _wire()
    near = [await _register(bus, clock, 100 * i, phone=f"1380013800{i}") for i in range(5)]
    far = await _register(bus, clock, 9000, phone="13900000000")
    complaint = await _register(bus, clock, 0, category="complaint", phone="13900000001")
    runner = ReactorRunner(store, policy)
    await runner.run_until_caught_up()
    await runner.run_until_caught_up()  # the policy's own events come back; nothing new follows
    states = {cid: await load_case(store, cid) for cid in [*near, far, complaint]}
    assert states[far].linked_case_ids == () and states[complaint].linked_case_ids == ()
    for cid in near:
        assert states[cid].linked_case_ids, cid
        for other in states[cid].linked_case_ids:
            assert cid in states[other].linked_case_ids
    incident_ids = {states[cid].incident_id for cid in near}
    assert len(incident_ids) == 1 and None not in incident_ids
    incident = await load_incident(store, incident_ids.pop() or "")
    assert sorted(incident.case_ids) == sorted(near)
    assert states[far].incident_id is None and states[complaint].incident_id is None


async def test_reacting_again_writes_nothing() -> None:
    store, clock, bus, policy = _wire()
    for i in range(4):
        await _register(bus, clock, 50 * i, phone=f"1380013800{i}")
    await ReactorRunner(store, policy).run_until_caught_up()
    total = len(await store.read_all(Checkpoint(), limit=10_000))
    await store.save_checkpoint(policy.name, Checkpoint())  # as after a crash before any save
    fresh = LinkingPolicy(MemoryCandidates(policy.params), policy.params, store=store, send=bus.handle)
    await ReactorRunner(store, fresh).run_until_caught_up()
    assert len(await store.read_all(Checkpoint(), limit=10_000)) == total


async def test_reclassified_case_is_unlinked_from_its_old_category() -> None:
    store, clock, bus, policy = _wire()
    a = await _register(bus, clock, 0, phone="13800138001")
    b = await _register(bus, clock, 50, phone="13800138002")
    runner = ReactorRunner(store, policy)
    await runner.run_until_caught_up()
    assert (await load_case(store, b)).linked_case_ids == (a,)
    version = (await load_case(store, b)).version
    await bus.handle(ClassifyCase(case_id=b, expected_version=version, category="complaint", priority=3))
    await runner.run_until_caught_up()
    assert (await load_case(store, a)).linked_case_ids == ()
    assert (await load_case(store, b)).linked_case_ids == ()


async def test_rebuild_recalls_the_candidates_and_sends_nothing() -> None:
    store, clock, bus, policy = _wire()
    for i in range(4):
        await _register(bus, clock, 50 * i, phone=f"1380013800{i}")
    await ReactorRunner(store, policy).run_until_caught_up()
    assert isinstance(policy.source, MemoryCandidates)
    everything = len(await store.read_all(Checkpoint(), limit=10_000))
    before, total = dict(policy.source.cases), len([  # the policy reads the events of its types alone
        e for _, e in await store.read_all(Checkpoint(), limit=10_000, categories=policy.categories)
        if e.type in policy.types])
    assert {c.incident_id for c in before.values()} != {None}
    await policy.source.assign(list(before), None)
    assert await ReactorRunner(store, policy).rebuild() == total
    assert policy.source.cases == before
    assert len(await store.read_all(Checkpoint(), limit=10_000)) == everything


async def test_an_unlinked_pair_stays_unlinked_when_a_case_is_located_again() -> None:
    """A person's unlink sticks: an agent correcting the place of one of the two cases afterwards
    makes the policy judge it again, but never re-link the pair the person separated."""
    store, clock, bus, policy = _wire()
    a = await _register(bus, clock, 0, category="complaint", phone="13800138001")
    b = await _register(bus, clock, 50, category="complaint", phone="13800138002")
    runner = ReactorRunner(store, policy)
    await runner.run_until_caught_up()
    assert (await load_case(store, b)).linked_case_ids == (a,)
    await bus.handle(UnlinkCases(b, a, None, "different matter", "agent:A001"))
    await bus.handle(LocateCase(b, Place(34.33 + 60 / 111_320, 108.70, "610402"), "agent",
                                actor="agent:A001"))
    await runner.run_until_caught_up()
    assert (await load_case(store, a)).linked_case_ids == ()
    assert (await load_case(store, b)).linked_case_ids == ()


async def test_a_wechat_case_is_linked_to_the_callers_cases_once_the_number_is_given() -> None:
    """Same caller: a WeChat case whose follower gives the phone number later (awaiting_phone)
    counts as that number's, linked as `same_caller` to the number's case before it and to the
    case it calls in after it (in another format)."""
    store, clock, bus, policy = _wire()

    async def register(caller: CallerInfo, channel: str) -> str:
        clock.advance(timedelta(minutes=30))
        return str((await bus.handle(RegisterCase(category="complaint", channel=channel,
                                                  description="投诉抄表员态度差", caller=caller))).case_id)

    before = await register(CallerInfo(name="王", phone="13912345678"), "phone")
    wechat = await register(CallerInfo(openid="oAbC-follower-1"), "wechat")
    state = await load_case(store, wechat)
    given = CallerPhoneGiven(wechat, "13912345678", "wechat", clock.now())
    await store.append(f"case-{wechat}", [to_new_event(given, metadata(), subject=state.subject)],
                       state.version)
    runner = ReactorRunner(store, policy)
    await runner.run_until_caught_up()
    assert (await load_case(store, wechat)).linked_case_ids == (before,)
    after = await register(CallerInfo(name="王", phone="+86 139 1234 5678"), "phone")
    await runner.run_until_caught_up()
    assert wechat in (await load_case(store, after)).linked_case_ids


async def test_an_open_incident_takes_the_calls_after_a_lull_in_its_place() -> None:
    """An outage lasts until its incident is resolved: calls from its street after more than a
    window without calls join the open incident (their callers hear its cause), not a second
    incident opened at the same place beside it."""
    store, clock, bus, policy = _wire()
    first = [await _register(bus, clock, 100 * i, phone=f"1380013800{i}") for i in range(4)]
    runner = ReactorRunner(store, policy)
    await runner.run_until_caught_up()
    incident = (await load_case(store, first[0])).incident_id
    assert incident is not None
    clock.advance(timedelta(minutes=90))
    later = [await _register(bus, clock, 50 + 100 * i, phone=f"1390013900{i}") for i in range(3)]
    await runner.run_until_caught_up()
    assert [(await load_case(store, cid)).incident_id for cid in later] == [incident] * 3
    assert sorted((await load_incident(store, incident)).case_ids) == sorted(first + later)


async def test_a_call_after_an_incident_is_resolved_opens_no_incident_of_one_case() -> None:
    """An incident opens with at least `incident_min_cases` cases: the cases of a resolved
    incident stay in it, so one call about the place right after the resolution is linked to
    them but opens no new incident of that one case; three new calls do."""
    store, clock, bus, policy = _wire()
    first = [await _register(bus, clock, 100 * i, phone=f"1380013800{i}") for i in range(4)]
    runner = ReactorRunner(store, policy)
    await runner.run_until_caught_up()
    resolved = (await load_case(store, first[0])).incident_id
    assert resolved is not None
    await bus.handle(ResolveIncident(resolved, "restored"))
    await runner.run_until_caught_up()
    one = await _register(bus, clock, 150, phone="13900139000")
    await runner.run_until_caught_up()
    assert (await load_case(store, one)).incident_id is None
    more = [await _register(bus, clock, 200 + 50 * i, phone=f"1390013900{i + 1}") for i in range(2)]
    await runner.run_until_caught_up()
    again = (await load_case(store, more[-1])).incident_id
    assert again is not None and again != resolved
    assert sorted((await load_incident(store, again)).case_ids) == sorted([one, *more])
