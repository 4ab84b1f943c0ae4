"""The organisation tree (pure): the city centre, its district sub-centres and the units under them.

Nodes come from the `org` reference data (`intake load`, kind `org`: id, name,
level `city|subcentre|unit`, parent, districts). A case is owned by one level
at a time (`CaseState.owner`, a city or sub-centre node); units receive
dispatched cases (`assigned_to`). Who may see and act on what follows the
tree: a node's subtree is the node and everything under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

LEVELS: tuple[str, ...] = ("city", "subcentre", "unit")
"""The levels of the tree, top down."""
HOLDING_LEVELS: frozenset[str] = frozenset({"city", "subcentre"})
"""The levels that own (hold and dispatch) cases; units receive them."""


@dataclass(frozen=True, slots=True)
class OrgNode:
    """One node of the tree: its level, its parent (None for the city) and the districts it serves."""

    id: str
    name: str
    level: str
    parent: str | None = None
    districts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """Where automatic routing sends a case, and why (`category`, `district`, `no_place`)."""

    owner: str
    reason: str


@dataclass(frozen=True, slots=True)
class OrgTree:
    """The loaded nodes, with the lookups the rules need."""

    nodes: Mapping[str, OrgNode] = field(default_factory=dict)

    @staticmethod
    def of(nodes: Iterable[OrgNode]) -> OrgTree:
        """A tree from its nodes (a node whose parent is not loaded hangs under nothing)."""
        return OrgTree({n.id: n for n in nodes})

    def __bool__(self) -> bool:
        return bool(self.nodes)

    def get(self, node_id: str | None) -> OrgNode | None:
        """The node of this id, or None."""
        return None if node_id is None else self.nodes.get(node_id)

    @property
    def root(self) -> OrgNode | None:
        """The city centre: the `city` node without a parent (the first by id if several)."""
        roots = sorted(n.id for n in self.nodes.values() if n.level == "city" and n.parent is None)
        return self.nodes[roots[0]] if roots else None

    def children(self, node_id: str) -> list[OrgNode]:
        """The nodes directly under a node, by id."""
        return sorted((n for n in self.nodes.values() if n.parent == node_id), key=lambda n: n.id)

    def ancestors(self, node_id: str) -> list[str]:
        """The node's parent, its parent's parent... up to the root (a cycle stops the walk)."""
        found: list[str] = []
        node = self.nodes.get(node_id)
        while node is not None and node.parent is not None and node.parent not in found:
            found.append(node.parent)
            node = self.nodes.get(node.parent)
        return found

    def contains(self, ancestor: str, node_id: str | None) -> bool:
        """Whether `node_id` is `ancestor` or lies under it."""
        return node_id is not None and node_id in self.nodes and (
            node_id == ancestor or ancestor in self.ancestors(node_id))

    def subtree(self, node_id: str) -> frozenset[str]:
        """The ids of a node and every node under it (empty when the node is unknown)."""
        if node_id not in self.nodes:
            return frozenset()
        return frozenset(n for n in self.nodes if self.contains(node_id, n))

    def districts_of(self, node_ids: Iterable[str]) -> frozenset[str]:
        """The districts the given nodes serve (a scope's districts: its sub-centres' and units')."""
        return frozenset(d for i in node_ids if (n := self.nodes.get(i)) is not None for d in n.districts)

    def holder_of(self, district: str) -> OrgNode | None:
        """The sub-centre that serves a district (the first by id when two claim it)."""
        serving = sorted((n for n in self.nodes.values()
                          if n.level == "subcentre" and district in n.districts), key=lambda n: n.id)
        return serving[0] if serving else None

    def route(self, category: str, district: str | None, by_category: Mapping[str, str]) -> Route | None:
        """Where a new case goes: the node configured for its category, else the sub-centre
        serving its district, else the city (no place, or a place no sub-centre serves).
        None when no tree is loaded."""
        root = self.root
        if root is None:
            return None
        target = self.get(by_category.get(category))
        if target is not None and target.level in HOLDING_LEVELS:
            return Route(target.id, "category")
        serving = self.holder_of(district) if district else None
        if serving is not None:
            return Route(serving.id, "district")
        return Route(root.id, "district" if district else "no_place")
