"""The shared consumer's batches: order within a key, overlap across keys, and what a failure commits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from aiokafka import ConsumerRecord, TopicPartition
from pymongo.errors import AutoReconnect

from heard_shared import events as ev
from heard_shared.events import CloudEvent
from heard_shared.kafka import EventConsumer, Inbox
from heard_shared.metrics import ServiceMetrics

TOPIC = "feedback.answered"
GROUP = "heard-test"


class FakeInbox:
    def __init__(self, remembered: set[str] | None = None, *, lookup_fails: bool = False) -> None:
        self.remembered = set(remembered or ())
        self.lookup_fails = lookup_fails
        self.lookups = 0
        self.writes: list[list[str]] = []

    async def seen_many(self, group: str, events: list[CloudEvent[Any]]) -> set[str]:
        self.lookups += 1
        if self.lookup_fails:
            raise AutoReconnect("MongoDB went away")
        return {Inbox.key(group, e) for e in events} & self.remembered

    async def remember_many(self, group: str, events: list[CloudEvent[Any]]) -> None:
        keys = [Inbox.key(group, e) for e in events]
        self.writes.append(keys)
        self.remembered.update(keys)


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[dict[str, bytes]] = []

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        self.sent.append(dict(headers))


@dataclass
class Handler:
    """Records the order of calls per item; can be slow, fail transiently once, or always fail, per answer text."""

    slow: dict[str, float] = field(default_factory=dict)
    transient: set[str] = field(default_factory=set)
    broken: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    async def __call__(self, event: CloudEvent[Any]) -> None:
        text = event.data.answer
        self.calls.append(text)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.slow.get(text, 0.001))
            if text in self.transient:
                self.transient.discard(text)
                raise AutoReconnect("MongoDB went away")
            if text in self.broken:
                raise ValueError("a handler bug")
            self.finished.append(text)
        finally:
            self.in_flight -= 1


def answered(item: str, text: str, event_id: str | None = None) -> CloudEvent[Any]:
    data = ev.FeedbackAnsweredV1(feedback_id=item, answer=text, answered_at=datetime(2026, 1, 1, tzinfo=UTC))
    return ev.new_event(ev.ANSWERED, data, source="urn:test", subject=item, event_id=event_id)


def record(offset: int, event: CloudEvent[Any] | None, *, partition: int = 0, raw: bytes | None = None) -> Any:
    value = raw if raw is not None else ev.encode(cast(CloudEvent[Any], event))
    key = event.subject.encode() if event is not None and event.subject else b"bad"
    return ConsumerRecord(
        topic=TOPIC,
        partition=partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(value),
        headers=[],
    )


def consumer(handler: Handler, inbox: FakeInbox, dead_letters: FakeDeadLetters | None = None) -> EventConsumer:
    built = EventConsumer(
        cast(Any, None),
        group_id=GROUP,
        inbox=cast(Any, inbox),
        metrics=ServiceMetrics("test"),
        dead_letters=dead_letters or FakeDeadLetters(),
    )
    built.subscribe(TOPIC, (ev.ANSWERED,), handler)
    return built


async def test_keys_overlap_while_each_key_keeps_its_order() -> None:
    # Item a's first event is slow: b and c finish meanwhile, but a's later events wait for it.
    handler = Handler(slow={"a1": 0.05})
    inbox = FakeInbox()
    events = [answered("a", "a1"), answered("b", "b1"), answered("a", "a2"), answered("c", "c1"), answered("a", "a3")]
    records = [record(offset, event) for offset, event in enumerate(events)]

    resume = await consumer(handler, inbox).process_batch(records)

    assert resume == {}, "everything handled: commit the whole batch"
    assert [t for t in handler.finished if t.startswith("a")] == ["a1", "a2", "a3"]
    assert handler.finished.index("b1") < handler.finished.index("a1"), "another key does not wait for a slow one"
    assert handler.most_in_flight > 1
    assert inbox.lookups == 1 and len(inbox.writes) == 1, "one inbox read and one write for the whole batch"
    assert len(inbox.writes[0]) == 5


async def test_a_transient_failure_is_not_committed_past_and_stops_its_key() -> None:
    handler = Handler(transient={"a2"}, slow={"b1": 0.02})
    inbox = FakeInbox()
    records = [
        record(10, answered("a", "a1")),
        record(11, answered("a", "a2")),
        record(12, answered("a", "a3")),
        record(5, answered("b", "b1"), partition=1),
    ]

    resume = await consumer(handler, inbox).process_batch(records)

    assert resume == {TopicPartition(TOPIC, 0): 11}, "partition 0 is read again from the failed message"
    assert "a3" not in handler.calls, "a later event of the failed item never overtakes it"
    assert handler.finished == ["a1", "b1"], "what was already running finishes"
    assert len(inbox.writes[0]) == 2, "what was handled is remembered, so the retry skips it"

    handler.calls.clear()
    again = await consumer(handler, inbox).process_batch(records)
    assert again == {}
    assert handler.calls == ["a2", "a3"], "the retry handles only what had not been handled"


async def test_a_handler_bug_gets_three_attempts_then_a_dead_letter_and_the_batch_goes_on() -> None:
    handler = Handler(broken={"a1"})
    inbox, dead_letters = FakeInbox(), FakeDeadLetters()
    records = [record(0, answered("a", "a1")), record(1, answered("a", "a2")), record(2, None, raw=b"{not json")]

    resume = await consumer(handler, inbox, dead_letters).process_batch(records)

    assert resume == {}
    assert handler.calls.count("a1") == 3 and handler.finished == ["a2"]
    assert sorted(h["dlq.reason.code"] for h in dead_letters.sent) == [b"invalid_json", b"processing_failed"]
    assert inbox.writes == [[Inbox.key(GROUP, ev.decode(records[1].value))]], (
        "a dead-lettered event is not remembered, so a replay after a fix can succeed"
    )


async def test_duplicates_are_skipped_whether_remembered_or_repeated_in_the_batch() -> None:
    handler = Handler()
    old, new = answered("a", "old"), answered("a", "new")
    inbox = FakeInbox({Inbox.key(GROUP, old)})
    records = [record(0, old), record(1, new), record(2, new)]

    assert await consumer(handler, inbox).process_batch(records) == {}
    assert handler.calls == ["new"]


async def test_an_unreachable_inbox_handles_nothing_and_rewinds_every_partition() -> None:
    handler = Handler()
    records = [record(3, answered("a", "a1")), record(7, answered("b", "b1"), partition=2)]

    resume = await consumer(handler, FakeInbox(lookup_fails=True)).process_batch(records)

    assert resume == {TopicPartition(TOPIC, 0): 3, TopicPartition(TOPIC, 2): 7}
    assert handler.calls == []


class FakeKafkaConsumer:
    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks.append((partition, offset))


async def test_commit_goes_past_finished_partitions_up_to_the_gap_of_failed_ones_and_skips_lost_ones() -> None:
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    kafka = FakeKafkaConsumer({p0, p1})
    records = [
        record(10, answered("a", "a1")),
        record(11, answered("a", "a2")),
        record(4, answered("b", "b1"), partition=1),
        record(5, answered("b", "b2"), partition=1),
        record(8, answered("c", "c1"), partition=2),
    ]

    await consumer(Handler(), FakeInbox())._commit(cast(Any, kafka), records, {p1: 5})

    assert kafka.commits == [{p0: 12, p1: 5}], "p2 was lost in a rebalance: its new owner commits it"
    assert kafka.seeks == [(p1, 5)]
