"""The knowledge read model: `knowledge_articles` (workflow state), `knowledge_revisions` (content).

Every article event bumps `knowledge_index.generation` in the same transaction,
so a search index (`dispatch.knowledge.index`) rebuilds exactly when what is
published may have changed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from dispatch.core.capability import Deps
from dispatch.knowledge.articles import ARTICLE_CATEGORY
from dispatch.knowledge.search import Document
from eventstore import RecordedEvent
from eventstore.subscriptions import Change

_SQL: dict[str, str] = {
    "drafted": """INSERT INTO knowledge_articles (article_id, status, kind, title, revision, source_case_id,
        created_at, updated_at, version) VALUES ($1, 'draft', $2, $3, $4, $5, $6, $6, $7)
        ON CONFLICT (article_id) DO NOTHING""",
    "revision": """INSERT INTO knowledge_revisions (article_id, revision, kind, title, body, short_answer,
        categories, keywords, author, written_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (article_id, revision) DO NOTHING""",
    "revised": """UPDATE knowledge_articles SET status = 'draft', kind = $2, title = $3, revision = $4,
        updated_at = $5, version = $6 WHERE article_id = $1""",
    "status": """UPDATE knowledge_articles SET status = $2, updated_at = $3, version = $4
        WHERE article_id = $1""",
    "published": """UPDATE knowledge_articles SET status = 'published', published_revision = $2,
        updated_at = $3, version = $4 WHERE article_id = $1""",
    "withdrawn": """UPDATE knowledge_articles SET status = 'withdrawn', published_revision = NULL,
        updated_at = $2, version = $3 WHERE article_id = $1""",
    "generation": """INSERT INTO knowledge_index (id, generation) VALUES (1, 1)
        ON CONFLICT (id) DO UPDATE SET generation = knowledge_index.generation + 1""",
}


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _revision(conn: asyncpg.Connection, e: RecordedEvent) -> None:
    d, c = e.data, e.data["content"]
    await conn.execute(_SQL["revision"], d["article_id"], d["revision"], c["kind"], c["title"], c["body"],
                       c.get("short_answer") or "", list(c.get("categories") or ()),
                       list(c.get("keywords") or ()), d["by"], _ts(d["at"]))


async def _drafted(conn: asyncpg.Connection, e: RecordedEvent) -> str:
    d = e.data
    await conn.execute(_SQL["drafted"], d["article_id"], d["content"]["kind"], d["content"]["title"],
                       d["revision"], d.get("source_case_id"), _ts(d["at"]), e.version)
    await _revision(conn, e)
    return "draft"


async def _revised(conn: asyncpg.Connection, e: RecordedEvent) -> str:
    d = e.data
    await _revision(conn, e)
    await conn.execute(_SQL["revised"], d["article_id"], d["content"]["kind"], d["content"]["title"],
                       d["revision"], _ts(d["at"]), e.version)
    return "draft"


async def _submitted(conn: asyncpg.Connection, e: RecordedEvent) -> str:
    await conn.execute(_SQL["status"], e.data["article_id"], "in_review", _ts(e.data["at"]), e.version)
    return "in_review"


async def _reviewed(conn: asyncpg.Connection, e: RecordedEvent) -> str:
    status = "approved" if e.data["approved"] else "draft"
    await conn.execute(_SQL["status"], e.data["article_id"], status, _ts(e.data["at"]), e.version)
    return status


async def _published(conn: asyncpg.Connection, e: RecordedEvent) -> str:
    d = e.data
    await conn.execute(_SQL["published"], d["article_id"], d["revision"], _ts(d["at"]), e.version)
    return "published"


async def _withdrawn(conn: asyncpg.Connection, e: RecordedEvent) -> str:
    await conn.execute(_SQL["withdrawn"], e.data["article_id"], _ts(e.data["at"]), e.version)
    return "withdrawn"


_APPLY: dict[str, Callable[[asyncpg.Connection, RecordedEvent], Awaitable[str]]] = {
    "ArticleDrafted": _drafted, "ArticleRevised": _revised, "ArticleSubmitted": _submitted,
    "ArticleReviewed": _reviewed, "ArticlePublished": _published, "ArticleWithdrawn": _withdrawn,
}


class KnowledgeProjection:
    """Projects article events into `knowledge_articles` and `knowledge_revisions`."""

    name = "knowledge"
    categories: frozenset[str] | None = frozenset({ARTICLE_CATEGORY})
    tables: tuple[str, ...] = ("knowledge_articles", "knowledge_revisions", "knowledge_index")

    async def apply(self, conn: asyncpg.Connection, event: RecordedEvent) -> Sequence[Change] | None:
        """Apply one article event (others are ignored)."""
        step = _APPLY.get(event.type)
        if step is None:
            return None
        status = await step(conn, event)
        await conn.execute(_SQL["generation"])
        return [Change("article", {"article_id": event.data["article_id"], "status": status})]


def projections(deps: Deps) -> list[KnowledgeProjection]:
    """The knowledge projection."""
    return [KnowledgeProjection()]


Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
"""Where a query runs: the pool, or a connection already in a transaction."""


async def generation(db: Db) -> int:
    """How many article events the read model has applied (0 before the first)."""
    value = await db.fetchval("SELECT generation FROM knowledge_index WHERE id = 1")
    return int(value or 0)


async def published_documents(db: Db) -> list[Document]:
    """The live revision of every published article, as the search index takes it."""
    rows = await db.fetch(
        """SELECT r.article_id, r.title, r.body, r.short_answer, r.categories, r.keywords, r.kind
           FROM knowledge_articles a JOIN knowledge_revisions r
             ON r.article_id = a.article_id AND r.revision = a.published_revision
           ORDER BY r.article_id""")
    return [Document(r["article_id"], r["title"], r["body"], r["short_answer"], tuple(r["categories"]),
                     tuple(r["keywords"]), r["kind"]) for r in rows]


@dataclass(frozen=True, slots=True)
class ArticleRow:
    """An article as lists show it."""

    article_id: str
    status: str
    kind: str
    title: str
    revision: int
    published_revision: int | None
    source_case_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int


async def list_articles(db: Db, *, status: str | None, kind: str | None, after: str | None,
                        limit: int, live: bool = False) -> list[ArticleRow]:
    """Articles by id after `after`, filtered by status and kind (None: any); `live`: only those
    with a published revision (one being revised is a draft with its published one live)."""
    rows = await db.fetch(
        """SELECT article_id, status, kind, title, revision, published_revision, source_case_id,
                  created_at, updated_at, version FROM knowledge_articles
           WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)
             AND ($3::text IS NULL OR article_id > $3) AND (NOT $5 OR published_revision IS NOT NULL)
           ORDER BY article_id LIMIT $4""", status, kind, after, limit, live)
    return [ArticleRow(**dict(r)) for r in rows]
