"""Issue 8's scale run: does a `make up` platform with a year of feedback stored still route, escalate and stop
escalating on time?

    .venv/bin/python bench/platform/run.py [--sizes 10000 100000] [--run-seconds 180] [--rate 20]
        [--ramp 20 30 40 60 80 100] [--step-seconds 60] [--real-seed 10000] [--reuse] [--keep]

The platform is started the way `make up` starts it (heard_devstack `Stack`: Kafka, the default MongoDB-wire store,
the four services, Prometheus) under its own profile (`bench-scale`, ports +HEARD_PORT_OFFSET or +17000, state in
.heard/bench-scale). For each size N in `--sizes`, in order, on the same store:

1. Seeding, timed. Items are written through intake's own code, as a second intake replica would write them: the
   bench builds `IntakeService` the way intake's bootstrap does (same database, `build_platform`, the real Kafka
   producer) and calls `submit` (a realistic mix of kinds, languages, areas, officers named, contact details), waits
   until routing has routed every item, then `triage`s 99% of those not assessed negative (confirming kind and
   severity: staff triage within the production policy's two days, so a year holds about two days' worth untriaged),
   `answer`s 92% of all items, `close`s 70% of those and `acknowledge`s a third of the negative items left open, and
   waits until every service's consumer lag is 0. The running routing, intake,
   notify and analytics processes store their side from the events (cases and clocks, routing decisions and audit
   chains, deliveries, read model), so both stores agree and hold exactly what the services write; no HTTP rate
   limit or request overhead slows the seeding, so its duration is the platform's own bulk throughput. Routing runs
   with the production policy (config/sla-policy.yaml) while seeding, so the ~2% of items left open and negative
   have running clocks with deadlines days away, like a real backlog. (The seeded items carry the seeding day's
   timestamps rather than a year's spread; every hot query is an index range or lookup, so that only shifts which
   age band a count lands in.) Only the difference to N is seeded: the second size tops the first one up.
   Past `--real-seed` items (default 1,000) the rest is copied in bulk instead (`BulkCopy`): the documents the
   four services stored for the seeded items are written again under fresh ids, with their own tracking codes and
   re-hashed audit chains; on nx-27017 straight into its files (`NxFiles`), elsewhere through the wire. Seeding
   through the services measured 3–25 items/s on the shared machine, so 100,000 items that way would take hours;
   copies hold what intake, routing, notify and analytics would store for the same items, minus their past events
   on Kafka (9,000 copies, 110,853 documents, in 98 s).
2. A steady load, `--run-seconds` long, with routing restarted on bench/platform/sla-policy.bench.yaml, so the new
   items' deadlines fall due during the run (acknowledge in 15 s, answer in 45 s, triage in 60 s, reminders at the
   top every 60 s; the demo's seconds policy would turn 20 submissions/s into hundreds of escalations a second, see
   the file). First the bench answers every item whose deadline has passed, through intake's code (printed: how
   many): what earlier runs left open would otherwise remind the board every minute, a load that grew with each
   `--reuse` run. Then it waits until routing's scheduler has fired whatever fell due while it was stopped
   (printed: how many and how long). Then `--rate` submissions/s over HTTP, every negative item answered over the
   staff API (bootstrap admin token) 0.5–20 s after its 202 (about 5/s at 20/s: some before their first deadline,
   some after it), 90% of the others triaged 5–50 s after (the rest escalate for want of triage), and `--gets`
   tracking-code GETs/s of random stored items, sent from a process of their own. Measured through public surfaces
   only: submission → `feedback.routed` (request sent to the routed record's Kafka timestamp), `feedback.escalated`
   lateness (its `fired_at` minus its `deadline`), tracking-code GET latency, escalations fired after an answer was
   accepted (its 200 received) and answered items whose routing case (GET /v1/cases/{id}) is still open 60 s later,
   routing's `heard_consumer_lag_messages` and the age of `heard_scheduler_heartbeat_timestamp_seconds` from its
   /metrics.
3. A ramp: `--step-seconds` at each rate of `--ramp` (same mix); routing keeps up at a rate when, over the last 10 s
   of the step, the median number of accepted submissions not yet routed is at most 2 s worth of arrivals. Stops at
   the first rate routing does not keep up with, or intake cannot accept. Reports the highest rate kept up with,
   and across sizes the ratio (issue 8's goal: ≤ 1.5×).

Intake's public rate limits stay in the path with room for one client address sending the whole load (as in the
end-to-end tests). Prints every figure; asserts nothing. The machine is shared: the figures are medians/percentiles
of one run on a loaded 2-core machine, and the load generator runs on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import json
import os
import random
import re
import shutil
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from neosqlite.collection.json_helpers import neosqlite_json_dumps
from neosqlite.collection.query_helper.utils import _convert_bytes_to_binary
from neosqlite.sql_utils import quote_table_name
from nx_27017.utils import convert_bson_to_neo_objectids
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect, BulkWriteError

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from heard_devstack import SERVICES, Profile, Stack, mongodb_mode
from heard_intake.config import IntakeSettings
from heard_intake.domain import GuardViolation, new_tracking_code, tracking_code_hash
from heard_intake.ledger import GENESIS_HASH, HEAD_HASH_FIELD, HEAD_SEQ_FIELD, AuditLedger, entry_hash
from heard_intake.privacy import contact_cipher
from heard_intake.service import FeedbackNotFound, IntakeService
from heard_shared import mongo, topics
from heard_shared.events import Contact, FeedbackInboundV1, Location
from heard_shared.logs import configure_logging
from heard_shared.runtime import Platform, build_platform

T = TypeVar("T")
PROFILE = Profile("bench-scale", int(os.environ.get("HEARD_PORT_OFFSET", "17000")))
ADMIN_TOKEN = "heard_bench_scale_admin_token_0123456789"
RUN_POLICY = str(Path(__file__).with_name("sla-policy.bench.yaml"))
BASE_ENV = {
    "HEARD_INTAKE_BOOTSTRAP_ADMIN_TOKEN": ADMIN_TOKEN,
    # Every request comes from 127.0.0.1: the limiter stays in the path, with room for the whole load.
    "HEARD_INTAKE_RATE_LIMIT_WRITE_BURST": "1000",
    "HEARD_INTAKE_RATE_LIMIT_WRITE_PER_SECOND": "1000",
    "HEARD_INTAKE_RATE_LIMIT_READ_BURST": "1000",
    "HEARD_INTAKE_RATE_LIMIT_READ_PER_SECOND": "1000",
}
SEED_WIDTH = 8  # concurrent intake calls while seeding: the store applies one command at a time anyway
MAX_IN_FLIGHT = 400  # requests the load generator keeps open; past this a scheduled request is counted as not sent

# -- what residents write ------------------------------------------------------------------------------------------

NEIGHBOURHOODS = ("Northgate", "Riverside Heights", "Millbrook", "Southport", "Oak Flats", "Downtown", "Old Town", None)
BADGES = ("4127", "3391", "5802", "2210", "7714")
TEXTS: dict[str, tuple[str, ...]] = {
    "complaint": (
        "Nobody came after I reported the break-in on Elm Street three days ago.",
        "The officer at the traffic stop was dismissive and would not explain why I was stopped.",
        "I waited forty minutes on the non-emergency line and was then disconnected.",
        "Patrol cars keep parking across the bike lane on Maple Avenue.",
    ),
    "concern": (
        "Cars speed through the school zone on Cedar Road every morning and nobody enforces the limit.",
        "The street lights near the station have been out for weeks and people feel unsafe walking home.",
    ),
    "praise": (
        "Thank you to the officers who helped my elderly neighbour find her way home last night.",
        "The officer who took my report was patient and kind, and called back the next day.",
        "Gracias a la patrulla por ayudarnos tan rápido con el accidente.",
    ),
    "suggestion": (
        "Could the department publish the neighbourhood watch schedule online?",
        "Please add more bike patrols in the park during summer evenings.",
        "A community meeting in the library on weekday evenings would let more parents attend.",
    ),
}
KIND_WEIGHTS = {"praise": 0.40, "suggestion": 0.35, "concern": 0.10, "complaint": 0.15}
TRIAGED = 0.9
ANSWER = "Thank you. We reviewed your report with the unit's supervisor and changed the patrol schedule."


def feedback_body(rng: random.Random) -> dict[str, Any]:
    """One resident's submission, as the public API takes it."""
    kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    text = rng.choice(TEXTS[kind])
    body: dict[str, Any] = {"kind": kind, "text": text, "language": "es" if "Gracias" in text else "en"}
    if rng.random() < 0.15:
        body["category"] = rng.choice(("traffic", "parking", "speeding"))
    if (neighbourhood := rng.choice(NEIGHBOURHOODS)) is not None:
        body["location"] = {"neighbourhood": neighbourhood}
    if kind == "complaint" and rng.random() < 0.1:
        body["officer_badge"] = rng.choice(BADGES)
    if rng.random() < 0.3:
        body["contact"] = {"email": f"resident{rng.randrange(10**6)}@example.org", "consent_to_contact": True}
    return body


