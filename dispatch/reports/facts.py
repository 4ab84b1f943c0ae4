"""What the reports count, as pure code: one fact per call and per case, folded from their
events, and the bucket counts each fact contributes to.

A fact's contributions are `(report, dim, key, day, measure) -> whole number`: `day` is the
local date (Asia/Shanghai) the measure counts on, `dim` the grouping (`all`, `category`,
`unit`, ...) and `key` its value. The projection keeps the sum of every fact's contributions
per bucket; when a fact changes it adds the difference between its new and its old
contributions, so a call or case counts once however many events it has. Durations are whole
milliseconds and scores whole points, so sums are exact.

Where each measure counts (docs/reports.md):
- calls: on the day the call was offered (its first event);
- a case's counts (category, district, channel, unit, agent, repeat contacts, first-contact
  resolution, praise, criticism, complaints and their 7 / 10-day marks): its acceptance day;
- a dispatch (confirmation and completion on time, rejection, wrong rejection): its dispatch day;
- a call-back (outcome and 1-5 scores): its day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeAlias

from dispatch.cases.events import (
    CallbackRecorded,
    CaseClassified,
    CaseClosed,
    CaseCompleted,
    CaseConfirmed,
    CaseDispatched,
    CaseLocated,
    CaseMoved,
    CaseRegistered,
    CaseRejected,
    ExtensionDecided,
    FeedbackGiven,
)
from dispatch.core.messages import Event
from dispatch.core.personal import ERASED
from dispatch.core.texts import LOCAL_TIME

Bucket: TypeAlias = tuple[str, str, str, date, str]
"""(report, dim, key, local day, measure)."""
Contributions: TypeAlias = Counter[Bucket]

REPEAT_WINDOW = timedelta(days=7)
"""A case is a repeat contact when the same caller's previous case was accepted this recently;
a case is resolved at first contact when its caller opens no other case within it."""
COMPLAINT_RESPONSE = timedelta(days=7)
COMPLAINT_RESOLUTION = timedelta(days=10)
"""Complaints: answered within 7 days, resolved within 10 (DOMAIN.md, "Measures")."""
PRAISE, CRITICISM = "praise", "complaint"
"""The categories counted as praise and as criticism."""
NONE = "-"
"""The key of a fact without a value for the grouping (no district, no agent...)."""
AT_ORG = "@org"
"""Suffix of a grouping kept per holder too: its keys are `org_key(owner, unit, key)`."""
ORG_GROUPS = ("all", "category", "channel")
"""The case report's groupings that a token scoped to an organisation node may ask for: each is
also kept per holder (the node owning the case and the unit it is dispatched to), and its rows
are summed over the cases its subtree holds, as the board shows them (`scope_sql`)."""
ORG_SEPARATOR = "\x1f"
"""Between the parts of a holder's bucket key (ASCII unit separator: in no id or key)."""


def org_key(owner: str | None, unit: str | None, key: str) -> str:
    """The key of a holder's bucket: owner, unit and the grouping's key, separated by US."""
    return ORG_SEPARATOR.join((owner or NONE, unit or NONE, key))


def local_day(at: datetime) -> date:
    """The date of an instant in Beijing time."""
    return at.astimezone(LOCAL_TIME).date()


def caller_key(evt: CaseRegistered) -> str | None:
    """Who opened a case, for repeat contacts: the phone number, else the OpenID, e-mail or device.

    A caller erased before the fact is read (`intake rebuild` after an erasure) reads `[erased]`
    for everyone: such a case keeps a caller of its own (`erased:<case id>`), so erased people's
    cases are not repeat contacts of each other; what the erasure's own token kept (one person's
    cases, `dispatch/personal/erasure.py`) a rebuild cannot know, so they count as not repeated."""
    c = evt.caller
    key = c.phone or c.openid or c.email or c.device_account
    return f"erased:{evt.case_id}" if key == ERASED else key


def _ms(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)


