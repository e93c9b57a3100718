"""Only registered city systems may publish into Heard; anything else is dead-lettered at once with its reason."""

from __future__ import annotations

from typing import Any, cast

from aiokafka import ConsumerRecord

from heard_intake.city_systems import CitySystemRegistry, InboundFromCitySystems
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.kafka import EventConsumer, Inbox
from heard_shared.metrics import ServiceMetrics


class FakeCollection:
    """Just enough of a MongoDB collection for the registry's lookups."""

    def __init__(self, documents: list[dict[str, Any]] | None = None) -> None:
        self.documents = {d["_id"]: d for d in documents or []}
        self.lookups = 0

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        self.lookups += 1
        document = self.documents.get(query["_id"])
        return document if document and document.get("revoked_at") is None else None


class FakeInbox:
    def __init__(self) -> None:
        self.remembered: list[str] = []

    async def seen(self, group: str, event: ev.CloudEvent[Any]) -> bool:
        return Inbox.key(group, event) in self.remembered

    async def remember(self, group: str, event: ev.CloudEvent[Any]) -> None:
        self.remembered.append(Inbox.key(group, event))


class FakeDeadLetters:
    def __init__(self) -> None:
        self.sent: list[dict[str, bytes]] = []
        self.topics: list[str] = []

    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        self.topics.append(topic)
        self.sent.append(dict(headers))


class FakeIntake:
    def __init__(self) -> None:
        self.recorded: list[str] = []

    async def record_inbound(self, event: ev.CloudEvent[Any]) -> None:
        self.recorded.append(event.source)


def inbound(source: str) -> ev.CloudEvent[Any]:
    return ev.new_event(
        ev.INBOUND, ev.FeedbackInboundV1(kind="praise", text="Thanks"), source=source, subject="ticket-1"
    )


def record() -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic=topics.INBOUND,
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=b"ticket-1",
        value=b"{}",
        checksum=None,
        serialized_key_size=8,
        serialized_value_size=2,
        headers=[("x-origin", b"311")],
    )


async def test_configured_and_stored_sources_are_registered_others_not() -> None:
    collection = FakeCollection([{"_id": "urn:city:records", "name": "Records", "revoked_at": None}])
    registry = CitySystemRegistry(cast(Any, collection), {"urn:city:311": "Riverton 311"})
    assert await registry.name_of("urn:city:311") == "Riverton 311"
    assert await registry.name_of("urn:city:records") == "Records"
    assert await registry.name_of("urn:somewhere:else") is None
    await registry.name_of("urn:somewhere:else")
    assert collection.lookups == 2, "a recent answer is cached"


async def test_unregistered_source_is_dead_lettered_once_with_its_reason_and_not_remembered() -> None:
    intake = FakeIntake()
    handler = InboundFromCitySystems(
        CitySystemRegistry(cast(Any, FakeCollection()), {"urn:city:311": "311"}), cast(Any, intake)
    )
    inbox, dead_letters = FakeInbox(), FakeDeadLetters()
    consumer = EventConsumer(
        cast(Any, None),
        group_id="heard-intake",
        inbox=cast(Any, inbox),
        metrics=ServiceMetrics("intake"),
        dead_letters=dead_letters,
    )

    outcome = await consumer._process(inbound("urn:rogue:system"), handler, record())
    assert outcome == "dead_lettered"
    assert len(dead_letters.sent) == 1, "no retries: the handler said the event can never succeed"
    assert dead_letters.topics == ["feedback.inbound.deadletter"], "inbound bytes stay on intake's own topic"
    headers = dead_letters.sent[0]
    assert headers["dlq.reason.code"] == b"unregistered_source"
    assert b"urn:rogue:system" in headers["dlq.reason"]
    assert headers["x-origin"] == b"311", "original headers are kept"
    assert inbox.remembered == [], "a replay after registration must still be processed"

    assert await consumer._process(inbound("urn:city:311"), handler, record()) == "processed"
    assert intake.recorded == ["urn:city:311"]
