"""`BatchReactor`s: one call per runner batch; a failed batch is reacted to again event by event."""

from __future__ import annotations

from collections.abc import Sequence

from eventstore import NewEvent, RecordedEvent
from eventstore.memory import MemoryEventStore
from eventstore.subscriptions import BatchReactor, ReactorRunner


class Batched:
    """Records each batch and each single reaction; can fail a batch, or an event, once."""

    name = "batched"
    categories = frozenset({"msg"})

    def __init__(self, fail_batch: bool = False, fail_once: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self._fail_batch = fail_batch
        self._fail_once = fail_once

    async def react_batch(self, events: Sequence[RecordedEvent]) -> None:
        idents = [str(e.data["id"]) for e in events]
        if self._fail_batch:
            self._fail_batch = False
            raise RuntimeError("the batch failed")
        self.batches.append(idents)

    async def react(self, event: RecordedEvent) -> None:
        ident = str(event.data["id"])
        if ident == self._fail_once:
            self._fail_once = None
            raise RuntimeError(f"reaction to {ident} failed")
        self.singles.append(ident)


async def log_of(*idents: str) -> MemoryEventStore:
    store = MemoryEventStore()
    for ident in idents:
        await store.append(f"msg-{ident}", [NewEvent("Said", {"id": ident})], -1)
    return store


def test_the_reactor_is_a_batch_reactor() -> None:
    assert isinstance(Batched(), BatchReactor)


async def test_each_batch_is_one_call_in_log_order() -> None:
    store = await log_of(*(f"m{n}" for n in range(7)))
    reactor = Batched()

    assert await ReactorRunner(store, reactor, batch_size=3).run_until_caught_up() == 7

    assert reactor.batches == [["m0", "m1", "m2"], ["m3", "m4", "m5"]]
    assert reactor.singles == ["m6"]  # a batch of one is a plain reaction
    assert (await store.load_checkpoint("batched")).position == 7


async def test_a_failed_batch_is_reacted_to_event_by_event() -> None:
    store = await log_of("a", "b", "c")
    reactor = Batched(fail_batch=True)

    assert await ReactorRunner(store, reactor, batch_size=10).run_until_caught_up() == 3

    assert reactor.batches == []
    assert reactor.singles == ["a", "b", "c"]


async def test_a_failure_in_the_event_by_event_retry_saves_the_checkpoint_below_it() -> None:
    store = await log_of("a", "b", "c")
    reactor = Batched(fail_batch=True, fail_once="b")
    runner = ReactorRunner(store, reactor, batch_size=10, concurrency=1)

    try:
        await runner.step()
    except RuntimeError:
        pass
    else:
        raise AssertionError("the failure was swallowed")

    assert reactor.singles == ["a"]
    assert (await store.load_checkpoint("batched")).position == 1
    await runner.run_until_caught_up()
    assert reactor.batches == [["b", "c"]]  # the retry starts at the failed event
    assert (await store.load_checkpoint("batched")).position == 3
