"""A fake Asterisk manager speaking the real AMI wire protocol (banner, ActionID echo, Ping).

It keeps the queue's waiting callers so that `QueueStatus` answers like Asterisk,
and `restart()` drops every connection and forgets the calls, as a PBX restart does.
"""

from __future__ import annotations

import asyncio
from typing import Any

BANNER = b"Asterisk Call Manager/5.0.2\r\n"


def frame(fields: dict[str, Any]) -> bytes:
    """One AMI message: `Key: value` lines and a blank line."""
    lines = []
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key}: {item}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse(block: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in block.split("\r\n") if ": " in line)


class FakeAmi:
    """Serves AMI on 127.0.0.1; `send()` pushes events to every logged-in client."""

    def __init__(self) -> None:
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.waiting: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        """The callers' channels the PBX has (`CoreShowChannels`): waiting, or talking to an agent."""
        self.actions: list[dict[str, str]] = []
        self.logins = 0
        self.queue_status_errors = 0
        """How many `QueueStatus` to answer `Response: Error` first, as Asterisk does while it is
        still loading `app_queue` after a restart (the manager is up before the modules)."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def restart(self) -> None:
        """A PBX restart: connections drop, calls in queues are gone."""
        await self.stop()
        self.waiting.clear()
        self.channels.clear()
        await self.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        writer.write(BANNER)
        buffer = ""
        try:
            while data := await reader.read(4096):
                buffer += data.decode()
                *blocks, buffer = buffer.split("\r\n\r\n")
                for block in blocks:
                    await self._answer(parse(block), writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            if writer in self.writers:
                self.writers.remove(writer)
            writer.close()

    async def _answer(self, action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        self.actions.append(action)
        name, action_id = action.get("Action", "").lower(), action.get("ActionID", "")
        if name == "login":
            self.logins += 1
            writer.write(frame({"Response": "Success", "ActionID": action_id,
                                "Message": "Authentication accepted"}))
            writer.write(frame({"Event": "FullyBooted", "Privilege": "system,all", "Status": "Fully Booted"}))
            self.writers.append(writer)
        elif name == "ping":
            writer.write(frame({"Response": "Success", "ActionID": action_id, "Ping": "Pong",
                                "Timestamp": "1700000000.000000"}))
        elif name == "queuestatus" and self.queue_status_errors:
            self.queue_status_errors -= 1
            writer.write(frame({"Response": "Error", "ActionID": action_id,
                                "Message": "Invalid/unknown command"}))
        elif name == "queuestatus":
            writer.write(frame({"Response": "Success", "ActionID": action_id, "EventList": "start",
                                "Message": "Queue status will follow"}))
            for entry in self.waiting.values():
                writer.write(frame({"Event": "QueueEntry", "ActionID": action_id, **entry}))
            writer.write(frame({"Event": "QueueStatusComplete", "ActionID": action_id,
                                "EventList": "Complete", "ListItems": len(self.waiting)}))
        elif name == "coreshowchannels":
            writer.write(frame({"Response": "Success", "ActionID": action_id, "EventList": "start",
                                "Message": "Channels will follow"}))
            for entry in self.channels.values():
                writer.write(frame({"Event": "CoreShowChannel", "ActionID": action_id, **entry}))
            writer.write(frame({"Event": "CoreShowChannelsComplete", "ActionID": action_id,
                                "EventList": "Complete", "ListItems": len(self.channels)}))
        else:
            writer.write(frame({"Response": "Error", "ActionID": action_id,
                                "Message": "Invalid/unknown command"}))
        await writer.drain()

    async def send(self, *events: dict[str, Any], raw: bytes = b"") -> None:
        """Push events (and optionally raw bytes) to every logged-in client."""
        for event in events:
            self._track(event)
        payload = raw + b"".join(frame(e) for e in events)
        for writer in list(self.writers):
            writer.write(payload)
            await writer.drain()

    def _track(self, event: dict[str, Any]) -> None:
        uid = str(event.get("Uniqueid"))
        if event.get("Event") == "QueueCallerJoin":
            self.waiting[uid] = {k: event[k] for k in ("Queue", "Uniqueid", "CallerIDNum") if k in event}
            self.channels[uid] = {k: event[k] for k in ("Channel", "Uniqueid", "CallerIDNum") if k in event}
        elif event.get("Event") in ("QueueCallerAbandon", "AgentConnect", "Hangup"):
            self.waiting.pop(uid, None)
        if event.get("Event") in ("QueueCallerAbandon", "Hangup"):
            self.channels.pop(uid, None)
