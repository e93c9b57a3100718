"""Kafka topic names: one topic per event type, keyed by feedback id."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

INBOUND = "feedback.inbound"
SUBMITTED = "feedback.submitted"
ROUTED = "feedback.routed"
ACKNOWLEDGED = "feedback.acknowledged"
ANSWERED = "feedback.answered"
ESCALATED = "feedback.escalated"
CLOSED = "feedback.closed"
REOPENED = "feedback.reopened"
REFERRED = "feedback.referred"
TRIAGED = "feedback.triaged"
DEAD_LETTER = "feedback.deadletter"
# Dead letters from feedback.inbound keep the original bytes, which may hold a resident's contact
# details; like feedback.inbound itself they stay on a topic only intake reads.
INBOUND_DEAD_LETTER = "feedback.inbound.deadletter"

ALL_TOPICS = (
    INBOUND,
    SUBMITTED,
    ROUTED,
    ACKNOWLEDGED,
    ANSWERED,
    ESCALATED,
    CLOSED,
    REOPENED,
    REFERRED,
    TRIAGED,
    DEAD_LETTER,
    INBOUND_DEAD_LETTER,
)
PARTITIONS = 3


def dead_letter_topic(source_topic: str) -> str:
    return INBOUND_DEAD_LETTER if source_topic == INBOUND else DEAD_LETTER


async def ensure_topics(
    bootstrap_servers: str, topics: tuple[str, ...] = ALL_TOPICS, replication_factor: int = 1
) -> None:
    """Creates missing topics; existing ones are left as an operator configured them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            # Another replica may create the same topic between our list and create.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(name=t, num_partitions=PARTITIONS, replication_factor=replication_factor)
                        for t in missing
                    ]
                )
    finally:
        await admin.close()


def ensure_topics_sync(bootstrap_servers: str) -> None:
    asyncio.run(ensure_topics(bootstrap_servers))
