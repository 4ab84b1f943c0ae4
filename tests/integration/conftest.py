"""Fixtures of the integration tier: the wired services and the app over them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatch.core.clock import FakeClock
from gateway.app import create_app
from gateway.bootstrap import build_services, close_services
from gateway.settings import Settings


@pytest.fixture
async def wired(settings: Settings, clock: FakeClock) -> AsyncIterator[Any]:
    """Services as `intake serve` builds them, on the fake clock, with no background runners."""
    services = await build_services(settings, clock=clock)
    yield services
    await close_services(services)


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings, wired: Any) -> Any:
    """The app over `wired`, its runners left to the test to drive."""
    return await aiohttp_client(create_app(settings, services=wired, background=False))
