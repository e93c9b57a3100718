"""Store probe: how a MongoDB-wire server answers Heard's own queries with a department's year stored.

    .venv/bin/python bench/store/probe.py [--items 100000] [--server nx-27017|mongod] [--uri URI]

Seeds `--items` intake records (with tracking-code hashes) and as many routing cases (one open clock in
ten, the rest stopped), then, while a background writer changes cases at `--write-rate` conditional
updates per second, times the reads and writes the platform makes on its hot paths:

- a tracking-code lookup (the resident's GET), by the unique sparse `tracking_hash` index;
- the scheduler's claim candidates (`due_ms <= now`, open, sorted, limit 500) and a fenced update;
- a gauge count over an `open_since_ms` range;
- intake's guarded update by `_id` beside a `$or` (recording an escalation only if it is not older than the
  level on record), which SQL cannot answer whole;
- notify's lookup of an item's queued deliveries whose lease has run out (an indexed field beside a date range);
- 100 concurrent `$inc` on one document (a lost update shows as a total under 100).

`--uri` measures any server you started yourself (a production MongoDB, a FerretDB on PostgreSQL);
otherwise a server is started through heard_devstack under the `bench-store` profile. Prints p50/p99 per
operation; asserts nothing. The machine is shared: compare servers measured in one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Awaitable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from heard_devstack import Profile, Stack
from heard_shared.events import utc_now
from heard_shared.mongo import MongoResource, count, epoch_ms
from tests.integration.scheduler_support import open_case

DATABASE = "bench_store_probe"
LEASE = {"$set": {"lease_owner": "probe"}, "$inc": {"fencing": 1}}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def tracking_hash(n: int) -> str:
    return hashlib.sha256(f"code-{n}".encode()).hexdigest()


async def seed(mongo: MongoResource, items: int) -> None:
    now = utc_now()
    feedback, cases = mongo.db["feedback"], mongo.db["cases"]
    await feedback.create_index("tracking_hash", unique=True, sparse=True)
    for key in ("due_ms", "deadline_ms", "open_since_ms"):
        await cases.create_index(key, sparse=True)
    deliveries = mongo.db["deliveries"]
    await deliveries.create_index([("feedback_id", 1), ("created_at", 1)])
    for start in range(0, items, 2000):
        chunk = range(start, min(items, start + 2000))
        await feedback.insert_many(
            [
                {
                    "_id": f"fb-{n:07d}",
                    "tracking_hash": tracking_hash(n),
                    "kind": "complaint",
                    "text": "The patrol car was parked across the bike lane on Elm Street again this morning.",
                    "status": "answered",
                    "unit_id": "north-patrol",
                    "submitted_at": now,
                    "history": [{"status": "submitted", "at": now}],
                }
                for n in chunk
            ]
        )
        documents = []
        for n in chunk:
            case = open_case(f"fb-{n:07d}", due_at=now + timedelta(days=30, seconds=n), submitted_at=now)
            if n % 10:
                case["clock"] = "stopped"
                for key in ("due_ms", "deadline_ms", "open_since_ms"):
                    del case[key]
            documents.append(case)
        await cases.insert_many(documents)
        await deliveries.insert_many(
            [
                {
                    "feedback_id": f"fb-{n:07d}",
                    "template": "top_reminder",
                    "status": "sent" if n % 10 else "queued",
                    "event_id": f"ev-{n}",
                    "created_at": now,
                    "lease_until": now - timedelta(minutes=5),
                }
                for n in chunk
            ]
        )


async def timed(samples: list[float], action: Awaitable[Any]) -> None:
    started = time.perf_counter()  # a coroutine starts running only when awaited
    await action
    samples.append(time.perf_counter() - started)


async def writer(mongo: MongoResource, items: int, rate: float, stop: asyncio.Event, samples: list[float]) -> None:
    """Conditional updates by `_id`, as consumers and the scheduler make them, at a steady rate."""
    cases = mongo.db["cases"]
    while not stop.is_set():
        fenced = {"_id": f"fb-{random.randrange(items):07d}", "fencing": {"$gte": 0}}
        await timed(samples, cases.update_one(fenced, {"$inc": {"fencing": 1}}))
        await asyncio.sleep(1 / rate)


async def lost_updates(mongo: MongoResource) -> int:
    counters = mongo.db["counters"]
    await counters.insert_one({"_id": "one", "n": 0})
    await asyncio.gather(*(counters.update_one({"_id": "one"}, {"$inc": {"n": 1}}) for _ in range(100)))
    document = await counters.find_one({"_id": "one"})
    return int((document or {}).get("n", -1))


async def probe(uri: str, items: int, rounds: int, write_rate: float) -> None:
    mongo = MongoResource(uri, DATABASE, app_name="bench-store")
    await mongo.client.drop_database(DATABASE)
    started = time.perf_counter()
    await seed(mongo, items)
    print(f"seeded {items} records and {items} cases in {time.perf_counter() - started:.1f}s", flush=True)
    cases, feedback = mongo.db["cases"], mongo.db["feedback"]
    samples: dict[str, list[float]] = {
        name: []
        for name in (
            "tracking GET",
            "claim candidates",
            "fenced update",
            "gauge count",
            "update by _id + $or",
            "index + date range",
            "background update",
        )
    }
    deliveries = mongo.db["deliveries"]
    stop = asyncio.Event()
    background = asyncio.create_task(writer(mongo, items, write_rate, stop, samples["background update"]))
    try:
        for _ in range(rounds):
            n = random.randrange(items)
            await timed(samples["tracking GET"], feedback.find_one({"tracking_hash": tracking_hash(n)}))
            now_ms = epoch_ms(utc_now() + timedelta(days=30, seconds=items // 2))

            async def claim(now_ms: int = now_ms) -> list[Any]:
                query = {"due_ms": {"$lte": now_ms}, "clock": "open"}
                return [c["_id"] async for c in cases.find(query, {"_id": 1}).sort("due_ms", 1).limit(500)]

            await timed(samples["claim candidates"], claim())
            case_id = f"fb-{random.randrange(0, items, 10):07d}"
            await timed(
                samples["fenced update"],
                cases.update_one(
                    {"_id": case_id, "clock": "open", "fencing": {"$gte": 0}},
                    LEASE,
                ),
            )
            lower = epoch_ms(utc_now() - timedelta(hours=1))
            await timed(
                samples["gauge count"],
                count(cases, {"open_since_ms": {"$gt": lower, "$lte": lower + 7_200_000}, "level": 0}),
            )
            item_id = f"fb-{random.randrange(items):07d}"
            await timed(
                samples["update by _id + $or"],
                feedback.update_one(
                    {
                        "_id": item_id,
                        "status": {"$in": ["answered", "escalated"]},
                        "$or": [{"level": None}, {"level": {"$lte": 2}}],
                    },
                    {"$set": {"level": 2}},
                ),
            )

            async def expired_leases(item_id: str = item_id) -> list[Any]:
                query = {
                    "feedback_id": item_id,
                    "status": "queued",
                    "event_id": {"$ne": "ev-0"},
                    "lease_until": {"$lte": utc_now()},
                }
                return [d["_id"] async for d in deliveries.find(query, {"_id": 1})]

            await timed(samples["index + date range"], expired_leases())
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await background
    for name, values in samples.items():
        print(
            f"{name:<18} n={len(values):>4}  p50={statistics.median(values) * 1000:8.1f} ms  "
            f"p99={percentile(values, 0.99) * 1000:8.1f} ms",
            flush=True,
        )
    print(f"100 concurrent $inc on one document -> {await lost_updates(mongo)}", flush=True)
    await mongo.client.drop_database(DATABASE)
    await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--write-rate", type=float, default=40.0)
    parser.add_argument("--server", choices=["nx-27017", "mongod"], default="nx-27017")
    parser.add_argument("--uri", default=os.environ.get("MONGODB_URI"))
    args = parser.parse_args()
    if args.uri:
        print(f"MongoDB-wire server at {args.uri}", flush=True)
        asyncio.run(probe(args.uri, args.items, args.rounds, args.write_rate))
        return
    stack = Stack(
        Profile("bench-store", int(os.environ.get("HEARD_PORT_OFFSET", "0")) + 500), mongodb_server=args.server
    )
    stack.down()
    shutil.rmtree(stack.state, ignore_errors=True)
    stack.start_mongodb()
    print(f"MongoDB-wire server: {args.server} at {stack.mongodb_uri}", flush=True)
    try:
        asyncio.run(probe(stack.mongodb_uri, args.items, args.rounds, args.write_rate))
    finally:
        stack.down()


if __name__ == "__main__":
    main()
