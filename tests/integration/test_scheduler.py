"""The escalation scheduler on the real MongoDB-wire server: replicas, leases, fencing, crashes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections import Counter
from datetime import timedelta

import pytest

from heard_devstack import ROOT, Stack
from heard_routing.service import RoutingService
from heard_shared.events import utc_now
from heard_shared.mongo import MongoResource, epoch_ms
from tests.helpers import unique
from tests.integration.scheduler_support import build_scheduler, open_case

pytestmark = pytest.mark.integration


@pytest.fixture
def database() -> str:
    return unique("sched").replace("-", "_")


async def seed(stack: Stack, database: str, count: int) -> list[str]:
    mongo = MongoResource(stack.mongodb_uri, database, app_name="seed")
    now = utc_now()
    ids = [f"fb-{i:05d}" for i in range(count)]
    await mongo.db["cases"].insert_many(
        [open_case(i, due_at=now - timedelta(seconds=1), submitted_at=now - timedelta(hours=1)) for i in ids]
    )
    await mongo.db["cases"].create_index([("clock", 1), ("due_ms", 1)])
    await mongo.close()
    return ids


def escalation_ids(published: list[tuple[str, str, bytes]]) -> list[str]:
    return [json.loads(value)["id"] for topic, _, value in published if topic == "feedback.escalated"]


async def test_three_replicas_fire_every_due_deadline_exactly_once(stack: Stack, database: str) -> None:
    ids = await seed(stack, database, 2000)
    replicas = []
    for n in range(3):
        mongo = MongoResource(stack.mongodb_uri, database, app_name=f"replica-{n}")
        # Leases long enough that none expires mid-test: expiry and takeover have their own test below.
        replicas.append(
            (mongo, *build_scheduler(mongo, instance_id=f"replica-{n}", lease=timedelta(minutes=10), batch=100))
        )

    async def drain(service: RoutingService) -> int:
        """Ticks until nothing is due any more: a tick that lost every race is not the end."""
        fired = 0
        due = {"clock": "open", "due_ms": {"$lte": epoch_ms(utc_now())}}
        while await service.cases.count_documents(due):
            fired += await service.tick()
            await asyncio.sleep(0)
        return fired

    fired = await asyncio.gather(*(drain(service) for _, service, _ in replicas))
    published = [event for _, _, publisher in replicas for event in escalation_ids(publisher.published)]
    assert sum(fired) == len(ids)
    assert len(published) == len(ids), "each due deadline fired once"
    assert len(set(published)) == len(published), "no deadline fired twice"
    assert sum(1 for n in fired if n) >= 2, f"the replicas really competed: {fired}"

    cases = replicas[0][0].db["cases"]
    levels = Counter([c["level"] async for c in cases.find({}, {"level": 1})])
    assert levels == {1: len(ids)}
    assert await cases.count_documents({"_outbox_pending": 1}) == 0
    for mongo, _, _ in replicas:
        await mongo.close()


async def test_deadlines_leased_by_a_killed_replica_still_fire_late(stack: Stack, database: str) -> None:
    ids = await seed(stack, database, 40)
    lease_seconds = 2.0
    doomed = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / "integration" / "doomed_replica.py"),
        stack.mongodb_uri,
        database,
        "25",
        str(lease_seconds),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert doomed.stdout is not None
        line = await asyncio.wait_for(doomed.stdout.readline(), timeout=60)
        assert line.decode().strip() == "claimed 25", line
    finally:
        doomed.send_signal(signal.SIGKILL)  # kill -9 while it holds 25 leases
        await doomed.wait()

    mongo = MongoResource(stack.mongodb_uri, database, app_name="survivor")
    survivor, publisher = build_scheduler(mongo, instance_id="survivor")
    first = await survivor.tick()
    assert first == 15, "leases held by the dead replica are respected until they expire"
    await asyncio.sleep(lease_seconds + 0.5)
    second = await survivor.tick()
    assert second == 25, "after the lease expires every claimed deadline fires, late"

    fired = escalation_ids(publisher.published)
    assert len(fired) == len(set(fired)) == len(ids)
    tokens = {
        json.loads(value)["data"]["fencing_token"]
        for topic, _, value in publisher.published
        if topic == "feedback.escalated" and json.loads(value)["subject"] in ids[:25]
    }
    assert tokens == {2}, "the takeover fired with a newer fencing token than the dead replica's"
    await mongo.close()


async def test_a_stale_lease_holder_cannot_fire(stack: Stack, database: str) -> None:
    await seed(stack, database, 1)
    mongo = MongoResource(stack.mongodb_uri, database, app_name="fencing")
    slow, slow_publisher = build_scheduler(mongo, instance_id="slow", lease=timedelta(milliseconds=200))
    fast, fast_publisher = build_scheduler(mongo, instance_id="fast", lease=timedelta(milliseconds=200))
    [stale] = await slow.claim_due(utc_now(), limit=1)
    await asyncio.sleep(0.3)  # the slow replica pauses past its lease; another takes over and fires
    assert await fast.tick() == 1
    assert await slow.fire(stale) is False, "the stale token is fenced off"
    assert len(escalation_ids(fast_publisher.published)) == 1
    assert escalation_ids(slow_publisher.published) == []
    await mongo.close()


async def test_an_answer_that_races_a_firing_wins(stack: Stack, database: str) -> None:
    [feedback_id] = await seed(stack, database, 1)
    mongo = MongoResource(stack.mongodb_uri, database, app_name="race")
    scheduler, publisher = build_scheduler(mongo, instance_id="racer")
    [claimed] = await scheduler.claim_due(utc_now(), limit=1)
    # The answer lands between the claim and the fenced write.
    await mongo.db["cases"].update_one({"_id": feedback_id}, {"$set": {"clock": "stopped"}})
    assert await scheduler.fire(claimed) is False
    assert escalation_ids(publisher.published) == []
    case = await mongo.db["cases"].find_one({"_id": feedback_id})
    assert case is not None and case["level"] == 0
    await mongo.close()


async def test_the_open_item_gauges_count_by_level_and_age_band(stack: Stack, database: str) -> None:
    mongo = MongoResource(stack.mongodb_uri, database, app_name="gauges")
    service, _ = build_scheduler(mongo, instance_id="gauges")
    await service.ensure_indexes()
    now = utc_now()
    later = now + timedelta(hours=1)
    ages = [timedelta(minutes=5), timedelta(hours=3), timedelta(days=2), timedelta(days=9)]  # one per age band
    negative = [
        open_case(f"negative-{level}-{age}-{n}", due_at=later, submitted_at=now - age) | {"level": level}
        for level in (0, 3)
        for age in ages
        for n in range(level + 1)
    ]
    # Clocks stopped (answered) or never started for negative feedback (waiting for triage) have no `open_since_ms`.
    answered = open_case("answered", due_at=now, submitted_at=now - ages[-1]) | {"level": 3, "clock": "stopped"}
    untriaged = [
        open_case(f"untriaged-{n}", due_at=later, submitted_at=now) | {"level": 2, "triage_since_ms": epoch_ms(now)}
        for n in range(2)
    ]
    for case in (answered, *untriaged):
        del case["open_since_ms"]
    await service.cases.insert_many([*negative, answered, *untriaged])
    await service.refresh_gauges()

    def gauge(name: str, **labels: str) -> float | None:
        return service.metrics.registry.get_sample_value(name, labels)

    for band in ("lt_1h", "1h_24h", "1d_7d", "gt_7d"):
        assert [gauge("heard_negative_open", level=str(level), age_band=band) for level in range(5)] == [1, 0, 0, 4, 0]
    assert [gauge("heard_awaiting_triage", level=str(level)) for level in range(5)] == [0, 0, 2, 0, 0]
    oldest = gauge("heard_oldest_unanswered_negative_age_seconds")
    assert oldest is not None and abs(oldest - ages[-1].total_seconds()) < 60
    await mongo.close()
