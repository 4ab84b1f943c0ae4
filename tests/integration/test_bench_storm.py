"""`intake bench storm` runs end to end for a few seconds, against a release too (so it does not rot).

In a process of its own, as it is run; the release is this checkout's HEAD, in a `git worktree`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(400)  # four servers start on a shared machine
def test_a_short_storm_against_a_release_reports_both(pg_admin_dsn: str, redis_server_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.storm", "--dsn", pg_admin_dsn, "--redis", redis_server_url,
         "--seconds", "3", "--rate", "20", "--cti-rate", "2", "--settle", "2",
         "--against", "HEAD", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=380, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r[0] for r in rows[1:]] == ["| this tree", "| release HEAD"]
    for cells in rows[1:]:
        offered, accepted, taken_in, *_, not_on_board = (float(c.replace(",", "")) for c in cells[1:8])
        assert offered == accepted == 20  # every SMS offered was answered 2xx
        # Each accepted SMS is on the board or counted missing (the rate has one decimal: 59 of 60
        # taken in printed as a whole rate read "20 /s").
        assert round(taken_in * 3) + not_on_board == 60
    listed = subprocess.run(["git", "worktree", "list"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    assert "intake-release-" not in listed  # the release's checkout is removed
