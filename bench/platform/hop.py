"""Routing's hop throughput against a bare aiokafka consume→produce relay on the same broker, in one run.

    .venv/bin/python bench/platform/hop.py [--events 10000] [--rounds 3]

Starts Kafka and the default MongoDB-wire store through heard_devstack under its own profile
(`bench-platform`, ports +HEARD_PORT_OFFSET or +18000, state in .heard/bench-platform), then alternates:

- one by one: `--events` valid `feedback.submitted` events are preloaded into a topic of their own; then the bare
  relay as one first writes it with aiokafka copies them to another topic: each record sent and acknowledged
  before the next is read, offsets committed by auto-commit, producer `acks=all` with idempotence as every Heard
  producer. This is the goal's baseline. Issue 8 measured its bare relay at 1,964/s and set the goal (≥ 0.3)
  beside that figure and its relay with a MongoDB insert per message (264/s). This relay makes 1,700–2,000/s here
  and the one written for throughput (below) 13,000–17,000/s, so this is the relay the issue measured;
- batched: the same with a relay written for throughput (one group member, `getmany` of up to 500, `send` of every
  record without waiting, wait for the batch's deliveries, `commit`). Printed beside the goal's ratio as the
  ceiling of a hop on this broker, not as the goal's baseline;
- routing: routing is stopped, `--events` new `feedback.submitted` events are preloaded, routing is started
  (`python -m heard_routing`, as `make up` runs it, scheduler included) and works the backlog off.

Throughput is counted on the output topic from the first to the last output record's broker-side timestamp,
so process start-up and the consumer group join are left out of both. The relays' rates rise with the length of
the run (the broker and the client warm up): 2,000 events measure mostly their start (the batched relay 5,500–
10,100/s), 10,000 events their pace (medians 13,200–16,900/s), while routing's rate barely moves; hence the default
of 10,000. Prints each round, the medians and both ratios (issue 8's goal: ≥ 0.3 of the one-record relay). Asserts
nothing.
The machine is shared with the broker, the store and whatever else runs: the absolute figures are a floor, the ratio
is the point.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from heard_devstack import Profile, Stack, mongodb_mode
from heard_shared import events as ev
from heard_shared import topics

PROFILE = Profile("bench-platform", int(os.environ.get("HEARD_PORT_OFFSET", "18000")))
KINDS = ("complaint", "concern", "praise", "suggestion")
NEIGHBOURHOODS = ("Northgate", "Riverside", "Old Town", "Eastfield")


def submitted(feedback_id: str) -> bytes:
    kind = random.choice(KINDS)
    negative = kind in ("complaint", "concern")
    data = ev.FeedbackSubmittedV1(
        feedback_id=feedback_id,
        channel="api",
        kind=kind,
        language="en",
        text="The patrol car was parked across the bike lane on Elm Street again this morning.",
        location=ev.PublicLocation(neighbourhood=random.choice(NEIGHBOURHOODS)),
        severity="negative" if negative else "positive",
        negative=negative,
        submitted_at=datetime.now(UTC),
    )
    return ev.encode(ev.new_event(ev.SUBMITTED, data, source="urn:heard:intake", subject=feedback_id))


async def preload(bootstrap: str, topic: str, count: int) -> set[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    ids = {str(uuid.uuid4()) for _ in range(count)}
    try:
        for feedback_id in ids:
            await producer.send(topic, submitted(feedback_id), key=feedback_id.encode())
        await producer.flush()
    finally:
        await producer.stop()
    return ids


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        numbers = consumer.partitions_for_topic(topic) or range(topics.PARTITIONS)
        partitions = [TopicPartition(topic, p) for p in numbers]
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return offsets
    finally:
        await consumer.stop()


async def output_span(
    bootstrap: str, topic: str, start: dict[TopicPartition, int], count: int, timeout: float
) -> tuple[float, int]:
    """Reads `count` records written after `start`; returns (last - first broker timestamp in s, records seen)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    stamps: list[int] = []
    try:
        consumer.assign(list(start))
        for partition, offset in start.items():
            consumer.seek(partition, offset)
        deadline = time.monotonic() + timeout
        while len(stamps) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                stamps += [record.timestamp for record in records]
    finally:
        await consumer.stop()
    if len(stamps) < 2:
        return 0.0, len(stamps)
    return (max(stamps) - min(stamps)) / 1000, len(stamps)


