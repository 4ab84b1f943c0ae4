"""Legal hold on a case (PIPL Art. 47, last paragraph: deletion yields where another law
requires keeping the data - a lawsuit, an investigation, an audit).

A hold is recorded on the case's stream (`CaseLegalHoldSet` / `CaseLegalHoldReleased`) and
folded into `CaseState.legal_hold`. While any case of a person is held, an erasure on the
person's request, on withdrawn consent, on a fulfilled purpose or at the end of its retention
period is refused (`LegalHoldActive`, 409 `legal_hold`); only an erasure ordered by a competent
authority (`legal_basis` "order") goes through.

Who: a dispatcher, an auditor or an admin may set a hold (the centre learns of a lawsuit first);
only an auditor or an admin may release one, so that evidence is never let go by the people
whose handling it may be about.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dispatch.cases.actions import CaseAction, apply_events
from dispatch.cases.events import CaseLegalHoldReleased, CaseLegalHoldSet
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import CaseState, case_stream, load_case
from dispatch.core.bus import Handler
from dispatch.core.clock import Clock
from dispatch.core.errors import InvalidCommand, NotAllowed, StaleVersion
from dispatch.core.messages import Command, Event
from eventstore import EventStore

MAX_REASON = 500
SETTERS: tuple[str, ...] = ("dispatcher", "auditor", "admin")
"""The roles that may set a hold."""
RELEASERS: tuple[str, ...] = ("auditor", "admin")
"""The roles that may release one."""


class LegalHoldActive(NotAllowed):
    """An erasure refused because cases of the person are on legal hold."""

    code = "legal_hold"

    def __init__(self, case_ids: list[str]) -> None:
        super().__init__(f"cases on legal hold: {', '.join(case_ids)}; release the hold, or erase on "
                         "legal_basis order")
        self.case_ids = case_ids


@dataclass(frozen=True, slots=True, kw_only=True)
class SetLegalHold(CaseAction):
    """Put a legal hold on the case (`hold`), or release it, with a reason."""

    hold: bool
    reason: str


def _role(actor: str | None) -> str | None:
    return None if actor is None else actor.split(":", 1)[0]


def decide_legal_hold(s: CaseState, c: SetLegalHold, now: datetime, cfg: SlaConfig) -> list[Event]:
    """Set a hold on a case without one, or release the one it has; any status (an archived
    case is the usual one)."""
    reason = c.reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidCommand(f"a reason of at most {MAX_REASON} characters is required", field="reason")
    role = _role(c.actor)
    if c.hold:
        if role is not None and role not in SETTERS:
            raise NotAllowed(f"a legal hold is set by {', '.join(SETTERS)}")
        if s.legal_hold is not None:
            raise NotAllowed(f"case {s.case_id} is already on legal hold")
        return [CaseLegalHoldSet(s.case_id, reason, c.actor, now)]
    if role is not None and role not in RELEASERS:
        raise NotAllowed(f"a legal hold is released by {', '.join(RELEASERS)}")
    if s.legal_hold is None:
        raise NotAllowed(f"case {s.case_id} is not on legal hold")
    return [CaseLegalHoldReleased(s.case_id, reason, c.actor, now)]


async def set_legal_hold(cmd: SetLegalHold, *, store: EventStore, clock: Clock, sla: SlaConfig) -> CaseState:
    """Load the case, decide, append; answer the new state."""
    state = await load_case(store, cmd.case_id)
    if cmd.expected_version is not None and cmd.expected_version != state.version:
        raise StaleVersion(case_stream(cmd.case_id), cmd.expected_version, state.version)
    events = decide_legal_hold(state, cmd, clock.now(), sla)
    return await apply_events(store, state, events, actor=cmd.actor, idempotency_key=cmd.idempotency_key)


def held(states: list[CaseState]) -> list[str]:
    """The ids of the cases on legal hold among these."""
    return [s.case_id for s in states if s.legal_hold is not None]


HANDLERS: dict[type[Command], Handler] = {SetLegalHold: set_legal_hold}
