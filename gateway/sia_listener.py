"""The SIA DC-09 receiver: TCP and UDP listeners on `INTAKE_SIA_PORT` (a worker).

Transport only: frames are cut out of the byte stream (LF ... CR) or taken
one per datagram, and answered by `channels.sia.answer_frame`. A frame whose
signal cannot be committed (PostgreSQL down) gets no answer, so the device
retries; nothing a peer sends can stop the listener.

What one peer can take is bounded: TCP connections per source address and in
all, a first frame within seconds of connecting and an idle limit after, frames
per second per source address (TCP and UDP alike, so a flood costs neither log
writes nor answers), and datagrams in flight. What is dropped is counted in
`intake_dropped_inputs`, never answered and never written to the log.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from channels.alarm import command_from_frame
from channels.contact_id import AlarmSignal
from channels.errors import ChannelError
from channels.sia import MAX_FRAME, Frame, NotDc09, answer_frame, is_envelope, nak
from dispatch.core.capability import Task
from eventstore import StoreUnavailable
from gateway.http import WRITE_DEADLINE
from gateway.ratelimit import SourceLimiter
from gateway.rejections import record_rejection
from gateway.services import Services

log = structlog.get_logger(__name__)

FIRST_FRAME_TIMEOUT = 10.0
"""A TCP connection that sends no frame this long after connecting is closed (bytes that are no
DC-09 frame do not count: noise holds no connection open)."""
IDLE_TIMEOUT = 60.0
"""A TCP connection that sends no frame this long after its last one is closed (the device
reconnects)."""
FRAME_TIMEOUT = WRITE_DEADLINE
"""Longest time spent on one frame before giving up (no answer): as for an HTTP write."""
MAX_CONNECTIONS = 512
"""Open TCP connections in all; more are closed at once."""
MAX_CONNECTIONS_PER_SOURCE = 16
"""Open TCP connections from one address (devices behind one carrier NAT share one)."""
FRAMES_PER_SECOND = 50.0
FRAME_BURST = 200
"""Frames per source address. A device sends one per event and retries after seconds, but
one address may carry many devices (a carrier NAT, an alarm centre relaying its accounts)."""
MAX_DATAGRAMS_IN_FLIGHT = 256
ACCOUNT_FRAMES_PER_SECOND = 2.0
ACCOUNT_FRAME_BURST = 30
"""Frames per account, wherever they come from: a panel reports a few events at once, a
device retries after seconds; a flood under one account (spoofed UDP from many addresses)
is left unanswered past this, so the device retransmits later and the log does not grow
by a record a frame."""


class _AccountLimited(Exception):
    """An account sent more frames than `ACCOUNT_FRAMES_PER_SECOND` allows."""


class SiaReceiver:
    """Answers DC-09 frames over TCP and UDP for one process."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._per_source: dict[str, int] = {}
        self._frames = SourceLimiter(FRAMES_PER_SECOND, FRAME_BURST)
        self._accounts = SourceLimiter(ACCOUNT_FRAMES_PER_SECOND, ACCOUNT_FRAME_BURST)

    def _drop(self, reason: str) -> None:
        self._services.metrics.dropped_inputs.labels("alarm", reason).inc()

    async def handle(self, raw: bytes, transport: str, peer: str, source: str) -> bytes | None:
        """The answer to one frame, or None when it must go unanswered.

        `source` (the peer's address without its port) is what rejections are
        limited by (`gateway.rejections`); the frame rate is limited before this.
        """
        services = self._services
        now = services.clock.now()

        async def deliver(frame: Frame, signal: AlarmSignal) -> None:
            if not self._accounts.allow(frame.account):
                raise _AccountLimited(frame.account)
            await services.bus.handle(command_from_frame(frame, signal, transport, now))
            services.metrics.events_appended.labels("alarm").inc()

        async def reject(exc: ChannelError, data: bytes) -> None:
            await record_rejection(services, channel="alarm", code=exc.code, reason=exc.message, raw=data,
                                   authenticated=False, source=source, peer=peer, transport=transport)

        try:
            async with asyncio.timeout(FRAME_TIMEOUT):
                return await answer_frame(raw, keys=services.settings.sia.keys, now=now,
                                          deliver=deliver, reject=reject)
        except NotDc09 as exc:  # noise, or another receiver's answer
            self._drop(exc.code)
        except _AccountLimited:
            self._drop("account_rate_limited")
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("sia_frame_unanswered", peer=peer, error=type(exc).__name__)
        except Exception:
            log.exception("sia_frame_failed", peer=peer)
        return None

    def _admit(self, source: str) -> bool:
        if len(self._writers) >= MAX_CONNECTIONS:
            self._drop("too_many_connections")
            return False
        if self._per_source.get(source, 0) >= MAX_CONNECTIONS_PER_SOURCE:
            self._drop("too_many_connections_from_source")
            return False
        self._per_source[source] = self._per_source.get(source, 0) + 1
        return True

    def _release(self, source: str) -> None:
        left = self._per_source.pop(source, 1) - 1
        if left > 0:
            self._per_source[source] = left

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = str(peername)
        source = str(peername[0]) if isinstance(peername, tuple) else peer
        if not self._admit(source):
            writer.close()
            return
        self._writers.add(writer)
        loop = asyncio.get_running_loop()
        try:
            deadline = loop.time() + FIRST_FRAME_TIMEOUT
            while True:
                async with asyncio.timeout_at(deadline):
                    chunk = await reader.readuntil(b"\r")
                start = chunk.rfind(b"\n")
                raw = chunk[start:] if start >= 0 else chunk
                if is_envelope(raw):  # noise keeps no connection open: only a frame moves the deadline
                    deadline = loop.time() + IDLE_TIMEOUT
                if not self._frames.allow(source):
                    self._drop("rate_limited")
                    continue
                answer = await self.handle(raw, "sia-tcp", peer, source)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except asyncio.LimitOverrunError:
            await self._reject_oversized(peer, source)  # recorded before the answer, like every frame
            writer.write(nak(self._services.clock.now()))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            self._release(source)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _reject_oversized(self, peer: str, source: str) -> None:
        await record_rejection(self._services, channel="alarm", code="bad_frame",
                               reason=f"no CR within {MAX_FRAME} bytes", raw=None, authenticated=False,
                               source=source, peer=peer, transport="sia-tcp")

    def _datagram(self, data: bytes, addr: tuple[object, int]) -> None:
        if len(self._tasks) >= MAX_DATAGRAMS_IN_FLIGHT:
            self._drop("too_many_datagrams")
            return
        source = str(addr[0])
        if not self._frames.allow(source):  # before a task is made: a flood costs little
            self._drop("rate_limited")
            return

        async def answer() -> None:
            reply = await self.handle(data, "sia-udp", str(addr), source)
            if reply is not None and self._udp is not None and not self._udp.is_closing():
                self._udp.sendto(reply, addr)

        task = asyncio.get_running_loop().create_task(answer())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, host: str, port: int) -> tuple[int, int]:
        """Listen on TCP and UDP (port 0: any free port); answer the bound (tcp, udp) ports."""
        self._tcp = await asyncio.start_server(self._connection, host, port, limit=MAX_FRAME)
        tcp_port = self._tcp.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        receiver = self

        class _Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[object, int]) -> None:
                receiver._datagram(data, addr)

        try:
            transport, _ = await loop.create_datagram_endpoint(_Udp, local_addr=(host, port or tcp_port))
        except OSError:
            if port:
                raise
            transport, _ = await loop.create_datagram_endpoint(_Udp, local_addr=(host, 0))
        self._udp = transport
        udp_port = transport.get_extra_info("sockname")[1]
        log.info("sia_listening", host=host, tcp=tcp_port, udp=udp_port)
        return tcp_port, udp_port

    async def close(self) -> None:
        """Stop listening, hang up idle connections and finish frames in flight.

        A frame being handled still commits; if its ACK can no longer be sent,
        the device retries and the retransmission is acknowledged without a new event.
        """
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._writers):
                writer.close()  # an idle device connection would otherwise hold on for IDLE_TIMEOUT
            await self._tcp.wait_closed()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def serve(self, host: str, port: int) -> None:
        """Run until cancelled."""
        await self.start(host, port)
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()


def listeners(services: Services) -> list[Task]:
    """The receiver, unless `INTAKE_SIA_PORT` is 0."""
    port = services.settings.sia.port
    if port == 0:
        return []
    receiver = SiaReceiver(services)

    async def sia_listener() -> None:
        await receiver.serve(services.settings.http.host, port)

    return [sia_listener]
