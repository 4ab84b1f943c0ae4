"""SLA rules (pure): stage limits, deadlines, lights, the priority score and queue order.

Response limits are CONTRACT.md's (15 / 30 / 60 / 90 min by priority); every
other figure is configurable (`SlaConfig`, read from `INTAKE_SLA_*` variables by
the gateway's settings; docs/cases-sla.md); the defaults are DOMAIN.md's.

Lights (exact rule). A case has a running `deadline` (the response deadline
until a unit confirms it, then the completion deadline, moved by an approved
extension). Two rules are evaluated and the worse light wins:
- deadline rule (every case): red from the deadline on; yellow from
  `deadline - near_fraction * (deadline - deadline_from)` on ("near its deadline");
  the same for the confirmation limit while the unit it was (last) dispatched to has not
  confirmed it (`confirm_by`, 30 min): a case overdue for confirmation is overdue;
- day rule (transferred cases, i.e. dispatched at least once): yellow once the
  unit has done nothing for `yellow_untouched_days` (5) since the transfer or
  its last action; red once `red_days` (7) have passed since the first transfer.
A finished case (completed, called back, archived or closed) keeps the light it
had when it finished: green if handled in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatch.cases.registration import RESPONSE_LIMIT_MINUTES
from dispatch.cases.status import DONE, CaseStatus
from dispatch.core.errors import InvalidConfig, check_number

LIGHTS: tuple[str, ...] = ("green", "yellow", "red")

_IMPORTANCE: dict[str, float] = {
    "vip": 1.0, "important": 0.7, "elderly": 0.7, "one_touch_elderly": 0.8, "enterprise": 0.5,
}
_COMPLEXITY: dict[str, float] = {
    "power_fault": 0.6, "voltage_anomaly": 0.4, "elderly_emergency": 0.8, "complaint": 0.5,
    "enterprise_service": 0.4, "home_service": 0.3, "elderly_care": 0.4, "public_affairs": 0.4,
}
_SCOPE_COMPLEXITY: dict[str, float] = {"household": 0.0, "building": 0.3, "area": 0.6, "street": 0.6}
_LEVEL_WEIGHT: dict[int, float] = {1: 8.0, 2: 4.0, 3: 2.0, 4: 1.0}
_URGENCY_CAP = 0.95
CHASE_INTERVAL_FLOOR = 0.1
"""Minutes: a shorter (or zero) chasing interval would chase a unit in a busy loop."""


@dataclass(frozen=True, slots=True)
class SlaConfig:
    """Stage limits and light thresholds (minutes unless named otherwise)."""

    confirm_minutes: float = 30.0
    complete_hours: Mapping[int, float] = field(
        default_factory=lambda: {1: 4.0, 2: 12.0, 3: 72.0, 4: 72.0}
    )
    callback_hours: float = 12.0
    archive_hours: float = 24.0
    near_fraction: float = 0.2
    yellow_untouched_days: float = 5.0
    red_days: float = 7.0
    chase_interval_minutes: float = 15.0
    supplement_after_days: float = 7.0

    def __post_init__(self) -> None:
        for name in ("confirm_minutes", "callback_hours", "archive_hours", "yellow_untouched_days",
                     "red_days", "chase_interval_minutes", "supplement_after_days"):
            check_number(name, getattr(self, name), 0.0)
        check_number("near_fraction", self.near_fraction, 0.0, 1.0)
        for level, hours in self.complete_hours.items():
            if level not in RESPONSE_LIMIT_MINUTES:
                raise InvalidConfig("complete_hours",
                                    f"must name priorities {sorted(RESPONSE_LIMIT_MINUTES)} only")
            check_number("complete_hours", hours, 0.0)

    @staticmethod
    def response_limit(priority: int) -> timedelta:
        """T1: how long a case of this priority may wait for a unit to respond (CONTRACT.md)."""
        return timedelta(minutes=RESPONSE_LIMIT_MINUTES.get(priority, 90))

    def confirm_limit(self) -> timedelta:
        """How long a receiving unit has to confirm a transferred case (30 min)."""
        return timedelta(minutes=self.confirm_minutes)

    def complete_limit(self, priority: int) -> timedelta:
        """T3: how long a unit has from confirmation to completion."""
        return timedelta(hours=self.complete_hours.get(priority, 72.0))

    def callback_limit(self) -> timedelta:
        """How long after completion the citizen must be called back."""
        return timedelta(hours=self.callback_hours)

    def archive_limit(self) -> timedelta:
        """Completion to archive, at most (24 h)."""
        return timedelta(hours=self.archive_hours)

    def chase_interval(self) -> timedelta:
        """How often a silent unit is chased once a stage is overdue."""
        return timedelta(minutes=max(self.chase_interval_minutes, CHASE_INTERVAL_FLOOR))

    def supplement_after(self) -> timedelta:
        """How long after closing a case may be supplemented (12345: from day 7)."""
        return timedelta(days=self.supplement_after_days)


@dataclass(frozen=True, slots=True)
class Clocks:
    """The instants of a case the light depends on."""

    status: CaseStatus
    deadline: datetime | None
    deadline_from: datetime | None
    dispatched_at: datetime | None = None
    last_touched_at: datetime | None = None
    finished_at: datetime | None = None
    confirm_by: datetime | None = None
    """Set while the unit the case was last dispatched to has not confirmed it."""
    confirm_from: datetime | None = None
    """When that dispatch was (the start of the confirmation limit)."""


def light_changes(c: Clocks, cfg: SlaConfig) -> tuple[datetime | None, datetime | None]:
    """The instants (yellow_at, red_at) at which an open case turns yellow and red."""
    yellow: list[datetime] = []
    red: list[datetime] = []
    for deadline, start in ((c.deadline, c.deadline_from), (c.confirm_by, c.confirm_from)):
        if deadline is not None:
            red.append(deadline)
            yellow.append(deadline - (deadline - (start or deadline)) * cfg.near_fraction)
    if c.dispatched_at is not None:
        touched = c.last_touched_at or c.dispatched_at
        yellow.append(touched + timedelta(days=cfg.yellow_untouched_days))
        red.append(c.dispatched_at + timedelta(days=cfg.red_days))
    return (min(yellow) if yellow else None), (min(red) if red else None)


def light_at(yellow_at: datetime | None, red_at: datetime | None, now: datetime) -> str:
    """The light at `now` from the instants it changes."""
    if red_at is not None and now >= red_at:
        return "red"
    if yellow_at is not None and now >= yellow_at:
        return "yellow"
    return "green"


def light(c: Clocks, cfg: SlaConfig, now: datetime) -> str:
    """The case's light (see the module doc); a finished case is judged when it finished."""
    at = c.finished_at if c.status in DONE and c.finished_at is not None else now
    return light_at(*light_changes(c, cfg), at)


