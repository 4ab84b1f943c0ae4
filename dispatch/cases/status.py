"""Where a case stands in its lifecycle, and the named groups of statuses the rules use.

The lifecycle (docs/cases-sla.md): accepted -> classified -> dispatched ->
confirmed | rejected (re-dispatch) -> in_progress (feedback) -> completed ->
called_back -> archived; `close` ends a case at any point. The values are the
strings stored in events' folds and in the `cases.status` column.
"""

from __future__ import annotations

from enum import StrEnum


class CaseStatus(StrEnum):
    """The status of a case (its value is what the read model and the API show)."""

    NEW = "new"
    ACCEPTED = "accepted"
    CLASSIFIED = "classified"
    DISPATCHED = "dispatched"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CALLED_BACK = "called_back"
    ARCHIVED = "archived"
    CLOSED = "closed"


DONE: frozenset[CaseStatus] = frozenset(
    {CaseStatus.COMPLETED, CaseStatus.CALLED_BACK, CaseStatus.ARCHIVED, CaseStatus.CLOSED}
)
"""Finished: the matter is handled or the case was closed (Open311 says `closed`)."""

WAITING: frozenset[CaseStatus] = frozenset(
    {CaseStatus.ACCEPTED, CaseStatus.CLASSIFIED, CaseStatus.REJECTED}
)
"""Waiting for (re-)dispatch: the dispatch queue; only these may be classified."""

WORKING: frozenset[CaseStatus] = frozenset({CaseStatus.CONFIRMED, CaseStatus.IN_PROGRESS})
"""A unit has confirmed the case and works on it (extensions and feedback allowed)."""

BUSY: frozenset[CaseStatus] = frozenset({CaseStatus.DISPATCHED, *WORKING})
"""Held by its assignee: what counts against a provider's capacity."""

CALLBACK_DUE: frozenset[CaseStatus] = frozenset({CaseStatus.COMPLETED, CaseStatus.ARCHIVED})
"""Where a call-back may still be recorded: handled, or archived without one."""

OPEN: frozenset[CaseStatus] = WAITING | BUSY
"""Registered and not finished: a case that may still be (re-)dispatched."""
