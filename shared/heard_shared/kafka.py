"""Kafka plumbing on FastStream: safe broker defaults, publishing, and a consumer that never loses a message.

Consumers commit only after the effect is durable (manual ack), skip events they already
processed (inbox keyed on CloudEvents source + id), send what can never be processed to the
dead-letter topic with the original bytes, headers and the reason, and move on. Infrastructure
failures (MongoDB or Kafka unreachable) are retried by seeking back, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Protocol, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure

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
DUPLICATE_KEY = 11000


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
        return bool(await self.seen_many(group, [event]))

    async def remember(self, group: str, event: CloudEvent[Any]) -> None:
        await self.remember_many(group, [event])

    async def seen_many(self, group: str, events: Sequence[CloudEvent[Any]]) -> set[str]:
        """The inbox keys among `events` already processed: one `$in` query for a whole batch."""
        keys = list({self.key(group, event) for event in events})
        if not keys:
            return set()
        return {document["_id"] async for document in self.collection.find({"_id": {"$in": keys}}, {"_id": 1})}

    async def remember_many(self, group: str, events: Sequence[CloudEvent[Any]]) -> None:
        """One unordered insert for a batch; events remembered already (a replay) are fine."""
        documents = {
            self.key(group, event): {"_id": self.key(group, event), "type": event.type, "processed_at": utc_now()}
            for event in events
        }
        if not documents:
            return
        try:
            await self.collection.insert_many(list(documents.values()), ordered=False)
        except BulkWriteError as error:
            if any(failure.get("code") != DUPLICATE_KEY for failure in error.details.get("writeErrors", ())):
                raise


def _headers(record: ConsumerRecord[Any, Any]) -> dict[str, bytes]:
    return {name: value for name, value in (record.headers or ())}


def _partition(record: ConsumerRecord[Any, Any]) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _lane(record: ConsumerRecord[Any, Any]) -> Hashable:
    """Messages of one key (the feedback id) are handled in order, whatever their topic; keyless ones keep their
    partition's order."""
    return record.key if record.key is not None else (record.topic, record.partition)


