"""A process's search index over the published articles, rebuilt when the read model changes."""

from __future__ import annotations

import asyncio

import asyncpg

from dispatch.knowledge.read_model import generation, published_documents
from dispatch.knowledge.search import Document, Hit, SearchIndex


class IndexHolder:
    """Holds the current `SearchIndex` and rebuilds it (in a thread) when articles change.

    Each search asks the read model's generation (one primary-key read); a
    change rebuilds the index, re-reading only the articles whose content is new
    (their tokens are kept between rebuilds). Readers never see a half-built index.
    """

    def __init__(self) -> None:
        self._index = SearchIndex.build(())
        self._generation: int | None = None
        self._tokens: dict[Document, list[str]] = {}
        self._lock = asyncio.Lock()

    async def current(self, pool: asyncpg.Pool) -> SearchIndex:
        """The index of what is published now."""
        seen = await generation(pool)
        if seen != self._generation:
            async with self._lock:
                if seen != self._generation:
                    docs = await published_documents(pool)
                    self._index = await asyncio.to_thread(SearchIndex.build, docs, self._tokens)
                    self._generation = seen
        return self._index

    async def search(self, pool: asyncpg.Pool, query: str, *, category: str | None = None,
                     k: int = 10) -> list[Hit]:
        """The best articles for a query, searched off the event loop."""
        index = await self.current(pool)
        return await asyncio.to_thread(index.search, query, category=category, k=k)
