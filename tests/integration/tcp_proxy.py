"""A TCP proxy a test can cut, blackhole and restore, to take a real server away from the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target.

    - `cut()`: the server stopped - every connection dropped, new ones refused;
    - `blackhole()`: packets dropped - connections stay open and new ones are
      accepted, but nothing is forwarded either way (bytes are read and lost);
    - `start()` again: forwarding resumes; connections that lived through a
      blackhole are reset first (their byte streams lost data).
    """

    def __init__(self, target_host: str, target_port: int = 0) -> None:
        """Target a TCP host and port, or a unix socket path (`target_port` 0)."""
        self.target = (target_host, target_port)
        self.port = 0
        self.blackholed = False
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        """Listen and forward (on the same port again after a `cut` or a `blackhole`)."""
        if self.blackholed:
            self._reset_all()
            self.blackholed = False
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.blackholed:
            self._spawn(self._pipe(reader, None))
            return
        try:
            host, port = self.target
            if port:
                up_reader, up_writer = await asyncio.open_connection(host, port)
            else:
                up_reader, up_writer = await asyncio.open_unix_connection(host)
        except OSError:
            self._writers.discard(writer)
            writer.close()
            return
        self._writers.add(up_writer)
        self._spawn(self._pipe(reader, up_writer))
        self._spawn(self._pipe(up_reader, writer))

    def _spawn(self, pipe: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(pipe)
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter | None) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if dst is None or self.blackholed:
                    continue  # dropped on the floor
                dst.write(data)
                await dst.drain()
        if dst is not None:
            dst.close()

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._pipes):
            task.cancel()

    async def blackhole(self) -> None:
        """Drop every byte from now on, in open connections and new ones alike."""
        self.blackholed = True

    async def cut(self) -> None:
        """Stop listening and drop every open connection (the server is 'down')."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._reset_all()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def close(self) -> None:
        """Stop for good."""
        self.blackholed = False
        await self.cut()
