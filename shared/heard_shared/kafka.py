"""Kafka plumbing on FastStream: safe broker defaults, publishing, and a consumer that never loses a message.

Consumers commit only after the effect is durable (manual ack), skip events they already
processed (inbox keyed on CloudEvents source + id), send what can never be processed to the
dead-letter topic with the original bytes, headers and the reason, and move on. Infrastructure
failures (MongoDB or Kafka unreachable) are retried by seeking back, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure

from heard_shared import topics
from heard_shared.events import CLOUDEVENTS_CONTENT_TYPE, CloudEvent, EventSpec, InvalidEvent, decode, encode, utc_now
from heard_shared.logs import get_logger
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import Document

log = get_logger(__name__)

EventHandler = Callable[[CloudEvent[Any]], Awaitable[None]]

# Errors that say "try again later", not "this message is bad".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionFailure, KafkaError, asyncio.TimeoutError)
PROCESSING_ATTEMPTS = 3


def create_broker(bootstrap_servers: str, *, client_id: str) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas and never writes duplicates on retry."""
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=15_000,
        logger=None,
    )


class EventPublisher:
    """Publishes CloudEvents in structured mode, keyed by subject (the feedback id)."""

    def __init__(self, broker: KafkaBroker, metrics: ServiceMetrics) -> None:
        self.broker = broker
        self.metrics = metrics

    async def publish(self, event: CloudEvent[Any], topic: str) -> None:
        await self.publish_raw(topic=topic, key=event.subject or event.id, value=encode(event))

    async def publish_raw(self, *, topic: str, key: str, value: bytes) -> None:
        await self.broker.publish(
            value,
            topic=topic,
            key=key.encode(),
            headers={"content-type": CLOUDEVENTS_CONTENT_TYPE},
        )
        self.metrics.events_published.labels(self.metrics.service, topic).inc()


