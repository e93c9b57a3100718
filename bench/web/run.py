"""Web benchmark: the submit form's POST → confirmation page, against intake's JSON submit, in the same run.

    .venv/bin/python bench/web/run.py [--rounds 3] [--duration 20] [--rate 50] [--concurrency 16]

Starts Kafka, a MongoDB-wire server, intake and web through heard_devstack under its own profile (`bench-web`,
ports +18000 or HEARD_BENCH_PORT_OFFSET, state in .heard/bench-web). Two targets, measured in alternating
rounds (intake, web, intake, web, ...):

- intake: `POST /v1/feedback` with JSON, done at its 202;
- web: what a resident's browser does: `POST /submit` with the form, its CSRF token and the form's own
  idempotency key (fresh per submission, as a newly opened form has; web calls intake's same endpoint with it);
  done when the confirmation page with the tracking code is back (200).

Each in two ways: at a fixed rate (`--rate`, open loop, latency from the scheduled start so queueing shows), and
at saturation (`--concurrency` browsers back to back; throughput is completed submissions per second). Medians
over the rounds are reported with each round's figures, and the web/intake throughput ratio (goal ≥ 0.7).
Each saturation phase also reports the CPU time every process spent per completed submission (web, intake, Kafka,
the MongoDB-wire server and this load generator, from /proc): on a shared machine other people's load moves the
throughput, much less the CPU a submission costs.
Loopback only, bounded in time; prints figures, asserts nothing. The load generator shares the machine with the
servers, so absolute numbers are a floor for this machine, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import statistics
import sys
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

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

Browser = aiohttp.ClientSession
Send = Callable[[Browser], Awaitable[str | None]]  # None when done right, else what went wrong


PROCESSES = ("web", "intake", "kafka", "mongodb")  # the stack's processes whose CPU a saturation phase counts
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process and its reaped children, from /proc (0 when it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / _TICKS  # utime, stime, cutime, cstime


class CpuMeter:
    """CPU seconds each process spent between `start` and `stop`; the load generator counts as `client`."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {**pids, "client": os.getpid()}
        self.begun: dict[str, float] = {}

    def start(self) -> None:
        self.begun = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) - self.begun[name] for name, pid in self.pids.items()}


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # seconds by process, saturation phases only

    def cpu_ms_per_request(self, name: str) -> float:
        return 1000 * self.cpu.get(name, 0.0) / len(self.latencies) if self.latencies else float("nan")

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
    async def send(browser: Browser) -> str | None:
        async with browser.post(url, json=JSON_BODY) as response:
            await response.read()
            return None if response.status == 202 else f"http_{response.status}"

    return send


def web_submit(base: str) -> Send:
    """A browser's submission: the form (CSRF token from the page it came from), then the confirmation page."""

    # Per browser, its form's token. (Keyed by the object, not id(): a later phase's browser may reuse an id.)
    tokens: weakref.WeakKeyDictionary[Browser, str] = weakref.WeakKeyDictionary()

    async def send(browser: Browser) -> str | None:
        token = tokens.get(browser)
        if token is None:
            async with browser.get(f"{base}/submit") as page:
                found = _CSRF.search(await page.text())
            if not found:
                return "no_form"
            token = tokens[browser] = found.group(1)
        form = {**FORM, "csrf_token": token, "submission_key": secrets.token_urlsafe(24)}
        async with browser.post(f"{base}/submit", data=form, allow_redirects=False) as confirmation:
            if confirmation.status != 200 or b'id="tracking-code"' not in await confirmation.read():
                return f"confirmation_{confirmation.status}"
        return None

    return send


async def call(send: Send, browser: Browser) -> str | None:
    try:
        return await send(browser)
    except (TimeoutError, aiohttp.ClientError) as error:
        return type(error).__name__


class Browsers:
    """The simulated residents' browsers: each has one connection and its own cookie jar, like a real one.

    aiohttp, not httpx: the load generator shares the two cores with everything it measures, and the target with
    more requests per submission pays more for its client. httpx (httpcore over anyio) took about four times
    aiohttp's CPU per request here: 4.5-5.4 ms per form submission (the POST and the confirmation page) and
    1.7-1.8 ms per JSON submit, against 1.0-1.3 and 0.4 ms now. (One shared pool for every browser would also cost
    more: httpcore scans its whole pool on every request.)
    """

    def __init__(self) -> None:
        self.idle: list[Browser] = []
        self.everyone: list[Browser] = []

    async def open(self, send: Send, count: int) -> None:
        """`count` browsers that have each submitted once (and so have the form page open)."""
        for _ in range(count):
            browser = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1),
                # Cookies from 127.0.0.1 too (aiohttp's jar otherwise refuses them from an IP address).
                cookie_jar=aiohttp.CookieJar(unsafe=True),
                timeout=aiohttp.ClientTimeout(total=30),
            )
            self.everyone.append(browser)
            await call(send, browser)
            self.idle.append(browser)

    async def borrow(self, send: Send) -> Browser:
        if not self.idle:
            await self.open(send, 1)
        return self.idle.pop()

    async def close(self) -> None:
        for browser in self.everyone:
            await browser.close()


async def fixed_rate(send: Send, *, rate: float, duration: float, max_in_flight: int) -> Result:
    result = Result()
    gate = asyncio.Semaphore(max_in_flight)
    browsers = Browsers()
    await browsers.open(send, 4)

    async def one(scheduled: float) -> None:
        async with gate:
            browser = await browsers.borrow(send)
            result.record(scheduled, await call(send, browser))
            browsers.idle.append(browser)

    try:
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
    finally:
        await browsers.close()
    return result


async def saturation(send: Send, *, concurrency: int, duration: float, meter: CpuMeter | None = None) -> Result:
    result = Result()
    browsers = Browsers()
    await browsers.open(send, concurrency)
    try:
        if meter is not None:
            meter.start()
        begin = time.perf_counter()
        stop_at = begin + duration

        async def worker(browser: Browser) -> None:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                result.record(started, await call(send, browser))

        await asyncio.gather(*(worker(browser) for browser in browsers.idle))
        result.elapsed = time.perf_counter() - begin
        if meter is not None:
            result.cpu = meter.stop()
    finally:
        await browsers.close()
    return result


Rounds = dict[tuple[str, str], list[Result]]


async def measure(targets: dict[str, Send], args: argparse.Namespace, meter: CpuMeter) -> Rounds:
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
                    result = await saturation(send, concurrency=args.concurrency, duration=args.duration, meter=meter)
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
    print(f"\nCPU ms per completed submission at saturation (median over {args.rounds} rounds):")
    print("  {:<7}".format("target") + "".join(f"{name:>9}" for name in (*PROCESSES, "client")) + "      all")
    for name in ("intake", "web"):
        figures = [
            statistics.median(result.cpu_ms_per_request(process) for result in results[(name, "saturation")])
            for process in (*PROCESSES, "client")
        ]
        print(f"  {name:<7}" + "".join(f"{figure:>9.2f}" for figure in figures) + f"{sum(figures):>9.2f}")
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
        meter = CpuMeter({name: stack.pid(name) for name in PROCESSES})
        results = asyncio.run(measure(targets, args, meter))
    finally:
        if not args.keep:
            stack.down()
    report(results, args, mongodb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
