"""Shutdown drains in-flight requests, then closes the pools the app owns."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
from aiohttp import web

from gateway.app import create_app
from gateway.bootstrap import build_services, close_services
from gateway.services import SERVICES
from gateway.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_in_flight_request_completes_during_shutdown(settings: Settings) -> None:
    app = create_app(settings)
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(0.5)
        return web.Response(text="done")

    app.router.add_get("/test-slow", slow)
    runner = web.AppRunner(app, shutdown_timeout=5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    services = app[SERVICES]

    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(session.get(f"http://127.0.0.1:{port}/test-slow"))
        await started.wait()
        await runner.cleanup()
        response = await request
        assert response.status == 200
        assert await response.text() == "done"
        response.release()
    assert services.pool.is_closing()


async def test_closing_the_services_first_stops_the_tasks_running_on_them(
    aiohttp_client: Any, settings: Settings
) -> None:
    """A test's fixture (or a caller) may close the services before the app that runs on them.

    The background tasks still running then must stop with them: the call-back assigner's next
    cycle would otherwise reconnect the closed Redis client, and nothing would close that
    socket (the garbage collector's ResourceWarning then failed an unrelated later test).
    """
    services = await build_services(settings)
    await aiohttp_client(create_app(settings, services=services))  # its background tasks run
    running = list(services.background)
    assert {task.get_name() for task in running} >= {"ProjectionRunner.run", "Assigner.run"}
    await close_services(services)
    assert [task.get_name() for task in running if not task.done()] == []
