"""The shared consumer on the real broker and database: commit after effect, dedupe, dead letters, retries,
and batches that keep each item's order."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.errors import AutoReconnect

from heard_devstack import Stack
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.events import CloudEvent
from heard_shared.kafka import EventConsumer, Inbox, KafkaDeadLetterSink, create_broker
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import MongoResource
from tests.helpers import TopicReader, eventually, produce, unique

pytestmark = pytest.mark.integration


@dataclass
class Handler:
    """Fails the way a test tells it to, and remembers what it processed."""

    transient_failures: int = 0
    poison_text: str = "poison"
    calls: list[str] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)

    async def __call__(self, event: CloudEvent[Any]) -> None:
        self.calls.append(event.id)
        if self.transient_failures:
            self.transient_failures -= 1
            raise AutoReconnect("MongoDB went away")
        if event.data.text == self.poison_text:
            raise ValueError("this handler cannot cope with poison")
        self.processed.append(event.id)


@contextlib.asynccontextmanager
async def consuming(stack: Stack, topic: str, group: str, handler: Any) -> AsyncIterator[EventConsumer]:
    await topics.ensure_topics(stack.kafka_bootstrap, (topic, topics.DEAD_LETTER))
    mongo = MongoResource(stack.mongodb_uri, unique("consumer").replace("-", "_"), app_name="consumer-test")
    broker = create_broker(stack.kafka_bootstrap, client_id="consumer-test")
    sink = KafkaDeadLetterSink(stack.kafka_bootstrap, client_id="consumer-test")
    consumer = EventConsumer(
        broker,
        group_id=group,
        inbox=Inbox(mongo.db["inbox"]),
        metrics=ServiceMetrics("test"),
        dead_letters=sink,
        retry_delay_seconds=0.2,
    )
    consumer.subscribe(topic, (ev.INBOUND,), handler)
    consumer.register()
    await sink.start()
    await broker.start()
    try:
        yield consumer
    finally:
        await broker.stop()
        await sink.stop()
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()


@pytest.fixture
async def running(stack: Stack) -> AsyncIterator[tuple[str, Handler]]:
    topic = unique("test.consumer")
    handler = Handler(transient_failures=2)
    async with consuming(stack, topic, unique("group"), handler):
        yield topic, handler


def inbound(event_id: str, text: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:test",
            "type": ev.INBOUND.event_type,
            "subject": event_id,
            "data": {"kind": "concern", "text": text},
        }
    ).encode()


async def test_retries_transient_failures_dedupes_and_dead_letters_poison(
    stack: Stack, running: tuple[str, Handler]
) -> None:
    topic, handler = running
    first, poison, last = unique("e1"), unique("e2"), unique("e3")
    for event_id, text in ((first, "hello"), (first, "hello"), (poison, "poison"), (last, "bye")):
        # Same key: one partition, so the order above is the order of processing.
        await produce(stack.kafka_bootstrap, topic, inbound(event_id, text), key=b"same-key")

    async def done() -> bool:
        return last in handler.processed

    await eventually(done, timeout=60, what="the last event to be processed")
    assert handler.processed == [first, last], "the duplicate is skipped and poison never counts as processed"
    assert handler.calls[:3] == [first, first, first], "a transient failure is retried, not dead-lettered"
    assert handler.calls.count(poison) == 3, "a failing handler gets three attempts"

    async with TopicReader(stack.kafka_bootstrap, topics.DEAD_LETTER) as reader:
        record = await reader.wait_for(
            lambda r: dict(r.headers).get("dlq.source.topic") == topic.encode(),
            what="the poison message in the dead-letter topic",
        )
    headers = dict(record.headers)
    assert headers["dlq.reason.code"] == b"processing_failed"
    assert b"cannot cope with poison" in headers["dlq.reason"]
    assert record.value == inbound(poison, "poison")


@dataclass
class OrderRecorder:
    """Records each item's completed events in order; fails one chosen event transiently once, slows others."""

    fail_once: str
    completed: dict[str, list[int]] = field(default_factory=dict)
    in_flight: int = 0
    most_in_flight: int = 0

    async def __call__(self, event: CloudEvent[Any]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.002 * (hash(event.id) % 5))
            if event.id == self.fail_once:
                self.fail_once = ""
                raise AutoReconnect("MongoDB went away")
            item, sequence = event.data.text.split("#")
            self.completed.setdefault(item, []).append(int(sequence))
        finally:
            self.in_flight -= 1


async def test_batches_overlap_items_keep_each_items_order_and_commit_only_what_is_done(stack: Stack) -> None:
    topic, group = unique("test.consumer.batch"), unique("group")
    items, per_item = 40, 8
    sent = [(f"item{i}", n) for n in range(per_item) for i in range(items)]
    event_ids = {(item, n): unique("e") for item, n in sent}
    recorder = OrderRecorder(fail_once=event_ids[("item7", 3)])
    await topics.ensure_topics(stack.kafka_bootstrap, (topic,))
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        # Everything is in the topic before the consumer starts, so it arrives in large batches.
        for item, n in sent:
            await producer.send(topic, inbound(event_ids[(item, n)], f"{item}#{n}"), key=item.encode())
        await producer.flush()
    finally:
        await producer.stop()

    async with consuming(stack, topic, group, recorder):

        async def all_done() -> bool:
            return sum(len(done) for done in recorder.completed.values()) >= len(sent)

        await eventually(all_done, timeout=60, what="every event to be handled")
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(topics.PARTITIONS)]

            reader = TopicReader(stack.kafka_bootstrap, topic)
            async with reader:
                ends = await reader.consumer.end_offsets(partitions)

            async def committed_everything() -> dict[TopicPartition, int] | None:
                offsets = await admin.list_consumer_group_offsets(group)
                done = {p: offsets[p].offset for p in partitions if p in offsets}
                return done if done == {p: ends[p] for p in partitions if ends[p]} else None

            await eventually(committed_everything, timeout=30, what="offsets committed to the end of every partition")
        finally:
            await admin.close()

    assert recorder.completed == {item: list(range(per_item)) for item in {item for item, _ in sent}}, (
        "each item's events completed once each, in the order they were produced, despite the transient failure"
    )
    assert recorder.most_in_flight > 1, "different items were handled at the same time"


async def test_lag_counts_what_is_not_committed_and_returns_to_zero(stack: Stack) -> None:
    topic, group = unique("test.consumer.lag"), unique("group")
    release = asyncio.Event()

    async def held(_: CloudEvent[Any]) -> None:
        await release.wait()

    await topics.ensure_topics(stack.kafka_bootstrap, (topic,))
    for n in range(5):
        await produce(stack.kafka_bootstrap, topic, inbound(unique("e"), f"held {n}"), key=f"item{n}".encode())
    async with consuming(stack, topic, group, held) as consumer:
        labels = {"service": "test", "group": group, "topic": topic}

        async def lag_is(expected: int) -> bool:
            await consumer.measure_lag()
            return consumer.metrics.registry.get_sample_value("heard_consumer_lag_messages", labels) == expected

        await eventually(lambda: lag_is(5), timeout=30, what="a lag of 5 while the handler holds the batch")
        release.set()
        await eventually(lambda: lag_is(0), timeout=30, what="no lag once the batch is committed")