class Inbox:
    """Remembers processed events per consumer group so a redelivery changes nothing."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    @staticmethod
    def key(group: str, event: CloudEvent[Any]) -> str:
        return f"{group}|{event.source}|{event.id}"

    async def seen(self, group: str, event: CloudEvent[Any]) -> bool:
        return await self.collection.find_one({"_id": self.key(group, event)}, {"_id": 1}) is not None

    async def remember(self, group: str, event: CloudEvent[Any]) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.collection.insert_one(
                {"_id": self.key(group, event), "type": event.type, "processed_at": utc_now()}
            )


def _headers(record: ConsumerRecord[Any, Any]) -> dict[str, bytes]:
    return {name: value for name, value in (record.headers or ())}


class EventConsumer:
    """Registers FastStream subscribers that decode, deduplicate, dead-letter and commit after the effect."""

    def __init__(
        self,
        broker: KafkaBroker,
        *,
        group_id: str,
        inbox: Inbox,
        metrics: ServiceMetrics,
        dead_letters: DeadLetterSink,
        retry_delay_seconds: float = 1.0,
    ) -> None:
        self.broker = broker
        self.dead_letters = dead_letters
        self.group_id = group_id
        self.inbox = inbox
        self.metrics = metrics
        self.retry_delay_seconds = retry_delay_seconds
        self.routes: dict[str, tuple[tuple[EventSpec[Any], ...], EventHandler]] = {}

    def subscribe(self, topic: str, specs: tuple[EventSpec[Any], ...], handler: EventHandler) -> None:
        """Declares what to do with a topic; `register` turns all declarations into one Kafka consumer."""
        self.routes[topic] = (specs, handler)

    def register(self) -> None:
        """One consumer for all of a service's topics: one group member, one rebalance at start."""
        if not self.routes:
            return

        async def consume(message: KafkaMessage) -> None:
            await self._consume(message)

        self.broker.subscriber(
            *self.routes,
            group_id=self.group_id,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            decoder=_raw_body,
        )(consume)

    async def _consume(self, message: KafkaMessage) -> None:
        record = message.raw_message
        assert isinstance(record, ConsumerRecord)
        topic = record.topic
        specs, handler = self.routes[topic]
        started = time.perf_counter()
        try:
            event = decode(record.value, _headers(record), expected=specs)
        except InvalidEvent as invalid:
            await self.dead_letter(record, invalid.code, invalid.reason)
            self.metrics.events_consumed.labels(self.metrics.service, topic, "dead_lettered").inc()
            await message.ack()
            return
        try:
            outcome = await self._process(event, handler, record)
        except TRANSIENT_ERRORS as error:
            # The effect did not happen; leave the offset uncommitted and read it again shortly.
            log.warning("transient failure, will retry", topic=topic, event_id=event.id, error=repr(error))
            self.metrics.events_consumed.labels(self.metrics.service, topic, "retried").inc()
            await asyncio.sleep(self.retry_delay_seconds)
            await message.nack()
            return
        self.metrics.events_consumed.labels(self.metrics.service, topic, outcome).inc()
        self.metrics.handler_seconds.labels(self.metrics.service, topic).observe(time.perf_counter() - started)
        await message.ack()

    async def _process(self, event: CloudEvent[Any], handler: EventHandler, record: ConsumerRecord[Any, Any]) -> str:
        if await self.inbox.seen(self.group_id, event):
            return "duplicate"
        for attempt in range(1, PROCESSING_ATTEMPTS + 1):
            try:
                await handler(event)
                break
            except TRANSIENT_ERRORS:
                raise
            except InvalidEvent as invalid:
                # A handler that finds the event well-formed but unacceptable (e.g. an unregistered source)
                # raises InvalidEvent: retrying cannot help, so it goes to the dead-letter topic at once with
                # the handler's reason code. Not remembered in the inbox, so a later replay can succeed.
                await self.dead_letter(record, invalid.code, invalid.reason)
                return "dead_lettered"
            except OperationFailure as error:
                if error.code in (11600, 11602, 189, 91):  # interrupted / primary stepped down / shutting down
                    raise ConnectionFailure(str(error)) from error
                failure: Exception = error
            except Exception as error:  # noqa: BLE001 - a handler bug must not stop the consumer
                failure = error
            log.warning("handler failed", event_id=event.id, attempt=attempt, error=repr(failure))
            if attempt == PROCESSING_ATTEMPTS:
                await self.dead_letter(
                    record, "processing_failed", f"{type(failure).__name__}: {failure} (after {attempt} attempts)"
                )
                return "dead_lettered"
            await asyncio.sleep(0.1 * attempt)
        await self.inbox.remember(self.group_id, event)
        return "processed"

    async def dead_letter(self, record: ConsumerRecord[Any, Any], code: str, reason: str) -> None:
        """Original value and headers kept byte for byte; where it came from and why go in `dlq.*` headers."""
        headers = [(name, value) for name, value in (record.headers or ())]
        headers += [
            ("dlq.reason.code", code.encode()),
            ("dlq.reason", reason[:2000].encode()),
            ("dlq.source.topic", record.topic.encode()),
            ("dlq.source.partition", str(record.partition).encode()),
            ("dlq.source.offset", str(record.offset).encode()),
            ("dlq.consumer.group", self.group_id.encode()),
            ("dlq.service", self.metrics.service.encode()),
            ("dlq.failed_at", utc_now().isoformat().encode()),
        ]
        await self.dead_letters.send(
            topics.dead_letter_topic(record.topic), value=record.value, key=record.key, headers=headers
        )
        self.metrics.dead_letters.labels(self.metrics.service, record.topic, code).inc()
        log.warning(
            "dead-lettered message",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            code=code,
            reason=reason,
        )


class DeadLetterSink(Protocol):
    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None: ...


class KafkaDeadLetterSink:
    """A plain aiokafka producer: FastStream's publish only takes text headers, and the
    dead-letter copy must keep the original headers byte for byte."""

    def __init__(self, bootstrap_servers: str, *, client_id: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_id = f"{client_id}-dlq"
        self.producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # aiokafka binds a producer to the running loop, so it is made here, not in __init__.
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.producer is None:
            raise RuntimeError("dead-letter sink used before start()")
        await self.producer.send_and_wait(topic, value=value, key=key, headers=headers)


async def _raw_body(message: Any) -> Any:
    """Hands the subscriber the untouched bytes; decoding is ours so failures can be dead-lettered."""
    return message.body
