"""SMS through a real HTTP server speaking Twilio's Messages API, and a delivery that exhausts its attempts
dead-lettered on the real Kafka broker with its reason."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from heard_devstack import Stack
from heard_notify.channels import CaptureSms, Sms, SmtpSender, TwilioCompatibleSms, WebhookSender
from heard_notify.contacts import load_directory
from heard_notify.intake import IntakeContacts
from heard_notify.keys import NotifyKeys
from heard_notify.ledger import DeliveryLedger
from heard_notify.metrics import NotifyMetrics
from heard_notify.service import Dispatcher, ItemProjection, Links, Timing
from heard_notify.subscriptions import SubscriptionRegistry
from heard_notify.suppression import SuppressionList
from heard_shared import topics
from heard_shared.events import utc_now
from heard_shared.kafka import KafkaDeadLetterSink
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import MongoResource
from tests.helpers import TopicReader, unique

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class FakeProvider:
    """A real HTTP server answering like a Twilio-compatible gateway, one scripted behaviour per request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, Any], float]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers["content-length"])).decode())
                provider.requests.append({"path": self.path, "auth": self.headers.get("authorization"), **form})
                status, body, delay = provider.script.pop(0)
                time.sleep(delay)
                payload = json.dumps(body).encode()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    provider = FakeProvider()
    yield provider
    provider.server.shutdown()


async def test_the_twilio_compatible_adapter_on_a_real_http_server(provider: FakeProvider) -> None:
    sms = TwilioCompatibleSms(
        base_url=provider.url, account_sid="AC123", auth_token="tok", sender="+15550001", timeout=1
    )
    message = Sms("+16125550100", "Riverton PD received your feedback.", "d-1")
    provider.script = [
        (201, {"sid": "SM1"}, 0),
        (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}, 0),
        (429, {"message": "slow down"}, 0),
        (201, {"sid": "SM2"}, 2.0),  # the gateway takes the message but answers after our timeout
    ]
    try:
        sent = await sms.send(message)
        opted_out = await sms.send(message)
        throttled = await sms.send(message)
        ambiguous = await sms.send(message)
    finally:
        await sms.close()
    assert (sent.kind, sent.provider_id) == ("sent", "SM1")
    assert (opted_out.kind, opted_out.code) == ("suppressed", "sms_opted_out")
    assert throttled.kind == "retry"
    assert (ambiguous.kind, ambiguous.code) == ("maybe_sent", "ambiguous"), "a timeout after sending is not retried"
    first = provider.requests[0]
    assert first["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    assert first["To"] == ["+16125550100"] and first["From"] == ["+15550001"] and first["auth"].startswith("Basic ")

    unreachable = TwilioCompatibleSms(
        base_url="http://127.0.0.1:9", account_sid="a", auth_token="t", sender="s", timeout=1
    )
    try:
        assert (await unreachable.send(message)).kind == "retry", "nothing left: safe to try again"
    finally:
        await unreachable.close()


async def test_a_delivery_that_exhausts_its_attempts_is_dead_lettered_with_its_reason(
    stack: Stack, provider: FakeProvider
) -> None:
    keys = NotifyKeys("integration-test-key-" + "y" * 20)
    mongo = MongoResource(stack.mongodb_uri, unique("notify_dlq").replace("-", "_"), app_name="dlq-test")
    dead_letters = KafkaDeadLetterSink(stack.kafka_bootstrap, client_id="notify-dlq-test")
    await dead_letters.start()
    subscriptions = SubscriptionRegistry(mongo.db["subscriptions"], keys, allow_private=True)
    await subscriptions.register(subscription_id="broken", name="Broken", url=f"{provider.url}/hook", event_types=["*"])
    provider.script = [(500, {"error": "down"}, 0)] * 3
    ledger = DeliveryLedger(mongo.db["deliveries"])
    now = utc_now()
    delivery = unique("delivery")
    await ledger.record(
        [
            DeliveryLedger.new(
                delivery=delivery,
                feedback_id=unique("feedback"),
                event_id="e-1",
                event_type="org.heard.feedback.answered.v1",
                recipient="subscription:broken",
                audience="system",
                channel="webhook",
                template="org.heard.feedback.answered.v1",
                variant="",
                urgent=False,
                context={"type": "org.heard.feedback.answered.v1", "data": {"feedback_id": "f"}},
                due_at=now,
                now=now,
                give_up_at=now + timedelta(minutes=5),
            )
        ]
    )
    wake = asyncio.Event()
    dispatcher = Dispatcher(
        ledger=ledger,
        items=ItemProjection(mongo.db["items"]),
        directory=load_directory(ROOT / "config" / "contacts.yaml", None),
        subscriptions=subscriptions,
        intake=IntakeContacts(base_url="http://127.0.0.1:9", token="unused", timeout=1),
        suppression=SuppressionList(mongo.db["suppression"]),
        keys=keys,
        email=SmtpSender(
            host="127.0.0.1",
            port=stack.profile.mailpit_smtp_port,
            security="none",
            username="",
            password="",
            timeout=5,
            sender="heard@riverton.example",
            pool_size=1,
        ),
        webhooks=WebhookSender(timeout=5, allow_private=True),
        sms=CaptureSms(),
        links=Links("http://127.0.0.1:8083", "http://x/{feedback_id}", "dlq.heard.example"),
        timing=Timing(
            lease=timedelta(seconds=30),
            retry_base=0.2,
            retry_cap=0.5,
            give_up_after=timedelta(minutes=5),
            max_attempts=3,
        ),
        metrics=NotifyMetrics(ServiceMetrics("notify")),
        dead_letters=dead_letters,
        owner="dlq-test",
        concurrency=2,
        poll_seconds=0.1,
        wake=wake,
    )
    async with TopicReader(stack.kafka_bootstrap, topics.DEAD_LETTER) as reader:
        task = asyncio.create_task(dispatcher.run())
        try:
            record = await reader.wait_for(
                lambda r: delivery.encode() in (r.value or b""), timeout=60, what="the dead-lettered delivery"
            )
        finally:
            task.cancel()
            async with asyncio.timeout(30):  # a dispatcher that does not stop fails here, not at the suite's limit
                await asyncio.gather(task, return_exceptions=True)
            await dead_letters.stop()
    headers = {name: value.decode() for name, value in record.headers}
    assert headers["dlq.reason.code"] == "gave_up:http_500" and headers["dlq.service"] == "notify"
    assert json.loads(record.value)["attempts"] == 3
    stored = await ledger.get(delivery)
    await mongo.close()
    assert stored is not None and stored["status"] == "failed" and len(stored["attempt_log"]) == 3
    assert len(provider.requests) == 3