@dataclass(frozen=True, slots=True)
class Urgency:
    """What the priority score weighs: level, elapsed share of the limit, complexity, importance."""

    priority: int
    elapsed: timedelta
    limit: timedelta
    complexity: float = 0.0
    importance: float = 0.0


def complexity_of(category: str, fault_scope: str | None = None) -> float:
    """0..1: how much work the case is likely to be (category, and a fault's scope)."""
    scope = _SCOPE_COMPLEXITY.get((fault_scope or "").lower(), 0.0)
    return min(1.0, _COMPLEXITY.get(category, 0.2) + scope)


def importance_of(flags: tuple[str, ...], customer_type: str | None = None) -> float:
    """0..1: customer importance (VIP, important, elderly, enterprise customers)."""
    marks = set(flags) | ({customer_type} if customer_type else set())
    return max((_IMPORTANCE.get(m, 0.0) for m in marks), default=0.0)


def priority_score(u: Urgency) -> float:
    """A score that rises as elapsed time t nears the limit T (and keeps rising past it).

    `level weight * (1 + complexity) * (1 + importance) * f(t/T)` with
    `f(x) = 1 / (1 - x)` up to x = 0.95, then rising linearly (20 per limit
    overdue), so the score is continuous and monotonic in t.
    """
    limit = max(u.limit.total_seconds(), 1.0)
    x = max(u.elapsed.total_seconds(), 0.0) / limit
    if x <= _URGENCY_CAP:
        pressure = 1.0 / (1.0 - x)
    else:
        pressure = 1.0 / (1.0 - _URGENCY_CAP) + (x - _URGENCY_CAP) * 20.0
    weight = _LEVEL_WEIGHT.get(u.priority, 1.0)
    return round(weight * (1.0 + u.complexity) * (1.0 + u.importance) * pressure, 4)


def green_channel(priority: int) -> bool:
    """Priority 1 (urgent fault, elderly emergency) skips the queue."""
    return priority == 1


def queue_key(priority: int, score: float, accepted_at: datetime) -> tuple[int, float, datetime]:
    """Sort key of the dispatch queue: green channel first, then higher score, then older."""
    return (0 if green_channel(priority) else 1, -score, accepted_at)
