"""Shutdown drains in-flight requests, then closes the pools the app owns."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from gateway.app import create_app
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
