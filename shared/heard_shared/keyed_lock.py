"""One asyncio lock per key: lets this process's work on one document take turns (intake's writes, outbox flushes).

MongoDB applies each single-document update atomically, and every rule in intake relies only on that.
FerretDB 1.x with its SQLite backend (the local and test stack's fallback when no `mongod` is installed)
does not: it reads the document, applies the update and writes the whole document back, so two updates
racing on one document can silently undo each other (measured: 100 concurrent `$inc`s on one document
left it at 28-32). Within one intake process, writes to the same feedback item — a state change, its
outbox and ledger flushes, and routing's events arriving meanwhile — therefore take turns. On MongoDB this
costs a few microseconds; with several replicas on FerretDB the race remains, which is one more reason
production runs on MongoDB.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable


class KeyedLock:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            # Forget the lock once nobody holds or waits for it, so the table stays as small as the work in flight.
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @contextlib.asynccontextmanager
    async def all_of(self, keys: Iterable[str]) -> AsyncIterator[None]:
        """Holds the locks of many keys at once, taken in sorted order so two such holders cannot deadlock."""
        async with contextlib.AsyncExitStack() as held:
            for key in sorted(set(keys)):
                await held.enter_async_context(self(key))
            yield

    def __len__(self) -> int:
        return len(self._locks)