@dataclass(slots=True)
class CallFact:
    """One call: when it was offered, answered, abandoned, ended; its queue and agents."""

    call_id: str
    first_at: datetime | None = None
    offered_at: datetime | None = None
    answered_at: datetime | None = None
    abandoned_at: datetime | None = None
    ended_at: datetime | None = None
    answered: bool = False
    queue: str | None = None
    agents: tuple[str, ...] = ()

    def apply(self, kind: str, at: datetime, data: dict[str, Any]) -> None:
        """Fold one call event (`kind` offered, answered, abandoned or ended) at `at`."""
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        column = f"{kind}_at"
        if getattr(self, column) is None:
            setattr(self, column, at)
        self.queue = data.get("queue") or self.queue
        agent = data.get("agent")
        if kind == "answered":
            self.answered = True
            if agent and (not self.agents or self.agents[-1] != agent):
                self.agents = (*self.agents, agent)  # answered again by another agent: a transfer
        elif kind == "ended" and data.get("answered"):
            self.answered = True
            if agent and not self.agents:
                self.agents = (agent,)

    def contributions(self) -> Contributions:
        """What the call counts for, on the day it was offered."""
        out: Contributions = Counter()
        start = self.offered_at or self.first_at
        if start is None:
            return out
        day, handling = local_day(start), self._handling()
        measures = self._measures() | handling
        for dim, key in (("all", ""), ("queue", self.queue or NONE)):
            for measure, value in measures.items():
                out["calls", dim, key, day, measure] += value
        if self.agents and self.answered:
            for measure, value in ({"answered_calls": 1} | handling).items():
                out["agents", "agent", self.agents[0], day, measure] += value
        return out

    def _measures(self) -> dict[str, int]:
        measures: dict[str, int] = {"offered": 1}
        if self.answered:
            measures["answered"] = 1
        elif self.abandoned_at is not None:
            measures["abandoned"] = 1
        if self.answered_at is not None and self.offered_at is not None:
            measures |= {"wait_ms": _ms(self.answered_at - self.offered_at), "waits": 1}
        if len(self.agents) > 1:
            measures["transfers"] = len(self.agents) - 1
        return measures

    def _handling(self) -> dict[str, int]:
        if self.answered_at is None or self.ended_at is None:
            return {}
        return {"handle_ms": _ms(self.ended_at - self.answered_at), "handled": 1}


@dataclass(slots=True)
class Assignment:
    """One dispatch of a case to a unit and what the unit did with it."""

    unit: str
    at: datetime
    confirm_by: datetime | None = None
    confirmed_at: datetime | None = None
    complete_by: datetime | None = None
    completed_at: datetime | None = None
    rejected_at: datetime | None = None
    wrong_rejection: bool = False


