"""The relays work on many documents at once, and stop starting new ones after a failure; the fast path tells a
slow broker from one that is down."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from pymongo.errors import AutoReconnect

from heard_shared import events as ev
from heard_shared.kafka import EventPublisher
from heard_shared.metrics import ServiceMetrics
from heard_shared.outbox import (
    OUTBOX_FIELD,
    PENDING_FIELD,
    SEQUENCE_FIELD,
    OutboxRelay,
    OutgoingEvent,
    relay_each,
)
from tests.helpers import eventually


async def test_documents_are_relayed_concurrently_up_to_the_limit() -> None:
    in_flight = peak = 0

    async def relay(document_id: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return document_id % 3  # events published for this document

    relayed, failure = await relay_each(range(40), relay, concurrency=8)

    assert failure is None
    assert relayed == sum(i % 3 for i in range(40))
    assert peak == 8


async def test_after_a_failure_no_further_document_is_started() -> None:
    started: list[int] = []

    async def relay(document_id: int) -> int:
        started.append(document_id)
        await asyncio.sleep(0.01)
        if document_id == 0:
            raise ConnectionError("broker down")
        return 1

    relayed, failure = await relay_each(range(100), relay, concurrency=4)

    assert isinstance(failure, ConnectionError)
    assert started == [0, 1, 2, 3], "only the first wave, which was already running"
    assert relayed == 3, "what the rest of that wave published still counts"


class SlowKafka(EventPublisher):
    """Takes each event after `delay` seconds; `down` makes it take nothing."""

    def __init__(self) -> None:
        self.metrics = ServiceMetrics("test")
        self.delay = 0.0
        self.down = False
        self.taken: list[str] = []

    async def publish_raw(self, *, topic: str, key: str, value: bytes) -> None:
        if self.down:
            await asyncio.sleep(3600)
        await asyncio.sleep(self.delay)
        self.taken.append(key)


def answered(n: int) -> OutgoingEvent:
    data = ev.FeedbackAnsweredV1(feedback_id=f"fb-{n}", answer="We looked into it.", answered_at=ev.utc_now())
    return OutgoingEvent(ev.ANSWERED, ev.new_event(ev.ANSWERED, data, source="urn:heard:intake", subject=f"fb-{n}"))


async def test_a_slow_broker_leaves_the_fast_path_open_and_a_silent_one_closes_it() -> None:
    kafka = SlowKafka()
    relay = OutboxRelay(kafka, kafka.metrics, fast_path_seconds=0.05, broker_alive_seconds=0.5)
    assert await relay.publish_now(answered(0))

    kafka.delay = 0.1  # slower than the fast path, but Kafka took an event moments ago: busy, not down
    assert not await relay.publish_now(answered(1))
    assert relay.fast_path_open, "the next request still tries Kafka itself"
    kafka.delay = 0.0
    assert await relay.publish_now(answered(2))

    kafka.down = True
    await asyncio.sleep(0.5)  # nothing taken for longer than broker_alive_seconds
    assert not await relay.publish_now(answered(3))
    assert not relay.fast_path_open, "with the broker down, requests leave their events to the relay at once"


class OneDocument:
    """The two calls a flush makes on a collection, for one document with staged events."""

    def __init__(self, staged: list[OutgoingEvent]) -> None:
        self.document: dict[str, Any] = {
            "_id": "doc",
            OUTBOX_FIELD: [event.as_entry() for event in staged],
            SEQUENCE_FIELD: 1,
            PENDING_FIELD: 1,
        }
        self.reads = 0

    async def find_one(self, query: dict[str, Any], projection: dict[str, Any]) -> dict[str, Any]:
        self.reads += 1
        return dict(self.document)

    async def update_one(self, query: dict[str, Any], update: dict[str, Any]) -> SimpleNamespace:
        self.document.update(update["$set"])
        return SimpleNamespace(modified_count=1)


async def test_a_staff_action_cut_short_by_a_slow_broker_is_published_at_once_in_the_background() -> None:
    kafka = SlowKafka()
    relay = OutboxRelay(kafka, kafka.metrics, fast_path_seconds=0.05, relay_publish_seconds=1.0)
    assert await relay.publish_now(answered(0))
    kafka.delay = 0.1  # Kafka is up but slower than the fast path
    document = OneDocument([answered(1)])

    await relay.try_flush(document, "doc")  # type: ignore[arg-type]  # the two calls a flush makes
    assert kafka.taken == ["fb-0"], "the request did not wait for it"
    await asyncio.sleep(0.5)
    assert "fb-1" in kafka.taken, "published without waiting for the relay's next pass"
    assert document.document[OUTBOX_FIELD] == [] and document.document[PENDING_FIELD] == 0
    await relay.close()


async def test_a_writer_that_hands_over_its_document_is_flushed_without_reading_it_again() -> None:
    kafka = SlowKafka()
    relay = OutboxRelay(kafka, kafka.metrics)
    document = OneDocument([answered(1), answered(2)])

    await relay.try_flush(document, "doc", document=dict(document.document))  # type: ignore[arg-type]

    assert kafka.taken == ["fb-1", "fb-2"]
    assert document.reads == 0
    assert document.document[OUTBOX_FIELD] == [] and document.document[PENDING_FIELD] == 0


async def test_a_submission_cut_short_by_a_slow_broker_is_published_at_once_in_the_background() -> None:
    kafka = SlowKafka()
    relay = OutboxRelay(kafka, kafka.metrics, fast_path_seconds=0.05, relay_publish_seconds=1.0)
    assert await relay.publish_now(answered(0))
    kafka.delay = 0.1
    document = OneDocument([answered(1)])

    stored_in = (document, "doc")
    assert not await relay.publish_now(answered(1), stored_in=stored_in)  # type: ignore[arg-type]
    await asyncio.sleep(0.5)
    assert "fb-1" in kafka.taken, "published without waiting for the relay's next pass"
    assert document.document[OUTBOX_FIELD] == [] and document.document[PENDING_FIELD] == 0
    await relay.close()


class PendingDocument(OneDocument):
    """OneDocument as the relay's pass finds it: listed while its outbox is pending."""

    def find(self, query: dict[str, Any], projection: dict[str, Any]) -> Any:
        listed = [{"_id": "doc"}] if self.document[PENDING_FIELD] else []

        class Cursor:
            def limit(self, count: int) -> Any:
                return self

            async def __aiter__(self) -> Any:
                for document in listed:
                    yield document

        return Cursor()


