"""The fuzz tier (each module marks its tests `fuzz`): how many inputs each channel was sent."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.fuzz.fuzzing import ANSWERS, TRIED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TRIED:
        return
    terminalreporter.section("fuzz: inputs tried per channel")
    for channel, count in sorted(TRIED.items()):
        got = ", ".join(f"{answer} {n}" for answer, n in sorted(ANSWERS[channel].items()))
        terminalreporter.write_line(f"{channel:<28} {count:>6}   {got}")
    terminalreporter.write_line(f"{'total':<28} {sum(TRIED.values()):>6}")


ERROR_MARKS = ("[error", "[critical", "Traceback (most recent call last)", "Error handling request")


@pytest.fixture
def logged_errors(capfd: pytest.CaptureFixture[str]) -> Callable[[], list[str]]:
    """Error lines the app (its views, listeners, projections and reactors) logged so far in the test."""
    seen: list[str] = []

    def errors() -> list[str]:
        out, err = capfd.readouterr()
        sys.stdout.write(out)  # still shown with the test's report
        sys.stderr.write(err)
        seen.extend(line for line in (out + err).splitlines() if any(m in line for m in ERROR_MARKS))
        return seen

    return errors


@pytest.fixture
async def client(settings: Any, services: Any, aiohttp_client: Any) -> Any:
    """The app served as `intake serve` serves it (request lines up to 64 KiB)."""
    from aiohttp.test_utils import TestServer

    from gateway.app import MAX_REQUEST_LINE, create_app

    server = TestServer(create_app(settings, services=services))
    await server.start_server(max_line_size=MAX_REQUEST_LINE)  # the kwargs of TestServer() go nowhere
    return await aiohttp_client(server)
