"""Intake submission benchmark: throughput and latency over HTTP, side by side with a minimal baseline.

    .venv/bin/python bench/intake/run.py [--rounds 3] [--duration 10] [--rate 200] [--concurrency 32]

Starts Kafka, a MongoDB-wire server and intake through heard_devstack under its own profile
(`bench-intake`, ports +17000, state in .heard/bench-intake), plus `baseline_app.py`: a FastAPI
endpoint that does the same MongoDB insert and Kafka publish (`acks=all`, idempotent) and nothing else.
The targets are measured in alternating rounds (intake, baseline, intake, ...) in two ways, and the
medians over the rounds are reported with each round's figures:

- fixed rate: requests are started on a schedule of `--rate` per second (open loop, at most
  `--max-in-flight` outstanding) and latency counts from the scheduled start, so a server that falls
  behind shows its queueing delay instead of hiding it (no coordinated omission);
- saturation: `--concurrency` clients send back to back (closed loop); throughput is completed 202s/s.

Every measured submission is stored in MongoDB and published to Kafka before the 202. Loopback only,
bounded in time. Prints figures and the intake/baseline ratios; asserts nothing. The load generator
shares the machine with the servers, so absolute numbers are a floor for this machine, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from heard_devstack import Profile, Stack, http_ok, mongodb_mode

PROFILE = Profile("bench-intake", 17000)
BASELINE_DATABASE = "bench_baseline"
PAYLOAD = {
    "kind": "complaint",
    "text": "The patrol car was parked across the bike lane on Elm Street again this morning for twenty minutes.",
    "category": "parking",
    "language": "en",
    "location": {"neighbourhood": "Northgate"},
}


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def record_error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _post(client: httpx.AsyncClient, url: str, result: Result, started: float) -> None:
    try:
        response = await client.post(url, json=PAYLOAD)
    except httpx.HTTPError as error:
        result.record_error(type(error).__name__)
        return
    if response.status_code == 202:
        result.latencies.append(time.perf_counter() - started)
    else:
        result.record_error(f"http_{response.status_code}")


async def fixed_rate(url: str, *, rate: float, duration: float, max_in_flight: int) -> Result:
    result = Result()
    gate = asyncio.Semaphore(max_in_flight)
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(scheduled: float) -> None:
            async with gate:
                await _post(client, url, result, scheduled)

        begin = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        count = int(rate * duration)
        for i in range(count):
            scheduled = begin + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - begin
    return result


async def saturation(url: str, *, concurrency: int, duration: float) -> Result:
    result = Result()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        begin = time.perf_counter()
        stop_at = begin + duration

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                await _post(client, url, result, time.perf_counter())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - begin
    return result


async def warm_up(url: str, seconds: float) -> None:
    await saturation(url, concurrency=4, duration=seconds)


async def drain(url: str, *, limit: float = 120.0) -> float:
    """Waits until the target answers a probe quickly again, so one phase's backlog is not billed to the next.

    Requests whose client gave up are still queued in an overloaded server; returns the seconds waited.
    """
    begin = time.perf_counter()
    async with httpx.AsyncClient(timeout=5) as client:
        while time.perf_counter() - begin < limit:
            probe = time.perf_counter()
            try:
                response = await client.post(url, json=PAYLOAD)
                if response.status_code == 202 and time.perf_counter() - probe < 1.0:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1.0)
    return time.perf_counter() - begin


def start_baseline(stack: Stack, port: int) -> None:
    script = Path(__file__).with_name("baseline_app.py")
    argv = [
        sys.executable,
        str(script),
        f"--port={port}",
        f"--mongodb-uri={stack.mongodb_uri}",
        f"--database={BASELINE_DATABASE}",
        f"--kafka={stack.kafka_bootstrap}",
    ]
    stack.start_process("baseline", argv, port=port)
    stack.wait_until("baseline /readyz", lambda: http_ok(f"http://127.0.0.1:{port}/readyz"), 60, "baseline")


def line(name: str, mode: str, result: Result) -> str:
    errors = ", ".join(f"{k}={v}" for k, v in sorted(result.errors.items())) or "-"
    return (
        f"{name:<9} {mode:<18} {result.throughput:>9.1f}/s {len(result.latencies):>7} "
        f"{result.percentile(0.50) * 1000:>9.1f} {result.percentile(0.99) * 1000:>9.1f} "
        f"{statistics.fmean(result.latencies) * 1000 if result.latencies else float('nan'):>9.1f}   {errors}"
    )


Rounds = dict[tuple[str, str], list[Result]]


async def measure(targets: dict[str, str], args: argparse.Namespace) -> Rounds:
    """Alternates the targets phase by phase, round after round, so a noisy moment hits both alike."""
    results: Rounds = {}
    for name, url in targets.items():
        print(f"warming up {name} ...", flush=True)
        await warm_up(url, args.warmup)
    for round_number in range(1, args.rounds + 1):
        for mode in ("fixed", "saturation"):
            for name, url in targets.items():
                print(f"round {round_number}: {name} {mode} for {args.duration:g} s ...", flush=True)
                if mode == "fixed":
                    result = await fixed_rate(
                        url, rate=args.rate, duration=args.duration, max_in_flight=args.max_in_flight
                    )
                else:
                    result = await saturation(url, concurrency=args.concurrency, duration=args.duration)
                results.setdefault((name, mode), []).append(result)
                waited = await drain(url)
                if waited > 1.5:
                    print(f"  {name} needed {waited:.1f} s to drain its backlog", flush=True)
    return results


def median_of(results: list[Result], figure: Callable[[Result], float]) -> float:
    return statistics.median(figure(result) for result in results)


def report(results: Rounds, args: argparse.Namespace, mongodb: str) -> None:
    print(f"\nmachine: {os.cpu_count()} cores; MongoDB-wire server: {mongodb}; Kafka acks=all, idempotent producer")
    header = ("target", "mode", "throughput", "ok", "p50 ms", "p99 ms", "mean ms")
    print("{:<9} {:<18} {:>11} {:>7} {:>9} {:>9} {:>9}   errors".format(*header))
    for (name, mode), rounds in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        label = f"fixed {args.rate:g}/s" if mode == "fixed" else f"saturation c={args.concurrency}"
        for number, result in enumerate(rounds, 1):
            print(line(name, f"{label} #{number}", result))

    def median(name: str, mode: str, figure: Callable[[Result], float]) -> float:
        return median_of(results[(name, mode)], figure)

    def p99(result: Result) -> float:
        return result.percentile(0.99) * 1000

    def p50(result: Result) -> float:
        return result.percentile(0.50) * 1000

    def throughput(result: Result) -> float:
        return result.throughput

    ratios = [
        intake.throughput / baseline.throughput
        for intake, baseline in zip(results[("intake", "saturation")], results[("baseline", "saturation")], strict=True)
        if baseline.throughput
    ]
    print(f"\nmedians over {args.rounds} rounds:")
    for name in ("intake", "baseline"):
        print(
            f"  {name:<9} saturation {median(name, 'saturation', throughput):6.1f}/s"
            f" (p50 {median(name, 'saturation', p50):.1f} ms, p99 {median(name, 'saturation', p99):.1f} ms);"
            f"  fixed {args.rate:g}/s: p50 {median(name, 'fixed', p50):.1f} ms, p99 {median(name, 'fixed', p99):.1f} ms"
            f" (worst round {max(p99(r) for r in results[(name, 'fixed')]):.1f} ms)"
        )
    print(
        "saturation throughput intake/baseline per round: "
        + ", ".join(f"{ratio:.2f}" for ratio in ratios)
        + f"; median {statistics.median(ratios):.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=200.0, help="fixed request rate per second")
    parser.add_argument("--max-in-flight", type=int, default=256, help="bound on outstanding fixed-rate requests")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop clients at saturation")
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running afterwards")
    args = parser.parse_args()

    mongodb = mongodb_mode()
    stack = Stack(PROFILE)
    stack.down()
    for leftover in ("kafka", "mongodb", "logs", "run"):
        shutil.rmtree(stack.state / leftover, ignore_errors=True)
    stack.extra_env = {
        # One client address sends everything: the per-address limiter would measure itself.
        "HEARD_INTAKE_RATE_LIMIT_ENABLED": "false",
    }
    baseline_port = PROFILE.service_port("intake") + 100
    try:
        print(f"starting Kafka, {mongodb} and intake (profile {PROFILE.name}) ...", flush=True)
        stack.up_infra()
        stack.start_service("intake")
        start_baseline(stack, baseline_port)
        targets = {
            "intake": f"{stack.service_url('intake')}/v1/feedback",
            "baseline": f"http://127.0.0.1:{baseline_port}/v1/feedback",
        }
        results = asyncio.run(measure(targets, args))
    finally:
        if not args.keep:
            stack.down()
    report(results, args, mongodb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
