"""The shared consumer on the real broker and database: commit after effect, dedupe, dead letters, retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
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


@pytest.fixture
async def running(stack: Stack) -> AsyncIterator[tuple[str, Handler]]:
    topic = unique("test.consumer")
    await topics.ensure_topics(stack.kafka_bootstrap, (topic, topics.DEAD_LETTER))
    mongo = MongoResource(stack.mongodb_uri, unique("consumer").replace("-", "_"), app_name="consumer-test")
    broker = create_broker(stack.kafka_bootstrap, client_id="consumer-test")
    sink = KafkaDeadLetterSink(stack.kafka_bootstrap, client_id="consumer-test")
    consumer = EventConsumer(
        broker,
        group_id=unique("group"),
        inbox=Inbox(mongo.db["inbox"]),
        metrics=ServiceMetrics("test"),
        dead_letters=sink,
        retry_delay_seconds=0.2,
    )
    handler = Handler(transient_failures=2)
    consumer.subscribe(topic, (ev.INBOUND,), handler)
    consumer.register()
    await sink.start()
    await broker.start()
    try:
        yield topic, handler
    finally:
        await broker.stop()
        await sink.stop()
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()


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
