"""`intake bench eventstore --rounds`: medians over rounds, each ratio within its own round."""

from __future__ import annotations

from bench.eventstore import Result, batched_shape, schedule, summarise


def _result(kind: str, writers: int, events: int, p99: float = 0.004) -> Result:
    return Result(kind, writers, 10.0, events, latencies=[0.001, 0.002, p99])


def test_ratios_are_taken_within_each_round_and_summarised_by_their_median() -> None:
    rounds = [
        {"ours": _result("ours", 1, 6_000), "eventsourcing": _result("eventsourcing", 1, 3_000),
         "raw": _result("raw", 1, 10_000)},
        # A slow round: every store is slower, the ratios hold.
        {"ours": _result("ours", 1, 3_000), "eventsourcing": _result("eventsourcing", 1, 1_000),
         "raw": _result("raw", 1, 4_000)},
        {"ours": _result("ours", 1, 7_000), "eventsourcing": _result("eventsourcing", 1, 2_000),
         "raw": _result("raw", 1, 10_000)},
    ]
    ours, baseline, ceiling = summarise(rounds)
    cells = [cell.strip() for cell in ours.strip("|").split("|")]
    assert cells[:5] == ["intake event store", "1", "600", "3.0x (2.0x-3.5x)", "70% (60%-75%)"]
    assert cells[8] == "16,000"  # events over all rounds
    assert baseline.split("|")[4].strip() == "1.0x (1.0x-1.0x)"
    assert ceiling.split("|")[5].strip() == "100% (100%-100%)"


def test_writer_counts_are_summarised_apart() -> None:
    rounds = [{"raw": _result("raw", 1, 100)}, {"raw": _result("raw", 16, 900)},
              {"raw": _result("raw", 1, 300)}, {"raw": _result("raw", 16, 1_100)}]
    one, sixteen = summarise(rounds)
    assert one.split("|")[2:4] == [" 1 ", " 20 "]
    assert sixteen.split("|")[2:4] == [" 16 ", " 100 "]


def test_every_other_round_runs_its_scenarios_in_reverse_order() -> None:
    plan = schedule([1, 16], ["ours", "group", "raw"], 3)
    rounds = [[(w, kind) for n, w, kind in plan if n == number] for number in (1, 2, 3)]
    forward = [(1, "ours"), (1, "group"), (1, "raw"), (16, "ours"), (16, "group"), (16, "raw")]
    assert rounds == [forward, forward[::-1], forward]
    assert [n for n, _, _ in plan] == sorted(n for n, _, _ in plan)  # round after round


def test_the_batched_ceiling_commits_group_commits_rows_with_as_many_rows_in_flight_as_writers() -> None:
    assert batched_shape(16, 5.3) == (3, 5)
    assert batched_shape(16, 3.6) == (4, 4)
    assert batched_shape(1, 1.0) == (1, 1)
    assert batched_shape(16, 64.0) == (1, 16)  # never more rows per commit than writers
    assert batched_shape(16, 0.4) == (16, 1)


def test_each_store_is_held_against_both_ceilings_of_its_own_round() -> None:
    rounds = [
        {"group": _result("group", 16, 8_000), "raw": _result("raw", 16, 10_000),
         "batched": _result("batched", 16, 16_000)},
        {"group": _result("group", 16, 4_000), "raw": _result("raw", 16, 8_000),
         "batched": _result("batched", 16, 5_000)},
    ]
    rounds[0]["group"].per_commit, rounds[1]["group"].per_commit = 4.5, 5.5
    group, raw, batched = summarise(rounds)
    cells = [cell.strip() for cell in group.strip("|").split("|")]
    assert cells[4] == "65% (50%-80%)"  # of the per-row ceiling
    assert cells[9] == "65% (50%-80%)"  # of the batched ceiling: 50 % and 80 %
    assert cells[10] == "5.00 (4.50-5.50)"  # rows per commit
    assert raw.split("|")[10].strip() == "111% (62%-160%)"
    assert batched.split("|")[10].strip() == "100% (100%-100%)"
    single = rounds[0]["group"].row(rounds[0])
    assert [c.strip() for c in single.strip("|").split("|")][4:11:5] == ["80%", "50%"]
