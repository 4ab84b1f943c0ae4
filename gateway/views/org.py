"""The organisation as the API shows it, and what a token scoped to a node may see and do.

- `GET /api/v1/org` - the tree (nodes with level, parent, districts), the caller's node, and
  the nodes the caller may dispatch a case down to (`down_to`) or report it up to (`up_to`);
- `scope_of` - the node ids a request's caller sees (its subtree; None: an unscoped token sees
  the whole organisation); the case views, the live stream and the counts filter by it;
- `check_case` - a case outside the caller's subtree answers 404 as an unknown one would (a
  sub-centre learns nothing of another's cases); a centre action on a case the caller sees
  only because a unit of its subtree was given it, while another level holds it, answers 403;
- `Reach` - what else a scope covers, for the other resources (docs/organisation.md, "Scoped
  tokens"): its districts, the cases it sees among some, the agents and units of the subtree;
  `check_group` applies the case rule to a group of cases (an incident).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from aiohttp import web

from dispatch.cases.read_model import in_scope
from dispatch.cases.state import CaseState
from dispatch.core.errors import NotFound
from dispatch.core.messages import Json
from dispatch.org.directory import OrgDirectory
from dispatch.org.tree import HOLDING_LEVELS, LEVELS, OrgTree
from gateway.auth import Forbidden, Principal, require
from gateway.http import dumps, json_response
from gateway.services import SERVICES

ORG_DIRECTORY = web.AppKey("org_directory", OrgDirectory)
"""The app's cached view of the loaded tree."""
READERS = ("agent", "dispatcher", "unit", "auditor")


async def tree_of(request: web.Request) -> OrgTree:
    """The organisation tree loaded now."""
    directory = request.app.get(ORG_DIRECTORY) or OrgDirectory()
    return await directory.tree(request.app[SERVICES].pool)


async def scope_of(request: web.Request, who: Principal) -> frozenset[str] | None:
    """The node ids the caller sees: its node's subtree (empty for an unknown node); None: all (no
    scope, or the city's: the top of the tree sees what belongs to no node too)."""
    if who.org is None:
        return None
    tree = await tree_of(request)
    return None if tree.root is not None and tree.root.id == who.org else tree.subtree(who.org)


async def acting_level(request: web.Request, who: Principal) -> str | None:
    """The node a centre action is taken for: the token's, else the city (None: no tree loaded)."""
    if who.org is not None:
        return who.org
    root = (await tree_of(request)).root
    return None if root is None else root.id


def forbidden(message: str) -> Forbidden:
    """A 403 `forbidden` answer: the caller's scope does not reach what it acts on."""
    return Forbidden(text=dumps({"error": {"code": "forbidden", "message": message}}),
                     content_type="application/json")


async def unscoped(request: web.Request, who: Principal) -> Principal:
    """The caller of an endpoint over the whole organisation (the log, the tamper check): a
    token scoped to a node below the city gets 403."""
    if await scope_of(request, who) is not None:
        raise forbidden(f"{request.path} reads the whole organisation; this token is scoped to {who.org}")
    return who


def check_case(s: CaseState, scope: frozenset[str] | None, *, holding: bool = False) -> None:
    """404 for a case outside the scope; with `holding`, 403 unless a node of the scope holds it."""
    if not in_scope(scope, s.owner, s.assigned_to):
        raise NotFound(f"case {s.case_id} not found")
    if holding and scope is not None and s.owner not in scope:
        raise forbidden(f"case {s.case_id} is held by another level")


def check_group(what: str, holders: Iterable[tuple[str | None, str | None]],
                scope: frozenset[str] | None, *, holding: bool = False) -> None:
    """The case rule for a group of cases, as (owner, assigned_to) pairs: 404 unless one of them is
    in the scope; with `holding`, 403 unless the scope holds every one."""
    if scope is None:
        return
    pairs = list(holders)
    if not any(in_scope(scope, owner, assigned) for owner, assigned in pairs):
        raise NotFound(f"{what} not found")
    if holding and any(owner not in scope for owner, _ in pairs):
        raise forbidden(f"{what} has cases held by another level")


