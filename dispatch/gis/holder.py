"""The live provider index: atomic snapshot swaps and background rebuilds."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterable

from dispatch.gis.nearest import Provider, ProviderSnapshot, StatusChange


class ProviderIndexHolder:
    """Holds the current `ProviderSnapshot` for readers and keeps it up to date.

    Readers take `holder.snapshot` once per request and use only that object,
    so a swap never shows them a half-built index. Position, skill or district
    changes (`upsert`, `remove`) trigger a coalesced rebuild in a worker thread;
    availability and load changes (`set_status`) swap in a cheap copy at once
    and are re-applied to a rebuild that was already running.
    """

    def __init__(
        self, providers: Iterable[Provider] = (), *, snapshot: ProviderSnapshot | None = None
    ) -> None:
        self._providers: dict[str, Provider] = {p.id: p for p in providers}
        if snapshot is None:
            snapshot = ProviderSnapshot.build(self._providers.values())
        self._snapshot = snapshot
        self._dirty = False
        self._building = False
        self._pending: list[StatusChange] = []
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def create(cls, providers: Iterable[Provider]) -> ProviderIndexHolder:
        """A holder whose first snapshot is built in a worker thread."""
        items = tuple(providers)
        snapshot = await asyncio.to_thread(ProviderSnapshot.build, items)
        return cls(items, snapshot=snapshot)

    @property
    def snapshot(self) -> ProviderSnapshot:
        """The current immutable snapshot."""
        return self._snapshot

    @property
    def rebuilding(self) -> bool:
        """Whether a background rebuild is pending or running."""
        return self._task is not None and not self._task.done()

    def upsert(self, provider: Provider) -> None:
        """Add or replace a provider; the index follows after a background rebuild."""
        self._providers[provider.id] = provider
        self._schedule()

    def remove(self, provider_id: str) -> None:
        """Drop a provider; the index follows after a background rebuild."""
        if self._providers.pop(provider_id, None) is not None:
            self._schedule()

    def set_status(self, *changes: StatusChange) -> ProviderSnapshot:
        """Apply availability/load changes now (no tree rebuild); returns the new snapshot."""
        for change in changes:
            current = self._providers.get(change.provider_id)
            if current is None:
                continue
            self._providers[change.provider_id] = dataclasses.replace(
                current,
                available=current.available if change.available is None else change.available,
                load=current.load if change.load is None else max(0, change.load),
            )
        if self._building:
            self._pending.extend(changes)
        self._snapshot = self._snapshot.with_status(changes)
        return self._snapshot

    async def wait_idle(self) -> ProviderSnapshot:
        """Wait for pending rebuilds (re-raising a failed one); returns the snapshot."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()
        return self._snapshot

    async def close(self) -> None:
        """Cancel a running rebuild (for shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def _schedule(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="provider-index-rebuild")

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            providers = tuple(self._providers.values())
            self._pending = []
            self._building = True
            try:
                built = await asyncio.to_thread(ProviderSnapshot.build, providers)
                self._snapshot = built.with_status(self._pending, version=self._snapshot.version + 1)
            finally:
                self._building = False
                self._pending = []
