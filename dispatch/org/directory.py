"""The loaded organisation tree (`ref_org`), read once and again only when it changed."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg

from dispatch.org.tree import OrgNode, OrgTree

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def org_version(db: Db) -> int:
    """A number that grows whenever a node is written (0: none loaded, or no table yet)."""
    try:
        return int(await db.fetchval("SELECT coalesce(max(seq), 0) FROM ref_org"))
    except asyncpg.UndefinedTableError:  # a database the organisation's migration has not reached
        return 0


async def load_tree(db: Db) -> OrgTree:
    """Every loaded node."""
    rows = await db.fetch("SELECT id, name, level, parent, districts FROM ref_org ORDER BY id")
    return OrgTree.of(OrgNode(r["id"], r["name"], r["level"], r["parent"], tuple(r["districts"]))
                      for r in rows)


class OrgDirectory:
    """The tree as loaded now: one cheap version query per use, a reload when it moved."""

    def __init__(self) -> None:
        self._version = -1
        self._tree = OrgTree()

    async def tree(self, db: Db) -> OrgTree:
        """The current tree (empty when no organisation is loaded)."""
        version = await org_version(db)
        if version != self._version:
            self._tree = await load_tree(db) if version else OrgTree()
            self._version = version
        return self._tree