# -- statistics ----------------------------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 0.5) * scale:8.1f} {unit}   p99 {percentile(values, 0.99) * scale:8.1f} {unit}"
        f"   max {max(values) * scale:8.1f} {unit}   ({len(values)} samples)"
    )


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


# -- what the bench sees on Kafka ----------------------------------------------------------------------------------


@dataclass
class Escalation:
    feedback_id: str
    fired_at: float  # epoch seconds
    deadline: float
    published: float  # the record's Kafka timestamp


@dataclass
class Observer:
    """Reads feedback.routed and feedback.escalated from their end at start; keeps what the bench needs per item."""

    bootstrap: str
    routed: dict[str, tuple[float, bool]] = field(default_factory=dict)  # id -> (Kafka timestamp, negative)
    severity: dict[str, str] = field(default_factory=dict)  # id -> the severity routing first gave it
    escalations: list[Escalation] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        partitions = [
            TopicPartition(topic, number)
            for topic in (topics.ROUTED, topics.ESCALATED)
            for number in consumer.partitions_for_topic(topic) or range(topics.PARTITIONS)
        ]
        consumer.assign(partitions)
        for partition, offset in (await consumer.end_offsets(partitions)).items():
            consumer.seek(partition, offset)
        self._task = asyncio.create_task(self._read(consumer))

    async def _read(self, consumer: AIOKafkaConsumer) -> None:
        try:
            while True:
                for records in (await consumer.getmany(timeout_ms=200, max_records=2000)).values():
                    for record in records:
                        event = json.loads(record.value)
                        data, stamp = event["data"], record.timestamp / 1000
                        if record.topic == topics.ROUTED:
                            self.routed.setdefault(event["subject"], (stamp, bool(data["negative"])))
                            self.severity.setdefault(event["subject"], data["severity"])
                        else:
                            self.escalations.append(
                                Escalation(event["subject"], _epoch(data["fired_at"]), _epoch(data["deadline"]), stamp)
                            )
        finally:
            await consumer.stop()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# -- what the bench sees on /metrics -------------------------------------------------------------------------------


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def consumer_lag(http: httpx.AsyncClient, stack: Stack, service: str) -> int:
    """The service's `heard_consumer_lag_messages`, summed over its topics."""
    text = (await http.get(f"{stack.service_url(service)}/metrics")).text
    return int(sum(value for _, value in metric_samples(text, "heard_consumer_lag_messages")))


TRACK_ROUTE = {"route": "/v1/feedback/{tracking_code}", "method": "GET", "status": "200"}


async def track_buckets(http: httpx.AsyncClient, stack: Stack) -> dict[float, float]:
    """Intake's own histogram of tracking-code GETs answered 200: upper bound (s) -> requests so far."""
    text = (await http.get(f"{stack.service_url('intake')}/metrics")).text
    return {
        float(labels["le"]): value
        for labels, value in metric_samples(text, "heard_http_request_duration_seconds_bucket")
        if all(labels.get(key) == want for key, want in TRACK_ROUTE.items())
    }


def bucket_quantile(before: dict[float, float], after: dict[float, float], fraction: float) -> str:
    """The bucket a quantile of the requests between two scrapes falls in, as "≤ bound" (a histogram's resolution)."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    total = counts[-1][1] if counts else 0.0
    if not total:
        return "no samples"
    bound = next(bound for bound, count in counts if count >= fraction * total)
    return f"<= {bound * 1000:.0f} ms" if bound != float("inf") else f"> {counts[-2][0] * 1000:.0f} ms"


async def wait_for_lag_zero(http: httpx.AsyncClient, stack: Stack, *, timeout: float) -> float:
    """Waits until every consuming service reports lag 0 (sampled every 10 s by the services); returns seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        lags = [await consumer_lag(http, stack, service) for service in SERVICES]
        if not any(lags):
            return time.monotonic() - started
        await asyncio.sleep(2)
    print(f"  (consumers still lagging after {timeout:.0f} s)", flush=True)
    return time.monotonic() - started


