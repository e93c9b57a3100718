"""Transactional outbox embedded in the aggregate's own document.

A state change and the events it causes are written in one single-document update (atomic on
every MongoDB-wire server, no multi-document transaction needed). The writer then publishes
at once; a relay loop republishes anything a crash left behind. Consumers deduplicate by
event id, so publishing twice is harmless and publishing never is impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Container, Coroutine, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from heard_shared.events import CloudEvent, EventSpec, encode
from heard_shared.kafka import TRANSIENT_ERRORS, EventPublisher
from heard_shared.keyed_lock import KeyedLock
from heard_shared.logs import get_logger
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import Document

log = get_logger(__name__)

OUTBOX_FIELD = "_outbox"
SEQUENCE_FIELD = "_outbox_seq"
PENDING_FIELD = "_outbox_pending"
# A read projection that leaves the outbox's bookkeeping out of anything shown to people.
WITHOUT_OUTBOX = {OUTBOX_FIELD: 0, SEQUENCE_FIELD: 0, PENDING_FIELD: 0}

# Documents a relay pass works on at once.
RELAY_CONCURRENCY = 16

# Entries are stored as JSON strings, the pending flag as 0/1 and a sequence number counts what was
# staged: strings, integers and $size behave the same on MongoDB and on every MongoDB-wire server we
# run locally, while embedded documents inside $push, booleans and array equality do not.


@dataclass(frozen=True)
class OutgoingEvent:
    spec: EventSpec[Any]
    event: CloudEvent[Any]

    def as_entry(self) -> str:
        return json.dumps(
            {
                "id": self.event.id,
                "topic": self.spec.topic,
                "key": self.event.subject or self.event.id,
                "value": encode(self.event).decode(),
            }
        )


def with_outbox(update: Document, *events: OutgoingEvent) -> Document:
    """Adds the events to a MongoDB update document so they are stored with the state change."""
    if not events:
        return update
    merged = {op: dict(fields) for op, fields in update.items()}
    merged.setdefault("$push", {})[OUTBOX_FIELD] = {"$each": [e.as_entry() for e in events]}
    merged.setdefault("$inc", {})[SEQUENCE_FIELD] = len(events)
    merged.setdefault("$set", {})[PENDING_FIELD] = 1
    return merged


def outbox_fields(*events: OutgoingEvent) -> Document:
    """The same for a document being inserted."""
    return {OUTBOX_FIELD: [e.as_entry() for e in events], SEQUENCE_FIELD: len(events), PENDING_FIELD: int(bool(events))}


def published_on_insert(document_id: Any, *, staged: int) -> tuple[Document, Document]:
    """(filter, update) that empties the outbox of a document whose `staged` events, inserted with it, were all
    published.

    Applies only while nothing else was staged since (same sequence), so it needs no re-read; otherwise the
    later writer's flush (or the relay) publishes and removes everything.
    """
    return {"_id": document_id, SEQUENCE_FIELD: staged}, {"$set": {OUTBOX_FIELD: [], PENDING_FIELD: 0}}


# Takes a document's turn for writers that must not overlap on one document (see heard_shared.keyed_lock).
DocumentLock = Callable[[Any], AbstractAsyncContextManager[None]]


async def relay_each(
    document_ids: Iterable[Any], relay: Callable[[Any], Awaitable[int]], *, concurrency: int = RELAY_CONCURRENCY
) -> tuple[int, BaseException | None]:
    """Runs `relay` on many documents at once; returns the total it relayed and the first failure, if any.

    A document's own events stay in order (one call per document), and documents are independent. One at a time, a
    pass paid a database round trip and a broker acknowledgement per document in turn, and fell minutes behind
    20 submissions/s on a busy machine. After a failure no further document is started: a broker that is down
    costs one wave of waits, not one per pending document.
    """
    slots = asyncio.Semaphore(concurrency)
    failures: list[BaseException] = []

    async def one(document_id: Any) -> int:
        async with slots:
            if failures:
                return 0
            try:
                return await relay(document_id)
            except Exception as error:  # noqa: BLE001 - handed to the caller after the wave
                failures.append(error)
                return 0

    relayed = sum(await asyncio.gather(*(one(document_id) for document_id in document_ids)))
    return relayed, failures[0] if failures else None


class OutboxRelay:
    def __init__(
        self,
        publisher: EventPublisher,
        metrics: ServiceMetrics,
        *,
        fast_path_seconds: float = 0.5,
        relay_publish_seconds: float = 2.0,
        skip_fast_path_seconds: float = 5.0,
        broker_alive_seconds: float = 3.0,
    ) -> None:
        self.publisher = publisher
        self.metrics = metrics
        # How long a request waits for Kafka on the fast path before leaving the events to the relay. They are
        # stored already, so a broker that is down or slow costs the caller this much, not the producer's
        # 15 s request timeout; a send cut short may still be delivered, and consumers deduplicate.
        self.fast_path_seconds = fast_path_seconds
        # Once the fast path has failed, requests skip it for this long (or until the relay publishes again) and
        # leave their events to the relay at once: with the broker down a request costs no wait at all.
        self.skip_fast_path_seconds = skip_fast_path_seconds
        self._fast_path_closed_until = 0.0
        # A broker that took an event this recently is up, however slow it is now (a busy machine): a fast path cut
        # short then leaves only its own events to the relay and stays open for the next request. Closing it sent
        # every request's events to the relay for 5 s at a time, and the relay, one document after another on a
        # busy database, fell minutes behind (measured at 20 submissions/s on the 2-core machine: submissions
        # routed after up to 89 s, answers reaching routing after escalations had fired).
        self.broker_alive_seconds = broker_alive_seconds
        self._last_published = -float("inf")
        # The relay's wait for Kafka per document. It holds the document's turn meanwhile (a staff action on the
        # same item waits for it), and a broker that is down fails the whole pass at the first document.
        self.relay_publish_seconds = relay_publish_seconds
        # A writer's flush and the relay's flush of one document take turns, so the second finds the outbox
        # already emptied instead of publishing the same events again. (Across replicas a duplicate remains
        # possible; consumers deduplicate by event id.)
        self._flushing = KeyedLock()
        # Flushes finishing, in the background, what a fast path cut short while Kafka was up (see `try_flush`), and
        # writes emptying outboxes whose writer published the events itself (see `empty_later`).
        self._finishing: set[asyncio.Task[None]] = set()
        # Documents whose writer publishes what it just staged itself (see `writing`): the relay leaves them alone.
        self._writing: Counter[Any] = Counter()

    @property
    def fast_path_open(self) -> bool:
        return time.monotonic() >= self._fast_path_closed_until

    @property
    def _broker_alive(self) -> bool:
        return time.monotonic() - self._last_published < self.broker_alive_seconds

    def _fast_path_failed(self, error: BaseException) -> None:
        if self._broker_alive:
            log.info("outbox fast path cut short: Kafka is slow", error=repr(error))
            return
        log.warning("outbox publish deferred to relay", error=repr(error), skip_seconds=self.skip_fast_path_seconds)
        self._fast_path_closed_until = time.monotonic() + self.skip_fast_path_seconds

    def _kafka_took_events(self) -> None:
        self._last_published = time.monotonic()
        self._fast_path_closed_until = 0.0

    async def ensure_indexes(self, collection: AsyncCollection[Document]) -> None:
        await collection.create_index(PENDING_FIELD)

    async def publish_now(
        self,
        *events: OutgoingEvent,
        within: float | None = None,
        stored_in: tuple[AsyncCollection[Document], Any] | None = None,
    ) -> bool:
        """Publishes events just staged in a new document, from memory; False leaves them to the relay.

        `within` replaces `fast_path_seconds` for a caller that nobody waits on (a consumer) and that would rather
        wait for a busy broker than leave its events to the relay, which publishes one document at a time.
        `stored_in` (collection, document id) says where they are staged: a publish that a live but slow Kafka cut
        short is then finished in the background, as a staff action's is (see `_finish_later`).
        """
        if not self.fast_path_open:
            return False
        try:
            async with asyncio.timeout(self.fast_path_seconds if within is None else within):
                for event in events:
                    await self.publisher.publish(event.event, event.spec.topic)
        except TRANSIENT_ERRORS as error:
            if stored_in is not None and self._broker_alive:
                self._finish_later(*stored_in)
            self._fast_path_failed(error)
            return False
        self._kafka_took_events()
        return True

    @contextlib.contextmanager
    def writing(self, document_id: Any) -> Iterator[None]:
        """Marks a document whose writer stages events and publishes them from memory right after.

        Meanwhile the relay skips it, so it does not publish the same events a second time; whatever the writer
        leaves pending (its publish failed, or it stopped) is the relay's again once the block ends.
        """
        self._writing[document_id] += 1
        try:
            yield
        finally:
            self._done_writing(document_id)

    def _done_writing(self, document_id: Any) -> None:
        self._writing[document_id] -= 1
        if not self._writing[document_id]:
            del self._writing[document_id]

    async def flush(
        self,
        collection: AsyncCollection[Document],
        document_id: Any,
        *,
        publish_within: float | None = None,
        document: Document | None = None,
    ) -> int:
        """Publishes the document's pending events in order and removes them; returns how many.

        `publish_within` bounds the wait for Kafka only (TimeoutError after it): reading and updating the document
        take as long as the database needs, so a busy database never leaves published events in the outbox.
        `document` is the document as the caller's own write returned it, which saves reading it again (were it
        stale, an event would be published twice, which consumers allow for, and never removed unpublished).
        """
        async with self._flushing(str(document_id)):
            return await self._flush(collection, document_id, publish_within, document)

    async def _flush(
        self,
        collection: AsyncCollection[Document],
        document_id: Any,
        publish_within: float | None,
        document: Document | None = None,
    ) -> int:
        if document is None:
            document = await collection.find_one({"_id": document_id}, {OUTBOX_FIELD: 1, SEQUENCE_FIELD: 1})
        pending: list[str] = (document or {}).get(OUTBOX_FIELD) or []
        published: list[str] = []
        try:
            async with asyncio.timeout(publish_within):
                for raw in pending:
                    entry = json.loads(raw)
                    value = entry["value"].encode()
                    await self.publisher.publish_raw(topic=entry["topic"], key=entry["key"], value=value)
                    published.append(raw)
        finally:
            if published:
                self._kafka_took_events()
                sequence = (document or {}).get(SEQUENCE_FIELD)
                await self._remove(collection, document_id, published, sequence if published == pending else None)
        return len(published)

    @staticmethod
    async def _remove(
        collection: AsyncCollection[Document], document_id: Any, published: list[str], sequence: int | None
    ) -> None:
        if sequence is not None:
            # Common case, one write: nothing was staged since we read (same sequence), so empty the outbox.
            cleared = await collection.update_one(
                {"_id": document_id, SEQUENCE_FIELD: sequence}, {"$set": {OUTBOX_FIELD: [], PENDING_FIELD: 0}}
            )
            if cleared.modified_count:
                return
        # Something was staged meanwhile: remove exactly what was published ($pullAll matches by value, which
        # every MongoDB-wire server supports; not all support query conditions inside $pull).
        await collection.update_one({"_id": document_id}, {"$pullAll": {OUTBOX_FIELD: published}})
        await collection.update_one({"_id": document_id, OUTBOX_FIELD: {"$size": 0}}, {"$set": {PENDING_FIELD: 0}})

    async def try_flush(
        self, collection: AsyncCollection[Document], document_id: Any, *, document: Document | None = None
    ) -> None:
        """The fast path after a write: a failure here is fine, the relay will publish later."""
        if not self.fast_path_open:
            return
        try:
            await self.flush(collection, document_id, publish_within=self.fast_path_seconds, document=document)
        except TRANSIENT_ERRORS as error:
            if self._broker_alive:
                self._finish_later(collection, document_id)
            self._fast_path_failed(error)

    def _finish_later(self, collection: AsyncCollection[Document], document_id: Any) -> None:
        """Publishes the document's events in the background, as the relay would, but now: a live but slow broker
        takes them within seconds, while the relay's next pass over a busy database came tens of seconds later
        (measured at 20 submissions/s: answers reaching routing 26-41 s late, after escalations had fired)."""

        async def finish() -> None:
            try:
                await self.flush(collection, document_id, publish_within=self.relay_publish_seconds)
            except TRANSIENT_ERRORS as error:
                log.info("outbox publish left to the relay", error=repr(error))

        self._in_background(finish())

    def empty_later(self, document_id: Any, emptying: Coroutine[Any, Any, Any]) -> None:
        """Runs the write that empties a document's outbox (e.g. `published_on_insert`) after its writer published the
        events itself, without the writer waiting for it; the relay leaves the document alone until it is done.

        For a consumer: it commits and fetches its next batch while the store still empties the last one's outboxes,
        instead of the two taking turns. A write that fails or never runs leaves the events pending, and the relay
        publishes them again (consumers deduplicate by event id).
        """
        self._writing[document_id] += 1

        async def empty() -> None:
            try:
                await emptying
            except PyMongoError as error:
                log.info("outbox left to the relay to empty", document_id=document_id, error=repr(error))
            finally:
                self._done_writing(document_id)

        self._in_background(empty())

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs `work` as a task that `close` stops."""
        task = asyncio.create_task(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def close(self) -> None:
        """Stops the background flushes and emptyings; what they had not finished stays pending for the relay."""
        for task in list(self._finishing):
            task.cancel()
        await asyncio.gather(*self._finishing, return_exceptions=True)

    async def relay_once(
        self,
        collection: AsyncCollection[Document],
        *,
        limit: int = 500,
        skip: Container[Any] = (),
        lock: DocumentLock | None = None,
    ) -> int:
        """Publishes what is still pending; `skip` names documents whose writer is still finishing them."""
        # Ids first, work after: a cursor left open while publishing keeps a read open on the server, which on
        # SQLite-backed MongoDB-wire servers holds back every writer meanwhile.
        pending = [document["_id"] async for document in collection.find({PENDING_FIELD: 1}, {"_id": 1}).limit(limit)]

        async def relay(document_id: Any) -> int:
            async with lock(document_id) if lock else contextlib.nullcontext():
                return await self.flush(collection, document_id, publish_within=self.relay_publish_seconds)

        ready = (document_id for document_id in pending if document_id not in skip and document_id not in self._writing)
        relayed, failure = await relay_each(ready, relay)
        if relayed:
            self.metrics.outbox_relayed.labels(self.metrics.service).inc(relayed)
        if failure is not None:
            raise failure
        return relayed

    async def run(self, collections: list[AsyncCollection[Document]], *, interval_seconds: float = 1.0) -> None:
        while True:
            for collection in collections:
                try:
                    await self.relay_once(collection)
                except TRANSIENT_ERRORS as error:
                    log.warning("outbox relay waiting for infrastructure", error=repr(error))
                except Exception:
                    log.exception("outbox relay error")
            await asyncio.sleep(interval_seconds)
