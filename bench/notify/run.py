"""Notify benchmark: e-mails per second into Mailpit and webhooks per second into a local receiver, each against
a bare loop sending the same messages, in one run; and the time from a staff answer to the e-mail in Mailpit.

    .venv/bin/python bench/notify/run.py [--emails 1000] [--webhooks 1000] [--answers 100] [--concurrency 16]
                                         [--rounds 2]

Starts Kafka, a MongoDB-wire server, Mailpit, a webhook receiver (`receiver.py`) and notify through
heard_devstack under its own profile (`bench-notify`, ports +HEARD_BENCH_PORT_OFFSET, default 19000, state in
.heard/bench-notify). Each round measures, alternating:

- notify e-mail: `--emails` routed events are published to Kafka; notify plans one e-mail each (the unit's
  duty desk), writes the delivery, claims it, renders it, marks it sending, sends it over SMTP (pooled
  connections) and records the outcome. Rate = messages in Mailpit / time from the first publish.
- bare aiosmtplib: the same rendered messages sent by `--concurrency` SMTP connections in a loop, nothing else.
- notify webhooks: `--webhooks` referred events for a subscribed city system; notify signs each with
  Standard Webhooks and POSTs it. Rate = requests at the receiver / time from the first publish.
- bare httpx: the same signed payloads POSTed by `--concurrency` concurrent tasks on one client.

Then intake and routing start, `--answers` residents submit feedback with an e-mail address, staff answer
each, and the latency from the answer request to the answer e-mail's arrival in Mailpit (Mailpit's own
receipt time) is reported as p50/p99: intake stores and publishes the answer, notify consumes it, asks intake
for the address (audited), renders and sends.

Loopback only, bounded in count; prints figures and ratios, asserts nothing. The load generators, Mailpit,
Kafka, the database and notify share one small machine (and it is shared with other people's work), so the
figures are a floor for this machine and the ratios matter more than the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiosmtplib
import httpx
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from heard_devstack import ROOT, Profile, Stack, mongodb_mode
from heard_notify.channels import Email, WebhookMessage, build_email, signature_headers
from heard_notify.i18n import render
from heard_shared import events as ev

OFFSET = int(os.environ.get("HEARD_BENCH_PORT_OFFSET", "19000"))
PROFILE = Profile("bench-notify", OFFSET)
RECEIVER_PORT = 8099 + OFFSET
SOURCE = "urn:bench:routing"
SUBSCRIPTION = "bench-city"


def notify_env() -> dict[str, str]:
    return {
        "HEARD_NOTIFY_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "HEARD_NOTIFY_DISPATCH_POLL_SECONDS": "0.2",
        "HEARD_INTAKE_BOOTSTRAP_ADMIN_TOKEN": "heard_bench_admin_token",
        "HEARD_INTAKE_RATE_LIMIT_ENABLED": "false",
    }


def routed_event(feedback_id: str) -> bytes:
    data = ev.FeedbackRoutedV1(
        feedback_id=feedback_id,
        unit_id="north-patrol",
        unit_name="North Precinct Patrol",
        level=0,
        rule="bench",
        negative=False,
        severity="positive",
        routed_at=datetime.now(UTC),
    )
    return ev.encode(ev.new_event(ev.ROUTED, data, source=SOURCE, subject=feedback_id))


def referred_event(feedback_id: str) -> bytes:
    data = ev.FeedbackReferredV1(
        feedback_id=feedback_id, from_unit_id="north-patrol", reason="bench", referred_at=datetime.now(UTC)
    )
    return ev.encode(ev.new_event(ev.REFERRED, data, source=SOURCE, subject=feedback_id))


async def publish(bootstrap: str, topic: str, values: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        batch = [await producer.send(topic, value=value, key=key.encode()) for key, value in values]
        await asyncio.gather(*batch)
    finally:
        await producer.stop()


async def wait_for(count: Callable[[], Awaitable[int]], target: int, timeout: float) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if await count() >= target:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    raise RuntimeError(f"only {await count()} of {target} arrived within {timeout:.0f}s")


class Bench:
    def __init__(self, stack: Stack, args: argparse.Namespace, http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.args = args
        self.http = http
        self.mailpit = f"{stack.mailpit_url}/api/v1"

    async def mail_count(self) -> int:
        return int((await self.http.get(f"{self.mailpit}/messages", params={"limit": 1})).json()["messages_count"])

    async def clear_mail(self) -> None:
        await self.http.delete(f"{self.mailpit}/messages")

    async def received(self) -> int:
        return int((await self.http.get(f"http://127.0.0.1:{RECEIVER_PORT}/count")).text)

    # -- e-mail ------------------------------------------------------------------------------------------------

    async def notify_email(self, n: int) -> float:
        await self.clear_mail()
        values = [(fid, routed_event(fid)) for fid in (str(uuid.uuid4()) for _ in range(n))]
        started = time.perf_counter()
        await publish(self.stack.kafka_bootstrap, ev.ROUTED.topic, values)
        finished = await wait_for(self.mail_count, n, timeout=600)
        return n / (finished - started)

    def same_emails(self, n: int) -> list[bytes]:
        messages = []
        for _ in range(n):
            fid = str(uuid.uuid4())
            rendered = render(
                "assigned",
                "en",
                {
                    "feedback_id": fid,
                    "unit_name": "North Precinct Patrol",
                    "level": 0,
                    "severity": "positive",
                    "acknowledge_by": None,
                    "answer_by": None,
                    "staff_url": f"http://127.0.0.1:8081/v1/staff/feedback/{fid}",
                },
            )
            mail = Email(
                to="north.desk@riverton.example",
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                message_id=f"<{uuid.uuid4()}@bench.example>",
                thread_root=f"<thread.{fid}@bench.example>",
                language="en",
            )
            messages.append(
                build_email(mail, sender="Heard <heard@riverton.example>", sent_at=datetime.now(UTC)).as_bytes()
            )
        return messages

    async def bare_smtp(self, n: int) -> float:
        await self.clear_mail()
        messages = self.same_emails(n)
        queue = list(messages)
        started = time.perf_counter()

        async def worker() -> None:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=self.stack.profile.mailpit_smtp_port) as smtp:
                while queue:
                    await smtp.sendmail("heard@riverton.example", ["north.desk@riverton.example"], queue.pop())

        await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))
        finished = await wait_for(self.mail_count, n, timeout=600)
        return n / (finished - started)

    # -- webhooks ----------------------------------------------------------------------------------------------

    async def notify_webhooks(self, n: int) -> float:
        before = await self.received()
        values = [(fid, referred_event(fid)) for fid in (str(uuid.uuid4()) for _ in range(n))]
        started = time.perf_counter()
        await publish(self.stack.kafka_bootstrap, ev.REFERRED.topic, values)

        async def count() -> int:
            return await self.received() - before

        finished = await wait_for(count, n, timeout=600)
        return n / (finished - started)

    async def bare_httpx(self, n: int, secret: str) -> float:
        before = await self.received()
        url = f"http://127.0.0.1:{RECEIVER_PORT}/heard"
        payloads = []
        for _ in range(n):
            fid = str(uuid.uuid4())
            payload = json.dumps(
                {
                    "type": ev.REFERRED.event_type,
                    "timestamp": datetime.now(UTC).isoformat(),
                    "data": {"feedback_id": fid, "event_id": str(uuid.uuid4()), "from_unit_id": "north-patrol"},
                },
                separators=(",", ":"),
            )
            payloads.append(WebhookMessage(url, str(uuid.uuid4()), payload, [secret]))
        started = time.perf_counter()
        async with httpx.AsyncClient(timeout=10) as client:

            async def worker() -> None:
                while payloads:
                    message = payloads.pop()
                    headers = signature_headers(message, at=datetime.now(UTC))
                    response = await client.post(url, content=message.payload.encode(), headers=headers)
                    response.raise_for_status()

            await asyncio.gather(*(worker() for _ in range(self.args.concurrency)))

        async def count() -> int:
            return await self.received() - before

        finished = await wait_for(count, n, timeout=60)
        return n / (finished - started)

    # -- answer to e-mail --------------------------------------------------------------------------------------

    async def answer_latency(self, n: int) -> list[float]:
        intake = self.stack.service_url("intake")
        staff = {"Authorization": "Bearer heard_bench_admin_token"}
        await self.clear_mail()
        items = []
        for i in range(n):
            email = f"resident{i}.{uuid.uuid4().hex[:6]}@bench.example"
            body = {"kind": "praise", "text": "Thank you", "contact": {"email": email, "consent_to_contact": True}}
            created = (await self.http.post(f"{intake}/v1/feedback", json=body)).json()
            items.append((created["feedback_id"], email))
        await wait_for(self.mail_count, n, timeout=300)  # every "received" e-mail is out: notify is idle
        await asyncio.sleep(2)
        answered_at: dict[str, float] = {}
        for feedback_id, email in items:
            answered_at[email] = time.time()
            response = await self.http.post(
                f"{intake}/v1/staff/feedback/{feedback_id}/answer", headers=staff, json={"answer": "Thank you too."}
            )
            response.raise_for_status()
            await asyncio.sleep(1 / self.args.answer_rate)
        await wait_for(self.mail_count, 2 * n, timeout=300)
        latencies = []
        listing = (
            await self.http.get(
                f"{self.mailpit}/search", params={"query": 'subject:"Your feedback has an answer"', "limit": 5000}
            )
        ).json()["messages"]
        for message in listing:
            to = message["To"][0]["Address"]
            arrived = datetime.fromisoformat(message["Created"].replace("Z", "+00:00")).timestamp()
            latencies.append(arrived - answered_at[to])
        return latencies


def pct(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--answer-rate", type=float, default=5.0, help="answers per second")
    parser.add_argument("--concurrency", type=int, default=16, help="notify's dispatch concurrency and the baselines'")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    server = mongodb_mode()
    env = {**notify_env(), "HEARD_NOTIFY_DISPATCH_CONCURRENCY": str(args.concurrency)}
    # Throughput: notify alone, so the figures are its own.
    stack = Stack(PROFILE, extra_env=env)
    stack.down()
    shutil.rmtree(stack.state, ignore_errors=True)
    receiver = subprocess.Popen([sys.executable, str(Path(__file__).with_name("receiver.py")), str(RECEIVER_PORT)])
    try:
        stack.up_infra()
        registered = subprocess.run(
            [
                *(sys.executable, "-m", "heard_notify.cli", "register-webhook", "--id", SUBSCRIPTION),
                *("--name", "Bench", "--url", f"http://127.0.0.1:{RECEIVER_PORT}/heard"),
                *("--event", ev.REFERRED.event_type),
            ],
            env={**os.environ, **stack.service_env("notify")},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        stack.start_service("notify")
        figures = asyncio.run(throughput(stack, args, registered.stdout.strip()))
    finally:
        stack.down()
        receiver.terminate()
        receiver.wait(timeout=10)
    # Latency: the whole platform as `make up` starts it.
    platform = Stack(Profile("bench-notify-platform", OFFSET), extra_env=env)
    platform.down()
    shutil.rmtree(platform.state, ignore_errors=True)
    try:
        platform.up(prometheus=False)
        latencies = asyncio.run(latency(platform, args))
    finally:
        platform.down()
    report(figures, latencies, args, server)


async def throughput(stack: Stack, args: argparse.Namespace, secret: str) -> dict[str, list[float]]:
    async with httpx.AsyncClient(timeout=30) as http:
        bench = Bench(stack, args, http)
        figures: dict[str, list[float]] = {k: [] for k in ("notify_email", "bare_smtp", "notify_webhook", "bare_httpx")}
        await bench.notify_email(50)  # warm-up: connections, caches, consumer assignment
        for round_ in range(1, args.rounds + 1):
            figures["notify_email"].append(await bench.notify_email(args.emails))
            figures["bare_smtp"].append(await bench.bare_smtp(args.emails))
            figures["notify_webhook"].append(await bench.notify_webhooks(args.webhooks))
            figures["bare_httpx"].append(await bench.bare_httpx(args.webhooks, secret))
            print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in figures.items()), flush=True)
        return figures


async def latency(stack: Stack, args: argparse.Namespace) -> list[float]:
    async with httpx.AsyncClient(timeout=30) as http:
        return await Bench(stack, args, http).answer_latency(args.answers)


def report(figures: dict[str, list[float]], latencies: list[float], args: argparse.Namespace, server: str) -> None:
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"\nthroughput on {server}; concurrency {args.concurrency}; {args.rounds} round(s); shared machine")
    print(
        f"e-mail   notify {med['notify_email']:.0f}/s   bare aiosmtplib {med['bare_smtp']:.0f}/s   "
        f"ratio {med['notify_email'] / med['bare_smtp']:.2f}   ({args.emails} messages into Mailpit, medians)"
    )
    print(
        f"webhook  notify {med['notify_webhook']:.0f}/s   bare httpx {med['bare_httpx']:.0f}/s   "
        f"ratio {med['notify_webhook'] / med['bare_httpx']:.2f}   ({args.webhooks} signed POSTs, medians)"
    )
    p50, p99 = pct(latencies, 0.5) * 1000, pct(latencies, 0.99) * 1000
    print(
        f"answer -> e-mail in Mailpit ({server}, whole platform): p50 {p50:.0f} ms   p99 {p99:.0f} ms"
        f"   ({len(latencies)} answers at {args.answer_rate:g}/s)"
    )


if __name__ == "__main__":
    main()
