"""Analytics benchmark: freshness (event → visible in /v1/transparency) and page/JSON latency by read-model size.

    .venv/bin/python bench/analytics/run.py [--per-year 100000] [--years 10] [--rate 200] [--duration 60]

Starts its own MongoDB-wire server (the devstack's default store, or MONGODB_URI) and Kafka broker through
heard_devstack, on the ports of HEARD_PORT_OFFSET + 1000 (state under .heard/bench-analytics, or --stack-name), and
seeds two analytics databases with realistic items (bench/analytics/seed.py: the projection's own code makes the item,
cell and open-item documents): a department's year (`--per-year` items in the current year) and `--years` such
years (the current one identical to the first database's). It starts one analytics process on each, as
`make up` starts the service, and measures over HTTP:

1. Latency of GET /transparency (the page) and GET /v1/transparency (the JSON), p50 and p99, over a rotation of
   filters, requests alternating between the two processes so that the shared machine's noise hits both alike;
   then the ratio of the large read model's latency to the small one's (goal ≤ 1.5×).
2. Freshness at a steady `--rate` events/s on Kafka (aiokafka, produced on a fixed schedule, after `--warmup`
   seconds of the same stream that are not measured, so that the consumer has joined its group): a quarter are
   `submitted` events of new items (traced), the rest their routing and staff acknowledging and answering
   older items. The traced items of partition p have kind KINDS[p], so the year's count of that kind, read from
   /v1/transparency every `--poll` seconds, only grows by them in the order the consumer applies them: once it
   reaches c, the first c traced events of that partition are visible. Lag = the moment a poll first shows it
   (answer received) − the event's time. Printed beside the service's own heard_analytics_event_visible_seconds
   histogram over the same run, and the time its publisher spent suppressing (heard_analytics_publish_seconds).

Prints figures; asserts nothing. The machine is shared: quote medians and the ratio, not absolute speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import OffsetAndMetadata
from pymongo import AsyncMongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.analytics import seed
from heard_analytics.areas import Areas
from heard_analytics.bootstrap import CONSUMED
from heard_analytics.config import AnalyticsSettings
from heard_analytics.facts import KINDS
from heard_analytics.projection import ReadModel
from heard_devstack import Profile, Stack
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.events import CLOUDEVENTS_CONTENT_TYPE, encode, new_event, utc_now
from heard_shared.mongo import Document, MongoResource

FILTERS: tuple[dict[str, str], ...] = (
    {},
    {"area": "north"},
    {"area": "south/Southport", "kind": "complaint"},
    {"kind": "praise"},
    {"area": "central", "kind": "concern"},
)
SOURCE = "urn:heard:bench"
GROUP = "heard-analytics"  # the service's consumer group (heard_shared.runtime)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@dataclass
class ReadModelUnderTest:
    label: str
    database: str
    items: int
    port: int
    url: str = ""
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"page": [], "json": []})


# --- seeding ------------------------------------------------------------------------------------------------------


async def seed_databases(
    uri: str,
    targets: list[ReadModelUnderTest],
    years: dict[str, list[int]],
    per_year: int,
    areas: Areas,
    *,
    reuse: bool,
) -> None:
    """Seeds each database with its years; a year several databases hold is made once and written to each."""
    # No socket timeout: on a loaded shared machine one bulk write of a seeding batch can take longer than the
    # services' 30 s, and a bench that dies after twenty minutes of seeding measures nothing.
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, appname="bench-analytics", socketTimeoutMS=None)
    databases = {t.label: client[t.database] for t in targets}
    marker = {"_id": "seed", "per_year": per_year, "years": years}
    todo = []
    for target in targets:
        db = databases[target.label]
        seeded = await db["bench"].find_one({"_id": "seed"}) if reuse else None
        # Compared here: nx-27017 cannot match a field against a list.
        if seeded is not None and seeded.get("years") == years[target.label] and seeded.get("per_year") == per_year:
            print(f"  {target.label}: reusing the seeded database", flush=True)
            continue
        await client.drop_database(target.database)
        collections = {name: db[name] for name in ("items", "cells", "open_items", "rounds")}
        await ReadModel(**collections, areas=areas).ensure_indexes()
        todo.append(target)
    now = utc_now()
    started = time.perf_counter()
    for year in sorted({y for t in todo for y in years[t.label]}):
        holders = [databases[t.label] for t in todo if year in years[t.label]]
        for batch in seed.items_of_year(year, per_year, now=now, areas=areas, seed=11):
            for db in holders:
                await seed.write(db, batch, now=now)
        print(f"  {year} seeded ({time.perf_counter() - started:.0f} s so far)", flush=True)
    for target in targets:
        db = databases[target.label]
        if target in todo:
            await db["bench"].replace_one({"_id": "seed"}, {**marker, "years": years[target.label]}, upsert=True)
        cells = await db["cells"].count_documents({})
        open_items = await db["open_items"].count_documents({})
        print(f"  {target.label}: {cells:,} cells, {open_items:,} open items with a deadline", flush=True)
    await client.close()


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system) a process and its children (analytics' suppression worker) have used so far: unlike
    wall time, barely moved by the machine's load."""
    if pid is None:
        return float("nan")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # the process, or a child of it
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# --- latency ------------------------------------------------------------------------------------------------------


