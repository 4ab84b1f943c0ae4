"""The SMS satisfaction survey: the citizen's 1-5 reply to the completion message.

The completion SMS (`notify.done_survey`) asks for a score from 1 to 5. A reply that is
only a score ("5", "５", "4分", "3星"), from the number of a case completed within
`SURVEY_DAYS`, is the citizen's answer to that case rather than a new contact:

- when no agent has called back yet, it is recorded as the call-back
  (`CallbackRecorded` by `citizen:sms`, the score as `case_score`; 3-5 satisfied,
  1-2 unsatisfied), which closes the loop as an agent's call-back would;
- when the case was already called back, the reply joins the case's conversation
  (`CaseMessageReceived`), so nothing is lost and no case is opened for a digit.

Any other text, or a score with no recently completed case, goes through SMS intake
as before. The reply's channel key makes a redelivery change nothing.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta

import asyncpg

from dispatch.cases.actions import RecordCallback, handle_action
from dispatch.cases.read_model import newest_completed_case_of_phone
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import CaseState, load_case
from dispatch.core.clock import Clock
from dispatch.core.errors import DispatchError
from eventstore import EventStore

SURVEY_DAYS = 7
"""How long after completion a bare score still answers the survey."""
ACTOR = "citizen:sms"
_SCORE = re.compile(r"^([1-5])(?:分|星|颗星)?$")
_NOISE = re.compile(r"[\s。.!！,，、~～]+")


def survey_score(text: str | None) -> int | None:
    """The score a reply gives (1-5), or None when the text is anything else."""
    if not text:
        return None
    found = _SCORE.match(_NOISE.sub("", unicodedata.normalize("NFKC", text)))
    return int(found.group(1)) if found else None


def outcome_of(score: int) -> str:
    """The call-back outcome a score stands for: 3-5 satisfied (基本满意 and up), 1-2 unsatisfied."""
    return "satisfied" if score >= 3 else "unsatisfied"


async def surveyed_case(store: EventStore, pool: asyncpg.Pool, phone: str, clock: Clock) -> CaseState | None:
    """The sender's case completed within the survey window, checked on its stream, if any."""
    since = clock.now() - timedelta(days=SURVEY_DAYS)
    try:
        async with pool.acquire() as conn:
            case_id = await newest_completed_case_of_phone(conn, phone, since)
    except asyncpg.UndefinedTableError:
        return None
    if case_id is None:
        return None
    state = await load_case(store, case_id)
    return state if state.completed_at is not None and state.completed_at >= since else None


async def record_answer(
    state: CaseState, score: int, key: str, *, store: EventStore, clock: Clock,
) -> CaseState | None:
    """Record the score as the case's call-back; None when the case was called back already."""
    if state.callback_outcome is not None:
        return None
    command = RecordCallback(case_id=state.case_id, outcome=outcome_of(score), case_score=score,
                             note=f"短信评价 {score}", actor=ACTOR, idempotency_key=key)
    try:
        return await handle_action(command, store=store, clock=clock, sla=SlaConfig())
    except DispatchError:
        return None  # an agent got there first: the reply joins the conversation instead
