"""Keeps the read model up to date as events arrive: item facts, cell counters and the open-items list.

Four collections:
- `items`: one document per feedback item with its facts (`facts.merge`), the counters it has added to the cells
  (`applied`), a version for optimistic concurrency and the round that last wrote it (`by`). This is also the
  source of the item-level open data.
- `cells`: one document per (month, place, kind, category) with counters and duration histograms, changed only
  with `$inc`. Every public figure is a sum of cells; no request reads items.
- `open_items`: the items still waiting for an action, with their current level and deadline.
- `rounds`: the journal of rounds whose changes are not yet all in the cells and open items (usually empty).

Events are applied in rounds (group commit): the events that arrive while a round is on the wire go together in
the next one, at most one per item, so under load one round serves every lane of a consumer batch with a read and
a few writes (the journal entry; items; cells; open items; the journal entry removed; the cells' markers cleared)
instead of about six single-document writes per event. A lone event goes out at once, so light traffic waits for
nothing.

An item's counters move from the item to a cell with no multi-document transaction (the local store, nx-27017, has
none). A round first writes its journal entry under a fresh token: for each of its items, the change to the cells
and to the open items. Then each item's conditional write records its new facts, its new `applied` counters and
the token (`by`). Then each cell the round touches is incremented by the sum of the changes of the items whose
write took, only if the cell does not already carry the token; the open items change; the journal entry goes; the
cells forget the token. A crash anywhere leaves the journal entry, and whoever next reads one of its items (the
redelivered event at the latest, since the consumer commits only after this completes), or the start-up, finishes
it first: the items whose write took are exactly those still carrying the token, since anyone who writes an item
again reads it first and so finishes the entry before. So each change reaches its cell exactly once, given one
writer per item at a time (Kafka gives a partition to one member of the group; a rebuild writes a database of its
own; two finishing the same entry at once is harmless). Every write is by `_id` and atomic on its document:
conditional replacements of items (nx-27017 replaces a document faster than it applies `$set`), `$inc`, `$set`,
`$unset` and `$setOnInsert` on cells, which MongoDB 7/8 and nx-27017 both serve.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from heard_analytics import facts as domain
from heard_analytics.areas import Areas
from heard_shared.events import CloudEvent, utc_now
from heard_shared.logs import get_logger
from heard_shared.mongo import DUPLICATE_KEY, Document

log = get_logger(__name__)

# `by`: the round that last wrote the item (which of a round's conditional writes took, and its journal entry).
# `pending`: a change the version before the journal left after a crash; it is not finished by this one (rebuild).
ITEM_FACT_FIELDS_EXCLUDED = frozenset({"_id", "v", "applied", "by", "pending"})
MAX_ATTEMPTS = 20
# Items written in one round; a consumer batch (500 events) is a round or two.
MAX_ROUND = 1000
# Rounds this process knows to be finished (no journal entry to look for), the most recent kept.
KNOWN_FINISHED = 100_000


class ConcurrentUpdates(RuntimeError):
    """Another writer kept changing the item; the consumer retries the event."""


@dataclass
class _Waiting:
    """An event waiting for its round, and the caller waiting for its outcome."""

    event: CloudEvent[Any]
    feedback_id: str
    done: asyncio.Future[bool]
    attempts: int = 0


@dataclass(eq=False)
class _Write:
    """One item's write in a round, and what it changes elsewhere (its entry in the round's journal)."""

    waiting: _Waiting
    version: int
    document: Document  # the whole item as written (a replacement: nx-27017 replaces faster than it `$set`s)
    effects: Document  # {"ops": [{"cell", "inc"}...], "open": entry or None}: only what changes


class ReadModel:
    def __init__(
        self,
        *,
        items: AsyncCollection[Document],
        cells: AsyncCollection[Document],
        open_items: AsyncCollection[Document],
        rounds: AsyncCollection[Document],
        areas: Areas,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.items = items
        self.cells = cells
        self.open_items = open_items
        self.rounds = rounds
        self.areas = areas
        self.clock = clock
        self._queue: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None
        self._finished: OrderedDict[str, None] = OrderedDict()
        # Cells this process wrote (stamped `writer`), kept until the publisher reads them: it reads only these and
        # cells other writers changed, instead of every cell changed in the last seconds.
        self.writer = uuid.uuid4().hex
        self.written: set[str] = set()

    async def ensure_indexes(self) -> None:
        await self.cells.create_index([("year", ASCENDING)])
        await self.cells.create_index([("updated_ms", ASCENDING)])
        await self.open_items.create_index([("due", ASCENDING)])

    async def apply(self, event: CloudEvent[Any]) -> bool:
        """Folds one event into the read model, in the next round; True when it changed anything.

        Events of one item must come one at a time (the consumer's lanes do that): a round takes one per item.
        """
        feedback_id = event.subject or getattr(event.data, "feedback_id", None)
        if not feedback_id:
            return False
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Waiting(event, str(feedback_id), done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="analytics-read-model")
        return await done

    async def _drain(self) -> None:
        while self._queue:
            batch: list[_Waiting] = []
            later: list[_Waiting] = []
            taken: set[str] = set()
            for waiting in self._queue:
                if waiting.feedback_id in taken or len(batch) >= MAX_ROUND:
                    later.append(waiting)
                else:
                    taken.add(waiting.feedback_id)
                    batch.append(waiting)
            self._queue = later
            try:
                again = await self._round(batch)
            except asyncio.CancelledError:  # shutting down: nobody is left waiting
                for waiting in batch + self._queue:
                    waiting.done.cancel()
                raise
            except Exception as error:  # noqa: BLE001 - every caller of the round gets the failure as its own
                for waiting in batch:
                    _settle(waiting.done, error)
                continue
            self._queue = again + self._queue  # lost a race: before anything that arrived meanwhile

    async def _round(self, batch: list[_Waiting]) -> list[_Waiting]:
        """Applies one event per item; returns those whose item another writer changed meanwhile (to try again)."""
        found = await self._read([waiting.feedback_id for waiting in batch])
        token = uuid.uuid4().hex
        writes: list[_Write] = []
        for waiting in batch:
            try:
                write = self._next_write(waiting, found.get(waiting.feedback_id), token)
            except Exception as error:  # noqa: BLE001 - this event's failure alone (the consumer dead-letters it)
                _settle(waiting.done, error)
                continue
            if write is None:
                _settle(waiting.done, None, False)
            else:
                writes.append(write)
        if not writes:
            return []
        journal = {w.waiting.feedback_id: w.effects for w in writes if w.effects}
        if journal:
            await self.rounds.insert_one({"_id": token, "items": journal})
        took, failed = await self._write_items(writes, token)
        for write, failure in failed.items():
            _settle(write.waiting.done, failure)
        cells = await self._bring(
            token, {w.waiting.feedback_id: w.effects for w in took if w.effects} if journal else None
        )
        again: list[_Waiting] = []
        for write in writes:
            if write in took:
                _settle(write.waiting.done, None, True)
            elif write not in failed:
                write.waiting.attempts += 1
                if write.waiting.attempts < MAX_ATTEMPTS:
                    again.append(write.waiting)
                else:
                    message = f"item {write.waiting.feedback_id} kept changing during {MAX_ATTEMPTS} attempts"
                    _settle(write.waiting.done, ConcurrentUpdates(message))
        # After the events are answered, so the consumer commits them meanwhile. A failure here leaves the entry to
        # be finished again later, which changes nothing: every cell still carries the token.
        if journal:
            try:
                await self._tidy(token, cells)
            except Exception as error:  # noqa: BLE001 - the round's effects are in; only bookkeeping is left
                log.warning("a finished round's journal entry was not removed", token=token, error=repr(error))
        return again

    async def _read(self, ids: list[str]) -> dict[str, Document]:
        """The items, with every round a crash (or another replica) left unfinished on them finished first."""
        found = {doc["_id"]: doc async for doc in self.items.find({"_id": {"$in": ids}})}
        unknown = sorted({str(doc["by"]) for doc in found.values() if "by" in doc} - self._finished.keys())
        if unknown:
            async for entry in self.rounds.find({"_id": {"$in": unknown}}):
                await self._finish(entry["_id"], await self._took(entry))
            self._known_finished(unknown)
        return found  # finishing a round changes cells and open items, never an item

    def _next_write(self, waiting: _Waiting, item: Document | None, token: str) -> _Write | None:
        """What the event changes in its item, or None when nothing (a redelivery, or a fact already known)."""
        version = int(item["v"]) if item else 0
        before = {k: v for k, v in (item or {}).items() if k not in ITEM_FACT_FIELDS_EXCLUDED}
        after = domain.merge(before, waiting.event, self.areas)
        if after == before:
            return None
        applied: dict[str, domain.Counters] = (item or {}).get("applied") or {}
        desired = domain.contribution(after)
        delta = domain.difference(desired, applied)
        entry = domain.overdue_entry(after)
        document: Document = {"_id": waiting.feedback_id, **after, "v": version + 1, "by": token, "applied": desired}
        effects: Document = {}
        if delta:
            effects["ops"] = [{"cell": cell_id, "inc": inc} for cell_id, inc in sorted(delta.items())]
        if entry != domain.overdue_entry(before):
            effects["open"] = entry
        return _Write(waiting, version, document, effects)

    async def _write_items(self, writes: list[_Write], token: str) -> tuple[list[_Write], dict[_Write, BaseException]]:
        """One unordered bulk write of conditional item writes: those that took, and those that failed for good.

        The rest found their item changed (or created) by another writer since the read, and are tried again.
        """
        requests: list[InsertOne[Document] | ReplaceOne[Document]] = [
            InsertOne(w.document)
            if w.version == 0
            else ReplaceOne({"_id": w.document["_id"], "v": w.version}, w.document)
            for w in writes
        ]
        failed: dict[_Write, BaseException] = {}
        try:
            result = await self.items.bulk_write(requests, ordered=False)
        except BulkWriteError as error:
            for failure in error.details.get("writeErrors", []):
                if failure.get("code") != DUPLICATE_KEY:  # a duplicate: another writer created the item first
                    failed[writes[failure["index"]]] = BulkWriteError({"writeErrors": [failure]})
        else:
            if result.inserted_count + result.modified_count == len(writes):
                return writes, failed
        # Some did not take: the round's token in `by` tells which did.
        ids = [w.waiting.feedback_id for w in writes]
        ours = {doc["_id"] async for doc in self.items.find({"_id": {"$in": ids}, "by": token}, {"_id": 1})}
        return [w for w in writes if w.waiting.feedback_id in ours], failed

    async def _took(self, entry: Document) -> dict[str, Document]:
        """A journal entry's changes, of the items whose write took (those still carrying its token)."""
        changes: dict[str, Document] = entry["items"]
        query = {"_id": {"$in": sorted(changes)}, "by": entry["_id"]}
        return {doc["_id"]: changes[doc["_id"]] async for doc in self.items.find(query, {"_id": 1})}

    async def _finish(self, token: str, changes: dict[str, Document] | None) -> None:
        """Brings a round's changes into the cells and open items, then removes its journal entry."""
        await self._tidy(token, await self._bring(token, changes))

    async def _bring(self, token: str, changes: dict[str, Document] | None) -> list[str]:
        """Brings a round's changes (by item, of the items whose write took) into the cells exactly once and into
        the open items; returns the cells it incremented. None: the round had no change to bring."""
        if changes is None:
            self._known_finished([token])
            return []
        marker = f"applied_tokens.{token}"
        sums: dict[str, domain.Counters] = {}
        for change in changes.values():
            for op in change.get("ops", ()):
                cell = sums.setdefault(op["cell"], {})
                for name, value in op["inc"].items():
                    cell[name] = cell.get(name, 0) + value
        increments = {cell_id: {k: v for k, v in inc.items() if v} for cell_id, inc in sums.items()}
        increments = {cell_id: inc for cell_id, inc in increments.items() if inc}
        if increments:
            # Epoch milliseconds: an integer range is an index range on nx-27017 too (a date is a scan there).
            now = int(self.clock().timestamp() * 1000)
            # The filter fails on a cell that already carries the token; the upsert then collides on `_id`.
            cell_updates = [
                UpdateOne(
                    {"_id": cell_id, marker: {"$exists": False}},
                    {
                        "$inc": inc,
                        "$set": {marker: 1, "updated_ms": now, "writer": self.writer},
                        "$setOnInsert": _cell_fields(cell_id),
                    },
                    upsert=True,
                )
                for cell_id, inc in sorted(increments.items())
            ]
            try:
                await self.cells.bulk_write(cell_updates, ordered=False)
            except BulkWriteError as error:
                if any(failure.get("code") != DUPLICATE_KEY for failure in error.details.get("writeErrors", [])):
                    raise
            finally:
                self.written.update(increments)  # even after a failure: some may have been written
        # `_id` in a replacement too: nx-27017 gives an upserted replacement a new ObjectId otherwise.
        open_changes: list[ReplaceOne[Document] | DeleteOne] = [
            DeleteOne({"_id": item_id})
            if change["open"] is None
            else ReplaceOne({"_id": item_id}, {"_id": item_id, **change["open"]}, upsert=True)
            for item_id, change in sorted(changes.items())
            if "open" in change
        ]
        if open_changes:
            await self.open_items.bulk_write(open_changes, ordered=False)
        self._known_finished([token])
        return sorted(increments)

    async def _tidy(self, token: str, cells: list[str]) -> None:
        """Removes a finished round's journal entry, then the token from its cells (in this order: a cell without the
        token must never meet the entry again)."""
        await self.rounds.delete_one({"_id": token})
        if cells:
            await self.cells.update_many({"_id": {"$in": cells}}, {"$unset": {f"applied_tokens.{token}": ""}})

    def _known_finished(self, tokens: Iterable[str]) -> None:
        for token in tokens:
            self._finished[token] = None
        while len(self._finished) > KNOWN_FINISHED:
            self._finished.popitem(last=False)

    async def finish_pending(self) -> int:
        """Completes every round a crash left half-done (run at start-up; events would also finish them)."""
        entries = [entry async for entry in self.rounds.find({})]
        for entry in entries:
            await self._finish(entry["_id"], await self._took(entry))
        return len(entries)


def _cell_fields(cell_id: str) -> dict[str, Any]:
    month, precinct, neighbourhood, kind, category = cell_id.split("|")
    return domain.Cell(month, precinct, neighbourhood, kind, category).fields()


def _settle(done: asyncio.Future[bool], error: BaseException | None, result: bool = False) -> None:
    if done.done():  # the caller was cancelled; the change is made (or pending) all the same
        return
    if error is None:
        done.set_result(result)
    else:
        done.set_exception(error)


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
