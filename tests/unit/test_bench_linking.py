"""`intake bench linking` reports its quality over held-out storms, never the ones that chose the defaults."""

from __future__ import annotations

import pytest

from bench.linking import (
    HELD_OUT_SEEDS,
    TUNING_SEED,
    TUNING_SEEDS,
    Outcome,
    held_out,
    main,
    median_row,
    verdict,
)


def _outcome(precision: float, recall: float) -> Outcome:
    return Outcome(precision, recall, 1.0, 0.9, 6, 100, 1.0, frozenset())


def test_the_default_held_out_storms_are_five_that_chose_nothing() -> None:
    assert TUNING_SEED in TUNING_SEEDS and 7 in TUNING_SEEDS  # the sweep's and the unit test's storms
    assert len(set(HELD_OUT_SEEDS)) >= 5 and not set(HELD_OUT_SEEDS) & TUNING_SEEDS
    assert held_out(HELD_OUT_SEEDS) == HELD_OUT_SEEDS


@pytest.mark.parametrize(("seeds", "why"), [
    ((TUNING_SEED, 106, 107, 108, 109), "chose the defaults"),
    ((106, 107, 108, 109, 99), "chose the defaults"),
    ((106, 107, 108, 109, 103), "chose the defaults"),  # held out until HOME_RADII was chosen on it
    ((106, 107, 108, 109), "at least 5"), ((106, 107, 108, 109, 109), "at least 5")])
def test_a_tuning_seed_or_fewer_than_five_storms_are_refused(seeds: tuple[int, ...], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        held_out(seeds)


def test_the_median_row_gives_each_scores_median_and_range() -> None:
    row = median_row("median", [_outcome(0.99, 0.93), _outcome(1.0, 0.95), _outcome(0.97, 0.91)])
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1:3] == ["0.9900 (0.9700-1.0000)", "0.9300 (0.9100-0.9500)"]


def test_the_thresholds_are_held_against_the_median_storm() -> None:
    assert verdict([_outcome(0.90, 0.95), _outcome(0.99, 0.95), _outcome(0.99, 0.93)])
    assert not verdict([_outcome(0.99, 0.95), _outcome(0.99, 0.85), _outcome(0.99, 0.88)])
    assert not verdict([_outcome(0.96, 0.95), _outcome(0.94, 0.95), _outcome(0.93, 0.95)])


def test_the_report_judges_the_median_of_the_held_out_storms(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--contacts", "300", "--incidents", "4", "--seeds", "201,202,203,204,205"])
    out = capsys.readouterr().out
    assert f"seed {TUNING_SEED} - the tuning storm" in out
    assert [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| policy, seed")] == [
        f"policy, seed {seed}" for seed in (201, 202, 203, 204, 205)]
    assert "| **median (range) of 5 held-out storms** |" in out
    assert "median of the held-out storms" in out.splitlines()[-1]
