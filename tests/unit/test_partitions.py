"""The pure parts of partitioned readers (`eventstore/partitions.py`): the spread and the hash."""

from __future__ import annotations

import random

import pytest

from eventstore.partitions import PARTITIONS, Held, assign, checkpoint_name, partition_of, partitions_of
from eventstore.records import Checkpoint

RUNNERS = ("cases", "sms-intake", "notifications-ack", "places", "knowledge", "case_followup",
           "missed-calls", "missed-calls-contacts", "incident_broadcast", "elderly_alerts")


def owners(spread: dict[str, frozenset[int]]) -> dict[int, str]:
    return {p: worker for worker, parts in spread.items() for p in parts}


def workers(n: int) -> list[str]:
    return [f"host-{i}:{1000 + i}:{i:06x}" for i in range(n)]


@pytest.mark.parametrize("count", [1, 2, 16, 32])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 16, 20])
def test_every_partition_has_one_worker_and_the_spread_is_even(count: int, n: int) -> None:
    for runner in RUNNERS:
        spread = assign(runner, count, workers(n))
        assert set(spread) == set(workers(n))
        sizes = [len(parts) for parts in spread.values()]
        assert sorted(owners(spread)) == list(range(count)) and sum(sizes) == count
        assert max(sizes) - min(sizes) <= 1


def test_the_spread_depends_on_the_members_only_not_their_order() -> None:
    members = workers(5)
    shuffled = members[:]
    random.Random(7).shuffle(shuffled)
    for runner in RUNNERS:
        assert assign(runner, 16, members) == assign(runner, 16, shuffled + members[:2])


def test_a_global_runner_goes_to_one_worker_and_different_ones_spread_over_workers() -> None:
    chosen = {runner: next(w for w, p in assign(runner, 1, workers(3)).items() if p) for runner in RUNNERS}
    assert len(set(chosen.values())) == 3  # ten global runners do not all land on one worker


@pytest.mark.parametrize("n", range(1, 12))
def test_a_worker_joining_or_leaving_moves_few_partitions_besides_its_own(n: int) -> None:
    for runner in RUNNERS:
        before = owners(assign(runner, PARTITIONS, workers(n)))
        joined = assign(runner, PARTITIONS, [*workers(n), "new:1:abcdef"])
        moved = sum(before[p] != owner for p, owner in owners(joined).items())
        assert moved - len(joined["new:1:abcdef"]) <= 4
        if n > 1:
            gone = workers(n)[0]
            left = owners(assign(runner, PARTITIONS, workers(n)[1:]))
            moved = sum(before[p] != owner for p, owner in left.items())
            assert moved - sum(owner == gone for owner in before.values()) <= 5


def test_no_workers_no_spread() -> None:
    assert assign("cases", 16, []) == {}


def test_partition_of_is_crc32_modulo_the_count_the_same_in_every_process() -> None:
    # Fixed values: a different hash (or Python's salted hash()) would move streams between
    # partitions whose checkpoints differ.
    assert [partition_of(k, 16) for k in ("case-1", "sms-SM1", "13800138000")] == [6, 11, 1]
    assert [partition_of(k, 2) for k in ("case-1", "sms-SM1", "13800138000", "case-2")] == [0, 1, 1, 0]
    assert partition_of("anything", 1) == 0
    assert {partition_of(f"case-{i}", 16) for i in range(400)} == set(range(16))


def test_checkpoint_names_keep_a_single_partition_under_the_runner_name() -> None:
    assert checkpoint_name("linking", 0, 1) == "linking"
    assert checkpoint_name("cases", 3, 16) == "cases/3"


def test_a_runner_declares_its_partitions_or_gets_the_default() -> None:
    class Global:
        partitions = 1

    class Bad:
        partitions = 0

    assert partitions_of(Global()) == 1 and partitions_of(object()) == PARTITIONS
    with pytest.raises(ValueError, match="positive"):
        partitions_of(Bad())


def test_the_spread_is_the_same_in_every_release() -> None:
    """Workers of two releases run side by side during a rolling upgrade: each claims what `assign`
    gives it, so both must compute the same spread. Bug: another hash or digest (the two releases
    each wait for partitions the other holds, and some are run by neither)."""
    spread = assign("cases", 16, ["host-a:1:0a", "host-b:2:0b", "host-c:3:0c"])
    assert {w: sorted(p) for w, p in spread.items()} == {
        "host-a:1:0a": [0, 5, 6, 9, 14, 15],
        "host-b:2:0b": [1, 7, 8, 12, 13],
        "host-c:3:0c": [2, 3, 4, 10, 11],
    }


def test_an_event_at_a_partitions_checkpoint_is_not_handled_again() -> None:
    """One read serves partitions at different checkpoints (it starts after the oldest): an event
    at or before a partition's own checkpoint was handled already. Bug: the event at the
    checkpoint handled twice."""
    held = Held({0: Checkpoint((7, 10), 10), 1: Checkpoint((7, 5), 5)})
    assert held.after == Checkpoint((7, 5), 5)
    assert not held.wants(0, Checkpoint((7, 10), 10)) and held.wants(0, Checkpoint((7, 11), 11))
    assert not held.wants(1, Checkpoint((7, 5), 5)) and held.wants(1, Checkpoint((7, 6), 6))
    assert not held.wants(2, Checkpoint((7, 11), 11))  # not held
