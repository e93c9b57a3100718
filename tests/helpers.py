"""Small tools the integration and end-to-end tests share: reading topics, waiting for conditions."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"
) -> T:
    """Polls until `check` returns something truthy; fails with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


class TopicReader:
    """Reads a topic from the beginning without a consumer group, so tests never disturb the services."""

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        self.records: list[ConsumerRecord[bytes, bytes]] = []

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def poll(self) -> list[ConsumerRecord[bytes, bytes]]:
        batches = await self.consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.records.extend(records)
        return self.records

    def events(self, subject: str | None = None) -> list[dict[str, Any]]:
        values = [json.loads(r.value) for r in self.records if r.value and r.value.startswith(b"{")]
        return [v for v in values if subject is None or v.get("subject") == subject]

    async def wait_for(
        self, predicate: Callable[[ConsumerRecord[bytes, bytes]], bool], *, timeout: float = 30.0, what: str = "record"
    ) -> ConsumerRecord[bytes, bytes]:
        async def find() -> ConsumerRecord[bytes, bytes] | None:
            await self.poll()
            return next((r for r in self.records if predicate(r)), None)

        return await eventually(find, timeout=timeout, what=what)


async def produce(
    bootstrap: str,
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
