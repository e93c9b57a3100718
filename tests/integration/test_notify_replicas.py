"""Three notify dispatchers share one delivery ledger on a real MongoDB-wire server and send through the real
Mailpit: every delivery goes out exactly once (counted by Message-ID in Mailpit), each with one attempt."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from heard_devstack import Stack
from heard_notify.channels import CaptureSms, SmtpSender, WebhookSender
from heard_notify.contacts import load_directory
from heard_notify.intake import IntakeContacts
from heard_notify.keys import NotifyKeys
from heard_notify.ledger import DeliveryLedger, delivery_id
from heard_notify.metrics import NotifyMetrics
from heard_notify.service import Dispatcher, ItemProjection, Links, Timing
from heard_notify.subscriptions import SubscriptionRegistry
from heard_notify.suppression import SuppressionList
from heard_shared.events import utc_now
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import MongoResource
from tests.helpers import eventually, unique
from tests.mailpit import Mailpit

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DELIVERIES = 150


class NoDeadLetters:
    async def send(
        self, topic: str, *, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        raise AssertionError("nothing should be dead-lettered")


def dispatcher(stack: Stack, mongo: MongoResource, owner: str, wake: asyncio.Event) -> Dispatcher:
    keys = NotifyKeys("integration-test-key-" + "x" * 20)
    directory = load_directory(ROOT / "config" / "contacts.yaml", None)
    timing = Timing(
        lease=timedelta(seconds=30), retry_base=0.2, retry_cap=1, give_up_after=timedelta(minutes=5), max_attempts=20
    )
    return Dispatcher(
        ledger=DeliveryLedger(mongo.db["deliveries"]),
        items=ItemProjection(mongo.db["items"]),
        directory=directory,
        subscriptions=SubscriptionRegistry(mongo.db["subscriptions"], keys, allow_private=True),
        intake=IntakeContacts(base_url="http://127.0.0.1:9", token="unused", timeout=1),
        suppression=SuppressionList(mongo.db["suppression"]),
        keys=keys,
        email=SmtpSender(
            host="127.0.0.1",
            port=stack.profile.mailpit_smtp_port,
            security="none",
            username="",
            password="",
            timeout=10,
            sender="Heard <heard@riverton.example>",
            pool_size=4,
        ),
        webhooks=WebhookSender(timeout=5, allow_private=True),
        sms=CaptureSms(),
        links=Links("http://127.0.0.1:8083", "http://127.0.0.1:8081/{feedback_id}", "replicas.heard.example"),
        timing=timing,
        metrics=NotifyMetrics(ServiceMetrics("notify")),
        dead_letters=NoDeadLetters(),
        owner=owner,
        concurrency=4,
        poll_seconds=0.1,
        wake=wake,
    )


async def test_three_replicas_send_each_delivery_exactly_once(stack: Stack, scale_stack: Stack) -> None:
    database = unique("notify_replicas").replace("-", "_")
    mongos = [MongoResource(scale_stack.mongodb_uri, database, app_name=f"replica-{i}") for i in range(3)]
    ledger = DeliveryLedger(mongos[0].db["deliveries"])
    await ledger.ensure_indexes()
    now = utc_now()
    batch = unique("batch")
    documents = [
        DeliveryLedger.new(
            delivery=delivery_id("urn:test", f"{batch}-{i}", "unit:north-patrol/duty-desk", "email", "assigned", ""),
            feedback_id=f"{batch}-{i}",
            event_id=f"{batch}-{i}",
            event_type="org.heard.feedback.routed.v1",
            recipient="unit:north-patrol/duty-desk",
            audience="staff",
            channel="email",
            template="assigned",
            variant="",
            urgent=False,
            context={
                "unit_name": "North Precinct Patrol",
                "level": 0,
                "severity": "positive",
                "unit_id": "north-patrol",
                "acknowledge_by": None,
                "answer_by": None,
            },
            due_at=now,
            now=now,
            give_up_at=now + timedelta(minutes=5),
        )
        for i in range(DELIVERIES)
    ]
    assert await ledger.record(documents) == DELIVERIES
    assert await ledger.record(documents) == 0, "recording the same deliveries again adds nothing"

    wake = asyncio.Event()
    replicas = [dispatcher(stack, mongo, f"replica-{i}", wake) for i, mongo in enumerate(mongos)]
    tasks = [asyncio.create_task(replica.run()) for replica in replicas]
    try:

        async def finished() -> bool:
            return (
                await ledger.deliveries.count_documents({"status": "sent", "feedback_id": {"$regex": f"^{batch}"}})
                == DELIVERIES
            )

        await eventually(finished, timeout=180, interval=0.5, what="every delivery to be sent")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for mongo in mongos:
            await mongo.close()

    async with httpx.AsyncClient(timeout=30) as http:
        counts = await Mailpit(http, stack.mailpit_url).message_ids()
    mine = {f"{d['_id']}@replicas.heard.example" for d in documents}
    assert {mid: counts[mid] for mid in mine if counts[mid] != 1} == {}, "each message exactly once in Mailpit"
    client = MongoResource(scale_stack.mongodb_uri, database, app_name="check")
    try:
        async for document in client.db["deliveries"].find({}):
            assert len(document["attempt_log"]) == 1 and document["attempts"] == 1, document["_id"]
    finally:
        await client.close()
    sent = [replica.metrics.deliveries.labels("email", "sent")._value.get() for replica in replicas]
    assert sum(sent) == DELIVERIES and sum(1 for n in sent if n) >= 2, f"work shared across replicas: {sent}"