async def wait_for_scheduler(http: httpx.AsyncClient, stack: Stack, *, timeout: float) -> None:
    """Waits until routing's scheduler has fired every deadline that fell due while it was stopped (its heartbeat is
    fresh and nothing is overdue), and prints how long that took: a restart after downtime is a backlog, and the steady
    run should measure the steady state."""
    started = time.monotonic()
    url = f"{stack.service_url('routing')}/metrics"
    beat = overdue = float("nan")
    while time.monotonic() - started < timeout:
        try:
            text = (await http.get(url)).text
        except httpx.HTTPError:
            text = ""
        beat = next((value for _, value in metric_samples(text, "heard_scheduler_heartbeat_timestamp_seconds")), 0.0)
        overdue = sum(value for _, value in metric_samples(text, "heard_escalation_overdue_unescalated"))
        if beat and time.time() - beat < 2 and overdue == 0:
            break
        await asyncio.sleep(1)
    fired = sum(value for _, value in metric_samples(text, "heard_escalations_total"))
    print(
        f"  routing restarted: {fired:.0f} escalations fired; its scheduler caught up after"
        f" {time.monotonic() - started:.0f} s"
        f" (heartbeat age {time.time() - beat:.1f} s, {overdue:.0f} overdue)",
        flush=True,
    )


# -- seeding through intake's own code -----------------------------------------------------------------------------


class Seeder:
    """A second intake replica inside the bench: intake's own `IntakeService` on intake's database and topics."""

    def __init__(self, stack: Stack) -> None:
        prefix = "HEARD_INTAKE_"
        values = {k[len(prefix) :].lower(): v for k, v in stack.service_env("intake").items() if k.startswith(prefix)}
        self.settings = IntakeSettings.model_validate({**values, "instance_id": "intake@bench-seeder"})
        self.platform: Platform = build_platform("intake", self.settings)
        db = self.platform.mongo.db
        self.service = IntakeService(
            feedback=db["feedback"],
            outbox=self.platform.outbox,
            source=self.settings.event_source,
            contact_cipher=contact_cipher(self.settings),
            audit=AuditLedger(db["audit"]),
        )
        self.codes_file = stack.state / "seeded-tracking-codes.txt"
        self.ids_file = stack.state / "seeded-ids.txt"  # the items seeded through intake: templates for copies
        # Their documents, read once: a later size would otherwise read every copy again to find them.
        self.templates: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] | None = None

    async def stored(self) -> int:
        return await retrying(lambda: mongo.count(self.service.feedback, {}))

    def seeded_ids(self) -> list[str]:
        return self.ids_file.read_text().split() if self.ids_file.exists() else []

    async def seed(self, count: int, observer: Observer, http: httpx.AsyncClient, stack: Stack) -> None:
        rng = random.Random(count)
        started = time.monotonic()
        ids: list[str] = []
        codes: list[str] = []

        async def submit(_: str) -> None:
            submission = await retrying(
                lambda: self.service.submit(
                    data=_inbound(feedback_body(rng)), channel=rng.choice(("api", "api", "api", "web"))
                )
            )
            ids.append(submission.feedback_id)
            codes.append(submission.tracking_code or "")

        await for_each(map(str, range(count)), SEED_WIDTH, submit)
        await self.service.settler.idle()
        with self.codes_file.open("a") as out:
            out.write("\n".join(codes) + "\n")
        with self.ids_file.open("a") as out:
            out.write("\n".join(ids) + "\n")
        submitted = time.monotonic()
        print(
            f"  submitted {count} items in {submitted - started:.0f} s; waiting until routing routed them", flush=True
        )
        while missing := sum(1 for feedback_id in ids if feedback_id not in observer.routed):
            print(f"    {missing} not routed yet", flush=True)
            await asyncio.sleep(10)
        routed = time.monotonic()

        # A year's items were triaged long ago: only about two days' worth of the others (1%) still wait for it.
        triaging = [i for i in ids if not observer.routed[i][1] and rng.random() < 0.99]
        answered = [feedback_id for feedback_id in ids if rng.random() < 0.92]
        closing = [feedback_id for feedback_id in answered if rng.random() < 0.70]
        left_open = set(ids) - set(answered)
        acknowledging = [i for i in ids if i in left_open and observer.routed[i][1] and rng.random() < 0.33]
        service = self.service
        await for_each(
            triaging,
            SEED_WIDTH,
            lambda i: retrying(
                lambda: service.triage(
                    feedback_id=i,
                    kind=None,
                    severity=None,
                    reason=None,
                    actor="bench-staff",
                    role="supervisor",
                    may_lower_critical=False,
                )
            ),
        )
        await for_each(
            answered,
            SEED_WIDTH,
            lambda i: retrying(lambda: service.answer(feedback_id=i, answer=ANSWER, actor="bench-staff")),
        )
        awaiting_triage: list[str] = []

        async def close(feedback_id: str) -> None:
            try:
                await retrying(lambda: service.close(feedback_id=feedback_id, actor="bench-staff"))
            except GuardViolation:  # flagged for triage: nobody has confirmed its kind and severity yet
                awaiting_triage.append(feedback_id)

        await for_each(closing, SEED_WIDTH, close)
        await for_each(
            acknowledging,
            SEED_WIDTH,
            lambda i: retrying(lambda: service.acknowledge(feedback_id=i, actor="bench-staff")),
        )
        staffed = time.monotonic()
        print(
            f"  routed in {routed - submitted:.0f} s more; triaged {len(triaging)}, answered {len(answered)}, closed"
            f" {len(closing) - len(awaiting_triage)} ({len(awaiting_triage)} more left awaiting triage),"
            f" acknowledged {len(acknowledging)} in {staffed - routed:.0f} s; waiting for every consumer to catch up",
            flush=True,
        )
        await wait_for_lag_zero(http, stack, timeout=7200)
        settled = time.monotonic()
        open_negative = sum(1 for i in left_open if observer.routed[i][1])
        print(
            f"  seeded {count} items in {settled - started:.0f} s ({count / (settled - started):.0f} items/s):"
            f" submit {submitted - started:.0f} s, route {routed - submitted:.0f} s, staff actions"
            f" {staffed - routed:.0f} s, all consumers caught up {settled - staffed:.0f} s later;"
            f" {open_negative} negative items left open with running clocks",
            flush=True,
        )

    async def catch_up(self, http: httpx.AsyncClient, stack: Stack) -> None:
        """Answers every item whose deadline has passed, as staff would have by the next day.

        They are what earlier runs left open (their untriaged tenth): under the run policy they climb to the top and
        remind the board every minute for ever, so each `--reuse` run measured more reminders than the one before
        (2,165 items at the top after a day of runs: 3.8 reminders a second, two messages each). A store seeded days
        ago also has its own backlog's deadlines passing.
        """
        started = time.monotonic()
        cases = self.platform.mongo.client[f"heard_routing_{stack.profile.name}"]["cases"]
        # Not the clock's `due_at`: at the top it is the next reminder's time, always ahead.
        missed = [
            {deadline: {"$lt": datetime.now(UTC)}}
            for deadline in ("acknowledge_by", "answer_by", "sla_answer_by", "triage_by")
        ]
        overdue = [str(case["_id"]) async for case in cases.find({"clock": {"$eq": "open"}, "$or": missed}, {"_id": 1})]
        skipped = 0

        async def answer(feedback_id: str) -> None:
            nonlocal skipped
            try:
                await retrying(lambda: self.service.answer(feedback_id=feedback_id, answer=ANSWER, actor="bench-staff"))
            except (GuardViolation, FeedbackNotFound):  # answered meanwhile, withdrawn or closed: nothing to do
                skipped += 1

        await for_each(overdue, SEED_WIDTH, answer)
        await wait_for_lag_zero(http, stack, timeout=600)
        print(
            f"  answered {len(overdue) - skipped} items whose deadline had passed (earlier runs' leftovers;"
            f" {skipped} needed no answer) in {time.monotonic() - started:.0f} s",
            flush=True,
        )


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
COPY_BATCH = 500


