"""Keeps the read model up to date as events arrive: item facts, cell counters and the open-items list.

Three collections:
- `items`: one document per feedback item with its facts (`facts.merge`), the counters it has added to the cells
  (`applied`), and a version for optimistic concurrency. This is also the source of the item-level open data.
- `cells`: one document per (month, place, kind, category) with counters and duration histograms, changed only
  with `$inc`. Every public figure is a sum of cells; no request reads items.
- `open_items`: the items still waiting for an action, with their current level and deadline.

An item's counters move from the item to a cell in two steps, with no multi-document transaction (the local store,
nx-27017, has none): the item document first records the pending change under a fresh token, in the same conditional
write as its new facts; then the cell is incremented only if it does not already carry that token; then the item
marks the change applied and the cell forgets the token. A crash anywhere leaves the pending change on the item, and
the next event for that item (a redelivery at the latest, since the consumer commits only after this completes)
finishes it first: each change reaches its cell exactly once. Every operation is a single-document update by `_id`
with `$set`, `$unset` and `$inc`, which MongoDB 7/8 and nx-27017 both serve.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from heard_analytics import facts as domain
from heard_analytics.areas import Areas
from heard_shared.events import CloudEvent, utc_now
from heard_shared.mongo import Document

ITEM_FACT_FIELDS_EXCLUDED = frozenset({"_id", "v", "applied", "pending"})
MAX_ATTEMPTS = 20


class ConcurrentUpdates(RuntimeError):
    """Another writer kept changing the item; the consumer retries the event."""


class ReadModel:
    def __init__(
        self,
        *,
        items: AsyncCollection[Document],
        cells: AsyncCollection[Document],
        open_items: AsyncCollection[Document],
        areas: Areas,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.items = items
        self.cells = cells
        self.open_items = open_items
        self.areas = areas
        self.clock = clock

    async def ensure_indexes(self) -> None:
        await self.cells.create_index([("year", ASCENDING)])
        await self.cells.create_index([("updated_at", ASCENDING)])
        await self.open_items.create_index([("due", ASCENDING)])
        await self.items.create_index([("pending.token", ASCENDING)], sparse=True)

    async def apply(self, event: CloudEvent[Any]) -> bool:
        """Folds one event into the read model; True when it changed anything."""
        feedback_id = event.subject or getattr(event.data, "feedback_id", None)
        if not feedback_id:
            return False
        for _ in range(MAX_ATTEMPTS):
            item = await self.items.find_one({"_id": feedback_id})
            if item is not None and item.get("pending"):
                await self._finish(item)
                continue
            version = int(item["v"]) if item else 0
            before = {k: v for k, v in (item or {}).items() if k not in ITEM_FACT_FIELDS_EXCLUDED}
            after = domain.merge(before, event, self.areas)
            if after == before:
                return False
            applied: dict[str, domain.Counters] = (item or {}).get("applied") or {}
            desired = domain.contribution(after)
            delta = domain.difference(desired, applied)
            changes: Document = {**after, "v": version + 1}
            pending: Document | None = None
            if delta:
                pending = {
                    "token": uuid.uuid4().hex,
                    "ops": [{"cell": cell_id, "inc": inc} for cell_id, inc in sorted(delta.items())],
                    "applied": desired,
                }
                changes["pending"] = pending
            if not await self._write_item(feedback_id, version, changes):
                continue
            await self._update_open(feedback_id, before, after)
            if pending is not None:
                await self._finish({"_id": feedback_id, **changes})
            return True
        raise ConcurrentUpdates(f"item {feedback_id} kept changing during {MAX_ATTEMPTS} attempts")

    async def _write_item(self, feedback_id: str, version: int, changes: Document) -> bool:
        if version == 0:
            try:
                await self.items.insert_one({"_id": feedback_id, **changes})
            except DuplicateKeyError:
                return False
            return True
        result = await self.items.update_one({"_id": feedback_id, "v": version}, {"$set": changes})
        return result.modified_count == 1

    async def _finish(self, item: Document) -> None:
        """Brings a pending change into its cells exactly once, then marks it applied."""
        pending = item["pending"]
        token = pending["token"]
        marker = f"applied_tokens.{token}"
        now = self.clock()
        for op in pending["ops"]:
            cell_id: str = op["cell"]
            with contextlib.suppress(DuplicateKeyError):
                # The filter fails on a cell that already carries the token; the upsert then collides on `_id`.
                await self.cells.update_one(
                    {"_id": cell_id, marker: {"$exists": False}},
                    {
                        "$inc": op["inc"],
                        "$set": {marker: 1, "updated_at": now},
                        "$setOnInsert": _cell_fields(cell_id),
                    },
                    upsert=True,
                )
        await self.items.update_one(
            {"_id": item["_id"], "pending.token": token},
            {"$set": {"applied": pending["applied"]}, "$unset": {"pending": ""}},
        )
        for op in pending["ops"]:
            await self.cells.update_one({"_id": op["cell"]}, {"$unset": {marker: ""}})

    async def _update_open(self, feedback_id: str, before: domain.Facts, after: domain.Facts) -> None:
        entry = domain.overdue_entry(after)
        if entry == domain.overdue_entry(before):
            return
        if entry is None:
            await self.open_items.delete_one({"_id": feedback_id})
        else:
            # `_id` in the replacement too: nx-27017 gives an upserted replacement a new ObjectId otherwise.
            await self.open_items.replace_one({"_id": feedback_id}, {"_id": feedback_id, **entry}, upsert=True)

    async def finish_pending(self) -> int:
        """Completes every change a crash left half-done (run at start-up; events would also finish them)."""
        finished = 0
        async for item in self.items.find({"pending.token": {"$exists": True}}):
            await self._finish(item)
            finished += 1
        return finished


def _cell_fields(cell_id: str) -> dict[str, Any]:
    month, precinct, neighbourhood, kind, category = cell_id.split("|")
    return domain.Cell(month, precinct, neighbourhood, kind, category).fields()


class Freshness:
    """How long events take to become visible in the public figures.

    An event is in flight while it is applied to the read model, then awaits publication until the publisher
    serves a copy made from a read that started after it was applied. `lag_seconds()` is what the gauge reports:
    the age of the oldest event in flight or awaiting publication, so a stuck consumer or publisher shows a
    growing lag; when none is, the lag of the last event that became visible, for a minute, then 0 (an idle
    platform is not a late one).
    """

    HOLD_SECONDS = 60.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.in_flight: dict[str, float] = {}
        self.awaiting: list[tuple[float, float]] = []  # (applied at, event time), in order of application
        self.last_lag = 0.0
        self.last_visible_at = 0.0

    def started(self, key: str, event_time: datetime | None) -> None:
        self.in_flight[key] = event_time.timestamp() if event_time else self.clock()

    def applied(self, key: str) -> None:
        event_at = self.in_flight.pop(key, None)
        if event_at is not None:
            self.awaiting.append((self.clock(), event_at))

    def abandoned(self, key: str) -> None:
        self.in_flight.pop(key, None)

    def published(self, read_started_at: float) -> list[float]:
        """Events applied before a read that is now served are visible: returns their lags."""
        now = self.clock()
        split = next((i for i, (applied_at, _) in enumerate(self.awaiting) if applied_at > read_started_at), None)
        visible = self.awaiting if split is None else self.awaiting[:split]
        self.awaiting = [] if split is None else self.awaiting[split:]
        lags = [max(0.0, now - event_at) for _, event_at in visible]
        if lags:
            self.last_lag, self.last_visible_at = lags[-1], now
        return lags

    def lag_seconds(self) -> float:
        now = self.clock()
        waiting = [*self.in_flight.values(), *(event_at for _, event_at in self.awaiting[:1])]
        if waiting:
            return max(0.0, now - min(waiting))
        if now - self.last_visible_at <= self.HOLD_SECONDS:
            return self.last_lag
        return 0.0
