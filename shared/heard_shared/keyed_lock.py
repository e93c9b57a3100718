"""One asyncio lock per key: lets this process's work on one document take turns (intake's writes, outbox flushes).

Every rule relies only on each single-document update being atomic, which MongoDB and the local store
(nx-27017) guarantee and tests/storage checks. The turns are about work, not atomicity: a writer's outbox
flush and the relay's flush of the same document do not both publish, and intake's state change, its
ledger flush and routing's events arriving meanwhile do not make each other retry a compare-and-set.
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
