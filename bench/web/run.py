"""Web benchmark: the submit form's POST → confirmation page, against intake's JSON submit, in the same run.

    .venv/bin/python bench/web/run.py [--rounds 3] [--duration 20] [--rate 50] [--concurrency 16]

Starts Kafka, a MongoDB-wire server, intake and web through heard_devstack under its own profile (`bench-web`,
ports +18000 or HEARD_BENCH_PORT_OFFSET, state in .heard/bench-web). Two targets, measured in alternating
rounds (intake, web, intake, web, ...):

- intake: `POST /v1/feedback` with JSON, done at its 202;
- web: what a resident's browser does: `POST /submit` with the form and its CSRF token (web calls intake's
  same endpoint), then follows the 303 to the confirmation page; done when that page is back (200).

Each in two ways: at a fixed rate (`--rate`, open loop, latency from the scheduled start so queueing shows), and
at saturation (`--concurrency` clients back to back; throughput is completed submissions per second). Medians
over the rounds are reported with each round's figures, and the web/intake throughput ratio (goal ≥ 0.7).
Loopback only, bounded in time; prints figures, asserts nothing. The load generator shares the machine with the
servers, so absolute numbers are a floor for this machine, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from heard_devstack import Profile, Stack, mongodb_mode

PROFILE = Profile("bench-web", int(os.environ.get("HEARD_BENCH_PORT_OFFSET", "18000")))
FORM = {
    "kind": "complaint",
    "text": "The patrol car was parked across the bike lane on Elm Street again this morning for twenty minutes.",
    "neighbourhood": "Northgate",
}
JSON_BODY = {
    "kind": "complaint",
    "text": FORM["text"],
    "language": "en",
    "location": {"neighbourhood": "Northgate"},
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

Send = Callable[[httpx.AsyncClient], Awaitable[str | None]]  # None when done right, else what went wrong


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0

    def record(self, started: float, problem: str | None) -> None:
        if problem is None:
            self.latencies.append(time.perf_counter() - started)
        else:
            self.errors[problem] = self.errors.get(problem, 0) + 1

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def intake_submit(url: str) -> Send:
    async def send(client: httpx.AsyncClient) -> str | None:
        response = await client.post(url, json=JSON_BODY)
        return None if response.status_code == 202 else f"http_{response.status_code}"

    return send


def web_submit(base: str) -> Send:
    """A browser's submission: the form (CSRF token from the page it came from), then the confirmation page."""

    # Per client: one browser, one cookie jar. (Keyed by the object, not id(): a later phase's client may reuse an id.)
    tokens: weakref.WeakKeyDictionary[httpx.AsyncClient, str] = weakref.WeakKeyDictionary()

    async def send(client: httpx.AsyncClient) -> str | None:
        token = tokens.get(client)
        if token is None:
            page = await client.get(f"{base}/submit")
            found = _CSRF.search(page.text)
            if not found:
                return "no_form"
            token = tokens[client] = found.group(1)
        posted = await client.post(f"{base}/submit", data={**FORM, "csrf_token": token})
        if posted.status_code != 303:
            return f"post_{posted.status_code}"
        confirmation = await client.get(f"{base}{posted.headers['location']}")
        if confirmation.status_code != 200 or "tracking-code" not in confirmation.text:
            return f"confirmation_{confirmation.status_code}"
        return None

    return send


async def call(send: Send, client: httpx.AsyncClient) -> str | None:
    try:
        return await send(client)
    except httpx.HTTPError as error:
        return type(error).__name__


def _client(connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=30, limits=limits)


async def fixed_rate(send: Send, *, rate: float, duration: float, max_in_flight: int) -> Result:
    result = Result()
    gate = asyncio.Semaphore(max_in_flight)
    async with _client(max_in_flight) as client:
        await call(send, client)  # the form page, once, as a browser would have it open

        async def one(scheduled: float) -> None:
            async with gate:
                result.record(scheduled, await call(send, client))

        begin = time.perf_counter()
        tasks = []
        for i in range(int(rate * duration)):
            scheduled = begin + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - begin
    return result


async def saturation(send: Send, *, concurrency: int, duration: float) -> Result:
    result = Result()
    async with _client(concurrency) as client:
        await call(send, client)
        begin = time.perf_counter()
        stop_at = begin + duration

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                result.record(started, await call(send, client))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - begin
    return result