@dataclass(frozen=True, slots=True)
class Reach:
    """What a caller's scope covers beyond cases. `nodes` None: the whole organisation."""

    nodes: frozenset[str] | None
    districts: frozenset[str] = frozenset()
    """The districts its sub-centres serve (a branch such as the grid's serves none by itself)."""
    worked: frozenset[str] = frozenset()
    """The districts any node of it works in (its units' too: the grid's crews')."""

    @property
    def everything(self) -> bool:
        """An unscoped caller."""
        return self.nodes is None

    def serves(self, district: str | None) -> bool:
        """Whether a district is one the subtree serves."""
        return self.nodes is None or (district is not None and district in self.districts)

    def providers_at(self, district: str | None) -> frozenset[str] | None:
        """Which providers found for a point of `district` the caller may see: all (None) in a
        district it serves; only its own nodes (the grid's crews) where just they work; else none."""
        if self.serves(district):
            return None
        return self.nodes if district is not None and district in self.worked else frozenset()

    async def cases(self, request: web.Request, case_ids: Collection[str]) -> set[str]:
        """The cases among `case_ids` the caller sees (held by or assigned to a node of the scope)."""
        if self.nodes is None:
            return set(case_ids)
        rows = await request.app[SERVICES].pool.fetch(
            "SELECT case_id FROM cases WHERE case_id = ANY($1::text[]) "
            "AND (owner = ANY($2::text[]) OR assigned_to = ANY($2::text[]))",
            list(case_ids), sorted(self.nodes))
        return {r["case_id"] for r in rows}

    async def agents(self, request: web.Request) -> frozenset[str] | None:
        """The agents working in the subtree (agent reference data's `org`); None: all."""
        if self.nodes is None:
            return None
        rows = await request.app[SERVICES].pool.fetch(
            "SELECT id FROM ref_agents WHERE props->>'org' = ANY($1::text[])", sorted(self.nodes))
        return frozenset(r["id"] for r in rows)

    async def units(self, request: web.Request) -> frozenset[str] | None:
        """The units of the subtree: unit nodes of it, and units (`ref_units`) of its districts; None: all."""
        if self.nodes is None:
            return None
        rows = await request.app[SERVICES].pool.fetch(
            "SELECT id FROM ref_units WHERE props->>'district' = ANY($1::text[])", sorted(self.districts))
        return self.nodes | {r["id"] for r in rows}

    async def provider(self, request: web.Request, provider_id: str) -> bool:
        """Whether a provider works for the subtree: a node of it, or serving one of its districts
        (or everywhere)."""
        if self.nodes is None or provider_id in self.nodes:
            return True
        found: bool = await request.app[SERVICES].pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM ref_providers WHERE id = $1 "
            "AND (cardinality(districts) = 0 OR districts && $2::text[]))",
            provider_id, sorted(self.districts))
        return found


async def reach_of(request: web.Request, who: Principal) -> Reach:
    """The caller's reach: its subtree and the districts the subtree serves (all for no scope or
    the city's)."""
    nodes = await scope_of(request, who)
    if nodes is None:
        return Reach(None)
    tree = await tree_of(request)
    holding = [i for i in nodes if tree.nodes[i].level in HOLDING_LEVELS]
    return Reach(nodes, tree.districts_of(holding), tree.districts_of(nodes))


def _node(tree: OrgTree, node_id: str) -> Json:
    n = tree.nodes[node_id]
    return {"id": n.id, "name": n.name, "level": n.level, "parent": n.parent, "districts": list(n.districts)}


async def org(request: web.Request) -> web.Response:
    """`GET /api/v1/org`: the nodes the caller sees, its node, and where it may move cases."""
    who = require(request, *READERS)
    tree = await tree_of(request)
    mine = who.org if who.org is not None else (tree.root.id if tree.root else None)
    if mine is None or mine not in tree.nodes:
        return json_response({"node": None, "nodes": [], "down_to": [], "up_to": None})
    seen = sorted(tree.subtree(mine)) if who.org is not None else sorted(tree.nodes)
    parent = tree.get(tree.nodes[mine].parent)
    return json_response({
        "node": _node(tree, mine),
        "nodes": [_node(tree, i) for i in seen],
        "down_to": [_node(tree, i) for i in sorted(
            (i for i in seen if i != mine and tree.contains(mine, i)),
            key=lambda i: (LEVELS.index(tree.nodes[i].level), i))],  # sub-centres first
        "up_to": _node(tree, parent.id) if parent is not None else None,
    })


def setup(app: web.Application) -> None:
    """Add the routes of this module (and the app's tree cache)."""
    app[ORG_DIRECTORY] = OrgDirectory()
    app.router.add_get("/api/v1/org", org)


OPENAPI_PATHS: Json = {
    "/api/v1/org": {"get": {
        "summary": "The organisation tree as the caller sees it: `{node, nodes, down_to, up_to}`; "
                   "a token scoped to a node (INTAKE_TOKENS `org=NODE`) sees that node's subtree",
        "responses": {"200": {"description": "nodes with id, name, level, parent, districts"},
                      "401": {"description": "no token"}, "403": {"description": "role"}},
    }},
}
