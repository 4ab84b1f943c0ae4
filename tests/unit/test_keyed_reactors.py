"""`Keyed` reactors: concurrent across keys, in log order within a key, checkpoint below a failure."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from eventstore import NewEvent, RecordedEvent
from eventstore.memory import MemoryEventStore
from eventstore.subscriptions import Keyed, ReactorRunner


class ByKey:
    """Records reactions per key; can fail once on, or hold, chosen events."""

    categories = frozenset({"msg"})

    def __init__(self, name: str = "by-key", fail_once: frozenset[str] = frozenset(),
                 hold: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.seen: list[str] = []
        self.running: set[str] = set()
        self.overlapped = False
        self._fail_once = set(fail_once)
        self._hold = hold
        self.held = asyncio.Event()
        self.reacted = asyncio.Event()

    def key(self, event: RecordedEvent) -> str:
        return str(event.data["id"])[0]

    async def react(self, event: RecordedEvent) -> None:
        ident = str(event.data["id"])
        key = self.key(event)
        self.running.add(key)
        self.overlapped |= len(self.running) > 1
        try:
            await asyncio.sleep(0.01)  # a round trip: other keys' reactions may run meanwhile
            if ident in self._hold:
                self.held.set()
                await asyncio.Event().wait()
            if ident in self._fail_once:
                self._fail_once.discard(ident)
                raise RuntimeError(f"reaction to {ident} failed")
            self.seen.append(ident)
            self.reacted.set()
        finally:
            self.running.discard(key)

    def per_key(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = defaultdict(list)
        for ident in self.seen:
            found[ident[0]].append(ident)
        return dict(found)


async def log_of(*idents: str) -> MemoryEventStore:
    store = MemoryEventStore()
    for ident in idents:
        await store.append(f"msg-{ident}", [NewEvent("Said", {"id": ident})], -1)
    return store


def test_the_policy_is_keyed() -> None:
    assert isinstance(ByKey(), Keyed)


async def test_keys_react_concurrently_and_each_key_in_log_order() -> None:
    idents = [f"{key}{n}" for n in range(5) for key in "abcd"]
    store = await log_of(*idents)
    reactor = ByKey()

    assert await ReactorRunner(store, reactor, batch_size=100).run_until_caught_up() == 20

    assert reactor.overlapped
    assert reactor.per_key() == {key: [f"{key}{n}" for n in range(5)] for key in "abcd"}


async def test_concurrency_one_reacts_in_log_order() -> None:
    idents = [f"{key}{n}" for n in range(3) for key in "ab"]
    store = await log_of(*idents)
    reactor = ByKey()

    await ReactorRunner(store, reactor, concurrency=1).run_until_caught_up()

    assert not reactor.overlapped
    assert reactor.seen == idents


async def test_a_failure_stops_its_key_and_the_checkpoint_stays_below_it() -> None:
    store = await log_of("a1", "b1", "a2", "b2", "a3", "b3")
    reactor = ByKey(fail_once=frozenset({"a2"}))

    with pytest.raises(RuntimeError, match="a2"):
        await ReactorRunner(store, reactor).run_until_caught_up()
    assert sorted(reactor.seen) == ["a1", "b1", "b2", "b3"]  # key b ran on; a stopped at a2

    reactor.seen.clear()
    assert await ReactorRunner(store, reactor).run_until_caught_up() == 4
    # From a2 on, in log order per key: b2 and b3 again (at-least-once), a2 and a3 once.
    assert reactor.per_key() == {"a": ["a2", "a3"], "b": ["b2", "b3"]}


async def test_a_cancelled_batch_saves_the_reactions_before_the_first_unfinished() -> None:
    store = await log_of("a1", "b1", "c1", "a2")
    reactor = ByKey(hold=frozenset({"c1"}))
    task = asyncio.create_task(ReactorRunner(store, reactor).run())

    async def others_done() -> None:
        await reactor.held.wait()
        while len(reactor.seen) < 3:  # a1, b1, a2 finish; c1 hangs
            reactor.reacted.clear()
            await reactor.reacted.wait()

    await asyncio.wait_for(others_done(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    checkpoint = await store.load_checkpoint("by-key")
    assert [e.data["id"] for _, e in (await store.read_batch(checkpoint, limit=10)).events] == [
        "c1", "a2"]


async def test_a_failure_on_the_first_event_of_a_batch_keeps_the_checkpoint_before_it() -> None:
    """The batch's very first reaction fails: its checkpoint stays where it was, and the next run
    reacts to it. Bugs: the checkpoint moved to the batch's end (the failed reaction skipped for
    good), or saving failed on the missing position (the runner stuck)."""
    store = await log_of("a1", "b1", "a2")
    reactor = ByKey(fail_once=frozenset({"a1"}))

    with pytest.raises(RuntimeError, match="a1"):
        await ReactorRunner(store, reactor).run_until_caught_up()
    assert sorted(reactor.seen) == ["b1"]

    reactor.seen.clear()
    assert await ReactorRunner(store, reactor).run_until_caught_up() == 3
    assert reactor.per_key() == {"a": ["a1", "a2"], "b": ["b1"]}  # b1 again: at-least-once