Rounds = dict[tuple[str, str], list[Result]]


async def measure(targets: dict[str, Send], args: argparse.Namespace) -> Rounds:
    results: Rounds = {}
    for name, send in targets.items():
        print(f"warming up {name} ...", flush=True)
        await saturation(send, concurrency=4, duration=args.warmup)
    for round_number in range(1, args.rounds + 1):
        for mode in ("fixed", "saturation"):
            for name, send in targets.items():
                print(f"round {round_number}: {name} {mode} for {args.duration:g} s ...", flush=True)
                if mode == "fixed":
                    result = await fixed_rate(
                        send, rate=args.rate, duration=args.duration, max_in_flight=args.max_in_flight
                    )
                else:
                    result = await saturation(send, concurrency=args.concurrency, duration=args.duration)
                results.setdefault((name, mode), []).append(result)
                await asyncio.sleep(2)  # let the settler and relays finish before the next phase
    return results


def report(results: Rounds, args: argparse.Namespace, mongodb: str) -> None:
    print(f"\nmachine: {os.cpu_count()} cores (shared); MongoDB-wire server: {mongodb}; Kafka acks=all")
    header = ("target", "mode", "throughput", "ok", "p50 ms", "p99 ms")
    print("{:<7} {:<18} {:>11} {:>7} {:>9} {:>9}   errors".format(*header))
    for (name, mode), rounds in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        label = f"fixed {args.rate:g}/s" if mode == "fixed" else f"saturation c={args.concurrency}"
        for number, result in enumerate(rounds, 1):
            errors = ", ".join(f"{k}={v}" for k, v in sorted(result.errors.items())) or "-"
            print(
                f"{name:<7} {label + f' #{number}':<18} {result.throughput:>9.1f}/s {len(result.latencies):>7} "
                f"{result.percentile(0.5):>9.1f} {result.percentile(0.99):>9.1f}   {errors}"
            )

    def median(name: str, mode: str, figure: Callable[[Result], float]) -> float:
        return statistics.median(figure(result) for result in results[(name, mode)])

    print(f"\nmedians over {args.rounds} rounds:")
    for name in ("intake", "web"):
        print(
            f"  {name:<7} fixed {args.rate:g}/s: p50 {median(name, 'fixed', lambda r: r.percentile(0.5)):.1f} ms, "
            f"p99 {median(name, 'fixed', lambda r: r.percentile(0.99)):.1f} ms;  "
            f"saturation {median(name, 'saturation', lambda r: r.throughput):.1f}/s "
            f"(p50 {median(name, 'saturation', lambda r: r.percentile(0.5)):.1f} ms)"
        )
    ratios = [
        web.throughput / intake.throughput
        for web, intake in zip(results[("web", "saturation")], results[("intake", "saturation")], strict=True)
        if intake.throughput
    ]
    print(
        "saturation throughput web/intake per round: "
        + ", ".join(f"{ratio:.2f}" for ratio in ratios)
        + f"; median {statistics.median(ratios):.2f} (goal ≥ 0.70)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measured phase")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=50.0, help="fixed request rate per second")
    parser.add_argument("--max-in-flight", type=int, default=128, help="bound on outstanding fixed-rate requests")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients at saturation")
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running afterwards")
    args = parser.parse_args()

    mongodb = mongodb_mode()
    stack = Stack(PROFILE)
    stack.down()
    for leftover in ("kafka", "mongodb", "logs", "run"):
        shutil.rmtree(stack.state / leftover, ignore_errors=True)
    # One client address sends everything, through both doors: the per-address limiter would measure itself.
    stack.extra_env = {"HEARD_INTAKE_RATE_LIMIT_ENABLED": "false"}
    try:
        print(f"starting Kafka, {mongodb}, intake and web (profile {PROFILE.name}) ...", flush=True)
        stack.up_infra()
        stack.start_service("intake")
        stack.start_service("web")
        targets = {
            "intake": intake_submit(f"{stack.service_url('intake')}/v1/feedback"),
            "web": web_submit(stack.service_url("web")),
        }
        results = asyncio.run(measure(targets, args))
    finally:
        if not args.keep:
            stack.down()
    report(results, args, mongodb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