class NxFiles:
    """Writes documents straight into nx-27017's SQLite files, encoded as nx-27017 itself stores what it receives.

    Through the wire, nx-27017 takes 1–2 ms a document (BSON both ways, a deep copy, JSON validation, one lock
    per database), so a 100,000-item store (about two million documents) would take an hour to copy; written
    here in batches of one transaction each, about 0.2 ms. A document is converted as nx-27017's handler
    converts a decoded BSON one (naive UTC dates, its own ObjectId and Binary types) and encoded with
    neosqlite's encoder into the table's (_id, data) columns, so SQLite maintains the same indexes. The server
    keeps running: SQLite's file locks order these writes with its own. `check` reads copies back through the
    wire and compares them with what was written.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.connections: dict[str, sqlite3.Connection] = {}

    def write(self, database: str, collection: str, documents: list[dict[str, Any]]) -> int:
        connection = self.connections.get(database)
        if connection is None:
            path = self.data_dir / f"{database}.db"
            # Used from one worker thread at a time (`asyncio.to_thread`), never from two at once.
            connection = sqlite3.connect(path, timeout=120, isolation_level=None, check_same_thread=False)
            self.connections[database] = connection
        rows = [(neosqlite_json_dumps(_as_nx_stores(document)), str(document["_id"])) for document in documents]
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(f"INSERT INTO {quote_table_name(collection)}(data, _id) VALUES (?, ?)", rows)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return len(rows)

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


def _as_nx_stores(value: Any) -> Any:
    """A document as nx-27017 holds it after decoding BSON (naive UTC datetimes, its own ObjectId/Binary)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, dict):
        return {key: _as_nx_stores(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_nx_stores(item) for item in value]
    if isinstance(value, bytes):
        return _convert_bytes_to_binary(value)
    return convert_bson_to_neo_objectids(value)


class BulkCopy:
    """Tops a size up past `--real-seed` by copying, in bulk, what the services stored for the seeded items.

    Every document of the four services' databases that belongs to an item seeded through intake (its `_id` or
    `feedback_id` carries the item's id) is written again per copy with every UUID in it (the item's id, its
    event ids, delivery ids, ...) replaced by a fresh one, consistently across databases, so cases, audit
    entries, deliveries and read-model rows of a copy point at each other as the originals do. The copy gets a
    new tracking code (its hash, and its encrypted form where the original had one), and its audit chain is
    re-hashed with intake's own `entry_hash` and its head stored on the record, so it verifies. What copies do
    not have: their events on Kafka (nothing consumes an item's past events again) and timestamps of their own
    (they carry the seeded items', like the seeded items themselves).
    """

    def __init__(self, stack: Stack, seeder: Seeder) -> None:
        self.client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            stack.mongodb_uri,
            tz_aware=True,
            directConnection=True,
            # A starved store can take longer than pymongo's defaults to answer at all; bulk writes wait for it.
            serverSelectionTimeoutMS=120_000,
            connectTimeoutMS=60_000,
            socketTimeoutMS=600_000,
        )
        self.databases = [
            self.client[f"heard_{service}_{PROFILE.name}"] for service in ("intake", "routing", "notify", "analytics")
        ]
        self.intake = f"heard_intake_{PROFILE.name}"
        self.seeder = seeder
        # On the default store the copies go straight into its files; on any other server through the wire.
        self.files = NxFiles(stack.state / "mongodb") if stack.mongodb_server == "nx-27017" else None
        self.checked: set[tuple[str, str]] = set()

    async def templates(self, ids: set[str]) -> dict[tuple[str, str], list[tuple[str, dict[str, Any]]]]:
        """(database, collection) -> the seeded items' documents with the item each belongs to."""
        found: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        for db in self.databases:
            for name in await db.list_collection_names():
                # One batch: 15,000 deliveries took 11 s so, and minutes in default batches or pages on nx-27017.
                async for document in db[name].find({}, batch_size=1_000_000):
                    owner = document.get("feedback_id")
                    if not isinstance(owner, str) or owner not in ids:
                        match = UUID.search(str(document["_id"]))
                        owner = match.group() if match else None
                    if owner in ids:
                        found.setdefault((db.name, name), []).append((owner, document))
        return found

    async def copy(self, count: int) -> None:
        started = time.monotonic()
        ids = self.seeder.seeded_ids()
        if self.seeder.templates is None:
            self.seeder.templates = await self.templates(set(ids))
        templates = self.seeder.templates
        read = time.monotonic()
        by_item: dict[str, dict[tuple[str, str], list[dict[str, Any]]]] = {}
        for place, documents in templates.items():
            for owner, document in documents:
                by_item.setdefault(owner, {}).setdefault(place, []).append(document)
        cipher = self.seeder.service.contact_cipher
        pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        codes: list[str] = []
        written = failed = 0

        async def flush(place: tuple[str, str]) -> None:
            nonlocal written, failed
            batch, pending[place] = pending.get(place, []), []
            if not batch:
                return
            if self.files is not None:
                written += await asyncio.to_thread(self.files.write, place[0], place[1], batch)
                if place not in self.checked:
                    await self.check(place, batch[0])
                return
            try:
                await self.client[place[0]][place[1]].insert_many(batch, ordered=False)
                written += len(batch)
            except BulkWriteError as error:
                failed += len(error.details.get("writeErrors", []))
                written += error.details.get("nInserted", 0)

        for number in range(count):
            original = by_item[ids[number % len(ids)]]
            mapping: dict[str, str] = {}
            copies = {
                place: [_renamed(document, mapping) for document in documents] for place, documents in original.items()
            }
            code = new_tracking_code()
            codes.append(code)
            audit = sorted(copies.get((self.intake, "audit"), []), key=lambda entry: int(entry["seq"]))
            previous = GENESIS_HASH
            for entry in audit:
                entry["prev_hash"] = previous
                entry["hash"] = previous = entry_hash(entry)
            for record in copies.get((self.intake, "feedback"), []):
                record["tracking_hash"] = tracking_code_hash(code)
                if "tracking_code_encrypted" in record:
                    record["tracking_code_encrypted"] = cipher.encrypt_text(code)
                if audit:
                    record[HEAD_SEQ_FIELD], record[HEAD_HASH_FIELD] = audit[-1]["seq"], audit[-1]["hash"]
            for place, copied in copies.items():
                pending.setdefault(place, []).extend(copied)
                if len(pending[place]) >= COPY_BATCH:
                    await flush(place)
            if (number + 1) % 10_000 == 0:
                print(f"    {number + 1} copied ({time.monotonic() - started:.0f} s)", flush=True)
        for place in list(pending):
            await flush(place)
        with self.seeder.codes_file.open("a") as out:
            out.write("\n".join(codes) + "\n")
        elapsed = time.monotonic() - started
        print(
            f"  copied {count} items from {len(ids)} seeded ones in {elapsed:.0f} s ({count / elapsed:.0f} items/s;"
            f" reading the templates {read - started:.0f} s): {written} documents written, {failed} refused",
            flush=True,
        )

    async def check(self, place: tuple[str, str], written: dict[str, Any]) -> None:
        """The first copy written into each collection's file reads back through the wire as it was built."""
        read = await self.client[place[0]][place[1]].find_one({"_id": written["_id"]})
        if read != written:
            raise RuntimeError(f"{place}: a copy written to the file reads back differently:\n{written}\n{read}")
        self.checked.add(place)

    async def close(self) -> None:
        if self.files is not None:
            self.files.close()
        await self.client.close()