async def relay(bootstrap: str, source: str, target: str, count: int, group: str) -> None:
    """The ceiling: what a competent engineer writes with aiokafka for an at-least-once hop at full speed."""
    consumer = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    relayed = 0
    try:
        while relayed < count:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            deliveries = [
                await producer.send(target, record.value, key=record.key)
                for records in batches.values()
                for record in records
            ]
            await asyncio.gather(*deliveries)
            await consumer.commit()
            relayed += len(deliveries)
    finally:
        await producer.stop()
        await consumer.stop()


async def relay_one_by_one(bootstrap: str, source: str, target: str, count: int, group: str) -> None:
    """The goal's baseline, the relay as first written: each record sent and acknowledged before the next is read,
    offsets committed by the consumer's auto-commit."""
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    relayed = 0
    try:
        async for record in consumer:
            await producer.send_and_wait(target, record.value, key=record.key)
            relayed += 1
            if relayed >= count:
                break
    finally:
        await producer.stop()
        await consumer.stop()


Relay = Callable[[str, str, str, int, str], Awaitable[None]]


async def relay_round(bootstrap: str, count: int, name: str, relay: Relay) -> float:
    source, target = f"bench.{name}.in", f"bench.{name}.out"
    await topics.ensure_topics(bootstrap, (source, target))
    await preload(bootstrap, source, count)
    start = await end_offsets(bootstrap, target)
    reader = asyncio.create_task(output_span(bootstrap, target, start, count, timeout=600))
    await relay(bootstrap, source, target, count, f"bench-{name}")
    span, seen = await reader
    return (seen - 1) / span if span else float("nan")


async def routing_round(stack: Stack, count: int) -> float:
    bootstrap = stack.kafka_bootstrap
    stack.stop_process("routing")
    await preload(bootstrap, topics.SUBMITTED, count)
    start = await end_offsets(bootstrap, topics.ROUTED)
    reader = asyncio.create_task(output_span(bootstrap, topics.ROUTED, start, count, timeout=1800))
    await asyncio.to_thread(stack.start_service, "routing")
    span, seen = await reader
    if seen < count:
        print(f"  routing produced only {seen} of {count} routed events before the timeout", flush=True)
    return (seen - 1) / span if span else float("nan")


async def measure(stack: Stack, args: argparse.Namespace) -> tuple[list[float], list[float], list[float]]:
    relay_rates: list[float] = []
    one_by_one_rates: list[float] = []
    routing_rates: list[float] = []
    bootstrap = stack.kafka_bootstrap
    for round_ in range(1, args.rounds + 1):
        relay_rates.append(await relay_round(bootstrap, args.events, f"relay.{round_}", relay))
        one_by_one_rates.append(await relay_round(bootstrap, args.events, f"one-by-one.{round_}", relay_one_by_one))
        routing_rates.append(await routing_round(stack, args.events))
        print(
            f"round {round_}: one by one {one_by_one_rates[-1]:6.0f}/s   batched {relay_rates[-1]:6.0f}/s"
            f"   routing {routing_rates[-1]:6.0f}/s   ratios {routing_rates[-1] / one_by_one_rates[-1]:.2f}"
            f" / {routing_rates[-1] / relay_rates[-1]:.3f}",
            flush=True,
        )
    return relay_rates, one_by_one_rates, routing_rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10000, help="events preloaded per measured phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running afterwards")
    args = parser.parse_args()

    stack = Stack(PROFILE)
    stack.down()
    for leftover in ("kafka", "mongodb", "logs", "run"):
        shutil.rmtree(stack.state / leftover, ignore_errors=True)
    try:
        print(f"starting Kafka, {mongodb_mode()} and routing (profile {PROFILE.name}) ...", flush=True)
        stack.up_infra()
        stack.start_service("routing")
        relay_rates, one_by_one_rates, routing_rates = asyncio.run(measure(stack, args))
    finally:
        if not args.keep:
            stack.down()
    relay_median, routing_median = statistics.median(relay_rates), statistics.median(routing_rates)
    one_by_one_median = statistics.median(one_by_one_rates)
    print(
        f"\n{args.events} events per phase, {args.rounds} alternating rounds, store {mongodb_mode()}, shared machine\n"
        f"bare relay, one record at a time (median): {one_by_one_median:8.0f} events/s\n"
        f"bare relay, batches of 500 (median):       {relay_median:8.0f} events/s\n"
        f"routing hop (median):                      {routing_median:8.0f} events/s\n"
        f"routing / one-record relay:                {routing_median / one_by_one_median:8.2f}   (goal >= 0.3)\n"
        f"routing / batched relay:                   {routing_median / relay_median:8.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
