"""Escalation scheduler benchmark: cost per tick and lateness of firings with many open deadlines.

    .venv/bin/python bench/escalation/run.py [--sizes 10000 100000] [--due 300] [--window 20]

For each size N it seeds N open negative items whose deadlines lie far in the future, plus `--due`
items whose deadlines fall evenly inside the next `--window` seconds, runs one scheduler at its
policy tick, and prints the median and p99 cost of a tick and the p50/p99 lateness of the firings
(firing time minus deadline). A scheduler that does not scan everything has a per-tick cost that
barely moves with N. Uses MONGODB_URI when set, else starts the default store (`make up`'s) through
heard_devstack under the `bench` profile. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from heard_devstack import Profile, Stack
from heard_shared.events import utc_now
from heard_shared.mongo import MongoResource, epoch_ms
from tests.integration.scheduler_support import build_scheduler, open_case


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(uri: str, size: int, due: int, window: float, tick: float) -> dict[str, float]:
    database = f"bench_escalation_{size}"
    mongo = MongoResource(uri, database, app_name="bench")
    await mongo.client.drop_database(database)
    scheduler, publisher = build_scheduler(mongo, instance_id="bench", batch=500)
    await scheduler.ensure_indexes()
    now = utc_now()
    far = now + timedelta(days=30)
    for start in range(0, size, 5000):
        await mongo.db["cases"].insert_many(
            [
                open_case(f"open-{i:07d}", due_at=far + timedelta(seconds=i), submitted_at=now)
                for i in range(start, min(size, start + 5000))
            ]
        )
    begin = utc_now() + timedelta(seconds=2)
    await mongo.db["cases"].insert_many(
        [
            open_case(f"due-{i:05d}", due_at=begin + timedelta(seconds=window * i / due), submitted_at=now)
            for i in range(due)
        ]
    )
    tick_seconds: list[float] = []
    fired = 0
    deadline = time.monotonic() + window + 4
    while time.monotonic() < deadline and fired < due:
        started = time.perf_counter()
        fired += await scheduler.tick()
        tick_seconds.append(time.perf_counter() - started)
        await asyncio.sleep(tick)
    # Lateness as the escalation events record it: firing time minus the deadline that was missed.
    lateness = []
    for _, _, value in publisher.published:
        data = json.loads(value)["data"]
        lateness.append(
            (epoch_ms(datetime.fromisoformat(data["fired_at"])) - epoch_ms(datetime.fromisoformat(data["deadline"])))
            / 1000
        )
    await mongo.client.drop_database(database)
    await mongo.close()
    return {
        "open": size,
        "fired": fired,
        "ticks": len(tick_seconds),
        "tick_median_ms": statistics.median(tick_seconds) * 1000,
        "tick_p99_ms": percentile(tick_seconds, 0.99) * 1000,
        "lateness_p50_s": percentile(lateness, 0.5) if lateness else float("nan"),
        "lateness_p99_s": percentile(lateness, 0.99) if lateness else float("nan"),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--tick", type=float, default=0.2)
    args = parser.parse_args()
    stack = Stack(Profile("bench", 16000))
    if not os.environ.get("MONGODB_URI"):
        stack.start_mongodb()
    server = stack.mongodb_server
    print(
        f"MongoDB-wire server: {server} at {stack.mongodb_uri}; tick interval {args.tick}s; "
        f"{args.due} deadlines due over {args.window}s"
    )
    results = []
    try:
        for size in args.sizes:
            result = await measure(stack.mongodb_uri, size, args.due, args.window, args.tick)
            results.append(result)
            print(
                f"open={size:>7}  fired={result['fired']:>4}/{args.due}  ticks={result['ticks']:>4}  "
                f"tick median={result['tick_median_ms']:8.1f} ms  p99={result['tick_p99_ms']:8.1f} ms  "
                f"lateness p50={result['lateness_p50_s']:6.2f} s  p99={result['lateness_p99_s']:6.2f} s",
                flush=True,
            )
    finally:
        if not os.environ.get("MONGODB_URI"):
            stack.down()
    if len(results) >= 2:
        ratio = results[-1]["tick_median_ms"] / results[0]["tick_median_ms"]
        print(f"per-tick cost ratio (median) {results[-1]['open']} vs {results[0]['open']}: {ratio:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