async def test_an_outbox_emptied_in_the_background_is_left_alone_by_the_relay_until_then() -> None:
    kafka = SlowKafka()
    relay = OutboxRelay(kafka, kafka.metrics)
    document = PendingDocument([answered(1)])
    assert await relay.publish_now(answered(1))
    emptied = asyncio.Event()

    async def empty_when_told() -> None:
        await emptied.wait()
        await document.update_one({"_id": "doc"}, {"$set": {OUTBOX_FIELD: [], PENDING_FIELD: 0}})

    relay.empty_later("doc", empty_when_told())
    assert await relay.relay_once(document) == 0, "published already: not again while the store empties it"  # type: ignore[arg-type]
    emptied.set()

    async def is_empty() -> bool:
        return bool(document.document[PENDING_FIELD] == 0)

    await eventually(is_empty, timeout=2, interval=0.01, what="the outbox emptied")
    assert await relay.relay_once(document) == 0  # type: ignore[arg-type]
    assert kafka.taken == ["fb-1"]


async def test_an_outbox_the_store_failed_to_empty_is_the_relays_again() -> None:
    kafka = SlowKafka()
    relay = OutboxRelay(kafka, kafka.metrics)
    document = PendingDocument([answered(1)])
    assert await relay.publish_now(answered(1))

    async def store_down() -> None:
        raise AutoReconnect("store restarting")

    relay.empty_later("doc", store_down())

    async def relayed() -> int:
        return await relay.relay_once(document)  # type: ignore[arg-type]

    assert await eventually(relayed, timeout=2, interval=0.01, what="the relay") == 1, "again: consumers deduplicate"
    assert kafka.taken == ["fb-1", "fb-1"]
    assert document.document[PENDING_FIELD] == 0
