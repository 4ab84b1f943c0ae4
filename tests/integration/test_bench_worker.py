"""`intake bench worker` runs end to end on a small backlog (so it does not rot between runs)."""

from __future__ import annotations

import pytest

from bench import worker


def test_the_worker_benchmark_takes_in_a_small_backlog(
    pg_admin_dsn: str, redis_server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert worker.main(["--dsn", pg_admin_dsn, "--redis", redis_server_url,
                        "--sms", "60", "--senders", "20"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[1] for row in rows[1:]] == ["60 SMS"] * 3 + ["60 events"] * 2