async def timed_get(http: httpx.AsyncClient, url: str, params: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await http.get(url, params=params)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} {params}: {response.status_code} {response.text[:300]}")
    return elapsed


async def measure_latency(targets: list[ReadModelUnderTest], rounds: int) -> None:
    async with httpx.AsyncClient(timeout=120) as http:
        for target in targets:
            # The first request for a year waits for its suppression; every later one is served the copy.
            cold = await timed_get(http, f"{target.url}/v1/transparency", {})
            print(f"  {target.label}: first request (suppresses the year) {cold * 1000:.0f} ms", flush=True)
        for target in targets:  # warm every filter on both endpoints
            for params in FILTERS:
                await timed_get(http, f"{target.url}/transparency", params)
                await timed_get(http, f"{target.url}/v1/transparency", params)
        for round_number in range(rounds):
            order = targets if round_number % 2 == 0 else list(reversed(targets))
            for params in FILTERS:
                for target in order:
                    target.latencies["page"].append(await timed_get(http, f"{target.url}/transparency", params))
                    target.latencies["json"].append(await timed_get(http, f"{target.url}/v1/transparency", params))


# --- freshness ----------------------------------------------------------------------------------------------------


@dataclass
class Traced:
    """The traced `submitted` events of one partition, in the order they were produced."""

    kind: str
    sent_at: list[float] = field(default_factory=list)
    visible_at: list[float] = field(default_factory=list)


async def kind_counts(http: httpx.AsyncClient, url: str) -> dict[str, int | None]:
    response = await http.get(f"{url}/v1/transparency")
    response.raise_for_status()
    rows = response.json()["tables"]["kinds"]["rows"]
    return {
        row["kind"]: row["items"] if isinstance(row["items"], int) else None for row in rows if row["category"] == "all"
    }


async def backlog(uri: str, database: str, field_missing: str, year: int, limit: int) -> list[str]:
    """Ids of seeded items of `year` still waiting for an action, for the stream's staff events (not the items an
    earlier stream submitted: those all sit in a few cells, so a rerun would measure less work)."""
    mongo = MongoResource(uri, database, app_name="bench-analytics")
    seeded = {"$gte": f"bench-{year:04d}-", "$lt": f"bench-{year:04d}."}  # seed.histories' ids
    query = {"_id": seeded, field_missing: {"$exists": False}}
    ids = [str(item["_id"]) async for item in mongo.db["items"].find(query, {"_id": 1}).limit(limit)]
    await mongo.close()
    return ids


def total(metrics_text: str, name: str, having: str = "") -> float:
    """The sum of a metric's samples whose labels contain `having`."""
    return sum(
        float(match.group(2))
        for line in metrics_text.splitlines()
        if (match := re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)) and having in (match.group(1) or "")
    )


async def skip_backlog(bootstrap: str) -> None:
    """Moves analytics' consumer group to the end of its topics (no member may be running), so a run starts with
    no events left over from the one before. A member just stopped stays in the group until its session times out:
    the commit is refused until then."""
    for attempt in range(12):
        try:
            await _commit_end_offsets(bootstrap)
            return
        except CommitFailedError:
            if attempt == 11:
                raise
            await asyncio.sleep(5)


