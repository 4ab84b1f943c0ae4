"""The instants a channel accepts: aware, and within years a log of contacts can mean."""

from __future__ import annotations

from datetime import UTC, datetime

from channels.errors import BadInput

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def plausible(instant: datetime) -> bool:
    """Whether an aware instant lies in 2000-2099 (UTC).

    Year 1 or 9999 with an offset parses, and is stored, but overflows PostgreSQL's
    timestamptz (or a deadline computed from it) in the projections: each one that
    meets the event fails on it, for ever.
    """
    return EARLIEST <= instant < LATEST


def parse_time(value: str, name: str = "at") -> datetime:
    """An RFC 3339 / ISO-8601 instant with its offset (`Z` or `z` for UTC) in 2000-2099, or
    `BadInput` naming the field and what is wrong."""
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"field {name!r} is not an ISO-8601 time", code="bad_field") from exc
    if instant.tzinfo is None:
        raise BadInput(f"field {name!r} needs a timezone (e.g. Z or +08:00)", code="bad_field")
    if not plausible(instant):
        raise BadInput(f"field {name!r} must lie in the years 2000-2099", code="bad_field")
    return instant
