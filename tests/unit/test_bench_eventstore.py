"""`intake bench eventstore --rounds`: medians over rounds, each ratio within its own round."""

from __future__ import annotations

from bench.eventstore import Result, summarise


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