async def _commit_end_offsets(bootstrap: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        # This stack's topics were made by ensure_topics, with its partition count.
        partitions = [TopicPartition(spec.topic, p) for spec in CONSUMED for p in range(topics.PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        await consumer.commit({tp: OffsetAndMetadata(await consumer.position(tp), "") for tp in partitions})
    finally:
        await consumer.stop()


def scrape(metrics_text: str, name: str) -> dict[str, float]:
    """The samples of one metric family: {'le=0.5': …, 'sum': …, 'count': …}."""
    samples: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if match := re.match(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', line):
            samples[f"le={match.group(1)}"] = float(match.group(2))
        elif match := re.match(rf"^{name}_(sum|count) (\S+)$", line):
            samples[match.group(1)] = float(match.group(2))
    return samples


def histogram_quantile(before: dict[str, float], after: dict[str, float], q: float) -> str:
    """Prometheus' histogram_quantile over the increase between two scrapes: '(bucket lower, upper] ≈ value'."""
    bounds = sorted((float(key[3:]), after[key] - before.get(key, 0.0)) for key in after if key.startswith("le="))
    total = bounds[-1][1] if bounds else 0.0
    if total <= 0:
        return "no observations"
    rank, lower, below = q * total, 0.0, 0.0
    for upper, cumulative in bounds:
        if cumulative >= rank:
            if math.isinf(upper):
                return f"> {lower:g} s"
            estimate = lower + (upper - lower) * (rank - below) / max(cumulative - below, 1e-9)
            return f"({lower:g}, {upper:g}] s ≈ {estimate:.2f} s"
        lower, below = upper, cumulative
    return "?"


@dataclass
class Stream:
    """The steady stream's events: a quarter `submitted` (new items; their kind by partition), then each one's
    `routed`, and staff acknowledging and answering items of the seeded backlog."""

    producer: AIOKafkaProducer
    partitions: list[int]
    to_acknowledge: list[str]
    to_answer: list[str]
    next_item: int = 0
    partition_of: DefaultPartitioner = field(default_factory=DefaultPartitioner)

    async def run(self, rate: float, slots: int, traced: dict[int, Traced]) -> tuple[float, float]:
        """Produces `slots` events at `rate`, noting each submission's time under its partition; returns how long
        it took and how far behind schedule the producer fell at worst."""
        started = time.monotonic()
        sends = []
        late = 0.0
        last_submitted = ("", False)
        for slot in range(slots):
            due = started + slot / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            else:
                late = max(late, -wait)
            event, (subject, negative), partition = self._event(slot % 4, last_submitted)
            if partition is not None:
                traced[partition].sent_at.append(event.time.timestamp() if event.time else time.time())
                last_submitted = (subject, negative)
            topic = ev.EVENT_SPECS[event.type].topic
            sends.append(
                await self.producer.send(
                    topic,
                    encode(event),
                    key=str(event.subject).encode(),
                    headers=[("content-type", CLOUDEVENTS_CONTENT_TYPE.encode())],
                )
            )
        await asyncio.gather(*sends)
        return time.monotonic() - started, late

    def _event(
        self, phase: int, last_submitted: tuple[str, bool]
    ) -> tuple[ev.CloudEvent[Any], tuple[str, bool], int | None]:
        now = utc_now()
        if phase == 0:
            feedback_id = f"bench-stream-{uuid.uuid4().hex}"
            partition = self.partition_of(feedback_id.encode(), self.partitions, self.partitions)
            kind = KINDS[partition]
            negative = kind in ("complaint", "concern")
            data: Any = ev.FeedbackSubmittedV1(
                feedback_id=feedback_id,
                channel="web",
                kind=kind,
                category="traffic",
                language="en",
                text="[bench]",
                location=ev.PublicLocation(neighbourhood="Northgate"),
                severity="negative" if negative else "positive",
                negative=negative,
                submitted_at=now,
            )
            event = new_event(ev.SUBMITTED, data, source=SOURCE, subject=feedback_id, time=now)
            return event, (feedback_id, negative), partition
        if phase == 1:
            subject, negative = last_submitted
            data = ev.FeedbackRoutedV1(
                feedback_id=subject,
                unit_id="north-patrol",
                unit_name="North patrol",
                level=0,
                rule="category",
                negative=negative,
                severity="negative" if negative else "positive",
                acknowledge_by=None,
                answer_by=None,
                routed_at=now,
            )
            return new_event(ev.ROUTED, data, source=SOURCE, subject=subject, time=now), last_submitted, None
        item, self.next_item = self.next_item, self.next_item + (phase == 3)
        if phase == 2:
            subject = self.to_acknowledge[item % len(self.to_acknowledge)]
            data = ev.FeedbackAcknowledgedV1(feedback_id=subject, acknowledged_at=now)
            return new_event(ev.ACKNOWLEDGED, data, source=SOURCE, subject=subject, time=now), last_submitted, None
        subject = self.to_answer[item % len(self.to_answer)]
        data = ev.FeedbackAnsweredV1(feedback_id=subject, answer="[bench]", answered_at=now)
        return new_event(ev.ANSWERED, data, source=SOURCE, subject=subject, time=now), last_submitted, None


async def measure_freshness(
    stack: Stack,
    target: ReadModelUnderTest,
    *,
    rate: float,
    duration: float,
    warmup: float,
    poll: float,
    settle: float,
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    await producer.start()
    partitions = sorted(await producer.partitions_for(ev.SUBMITTED.topic))
    if len(partitions) > len(KINDS):
        raise SystemExit(f"{len(partitions)} partitions: one kind per partition needs at most {len(KINDS)}")
    traced = {p: Traced(KINDS[p]) for p in partitions}
    year = utc_now().year
    slots, warmup_slots = int(rate * duration), int(rate * warmup)
    staff_events = (slots + warmup_slots) // 4 + 1
    stream = Stream(
        producer,
        partitions,
        to_acknowledge=await backlog(stack.mongodb_uri, target.database, "acknowledged_at", year, staff_events),
        to_answer=await backlog(stack.mongodb_uri, target.database, "answered_at", year, staff_events),
    )
    acknowledged, answered = len(set(stream.to_acknowledge)), len(set(stream.to_answer))
    if not acknowledged or not answered:
        raise SystemExit(f"{target.label}: no seeded item left to acknowledge or answer: run without --reuse")
    if min(acknowledged, answered) < staff_events:
        print(
            f"  {target.label}: only {acknowledged} and {answered} seeded items left to acknowledge and answer for "
            f"{staff_events} events each: the rest repeat and change nothing (a rerun with --reuse has fewer left)",
            flush=True,
        )
    processes = {"analytics": f"analytics-{target.label}", "store": "mongodb", "kafka": "kafka"}
    async with httpx.AsyncClient(timeout=30) as http:
        if warmup_slots:
            # The same stream first, not measured: the consumer joins its group and the publisher gets going.
            before_warmup = await kind_counts(http, target.url)
            warming = {p: Traced(KINDS[p]) for p in partitions}
            await stream.run(rate, warmup_slots, warming)

            async def warmed_up() -> bool:
                counts = await kind_counts(http, target.url)
                return all(
                    (counts.get(t.kind) or 0) - (before_warmup.get(t.kind) or 0) >= len(t.sent_at)
                    for t in warming.values()
                )

            for _ in range(int(settle / poll)):
                if await warmed_up():
                    break
                await asyncio.sleep(poll)
        cpu_before = {label: cpu_seconds(stack.pid(name)) for label, name in processes.items()}
        metrics_before = (await http.get(f"{target.url}/metrics")).text
        baseline = await kind_counts(http, target.url)
        if any(baseline.get(t.kind) is None for t in traced.values()):
            raise SystemExit(f"a traced kind's count is not published at the start: {baseline}")
        stop_polling, all_visible = asyncio.Event(), asyncio.Event()
        expected = 0  # traced events, known once the stream ends

        async def poller() -> None:
            while not stop_polling.is_set():
                counts = await kind_counts(http, target.url)
                seen = time.time()
                for partition in traced.values():
                    value = counts.get(partition.kind)
                    if value is None:
                        continue  # withheld in this copy: the next poll tells
                    reached = value - (baseline[partition.kind] or 0)
                    while len(partition.visible_at) < min(reached, len(partition.sent_at)):
                        partition.visible_at.append(seen)
                if expected and sum(len(t.visible_at) for t in traced.values()) >= expected:
                    all_visible.set()
                await asyncio.sleep(poll)

        polling = asyncio.create_task(poller())
        started = time.monotonic()
        produced_in, late = await stream.run(rate, slots, traced)
        expected = sum(len(t.sent_at) for t in traced.values())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_visible.wait(), settle)
        stop_polling.set()
        await polling
        metrics_after = (await http.get(f"{target.url}/metrics")).text
    cpu = {label: cpu_seconds(stack.pid(name)) - cpu_before[label] for label, name in processes.items()}
    await producer.stop()

    lags = [v - s for t in traced.values() for s, v in zip(t.sent_at, t.visible_at, strict=False)]
    missing = expected - len(lags)
    print(
        f"  {target.label}: produced {slots} events in {produced_in:.1f} s ({slots / produced_in:.0f}/s; "
        f"producer at most {late * 1000:.0f} ms behind schedule), {expected} traced submissions, "
        f"poll every {poll * 1000:.0f} ms",
        flush=True,
    )
    if lags:
        print(
            f"  {target.label}: event → visible in /v1/transparency  p50 {percentile(lags, 0.5):.2f} s  "
            f"p99 {percentile(lags, 0.99):.2f} s  max {max(lags):.2f} s  (n={len(lags)}"
            + (f"; {missing} not visible {settle:.0f} s after the stream ended)" if missing else ")"),
            flush=True,
        )
        # Where in the stream the slow ones were: a warm-up, a stall, or all along.
        first = min(s for t in traced.values() for s in t.sent_at)
        windows: dict[int, list[float]] = {}
        for t in traced.values():
            for s, v in zip(t.sent_at, t.visible_at, strict=False):
                windows.setdefault(int((s - first) // 10), []).append(v - s)
        print(
            f"  {target.label}: p50/p99 by 10 s of the stream: "
            + "  ".join(f"{percentile(w, 0.5):.2f}/{percentile(w, 0.99):.2f}" for _, w in sorted(windows.items())),
            flush=True,
        )
    visible = ("heard_analytics_event_visible_seconds",)
    before, after = scrape(metrics_before, visible[0]), scrape(metrics_after, visible[0])
    observed = after.get("count", 0.0) - before.get("count", 0.0)
    print(
        f"  {target.label}: heard_analytics_event_visible_seconds over the run ({observed:.0f} events): "
        f"p50 {histogram_quantile(before, after, 0.5)}, p99 {histogram_quantile(before, after, 0.99)}",
        flush=True,
    )
    applied = total(metrics_after, "heard_events_consumed_total", 'outcome="processed"') - total(
        metrics_before, "heard_events_consumed_total", 'outcome="processed"'
    )
    handled = total(metrics_after, "heard_event_handler_duration_seconds_count") - total(
        metrics_before, "heard_event_handler_duration_seconds_count"
    )
    handling = total(metrics_after, "heard_event_handler_duration_seconds_sum") - total(
        metrics_before, "heard_event_handler_duration_seconds_sum"
    )
    run_seconds = time.monotonic() - started
    print(
        f"  {target.label}: the consumer applied {applied:.0f} of {slots} events in {run_seconds:.0f} s "
        f"({applied / run_seconds:.0f}/s); {1000 * handling / max(handled, 1):.1f} ms per event in its handler",
        flush=True,
    )
    print(
        f"  {target.label}: CPU per applied event (machine load barely moves it): "
        + ", ".join(f"{label} {1000 * seconds / max(applied, 1):.2f} ms" for label, seconds in cpu.items())
        + f" ({', '.join(f'{label} {seconds:.0f} s' for label, seconds in cpu.items())} over the run)",
        flush=True,
    )
    before, after = (
        scrape(metrics_before, "heard_analytics_publish_seconds"),
        scrape(metrics_after, "heard_analytics_publish_seconds"),
    )
    passes = after.get("count", 0.0) - before.get("count", 0.0)
    spent = after.get("sum", 0.0) - before.get("sum", 0.0)
    if passes:
        print(
            f"  {target.label}: the publisher suppressed a year {passes:.0f} times, {spent / passes:.2f} s each "
            f"on average ({spent:.0f} s in all)",
            flush=True,
        )


# --- the run ------------------------------------------------------------------------------------------------------


def start_analytics(stack: Stack, target: ReadModelUnderTest) -> None:
    stack.extra_env = {"HEARD_ANALYTICS_MONGODB_DATABASE": target.database, "HEARD_ANALYTICS_LOG_LEVEL": "WARNING"}
    stack.start_service("analytics", name=f"analytics-{target.label}", port=target.port)
    target.url = f"http://127.0.0.1:{target.port}"


def summarise(targets: list[ReadModelUnderTest]) -> None:
    small, large = targets
    for endpoint, path in (("page", "/transparency"), ("json", "/v1/transparency")):
        for target in targets:
            values = target.latencies[endpoint]
            print(
                f"  {path:<17} {target.label:>5} ({target.items:>9,} items): "
                f"p50 {percentile(values, 0.5) * 1000:7.1f} ms  p99 {percentile(values, 0.99) * 1000:7.1f} ms  "
                f"(n={len(values)})",
                flush=True,
            )
        p50 = statistics.median(large.latencies[endpoint]) / statistics.median(small.latencies[endpoint])
        p99 = percentile(large.latencies[endpoint], 0.99) / percentile(small.latencies[endpoint], 0.99)
        print(f"  {path:<17} ratio {large.label}/{small.label}: p50 {p50:.2f}x  p99 {p99:.2f}x (goal ≤ 1.5x)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--per-year", type=int, default=100_000, help="items in a year (a department's year)")
    parser.add_argument("--years", type=int, default=10, help="years in the large read model")
    parser.add_argument("--rounds", type=int, default=40, help="latency rounds (each: every filter, both endpoints)")
    parser.add_argument("--rate", type=float, default=200.0, help="events per second on Kafka")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady event stream")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of the same stream before, not measured")
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between polls of /v1/transparency")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to wait for the last events to show")
    parser.add_argument("--server", choices=["nx-27017", "mongod"], help="MongoDB-wire server (default: make up's)")
    parser.add_argument("--keep", action="store_true", help="leave MongoDB and Kafka running afterwards")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept stack and its seeded databases")
    parser.add_argument(
        "--stack-name",
        default="bench-analytics",
        help="state folder under .heard (another name and HEARD_PORT_OFFSET let two runs go side by side)",
    )
    parser.add_argument(
        "--measure",
        choices=["latency", "freshness", "both"],
        default="both",
        help="what to measure (a run with --keep can seed and measure latency, a later --reuse run freshness)",
    )
    args = parser.parse_args()

    profile = Profile(args.stack_name, int(os.environ.get("HEARD_PORT_OFFSET", "0")) + 1000)
    stack = Stack(profile) if args.server is None else Stack(profile, mongodb_server=args.server)
    if not args.reuse:
        if any(stack.status().values()):
            raise SystemExit(f"{stack.state} has processes running: stop them, or pass --reuse")
        shutil.rmtree(stack.state, ignore_errors=True)
    settings = AnalyticsSettings()
    areas = Areas.load(settings.population_file, settings.areas_file)
    year = datetime.now(UTC).year
    port = profile.service_port("analytics")
    small = ReadModelUnderTest(f"{args.per_year // 1000}k", "heard_analytics_bench_small", args.per_year, port)
    large_items = args.per_year * args.years
    large_label = f"{large_items // 1_000_000}M" if large_items % 1_000_000 == 0 else f"{large_items // 1000}k"
    large = ReadModelUnderTest(large_label, "heard_analytics_bench_large", large_items, port + 10)
    targets = [small, large]
    print(
        f"MongoDB-wire server: {stack.mongodb_server} at {stack.mongodb_uri}; Kafka at {stack.kafka_bootstrap}; "
        f"machine shared with other engineers ({os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())})",
        flush=True,
    )
    try:
        await asyncio.to_thread(stack.up_infra)  # blocking, and it runs its own event loop
        print(f"seeding: {small.label} = {year}; {large.label} = {year - args.years + 1}–{year}", flush=True)
        years = {small.label: [year], large.label: list(range(year - args.years + 1, year + 1))}
        await seed_databases(stack.mongodb_uri, targets, years, args.per_year, areas, reuse=args.reuse)
        if args.measure in ("latency", "both"):
            for target in targets:
                start_analytics(stack, target)
            print(f"latency: {args.rounds} rounds × {len(FILTERS)} filters × page and JSON, alternating", flush=True)
            await measure_latency(targets, args.rounds)
            summarise(targets)
        for target in targets if args.measure in ("freshness", "both") else []:
            for each in targets:
                stack.stop_process(f"analytics-{each.label}")
            await skip_backlog(stack.kafka_bootstrap)
            start_analytics(stack, target)
            print(f"freshness on {target.label}: {args.rate:.0f} events/s for {args.duration:.0f} s", flush=True)
            await measure_freshness(
                stack,
                target,
                rate=args.rate,
                duration=args.duration,
                warmup=args.warmup,
                poll=args.poll,
                settle=args.settle,
            )
    finally:
        for target in targets:
            stack.stop_process(f"analytics-{target.label}")
        if not args.keep:
            stack.down()


if __name__ == "__main__":
    asyncio.run(main())