@dataclass(slots=True)
class CaseFact:
    """One case, as the reports see it."""

    case_id: str
    accepted_at: datetime | None = None
    category: str = ""
    district: str | None = None
    channel: str = ""
    agent: str | None = None
    caller: str | None = None
    repeat: bool = False
    followed: bool = False
    assignments: list[Assignment] = field(default_factory=list)
    handler: str | None = None
    responded_at: datetime | None = None
    resolved_at: datetime | None = None
    callback_outcome: str | None = None
    callback_at: datetime | None = None
    callback_handler: str | None = None
    case_score: int | None = None
    unit_score: int | None = None
    owner: str | None = None
    """The organisation node holding the case now (None: the city's, before any routing)."""

    def _current(self, unit: str | None = None) -> Assignment | None:
        """The assignment in hand: the last dispatch, unless rejected (a dispatch to another unit
        takes the case from the one before); with `unit`, that unit's last one not rejected."""
        if unit is None:
            last = self.assignments[-1] if self.assignments else None
            return last if last is not None and last.rejected_at is None else None
        for a in reversed(self.assignments):
            if a.rejected_at is None and a.unit == unit:
                return a
        return None

    @property
    def unit(self) -> str | None:
        """The unit holding the case now (the last dispatch, unless rejected), else its handler."""
        current = self._current()
        return current.unit if current is not None else self.handler

    def apply(self, evt: Event, actor: str | None = None) -> None:
        """Fold one case event; `actor` is the event's recorded actor (`role:subject`)."""
        if isinstance(evt, CaseRegistered):
            self.accepted_at, self.category, self.channel = evt.accepted_at, evt.category, evt.channel
            self.district = evt.location.district if evt.location else None
            self.agent = actor.split(":", 1)[1] if actor and actor.startswith("agent:") else None
            self.caller = caller_key(evt)
            return
        applier = _APPLIERS.get(type(evt))
        if applier is not None:
            applier(self, evt)

    def _dispatched(self, e: CaseDispatched) -> None:
        if e.wrong_rejection_of:
            for a in reversed(self.assignments):
                if a.unit == e.wrong_rejection_of and a.rejected_at is not None:
                    a.wrong_rejection = True
                    break
        self.assignments.append(Assignment(e.assignee, e.dispatched_at, e.confirm_by))
        if e.level is not None:
            self.owner = e.level

    def _confirmed(self, e: CaseConfirmed) -> None:
        if (a := self._current(e.unit)) is not None:
            a.confirmed_at, a.complete_by = e.confirmed_at, e.complete_by

    def _rejected(self, e: CaseRejected) -> None:
        if (a := self._current(e.unit)) is not None:
            a.rejected_at = e.rejected_at

    def _extension(self, e: ExtensionDecided) -> None:
        if e.approved and e.until is not None and (a := self._current()) is not None:
            a.complete_by = e.until

    def _completed(self, e: CaseCompleted) -> None:
        if (a := self._current()) is not None and a.completed_at is None:
            a.completed_at = e.completed_at
            a.complete_by = a.complete_by or e.due  # completed unconfirmed: the limit it was under
        self.handler = e.handler or self.handler
        self._ended(e.completed_at)

    def _ended(self, at: datetime) -> None:
        self.responded_at = self.responded_at or at
        self.resolved_at = self.resolved_at or at

    def _callback(self, e: CallbackRecorded) -> None:
        self.callback_outcome, self.callback_at, self.callback_handler = e.outcome, e.at, e.handler
        self.case_score, self.unit_score = e.case_score, e.unit_score

    def contributions(self) -> Contributions:
        """What the case counts for (see the module's docstring for the days)."""
        out: Contributions = Counter()
        if self.accepted_at is None:
            return out
        day, unit, agent = local_day(self.accepted_at), self.unit or NONE, self.agent or NONE
        praise = {"praise": int(self.category == PRAISE), "criticism": int(self.category == CRITICISM)}
        self._cases(out, day, praise, unit, agent)
        if self.agent:
            out["agents", "agent", self.agent, day, "cases"] += 1
        for a in self.assignments:
            self._assignment(out, a)
        if self.category == CRITICISM:
            self._complaint(out, day, unit)
        self._called_back(out, unit, agent)
        return out

    def _cases(self, out: Contributions, day: date, praise: dict[str, int], unit: str, agent: str) -> None:
        """The case report's sums, per grouping (those of `ORG_GROUPS` also per holder: a
        sub-centre's report sums the cases it holds), and the satisfaction report's praise."""
        praised = {measure: value for measure, value in praise.items() if value}
        for dim, key in (("all", ""), ("unit", unit), ("agent", agent)):
            for measure, value in praised.items():
                out["satisfaction", dim, key, day, measure] += value
        counts = {measure: value for measure, value in (self._counts() | praise).items() if value}
        holder = self._current()
        for dim, key in (("all", ""), ("category", self.category), ("district", self.district or NONE),
                         ("channel", self.channel), ("unit", unit), ("agent", agent)):
            keys = [(dim, key)]
            if dim in ORG_GROUPS:
                keys.append((dim + AT_ORG, org_key(self.owner, holder.unit if holder else None, key)))
            for bucket_dim, bucket_key in keys:
                for measure, value in counts.items():
                    out["cases", bucket_dim, bucket_key, day, measure] += value

    def _counts(self) -> dict[str, int]:
        counts: dict[str, int] = {"cases": 1}
        if self.assignments:
            counts |= {"transferred": 1, "dispatches": len(self.assignments)}
        if self.caller:
            counts |= {"with_caller": 1, "repeat_contacts": int(self.repeat),
                       "first_contact_resolved": int(not self.followed)}
        return counts

    @staticmethod
    def _assignment(out: Contributions, a: Assignment) -> None:
        base = "units", "unit", a.unit, local_day(a.at)
        out[(*base, "dispatched")] += 1
        if a.confirmed_at is not None:
            out[(*base, "confirmed")] += 1
            out[(*base, "confirmed_on_time")] += int(a.confirm_by is None or a.confirmed_at <= a.confirm_by)
        if a.completed_at is not None:
            out[(*base, "completed")] += 1
            out[(*base, "completed_on_time")] += int(a.complete_by is None or a.completed_at <= a.complete_by)
        if a.rejected_at is not None:
            out[(*base, "rejected")] += 1
            out[(*base, "wrong_rejections")] += int(a.wrong_rejection)

    def _complaint(self, out: Contributions, day: date, unit: str) -> None:
        assert self.accepted_at is not None
        base = "units", "unit", unit, day
        out[(*base, "complaints")] += 1
        responded, resolved = self.responded_at, self.resolved_at
        out[(*base, "complaints_responded_7d")] += int(
            responded is not None and responded - self.accepted_at <= COMPLAINT_RESPONSE)
        out[(*base, "complaints_resolved_10d")] += int(
            resolved is not None and resolved - self.accepted_at <= COMPLAINT_RESOLUTION)

    def _called_back(self, out: Contributions, unit: str, agent: str) -> None:
        if self.callback_outcome is None or self.callback_at is None:
            return
        day, handler = local_day(self.callback_at), self.callback_handler or unit
        measures = {"callbacks": 1, self.callback_outcome: 1}
        if self.case_score is not None:
            measures |= {"case_score": self.case_score, "case_scores": 1}
        if self.unit_score is not None:
            measures |= {"unit_score": self.unit_score, "unit_scores": 1}
        for dim, key in (("all", ""), ("unit", handler), ("agent", agent)):
            for measure, value in measures.items():
                out["satisfaction", dim, key, day, measure] += value
        for measure, value in measures.items():
            out["units", "unit", handler, day, measure] += value
            if self.agent:
                out["agents", "agent", self.agent, day, measure] += value


_APPLIERS: dict[type[Event], Callable[[CaseFact, Any], None]] = {
    CaseClassified: lambda f, e: setattr(f, "category", e.category),
    CaseLocated: lambda f, e: setattr(f, "district", e.location.district),
    CaseDispatched: CaseFact._dispatched,
    CaseMoved: lambda f, e: setattr(f, "owner", e.owner),
    CaseConfirmed: CaseFact._confirmed,
    CaseRejected: CaseFact._rejected,
    ExtensionDecided: CaseFact._extension,
    FeedbackGiven: lambda f, e: setattr(f, "responded_at", f.responded_at or e.at),
    CaseCompleted: CaseFact._completed,
    CaseClosed: lambda f, e: f._ended(e.at),
    CallbackRecorded: CaseFact._callback,
}
"""How each case event after the registration changes a case's fact."""


def delta(old: Contributions, new: Contributions) -> Contributions:
    """What to add to the buckets when a fact's contributions change from `old` to `new`."""
    out: Contributions = Counter()
    for bucket in old.keys() | new.keys():
        change = new.get(bucket, 0) - old.get(bucket, 0)
        if change:
            out[bucket] = change
    return out
