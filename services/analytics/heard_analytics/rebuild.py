"""Rebuilding the read model from the topics: every event from the beginning, into a fresh database.

The read model is a pure function of the events (facts.py: every fact is a first, a last or a constant, so neither
repetition nor order matters), so replaying the topics into an empty database gives the same cells, open items and
therefore the same public figures as the live one. The replay reads without a consumer group, so it never moves the
live service's offsets, and stops at the end offsets it found when it started (or at those it is given).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo.asynchronous.database import AsyncDatabase

from heard_analytics.bootstrap import CONSUMED
from heard_analytics.projection import ReadModel
from heard_shared import events as ev
from heard_shared.events import CloudEvent, InvalidEvent
from heard_shared.mongo import Document

# Fields of a cell that are not figures: where it is, and bookkeeping.
NOT_FIGURES = frozenset({"_id", "month", "year", "precinct", "neighbourhood", "kind", "category"}) | {
    "updated_at",  # before updated_ms
    "updated_ms",
    "applied_tokens",
    "writer",
}


@dataclass
class ReplayReport:
    events: int = 0
    changed: int = 0
    unreadable: int = 0  # went to the dead-letter topic when they first arrived; skipped again

    def as_dict(self) -> dict[str, int]:
        return {"events": self.events, "changed": self.changed, "unreadable": self.unreadable}


async def replay(
    model: ReadModel,
    bootstrap_servers: str,
    *,
    until: dict[TopicPartition, int] | None = None,
    concurrency: int = 500,
) -> ReplayReport:
    """Applies every event of the consumed topics, from the first offset to the end (or `until`), to `model`.

    Events of one item are applied in order, items `concurrency` at a time: the read model writes the events of
    different items that wait together in one round (projection.py), so more at a time means fewer round trips.
    """
    specs = {spec.topic: spec for spec in CONSUMED}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    report = ReplayReport()
    lanes = asyncio.Semaphore(max(1, concurrency))

    async def apply_in_order(events: list[CloudEvent[Any]]) -> None:
        async with lanes:
            for event in events:
                if await model.apply(event):
                    report.changed += 1

    try:
        partitions = await consumed_partitions(bootstrap_servers)
        if not partitions:
            return report
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = dict(until) if until is not None else await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if await consumer.position(tp) < end.get(tp, 0)}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=2000)
            by_item: dict[str, list[CloudEvent[Any]]] = {}
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= end[tp]:
                        continue
                    report.events += 1
                    headers = {name: value for name, value in (record.headers or ())}
                    try:
                        event = ev.decode(record.value, headers, expected=(specs[tp.topic],))
                    except InvalidEvent:
                        report.unreadable += 1
                        continue
                    item = record.key.decode() if record.key else (event.subject or "")
                    by_item.setdefault(item, []).append(event)
            await asyncio.gather(*(apply_in_order(events) for events in by_item.values()))
            remaining = {tp for tp in remaining if await consumer.position(tp) < end[tp]}
        await model.finish_pending()
        return report
    finally:
        await consumer.stop()


async def consumed_partitions(bootstrap_servers: str) -> list[TopicPartition]:
    """Every partition of the topics analytics reads (those that exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([spec.topic for spec in CONSUMED])
    finally:
        await admin.close()
    return sorted(
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if not topic["error_code"]
        for partition in topic["partitions"]
    )


def _figures(cell: Document) -> dict[str, Any]:
    """A cell's counters, without zeros (a counter that went back to 0 is no counter)."""
    return {k: v for k, v in cell.items() if k not in NOT_FIGURES and v != 0}


async def differences(live: AsyncDatabase[Document], rebuilt: AsyncDatabase[Document]) -> list[str]:
    """Where two read models disagree: cells whose counters differ and open items that differ (empty: they match)."""
    found: list[str] = []
    for collection, normalise in (("cells", _figures), ("open_items", dict)):
        left = {doc["_id"]: normalise(doc) async for doc in live[collection].find({})}
        right = {doc["_id"]: normalise(doc) async for doc in rebuilt[collection].find({})}
        for key in sorted(set(left) | set(right), key=str):
            a, b = left.get(key) or {}, right.get(key) or {}
            if a != b:
                found.append(f"{collection} {key}: live {a} rebuilt {b}")
    return found