def _renamed(value: Any, mapping: dict[str, str]) -> Any:
    """`value` with every UUID replaced through `mapping` (a fresh one for each UUID not seen yet)."""
    if isinstance(value, str):
        return UUID.sub(lambda match: mapping.setdefault(match.group(), str(uuid.uuid4())), value)
    if isinstance(value, dict):
        return {_renamed(key, mapping): _renamed(item, mapping) for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item, mapping) for item in value]
    return value


def _inbound(body: dict[str, Any]) -> FeedbackInboundV1:
    location = body.get("location")
    contact = body.get("contact")
    return FeedbackInboundV1(
        **{k: v for k, v in body.items() if k not in ("location", "contact")},
        location=Location(**location) if location else None,
        contact=Contact(**contact) if contact else None,
    )


async def retrying(action: Callable[[], Awaitable[T]], attempts: int = 10) -> T:
    """`action` again after a connection-level failure of the store (pymongo's `AutoReconnect`).

    A loaded nx-27017 can miss pymongo's 5 s monitor heartbeat; the client then clears its pool and cancels what
    was on the wire. A submission retried after such a failure may have been stored the first time as well (a new
    id each try): the store then holds one more item than counted, which `stored()` reports.
    """
    for attempt in range(attempts):
        try:
            return await action()
        except AutoReconnect:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1 + attempt)
    raise AssertionError("unreachable")


async def for_each(items: Iterable[str], width: int, action: Callable[[str], Awaitable[Any]]) -> None:
    """Runs `action` on every item, `width` at a time."""
    remaining = iter(items)

    async def worker() -> None:
        for item in remaining:
            await action(item)

    await asyncio.gather(*(worker() for _ in range(width)))


# -- the load: submissions, answers, tracking-code reads ------------------------------------------------------------


@dataclass
class Item:
    sent: float  # epoch seconds
    kind: str
    accepted: float | None = None
    answered: float | None = None  # the answer's 200 received
    triaged: float | None = None  # the triage's 200 received


