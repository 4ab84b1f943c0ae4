"""Which driver errors mean that PostgreSQL cannot be reached, and connections that never hang on it.

Shared by the store, group commit and the gateway: each of these errors answers
503 + Retry-After, never a 500, whatever the statement was.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,  # ConnectionDoesNotExistError: the connection was lost mid-operation
    asyncpg.InternalClientError,  # a protocol left mid-error by a session killed while idle
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.OperatorInterventionError,  # class 57: admin / crash shutdown, cannot connect now, cancelled
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.ObjectNotInPrerequisiteStateError,  # 55000 "database is not accepting connections"; lock timeout
    asyncpg.ReadOnlySQLTransactionError,  # 25006: a standby after a failover, or writes switched off
)
"""Errors that mean the database is unreachable (or refusing work) rather than the request wrong."""


class DroppingConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that is dropped, not cancelled, when an operation on it is abandoned.

    asyncpg answers a cancelled or timed-out statement with a CancelRequest
    sent over a second connection, and the first one is not usable (nor
    released to its pool) until the server acknowledges it. With the server
    unreachable (packets dropped) that acknowledgement never comes: the
    release waited up to the command timeout, past a request's deadline, and
    a LISTEN connection left in that state failed its teardown ("another
    operation is in progress"). Dropping the connection instead answers at
    once; the server notices within `client_connection_check_interval`
    (`create_pool` sets it) and stops the statement.
    """

    __slots__ = ()

    def _cancel_current_command(self, waiter: Any, cancel_waiter: Any = None) -> None:
        # Called inside the protocol's own cancel step, which still writes to the transport:
        # drop it on the next turn of the loop. Only the transport: its pool holder stays
        # checked out until the owner releases it, which then finds it closed and frees it.
        self._loop.call_soon(self._drop_transport)
        if not waiter.done():
            waiter.set_result(None)

    def _drop_transport(self) -> None:
        if self._protocol is not None:
            self._protocol.abort()

def drop(conn: asyncpg.Connection) -> None:
    """Terminate a pooled connection so that it is never handed out again (no-op once released)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()
