"""Moving a case between levels of the organisation, and routing new cases to their level.

- `ReportCaseUp` (上报): the level holding a waiting case hands it to the level above.
- `DispatchCaseDown` (下派): a level hands a waiting case in its subtree to a sub-centre under
  it, or straight to a unit (then it is the ordinary `DispatchCase`, with the dispatching level
  recorded, so a rejection returns the case to that level).
- `RouteCase`: `CaseRouter`, a reactor, sends each new (or newly located) case to the node
  configured for its category, else to the sub-centre serving its district, else the city;
  a case a person has moved, or one already dispatched, is not routed again.
Every move is a `CaseMoved` on the case's stream; the response deadline keeps running from
acceptance and no move between levels starts a confirmation clock (docs/organisation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import asyncpg
import structlog

from dispatch.cases.actions import CaseAction, DispatchCase, apply_events, decide_dispatch
from dispatch.cases.events import CaseMoved
from dispatch.cases.sla import SlaConfig
from dispatch.cases.state import CaseState, case_stream, load_case
from dispatch.cases.status import WAITING
from dispatch.core.bus import Handler, Send
from dispatch.core.capability import Deps
from dispatch.core.clock import Clock
from dispatch.core.errors import DispatchError, InvalidCommand, NotAllowed, StaleVersion
from dispatch.core.messages import Command, Event
from dispatch.org.directory import OrgDirectory, load_tree
from dispatch.org.tree import HOLDING_LEVELS, OrgTree
from eventstore import EventStore, RecordedEvent

log = structlog.get_logger(__name__)

ACTOR = "policy:org"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportCaseUp(CaseAction):
    """The level holding the case (`level`, the actor's node; None: the city) reports it up."""

    reason: str
    level: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchCaseDown(CaseAction):
    """A level (`level`, the actor's node; None: the city) hands the case down to node `to`."""

    to: str
    note: str | None = None
    level: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteCase(CaseAction):
    """Automatic routing: give the case to `owner` (`reason`: category, district, no_place)."""

    owner: str
    reason: str


def _acting_level(tree: OrgTree, level: str | None) -> str:
    """The node an action is taken for: the actor's, or the city for an unscoped actor."""
    root = tree.root
    node = level or (root.id if root is not None else None)
    if node is None or tree.get(node) is None:
        raise NotAllowed("no organisation is loaded" if node is None else f"no organisation node {node!r}")
    return node


def _holds(s: CaseState, tree: OrgTree, level: str) -> None:
    """The case waits for dispatch and is held within `level`'s subtree (an unrouted case: the city's)."""
    if s.status not in WAITING:
        raise NotAllowed(f"case {s.case_id} is {s.status}; only a case waiting for dispatch moves")
    root = tree.root
    owner = s.owner or (root.id if root is not None else None)
    if not tree.contains(level, owner):
        raise NotAllowed(f"case {s.case_id} is held by another level")


def decide_report_up(s: CaseState, c: ReportCaseUp, tree: OrgTree, now: datetime) -> list[Event]:
    """The holder's level hands the case to its parent (a reason is required)."""
    level = _acting_level(tree, c.level)
    _holds(s, tree, level)
    if not c.reason.strip():
        raise InvalidCommand("reporting a case up needs a reason", field="reason")
    owner = s.owner or level
    parent = tree.get((tree.get(owner) or tree.nodes[level]).parent)
    if parent is None:
        raise NotAllowed(f"case {s.case_id} is held by the top level; there is no level above")
    return [CaseMoved(s.case_id, parent.id, "reported_up", now, owner, c.reason, c.actor)]


def decide_dispatch_down(
    s: CaseState, c: DispatchCaseDown, tree: OrgTree, now: datetime, cfg: SlaConfig
) -> list[Event]:
    """Hand the case to a sub-centre under the acting level, or dispatch it to a unit under it."""
    level = _acting_level(tree, c.level)
    _holds(s, tree, level)
    target = tree.get(c.to)
    if target is None:
        raise InvalidCommand(f"no organisation node {c.to!r}", field="to")
    if target.id == level or not tree.contains(level, target.id):
        raise NotAllowed(f"{target.id} is not under {level}")
    if target.level not in HOLDING_LEVELS:
        return decide_dispatch(s, DispatchCase(case_id=s.case_id, to=target.id, kind="unit", note=c.note,
                                               actor=c.actor, level=level), now, cfg)
    if target.id == s.owner:
        raise NotAllowed(f"case {s.case_id} is held by {target.id} already")
    return [CaseMoved(s.case_id, target.id, "dispatched_down", now, s.owner, c.note, c.actor)]


def decide_route(s: CaseState, c: RouteCase, now: datetime) -> list[Event]:
    """Route a waiting case nobody has moved by hand; nothing when it is there already."""
    if s.moved_by_hand or s.status not in WAITING or s.owner == c.owner:
        return []
    return [CaseMoved(s.case_id, c.owner, "routed", now, s.owner, c.reason, c.actor)]


async def _checked(store: EventStore, cmd: CaseAction) -> CaseState:
    state = await load_case(store, cmd.case_id)
    if cmd.expected_version is not None and cmd.expected_version != state.version:
        raise StaleVersion(case_stream(cmd.case_id), cmd.expected_version, state.version)
    return state


async def handle_move(
    cmd: ReportCaseUp | DispatchCaseDown, *, store: EventStore, clock: Clock, sla: SlaConfig,
    pool: asyncpg.Pool,
) -> CaseState:
    """Load the case and the tree, decide the move and append it; answer the new state."""
    if cmd.idempotency_key is not None and await store.find_by_idempotency_key(cmd.idempotency_key):
        return await load_case(store, cmd.case_id)
    state = await _checked(store, cmd)
    tree = await load_tree(pool)
    if isinstance(cmd, ReportCaseUp):
        events = decide_report_up(state, cmd, tree, clock.now())
    else:
        events = decide_dispatch_down(state, cmd, tree, clock.now(), sla)
    return await apply_events(store, state, events, actor=cmd.actor, idempotency_key=cmd.idempotency_key)


async def route_case(cmd: RouteCase, *, store: EventStore, clock: Clock) -> CaseState:
    """Record the routing decided by the router (nothing when it no longer applies)."""
    state = await _checked(store, cmd)
    return await apply_events(store, state, decide_route(state, cmd, clock.now()), actor=cmd.actor,
                              idempotency_key=cmd.idempotency_key)


HANDLERS: dict[type[Command], Handler] = {
    ReportCaseUp: handle_move, DispatchCaseDown: handle_move, RouteCase: route_case,
}


class OrgSettings(Protocol):
    """The configuration section routing reads."""

    @property
    def routes(self) -> Mapping[str, str]:
        """Category -> the node its cases go to straight (`INTAKE_ORG_ROUTES`)."""
        ...


class RoutingSettings(Protocol):
    """The settings as the router sees them."""

    @property
    def org(self) -> OrgSettings:
        """The organisation section."""
        ...


class OrgDeps(Deps, Protocol):
    """What the organisation capability's hooks use."""

    @property
    def settings(self) -> RoutingSettings:
        """The configuration."""
        ...


class CaseRouter:
    """Reactor: routes each registered case, and each case located later, to its level."""

    name = "org_router"
    categories: frozenset[str] | None = frozenset({"case"})
    types = frozenset({"CaseRegistered", "CaseLocated"})
    """The only event types it handles: the store skips the others (eventstore/subscriptions.py)."""

    def __init__(self, store: EventStore, pool: asyncpg.Pool, routes: Mapping[str, str], send: Send,
                 directory: OrgDirectory | None = None) -> None:
        self._store, self._pool, self._routes, self._send = store, pool, routes, send
        self._directory = directory or OrgDirectory()

    async def react(self, event: RecordedEvent) -> None:
        """On `CaseRegistered` and `CaseLocated`: send `RouteCase` when the route differs (decided
        again on the newest state when another event got there first)."""
        await self.react_batch([event])

    async def react_batch(self, events: Sequence[RecordedEvent]) -> None:
        """`react` on each, with the tree's version read once for the batch (a `BatchReactor`):
        a storm's cases cost one reference query per runner step, not one each."""
        wanted = [event for event in events if event.type in ("CaseRegistered", "CaseLocated")]
        tree = await self._directory.tree(self._pool) if wanted else None
        if not tree:
            return
        for event in wanted:
            await self._route(tree, event)

    async def _route(self, tree: OrgTree, event: RecordedEvent) -> None:
        for attempt in range(3):
            state = await load_case(self._store, str(event.data["case_id"]))
            district = state.location.district if state.location else None
            route = tree.route(state.category, district, self._routes)
            if (route is None or state.moved_by_hand or state.owner == route.owner
                    or state.status not in WAITING):
                return
            try:
                await self._send(RouteCase(case_id=state.case_id, owner=route.owner, reason=route.reason,
                                           expected_version=state.version, actor=ACTOR,
                                           idempotency_key=f"{self.name}:{event.position}:{attempt}"))
                return
            except StaleVersion:
                continue
            except DispatchError as exc:
                log.info("route_refused", case_id=state.case_id, error=str(exc))
                return
        log.warning("route_gave_up", case_id=str(event.data["case_id"]))


def reactors(deps: OrgDeps) -> list[CaseRouter]:
    """The case router."""
    return [CaseRouter(deps.store, deps.pool, deps.settings.org.routes, deps.bus.handle)]