@dataclass
class Load:
    """Open-loop load at fixed rates; every request's timing kept for the report."""

    stack: Stack
    http: httpx.AsyncClient
    observer: Observer
    codes_file: Path  # the stored items' tracking codes, one per line
    rng: random.Random = field(default_factory=lambda: random.Random(8))
    items: dict[str, Item] = field(default_factory=dict)
    rejected: dict[int, int] = field(default_factory=dict)  # HTTP status (0: not sent or failed) -> count
    gets: list[float] = field(default_factory=list)  # seconds, as the reading process measured them
    get_failures: dict[int, int] = field(default_factory=dict)  # HTTP status (0: no answer) -> count
    answer_failures: int = 0
    answers_due: list[tuple[float, str]] = field(default_factory=list)
    triage_due: list[tuple[float, str]] = field(default_factory=list)
    triage_failures: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    reader: asyncio.subprocess.Process | None = None  # tracking-code GETs in flight, from a process of their own

    def spawn(self, work: Awaitable[None]) -> None:
        if len(self.tasks) >= MAX_IN_FLIGHT:
            self.rejected[0] = self.rejected.get(0, 0) + 1
            if asyncio.iscoroutine(work):
                work.close()
            return
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def submit(self, window: list[str]) -> None:
        sent = time.time()
        body = feedback_body(self.rng)
        kind = body["kind"]
        try:
            response = await self.http.post(f"{self.stack.service_url('intake')}/v1/feedback", json=body)
        except httpx.HTTPError:
            self.rejected[0] = self.rejected.get(0, 0) + 1
            return
        if response.status_code != 202:
            self.rejected[response.status_code] = self.rejected.get(response.status_code, 0) + 1
            return
        body = response.json()
        feedback_id = body["feedback_id"]
        self.items[feedback_id] = Item(sent=sent, kind=kind, accepted=time.time())
        window.append(feedback_id)
        if self.reader is not None and self.reader.stdin is not None:
            self.reader.stdin.write(f"{body['tracking_code']}\n".encode())
        # Staff work: a negative item is answered 0.5-20 s after it arrives (some before their first deadline, some
        # after it); TRIAGED of the others are triaged 5-50 s after (the run's triage window is 60 s), so about one
        # in ten still escalates for want of triage, as when a department falls behind.
        heapq.heappush(self.answers_due, (time.time() + self.rng.uniform(0.5, 20), feedback_id))
        if self.rng.random() < TRIAGED:
            heapq.heappush(self.triage_due, (time.time() + self.rng.uniform(5, 50), feedback_id))

    async def triage(self, feedback_id: str) -> None:
        """Confirms what the item was filed as: the triage clock stops."""
        item = self.items[feedback_id]
        body = {"kind": item.kind, "severity": self.observer.severity[feedback_id]}
        try:
            response = await self.http.post(
                f"{self.stack.service_url('intake')}/v1/staff/feedback/{feedback_id}/triage",
                json=body,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            item.triaged = time.time()
        else:
            self.triage_failures += 1

    async def answer(self, feedback_id: str) -> None:
        try:
            response = await self.http.post(
                f"{self.stack.service_url('intake')}/v1/staff/feedback/{feedback_id}/answer",
                json={"answer": ANSWER},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code == 200:
            self.items[feedback_id].answered = time.time()
        else:
            self.answer_failures += 1
            heapq.heappush(self.answers_due, (time.time() + 1, feedback_id))

    async def answer_loop(self) -> None:
        """Answers each negative item when its time comes, once routing has said it is negative; triages the others
        whose turn has come (an item routing has not routed by then goes untriaged)."""
        while True:
            now = time.time()
            while self.answers_due and self.answers_due[0][0] <= now:
                _, feedback_id = heapq.heappop(self.answers_due)
                if feedback_id not in self.observer.routed:
                    heapq.heappush(self.answers_due, (now + 0.25, feedback_id))
                    break
                if self.observer.routed[feedback_id][1] and self.items[feedback_id].answered is None:
                    self.spawn(self.answer(feedback_id))
            while self.triage_due and self.triage_due[0][0] <= now:
                _, feedback_id = heapq.heappop(self.triage_due)
                if feedback_id in self.observer.routed and not self.observer.routed[feedback_id][1]:
                    self.spawn(self.triage(feedback_id))
            await asyncio.sleep(0.05)

    async def drive(self, window: list[str], *, rate: float, gets: float, seconds: float) -> None:
        """Submits at `rate`/s and reads at `gets`/s for `seconds`; each accepted id is added to `window` as its
        202 arrives (so the sampler sees the backlog during the load), also after this returns.

        The reads come from a process of their own (`read_tracking_codes`), as a resident's browser would: in this
        one they would also wait for the load generator's event loop, busy with the submissions and with decoding
        every event on Kafka (that added about a fifth to the p99 in the same run)."""
        if gets:
            self.reader = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--read-tracking-codes",
                self.stack.service_url("intake"),
                str(gets),
                str(self.codes_file),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        started = time.monotonic()
        try:
            for n in range(int(rate * seconds)):
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.spawn(self.submit(window))
            await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))
        finally:
            if self.reader is not None:
                reader, self.reader = self.reader, None
                if reader.stdin is not None:
                    reader.stdin.close()  # the end of the reads (`communicate` without input leaves it open)
                output, _ = await reader.communicate()
                reads = json.loads(output)
                self.gets += reads["gets"]
                for status, count in reads["failures"].items():
                    self.get_failures[int(status)] = self.get_failures.get(int(status), 0) + count

    async def requests_done(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.tasks and time.monotonic() < deadline:  # noqa: ASYNC110 - polls tasks' state
            await asyncio.sleep(0.2)

    async def settle(self, *, timeout: float = 120) -> None:
        """Waits for requests in flight and for every scheduled answer and triage to be given."""
        deadline = time.monotonic() + timeout
        while (self.tasks or self.answers_due or self.triage_due) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls tasks' state
            await asyncio.sleep(0.5)

    def backlog(self, ids: Iterable[str]) -> int:
        return sum(1 for feedback_id in ids if feedback_id not in self.observer.routed)

    async def wait_routed(self, ids: list[str], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.backlog(ids) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls what the observer sees
            await asyncio.sleep(0.5)


@dataclass
class Samples:
    lag: list[tuple[float, int]] = field(default_factory=list)
    heartbeat_age: list[float] = field(default_factory=list)
    no_heartbeat: int = 0  # samples taken before the scheduler's first finished tick
    backlog: list[tuple[float, int]] = field(default_factory=list)


async def sample(load: Load, window: list[str], samples: Samples) -> None:
    """Every second: routing's lag and scheduler heartbeat age from its /metrics, and the run's unrouted backlog."""
    url = f"{load.stack.service_url('routing')}/metrics"
    while True:
        try:
            text = (await load.http.get(url)).text
        except httpx.HTTPError:
            text = ""
        now = time.time()
        lag = metric_samples(text, "heard_consumer_lag_messages")
        if lag:
            samples.lag.append((now, int(sum(value for _, value in lag))))
        if beat := metric_samples(text, "heard_scheduler_heartbeat_timestamp_seconds"):
            # 0 until routing's first tick has finished: counted as "no heartbeat yet", not as an age.
            if beat[0][1] > 0:
                samples.heartbeat_age.append(now - beat[0][1])
            else:
                samples.no_heartbeat += 1
        samples.backlog.append((now, load.backlog(window)))
        await asyncio.sleep(1)


async def read_tracking_codes(intake_url: str, gets: float, stored: list[str]) -> None:
    """Tracking-code GETs at `gets`/s of random stored items, one in five among the codes arriving on stdin (the
    run's own submissions), until stdin closes; then prints {"gets": [seconds], "failures": {status: count}}."""
    fresh: list[str] = []
    rng = random.Random(8)
    latencies: list[float] = []
    failures: dict[int, int] = {}
    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    in_flight: set[asyncio.Task[None]] = set()

    async def read(http: httpx.AsyncClient) -> None:
        codes = fresh if fresh and rng.random() < 0.2 else stored or fresh
        if not codes:
            return
        started = time.perf_counter()
        try:
            response = await http.get(f"{intake_url}/v1/feedback/{rng.choice(codes)}")
        except httpx.HTTPError:
            failures[0] = failures.get(0, 0) + 1
            return
        if response.status_code == 200:
            latencies.append(time.perf_counter() - started)
        else:
            failures[response.status_code] = failures.get(response.status_code, 0) + 1

    async def pace(http: httpx.AsyncClient) -> None:
        started = time.monotonic()
        for n in itertools.count():
            await asyncio.sleep(max(0.0, started + n / gets - time.monotonic()))
            task = asyncio.create_task(read(http))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    async with httpx.AsyncClient(timeout=30) as http:
        pacer = asyncio.create_task(pace(http))
        while line := await stdin.readline():
            fresh.append(line.decode().strip())
        pacer.cancel()
        await asyncio.gather(*in_flight)
    print(json.dumps({"gets": latencies, "failures": failures}))


# -- the phases ----------------------------------------------------------------------------------------------------


async def steady_run(load: Load, args: argparse.Namespace) -> None:
    window: list[str] = []
    samples = Samples()
    sampler = asyncio.create_task(sample(load, window, samples))
    run_started = time.time()
    served_before = await track_buckets(load.http, load.stack)
    await load.drive(window, rate=args.rate, gets=args.gets, seconds=args.run_seconds)
    run_ended = time.time()
    await load.settle()
    served_after = await track_buckets(load.http, load.stack)
    await asyncio.sleep(5)  # the last items' routed events and the last escalations reach the observer
    sampler.cancel()
    observer = load.observer
    routed = [observer.routed[i][0] - load.items[i].sent for i in window if i in observer.routed]
    mine = set(window)
    escalations = [e for e in observer.escalations if e.feedback_id in mine]
    lateness = [e.fired_at - e.deadline for e in escalations]
    published = [e.published - e.deadline for e in escalations]
    negative = sum(1 for i in window if i in observer.routed and observer.routed[i][1])
    after_answer = [
        e.fired_at - answered
        for e in escalations
        if (answered := load.items[e.feedback_id].answered) is not None and e.fired_at > answered
    ]
    answered_ids = [i for i in window if load.items[i].answered is not None]
    still_open = await cases_still_open(load, answered_ids)
    lags = [lag for at, lag in samples.lag if run_started <= at <= run_ended]
    print(
        f"\n  steady load {args.run_seconds:.0f} s: {args.rate:g} submissions/s offered, {len(window)} accepted"
        f" ({len(window) / args.run_seconds:.1f}/s), not accepted by status {load.rejected or '{}'};"
        f" {negative} negative, {len(answered_ids)} answered ({len(answered_ids) / args.run_seconds:.1f}/s,"
        f" {load.answer_failures} answer attempts failed and were retried),"
        f" {sum(1 for i in window if load.items[i].triaged is not None)} triaged ({load.triage_failures} failed);"
        f" load average {load_average()}\n"
        f"  submission -> feedback.routed  {summary(routed)}   (target p99 < 2000 ms; {len(window) - len(routed)}"
        f" never routed)\n"
        f"  escalation fired_at - deadline {summary(lateness)}   (target p99 < 1000 ms)\n"
        f"  escalation on Kafka - deadline {summary(published)}\n"
        f"  tracking-code GET              {summary(load.gets)}   (target p99 < 100 ms;"
        f" failed by status {load.get_failures or '{}'})\n"
        f"  the same GETs inside intake      p50 {bucket_quantile(served_before, served_after, 0.5)}"
        f"   p99 {bucket_quantile(served_before, served_after, 0.99)}   (intake's own histogram, from the request"
        " reaching its app to the response; beside the line above: the time outside, in the network, intake's"
        " event loop before the app and the reading process)\n"
        f"  escalations fired after the item's answer was accepted: {len(after_answer)}"
        + (f" (by {summary(after_answer)})" if after_answer else "")
        + f"\n  answered items whose routing case is still open 60 s later: {still_open} of {len(answered_ids)}\n"
        f"  routing consumer lag (messages): median {_median(lags)}, max {max(lags, default=0)}"
        f" ({len(lags)} samples)\n"
        f"  scheduler heartbeat age: {summary(samples.heartbeat_age)}; {samples.no_heartbeat} samples taken before"
        " the scheduler's first tick since routing's restart had finished",
        flush=True,
    )


async def cases_still_open(load: Load, ids: list[str], *, grace: float = 60) -> int:
    """Answered items whose case routing still shows with a running clock (GET /v1/cases/{id}).

    Routing stops a clock when it consumes `feedback.answered`, which may lag: an open case is asked again
    until `grace` seconds have passed, so what is counted is an answer lost, not one still on its way.
    """
    deadline = time.monotonic() + grace
    remaining = list(ids)
    while True:
        still_open: set[str] = set()

        async def check(feedback_id: str, found: set[str] = still_open) -> None:
            if await _case_open(load, feedback_id):
                found.add(feedback_id)

        await for_each(remaining, 16, check)
        remaining = [feedback_id for feedback_id in remaining if feedback_id in still_open]
        if not remaining or time.monotonic() > deadline:
            return len(remaining)
        await asyncio.sleep(5)


async def _case_open(load: Load, feedback_id: str) -> bool:
    try:
        response = await load.http.get(f"{load.stack.service_url('routing')}/v1/cases/{feedback_id}")
    except httpx.HTTPError:
        return True  # asked again on the next round
    return response.status_code != 200 or response.json().get("clock") == "open"


def _median(values: list[int]) -> str:
    return f"{statistics.median(values):.0f}" if values else "n/a"


async def ramp(load: Load, args: argparse.Namespace) -> float | None:
    """The highest `--ramp` rate routing keeps up with; None if not even the first."""
    kept_up: float | None = None
    for rate in args.ramp:
        window: list[str] = []
        samples = Samples()
        sampler = asyncio.create_task(sample(load, window, samples))
        rejected_before = sum(load.rejected.values())
        started = time.time()
        await load.drive(window, rate=rate, gets=args.gets, seconds=args.step_seconds)
        ended = time.time()
        await load.requests_done(timeout=30)  # the step's last submissions count as accepted when their 202 comes
        sampler.cancel()
        tail = [backlog for at, backlog in samples.backlog if ended - 10 <= at <= ended]
        lags = [lag for at, lag in samples.lag if started <= at <= ended]
        accepted = len(window) / args.step_seconds
        refused = sum(load.rejected.values()) - rejected_before
        keeps_up = statistics.median(tail or [0]) <= 2 * rate
        print(
            f"  {rate:6g}/s offered: {accepted:6.1f}/s accepted, {refused} refused or not sent;"
            f" unrouted backlog over the last 10 s median {statistics.median(tail or [0]):.0f};"
            f" routing lag median {_median(lags)} max {max(lags, default=0)}; load average {load_average()}"
            f" -> {'keeps up' if keeps_up else 'falls behind'}",
            flush=True,
        )
        if not keeps_up or accepted < 0.9 * rate:
            if keeps_up:
                print("  intake did not accept the offered rate: the ramp stops here", flush=True)
            break
        kept_up = rate
        await load.settle(timeout=60)
        await load.wait_routed(window, timeout=120)
    await load.settle(timeout=120)
    return kept_up


def restart_routing(stack: Stack, *, run_policy: bool) -> None:
    """Routing with the bench's policy (deadlines fall due during a run) or the production one (for seeding)."""
    env = dict(stack.extra_env)
    if (env.get("HEARD_ROUTING_SLA_POLICY_FILE") == RUN_POLICY) == run_policy:
        return
    env.pop("HEARD_ROUTING_SLA_POLICY_FILE", None)
    if run_policy:
        env["HEARD_ROUTING_SLA_POLICY_FILE"] = RUN_POLICY
    stack.extra_env = env
    stack.stop_process("routing")
    stack.start_service("routing")


async def measure(stack: Stack, args: argparse.Namespace) -> dict[int, float | None]:
    sustained: dict[int, float | None] = {}
    seeder = Seeder(stack)
    configure_logging(service="bench-seeder", level="WARNING", json=False)
    await seeder.platform.start()
    observer = Observer(stack.kafka_bootstrap)
    await observer.start()
    # Few idle connections: httpcore checks every pooled connection's socket at each request's start and end, and
    # with 100 kept open that bookkeeping was half of this process's CPU (py-spy), a sixth of the machine's, taken
    # from the platform it measures.
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=16)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        try:
            for size in args.sizes:
                stored = await seeder.stored()
                print(f"\n== {size} items: {stored} stored, seeding {max(0, size - stored)} more", flush=True)
                if size > stored:
                    restart_routing(stack, run_policy=False)
                    if (real := min(size, args.real_seed) - stored) > 0:
                        await seeder.seed(real, observer, http, stack)
                    if (copies := size - await seeder.stored()) > 0:
                        bulk = BulkCopy(stack, seeder)
                        await bulk.copy(copies)
                        await bulk.close()
                await seeder.catch_up(http, stack)
                restart_routing(stack, run_policy=True)
                await wait_for_scheduler(http, stack, timeout=600)
                load = Load(stack, http, observer, seeder.codes_file)
                answers = asyncio.create_task(load.answer_loop())
                await steady_run(load, args)
                print(f"\n  ramp ({args.step_seconds:.0f} s a step, {await seeder.stored()} items stored):", flush=True)
                sustained[size] = await ramp(load, args)
                answers.cancel()
                await wait_for_lag_zero(http, stack, timeout=180)
        finally:
            await observer.stop()
            await seeder.platform.stop()
    return sustained


def main() -> int:
    if sys.argv[1:2] == ["--read-tracking-codes"]:  # the process `Load.drive` starts for the GETs
        intake_url, gets, codes_file = sys.argv[2:5]
        stored = Path(codes_file).read_text().split() if Path(codes_file).exists() else []
        asyncio.run(read_tracking_codes(intake_url, float(gets), stored))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="items stored, in order")
    parser.add_argument("--run-seconds", type=float, default=180, help="length of the steady load")
    parser.add_argument("--rate", type=float, default=20, help="submissions/s of the steady load")
    parser.add_argument("--gets", type=float, default=10, help="tracking-code GETs/s during every load")
    parser.add_argument("--ramp", type=float, nargs="+", default=[20, 30, 40, 60, 80, 100], help="submissions/s")
    parser.add_argument("--step-seconds", type=float, default=60, help="length of each ramp step")
    parser.add_argument(
        "--real-seed", type=int, default=1_000, help="items seeded through intake; past this, stored ones are copied"
    )
    parser.add_argument("--reuse", action="store_true", help="keep what an earlier --keep run stored")
    parser.add_argument("--keep", action="store_true", help="leave the stack running and its data in place")
    args = parser.parse_args()

    print(f"$ {' '.join(sys.argv)}\nload average at start: {load_average()} (2 cores, shared machine)", flush=True)
    stack = Stack(PROFILE, extra_env=BASE_ENV)
    stack.down()
    if not args.reuse:
        shutil.rmtree(stack.state, ignore_errors=True)
    started = time.monotonic()
    try:
        print(f"starting the platform (profile {PROFILE.name}, store {mongodb_mode()}) ...", flush=True)
        stack.up()
        sustained = asyncio.run(measure(stack, args))
    finally:
        if not args.keep:
            stack.down()
    print(f"\nsustained submissions/s routing keeps up with (highest --ramp step, {args.step_seconds:.0f} s each):")
    for size, rate in sustained.items():
        print(f"  {size:>7} items stored: {'below ' + str(args.ramp[0]) if rate is None else f'{rate:g}'}/s")
    rates = list(sustained.values())
    if len(rates) >= 2 and all(rates):
        print(f"  ratio {rates[0]:g} / {rates[-1]:g} = {rates[0] / rates[-1]:.2f}x   (goal <= 1.5x)")  # type: ignore[operator]
    print(f"total {time.monotonic() - started:.0f} s; load average at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
