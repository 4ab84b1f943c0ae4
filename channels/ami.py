"""Asterisk AMI client (`INTAKE_AMI_URL=ami://user:secret@host:port`) on panoramisk.

Follows `QueueCallerJoin`, `AgentCalled` (the queue rings an agent: the
agent's console shows the caller card), `QueueCallerAbandon`, `AgentConnect`,
`AgentComplete` and `Hangup` into call streams, idempotent on `Uniqueid` +
event (+ the agent, for `AgentCalled` and `AgentConnect`: a transfer is answered
again). After a lost connection (PBX restart) it reconnects with exponential backoff, asks `QueueStatus`, and
records calls that vanished meanwhile: a caller still unanswered becomes a
missed call, so nobody is lost; replays are harmless because every event
carries its idempotency key. A recording named in `ChanVariable:
MIXMONITOR_FILENAME=...` (manager.conf `channelvars`) or a `Recording` header
is linked to the call (and thereby to its case). A followed event it cannot
use (no `Uniqueid`) is recorded as `InputRejected`.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import structlog
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from channels.errors import BadInput
from channels.rejected import record_rejected
from channels.times import plausible
from dispatch.cases.events import CallerInfo
from dispatch.core.capability import Task
from dispatch.core.clock import Clock
from dispatch.core.errors import DispatchError
from dispatch.intake.calls import RecordCall
from dispatch.intake.contact import InboundContact

log = structlog.get_logger(__name__)

FOLLOWED: dict[str, str] = {
    "QueueCallerJoin": "offered",
    "AgentCalled": "offered",  # the queue rings an agent: its console shows the caller card
    "QueueCallerAbandon": "abandoned",
    "AgentConnect": "answered",
    "AgentComplete": "ended",
    "Hangup": "ended",
}
LOGIN_TIMEOUT = 10.0
RECONCILE_TIMEOUT = 5.0
REFUSED = (DispatchError,)
"""What the domain refuses for what the event says (not the store being down): recorded as rejected
input and skipped, since a retry would get the same answer and hold back every later call (what
no stream could be named by is refused before, in `to_command`)."""
Handle = Callable[[object], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class AmiConfig:
    """Where the Asterisk manager is and how to log in."""

    host: str
    port: int
    username: str
    secret: str


def parse_url(url: str) -> AmiConfig:
    """`ami://user:secret@host:port` (port 5038 by default)."""
    parts = urlsplit(url)
    if parts.scheme != "ami" or not parts.hostname or not parts.username:
        raise BadInput("INTAKE_AMI_URL must look like ami://user:secret@host:port", code="bad_config")
    return AmiConfig(parts.hostname, parts.port or 5038, unquote(parts.username),
                     unquote(parts.password or ""))


def _recording(event: Mapping[str, Any]) -> str | None:
    variables = event.get("ChanVariable") or []
    for item in [variables] if isinstance(variables, str) else variables:
        name, _, value = str(item).partition("=")
        if name.upper() == "MIXMONITOR_FILENAME" and value:
            return value
    return str(event.get("Recording")) if event.get("Recording") else None


_UNIQUEID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
"""A `Uniqueid` a call stream can be named by (`1700000001.12`, `pbx1-1700000001.12`): ASCII, as
the log's stream names are (`str.isalnum` also passes `１` or `é`), and as long as a CTI `call_id`;
another one could never be stored, and retrying it would hold every later event back."""
_NO_CALLER_ID = frozenset({"", "<unknown>", "unknown", "anonymous"})
"""What Asterisk writes where a channel has no caller id (`<unknown>`; SIP privacy: `anonymous`)."""


def _caller_id(event: Mapping[str, Any], name: str) -> str | None:
    value = str(event.get(name) or "").strip()
    return None if value.lower() in _NO_CALLER_ID else value


def _time(event: Mapping[str, Any], received_at: datetime) -> datetime:
    """The event's `Timestamp` (epoch seconds) when it is a plausible instant, else the arrival:
    a garbled one (`inf`, year 33658, 1970) would end the follower or the projections."""
    try:
        instant = datetime.fromtimestamp(float(event["Timestamp"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return received_at
    return instant if plausible(instant) else received_at


def to_command(event: Mapping[str, Any], received_at: datetime, *, key_suffix: str = "",
               kind: str | None = None) -> RecordCall:
    """One followed AMI event as a `RecordCall` (of `kind`, else the event's own); `BadInput` if
    it lacks what it needs."""
    name = str(event.get("Event", ""))
    kind = kind or FOLLOWED.get(name)
    uid = str(event.get("Uniqueid") or "")
    if kind is None or not _UNIQUEID.match(uid):
        raise BadInput(f"AMI {name or 'message'} without a usable Uniqueid", code="bad_event")
    agent = event.get("MemberName") or event.get("Interface") or None
    # a queue may ring several agents in turn, and a call transferred back to a queue is answered
    # by another agent under the same Uniqueid: those events are one per agent
    ringing = f":{agent}" if name in ("AgentCalled", "AgentConnect") else ""
    contact = InboundContact(
        channel="phone", kind=f"call_{kind}", idempotency_key=f"ami:{uid}:{name}{ringing}{key_suffix}",
        caller=CallerInfo(phone=_caller_id(event, "CallerIDNum"), name=_caller_id(event, "CallerIDName")),
        occurred_at=_time(event, received_at), received_at=received_at, raw=dict(event),
        extra={"source": "ami", "event": name},
    )
    reason = event.get("Reason") or event.get("Cause-txt") or (name if kind != "offered" else None)
    return RecordCall(kind=kind, call_id=uid, contact=contact, queue=event.get("Queue") or None,
                      agent=agent, reason=reason, recording=_recording(event),
                      answered=name == "AgentComplete")


@dataclass(slots=True)
class CallTracker:
    """The queue calls seen and not yet over, to settle them after a lost connection."""

    calls: dict[str, dict[str, Any]] = field(default_factory=dict)

    def follow(self, event: Mapping[str, Any]) -> str | None:
        """Update from an event; answers what to record it as (its kind), or None for an event
        that concerns no queue call.

        The hangup of a queue call no agent answered is a missed call (`abandoned`): a caller the
        queue let go unanswered (its timeout, a key to leave, no agent logged in: Asterisk says
        `QueueCallerLeave`, not `QueueCallerAbandon`) hangs up, or is hung up, without having
        talked to anyone."""
        name, uid = str(event.get("Event") or ""), str(event.get("Uniqueid") or "")
        kind = FOLLOWED.get(name)
        if name == "QueueCallerJoin":
            self.calls[uid] = {**event, "answered": False}
            return kind
        if uid not in self.calls:
            return None if name == "Hangup" else kind  # a hangup of another channel: no queue call
        if name == "AgentConnect":
            self.calls[uid]["answered"] = True
        elif name in ("QueueCallerAbandon", "AgentComplete", "Hangup"):
            answered = self.calls.pop(uid)["answered"]
            return "abandoned" if name == "Hangup" and not answered else kind
        return kind

    def vanished(self, still_waiting: set[str]) -> list[dict[str, Any]]:
        """Synthetic end events for tracked calls the PBX no longer has."""
        ended = []
        for uid, call in list(self.calls.items()):
            if uid in still_waiting:
                continue
            name = "Hangup" if call["answered"] else "QueueCallerAbandon"
            ended.append({**call, "Event": name, "Reason": "connection_lost", "Timestamp": None})
            self.calls.pop(uid)
        return ended


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, logging lines it cannot parse instead of ignoring them silently.

    Reads are cut wherever TCP cut them: panoramisk decodes each read alone and drops the halves of
    a UTF-8 character cut in two (a caller named 张三 was stored as 三), so it is given whole
    characters only; lines are checked once whole, not each half of a line cut in two."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._line = ""

    def data_received(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        *lines, self._line = (self._line + text).split("\r\n")
        for line in lines:
            if line and ": " not in line and not line.startswith("Asterisk Call Manager/"):
                log.warning("ami_line_skipped", line=line[:120])
        if text:
            super().data_received(text.encode("utf-8"))


class _Session(Manager):  # type: ignore[misc]
    """One connection: panoramisk's manager without its own endless reconnect."""

    def __init__(self, **config: Any) -> None:
        super().__init__(protocol_factory=_Protocol, **config)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.logged_in: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.on_login = self._logged_in

    def _logged_in(self, _manager: Any) -> None:
        if not self.logged_in.done():
            self.logged_in.set_result(True)

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            self._end(f.exception() if not f.cancelled() else None)
            return
        super().connection_made(f)

    def login(self, future: asyncio.Future[Any]) -> bool:
        ok = bool(super().login(future))
        if not ok:  # a wrong user or secret: said as a warning, with the manager's words, at each try
            log.warning("ami_login_refused", username=self.config.get("username"),
                        message=str(future.result().get("Message") or ""))
            self._end(ConnectionRefusedError("AMI login refused"))
        return ok

    def connection_lost(self, exc: Any) -> None:
        self._connected = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        self._end(exc if isinstance(exc, BaseException) else None)

    def _end(self, exc: BaseException | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.logged_in.done():
            self.logged_in.set_result(False)
        if exc is not None:
            log.info("ami_connection_ended", error=type(exc).__name__)


class AmiClient:
    """Follows an Asterisk manager for ever, reconnecting with backoff."""

    def __init__(self, config: AmiConfig, handle: Handle, *, now: Callable[[], datetime],
                 backoff: tuple[float, float] = (0.5, 30.0), ping: int = 10) -> None:
        self._config = config
        self._handle = handle
        self._now = now
        self._backoff = backoff
        self._ping = ping
        self.tracker = CallTracker()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Connect, follow, reconnect (cancel to stop)."""
        consumer = asyncio.create_task(self._consume())
        delay = self._backoff[0]
        try:
            while True:
                if await self._session():
                    delay = self._backoff[0]
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)

    async def _session(self) -> bool:
        cfg = self._config
        session = _Session(host=cfg.host, port=cfg.port, username=cfg.username, secret=cfg.secret,
                           ping_delay=self._ping, ping_interval=self._ping,
                           loop=asyncio.get_running_loop())
        for name in FOLLOWED:
            session.register_event(name, lambda _m, event: self._queue.put_nowait(dict(event)))
        try:
            session.connect()
            try:
                if not await asyncio.wait_for(asyncio.shield(session.logged_in), LOGIN_TIMEOUT):
                    return False
            except TimeoutError:
                log.warning("ami_login_timeout", host=cfg.host)
                return False
            log.info("ami_connected", host=cfg.host, port=cfg.port)
            await self._reconcile(session)
            self.connected.set()
            await session.lost
            return True
        finally:
            self.connected.clear()
            session.close()

    async def _reconcile(self, session: _Session) -> None:
        """Settle tracked calls the PBX forgot while we were away.

        A PBX that cannot answer `QueueStatus` yet (Asterisk still loading `app_queue` after a
        restart answers `Response: Error`) or does not answer in time is asked again, with
        backoff, while the connection lasts: the calls stay tracked and the events keep flowing
        meanwhile (a failure here ended the follower, and every caller after it was lost).

        A call whose channel the PBX still has (`CoreShowChannels`: a caller talking to an agent,
        one the queue let go into voicemail) has not vanished: only the connection to the manager
        was lost, and the call's own events end it (it was ended at the reconnect, a caller still
        talking shown as gone). A manager user not allowed `CoreShowChannels` (it needs `system`
        or `reporting`) has the queue's answer alone."""
        delay = self._backoff[0]
        while self.tracker.calls and not session.lost.done():
            entries = await self._ask(session, "QueueStatus")
            if entries is not None:
                channels = await self._ask(session, "CoreShowChannels") or []
                still = {str(m.get("Uniqueid")) for m in entries if m.get("Event") == "QueueEntry"} | {
                    str(m.get("Uniqueid")) for m in channels if m.get("Event") == "CoreShowChannel"}
                for event in self.tracker.vanished(still):
                    self._queue.put_nowait({**event, "_synthetic": True})
                return
            await asyncio.wait([session.lost], timeout=delay)
            delay = min(delay * 2, self._backoff[1])

    async def _ask(self, session: _Session, action: str) -> list[Mapping[str, Any]] | None:
        """The event list a listing action answers, or None (refused, not answered in time, lost)."""
        # panoramisk answers a list for an event list, the one message for an error
        answer: asyncio.Future[Any] = session.send_action({"Action": action})
        await asyncio.wait([answer, session.lost], timeout=RECONCILE_TIMEOUT,
                           return_when=asyncio.FIRST_COMPLETED)
        replies = answer.result() if answer.done() and not answer.cancelled() else None
        if isinstance(replies, list):
            return replies
        log.warning("ami_action_failed", action=action,
                    message=None if replies is None else str(replies.get("Message")))
        return None

    async def _consume(self) -> None:
        while True:
            event = await self._queue.get()
            synthetic = bool(event.pop("_synthetic", False))
            kind = None if synthetic else self.tracker.follow(event)
            if not synthetic and kind is None:
                continue
            try:
                cmd = to_command(event, self._now(), key_suffix=":lost" if synthetic else "", kind=kind)
            except BadInput as exc:
                await self._reject(exc, event)
                continue
            await self._record(cmd, event)

    async def _reject(self, exc: BadInput, event: Mapping[str, Any]) -> None:
        """Record an event it cannot follow as `InputRejected`, as every channel does."""
        raw, at = json.dumps(event, default=str, ensure_ascii=False), self._now()
        try:
            await self._retrying(lambda: record_rejected(
                self._handle, channel="ami", code=exc.code, reason=exc.message, raw=raw, at=at,
                peer=f"{self._config.host}:{self._config.port}"), str(event.get("Uniqueid")))
        except REFUSED:
            log.exception("ami_rejection_not_recorded", call_id=str(event.get("Uniqueid")))

    async def _record(self, cmd: RecordCall, event: Mapping[str, Any]) -> None:
        try:
            await self._retrying(lambda: self._handle(cmd), cmd.call_id)
        except REFUSED as exc:  # the same answer every time: retrying would hold back every later event
            await self._reject(BadInput(str(exc), code=getattr(exc, "code", "refused")), event)

    async def _retrying(self, write: Callable[[], Awaitable[object]], call_id: str) -> None:
        """`write` until it is done; only a store that is down is waited for (`REFUSED` is raised)."""
        delay = self._backoff[0]
        while True:  # the store may be down for a while: keep the event, retry
            try:
                await write()
                return
            except (asyncio.CancelledError, *REFUSED):
                raise
            except Exception:
                log.exception("ami_event_not_recorded", call_id=call_id, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])


def listeners(config: AmiConfig | None, handle: Handle, clock: Clock) -> list[Task]:
    """The AMI follower when `INTAKE_AMI_URL` is set."""
    if config is None:
        return []
    return [AmiClient(config, handle, now=clock.now).run]