class EventConsumer:
    """Registers one FastStream batch subscriber that decodes, deduplicates, dead-letters and commits after the effect.

    A fetched batch is handled with concurrency across keys and in order within a key: the inbox is asked
    once for the whole batch, handlers of different feedback items overlap (so their MongoDB round trips and
    Kafka publishes pipeline), what was processed is remembered in one write, and offsets are committed only
    then. A transient failure stops the batch where it happened: each partition is committed up to its first
    message not handled and read again from there, so nothing is committed past a failed message (messages
    handled after it are redelivered and skipped by the inbox or repeated idempotently).
    """

    def __init__(
        self,
        broker: KafkaBroker,
        *,
        group_id: str,
        inbox: Inbox,
        metrics: ServiceMetrics,
        dead_letters: DeadLetterSink,
        retry_delay_seconds: float = 1.0,
        max_batch: int = 500,
        concurrency: int = 64,
    ) -> None:
        self.broker = broker
        self.dead_letters = dead_letters
        self.group_id = group_id
        self.inbox = inbox
        self.metrics = metrics
        self.retry_delay_seconds = retry_delay_seconds
        self.max_batch = max_batch
        self.concurrency = concurrency
        self.routes: dict[str, tuple[tuple[EventSpec[Any], ...], EventHandler]] = {}
        self._self_deduplicating: set[str] = set()
        self._subscriber: Any = None

    def subscribe(
        self, topic: str, specs: tuple[EventSpec[Any], ...], handler: EventHandler, *, self_deduplicating: bool = False
    ) -> None:
        """Declares what to do with a topic; `register` turns all declarations into one Kafka consumer.

        `self_deduplicating`: the handler itself recognises an event it has already applied, from the state it
        wrote in the same atomic write as its effects, so the inbox is neither asked nor written for this topic
        (its write per event is most of what remembering costs on a busy store).
        """
        self.routes[topic] = (specs, handler)
        if self_deduplicating:
            self._self_deduplicating.add(topic)

    def register(self) -> None:
        """One consumer for all of a service's topics: one group member, one rebalance at start."""
        if not self.routes:
            return

        async def consume(message: KafkaMessage) -> None:
            await self._consume(message)

        self._subscriber = self.broker.subscriber(
            *self.routes,
            group_id=self.group_id,
            ack_policy=AckPolicy.MANUAL,
            auto_offset_reset="earliest",
            batch=True,
            max_records=self.max_batch,
            # An empty poll waits this long (and FastStream sleeps as long again): the added latency when idle.
            batch_timeout_ms=50,
            decoder=_raw_body,
        )
        self._subscriber(consume)

    async def measure_lag(self) -> None:
        """Sets the lag gauge: log end minus committed offset, summed by topic over the partitions this replica owns.

        Committed, not fetched: a consumer stuck on a batch shows its backlog growing. Each replica reports only its
        own partitions, so `sum` over replicas is the group's lag and a partition moved in a rebalance is not counted
        twice.
        """
        consumer: AIOKafkaConsumer | None = getattr(self._subscriber, "consumer", None)
        if consumer is None:
            return
        assigned = list(consumer.assignment())
        ends = await consumer.end_offsets(assigned) if assigned else {}
        lag: dict[str, int] = dict.fromkeys(self.routes, 0)
        for partition in assigned:
            committed = await consumer.committed(partition)
            if committed is None:
                # Never committed: the group starts from the earliest retained offset.
                committed = (await consumer.beginning_offsets([partition]))[partition]
            lag[partition.topic] = lag.get(partition.topic, 0) + max(0, ends[partition] - committed)
        gauge = self.metrics.consumer_lag
        gauge.clear()
        for topic, messages in lag.items():
            if any(partition.topic == topic for partition in assigned):
                gauge.labels(self.metrics.service, self.group_id, topic).set(messages)

    async def run_lag_gauge(self, interval_seconds: float = 10.0) -> None:
        while True:
            try:
                await self.measure_lag()
            except Exception as error:  # noqa: BLE001 - a missed sample leaves the last value; the next one retries
                log.warning("consumer lag not measured", error=repr(error))
            await asyncio.sleep(interval_seconds)

    async def _consume(self, message: KafkaMessage) -> None:
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        consumer = cast(AIOKafkaConsumer, message.consumer)
        resume = await self.process_batch(records)
        await self._commit(consumer, records, resume)
        if resume:
            await asyncio.sleep(self.retry_delay_seconds)

    async def process_batch(self, records: Sequence[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
        """Handles a fetched batch; returns, per partition not finished, the offset to read again from."""
        decoded = [self._decode(record) for record in records]
        try:
            remembered = [
                event
                for record, event in zip(records, decoded, strict=True)
                if isinstance(event, CloudEvent) and record.topic not in self._self_deduplicating
            ]
            already = await self.inbox.seen_many(self.group_id, remembered)
        except Exception as error:  # noqa: BLE001 - nothing handled yet: read the whole batch again
            log.warning("inbox lookup failed, will retry", error=repr(error))
            return _first_offsets(records)
        lanes: dict[Hashable, list[int]] = {}
        for index, record in enumerate(records):
            lanes.setdefault(_lane(record), []).append(index)
        handled: set[int] = set()
        processed: list[CloudEvent[Any]] = []
        stopped = asyncio.Event()
        slots = asyncio.Semaphore(self.concurrency)

        async def run_lane(indexes: list[int]) -> None:
            async with slots:
                for index in indexes:
                    if stopped.is_set():
                        return
                    record = records[index]
                    try:
                        await self._handle(record, decoded[index], already, processed)
                    except Exception as error:  # noqa: BLE001 - transient or unforeseen: never commit past it
                        stopped.set()
                        log.warning(
                            "transient failure, will retry",
                            topic=record.topic,
                            partition=record.partition,
                            offset=record.offset,
                            error=repr(error),
                        )
                        self.metrics.events_consumed.labels(self.metrics.service, record.topic, "retried").inc()
                        return
                    handled.add(index)

        await asyncio.gather(*(run_lane(indexes) for indexes in lanes.values()))
        try:
            await self.inbox.remember_many(self.group_id, processed)
        except Exception as error:  # noqa: BLE001 - effects are idempotent: handling the batch again is safe
            log.warning("inbox write failed, will retry", error=repr(error))
            return _first_offsets(records)
        return _first_offsets([record for index, record in enumerate(records) if index not in handled])

    def _decode(self, record: ConsumerRecord[Any, Any]) -> CloudEvent[Any] | InvalidEvent:
        specs, _ = self.routes[record.topic]
        try:
            return decode(record.value, _headers(record), expected=specs)
        except InvalidEvent as invalid:
            return invalid

    async def _handle(
        self,
        record: ConsumerRecord[Any, Any],
        decoded: CloudEvent[Any] | InvalidEvent,
        already: set[str],
        processed: list[CloudEvent[Any]],
    ) -> None:
        topic = record.topic
        started = time.perf_counter()
        if isinstance(decoded, InvalidEvent):
            await self.dead_letter(record, decoded.code, decoded.reason)
            self.metrics.events_consumed.labels(self.metrics.service, topic, "dead_lettered").inc()
            return
        key = Inbox.key(self.group_id, decoded)
        if key in already:
            outcome = "duplicate"
        else:
            _, handler = self.routes[topic]
            outcome = await self._process(decoded, handler, record)
            if outcome == "processed":
                # A copy of the same event later in this batch (same key, so same lane, so after) is skipped.
                already.add(key)
                if topic not in self._self_deduplicating:
                    processed.append(decoded)
        self.metrics.events_consumed.labels(self.metrics.service, topic, outcome).inc()
        self.metrics.handler_seconds.labels(self.metrics.service, topic).observe(time.perf_counter() - started)

    async def _process(self, event: CloudEvent[Any], handler: EventHandler, record: ConsumerRecord[Any, Any]) -> str:
        """Runs the handler: transient errors propagate (retry later), bugs get three attempts, then dead letter."""
        for attempt in range(1, PROCESSING_ATTEMPTS + 1):
            try:
                await handler(event)
                return "processed"
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
            if attempt < PROCESSING_ATTEMPTS:
                await asyncio.sleep(0.1 * attempt)
        await self.dead_letter(
            record, "processing_failed", f"{type(failure).__name__}: {failure} (after {PROCESSING_ATTEMPTS} attempts)"
        )
        return "dead_lettered"

    async def _commit(
        self,
        consumer: AIOKafkaConsumer,
        records: Sequence[ConsumerRecord[Any, Any]],
        resume: dict[TopicPartition, int],
    ) -> None:
        """Commits each partition past what was handled, and rewinds the unfinished ones to their first gap."""
        offsets = {partition: offset + 1 for partition, offset in _last_offsets(records).items()} | resume
        assigned = consumer.assignment()
        try:
            # A partition lost in a rebalance meanwhile is not ours to commit; its new owner reads it again.
            await consumer.commit({p: o for p, o in offsets.items() if p in assigned})
        except KafkaError as error:
            # The effects are durable and remembered: a lost commit only means redelivered duplicates.
            log.warning("offset commit failed", error=repr(error))
        for partition, offset in resume.items():
            if partition in assigned:
                consumer.seek(partition, offset)

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


def _first_offsets(records: Iterable[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for record in records:
        partition = _partition(record)
        first[partition] = min(first.get(partition, record.offset), record.offset)
    return first


def _last_offsets(records: Iterable[ConsumerRecord[Any, Any]]) -> dict[TopicPartition, int]:
    last: dict[TopicPartition, int] = {}
    for record in records:
        partition = _partition(record)
        last[partition] = max(last.get(partition, record.offset), record.offset)
    return last


async def _raw_body(message: Any) -> Any:
    """Hands the subscriber the untouched bytes; decoding is ours so failures can be dead-lettered."""
    return message.body
