"""The instants a channel accepts: aware, and within years a log of contacts can mean."""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def plausible(instant: datetime) -> bool:
    """Whether an aware instant lies in 2000-2099 (UTC).

    Year 1 or 9999 with an offset parses, and is stored, but overflows PostgreSQL's
    timestamptz (or a deadline computed from it) in the projections: each one that
    meets the event fails on it, for ever.
    """
    return EARLIEST <= instant < LATEST
