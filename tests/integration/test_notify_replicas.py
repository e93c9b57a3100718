"""Notify dispatchers on a real MongoDB-wire server sending through the real Mailpit: three replicas send every
delivery exactly once (counted by Message-ID in Mailpit), each with one attempt; a stop mid-send finishes the
message on the wire instead of leaving it to be sent again."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from heard_devstack import Stack
from heard_notify.channels import CaptureSms, Email, Outcome, SmtpSender, WebhookSender
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
from heard_shared.mongo import Document, MongoResource
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


def assigned(feedback_id: str, now: datetime) -> Document:
    """A unit's "new item" e-mail, due now."""
    return DeliveryLedger.new(
        delivery=delivery_id("urn:test", feedback_id, "unit:north-patrol/duty-desk", "email", "assigned", ""),
        feedback_id=feedback_id,
        event_id=feedback_id,
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


async def test_three_replicas_send_each_delivery_exactly_once(stack: Stack) -> None:
    database = unique("notify_replicas").replace("-", "_")
    mongos = [MongoResource(stack.mongodb_uri, database, app_name=f"replica-{i}") for i in range(3)]
    ledger = DeliveryLedger(mongos[0].db["deliveries"])
    await ledger.ensure_indexes()
    now = utc_now()
    batch = unique("batch")
    documents = [assigned(f"{batch}-{i}", now) for i in range(DELIVERIES)]
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
    client = MongoResource(stack.mongodb_uri, database, app_name="check")
    try:
        async for document in client.db["deliveries"].find({}):
            assert len(document["attempt_log"]) == 1 and document["attempts"] == 1, document["_id"]
    finally:
        await client.close()
    sent = [replica.metrics.deliveries.labels("email", "sent")._value.get() for replica in replicas]
    assert sum(sent) == DELIVERIES and sum(1 for n in sent if n) >= 2, f"work shared across replicas: {sent}"


async def test_a_newer_top_level_reminder_suppresses_the_older_ones_still_queued(stack: Stack) -> None:
    mongo = MongoResource(stack.mongodb_uri, unique("notify_supersede").replace("-", "_"), app_name="supersede")
    ledger = DeliveryLedger(mongo.db["deliveries"])
    now = utc_now()
    item = unique("item")

    def reminder(event: str, template: str = "top_reminder", lease_until: datetime | None = None) -> Document:
        document = DeliveryLedger.new(
            delivery=delivery_id("urn:test", event, "unit:oversight-board/clerk", "email", template, ""),
            feedback_id=item,
            event_id=event,
            event_type="org.heard.feedback.escalated.v1",
            recipient="unit:oversight-board/clerk",
            audience="staff",
            channel="email",
            template=template,
            variant="",
            urgent=True,
            context={"repeat": 1},
            due_at=now,
            now=now,
            give_up_at=now + timedelta(minutes=5),
        )
        if lease_until is not None:
            document["lease_until"] = lease_until  # claimed by a dispatcher: left to it
        return document

    try:
        documents = [
            reminder("r1"),
            reminder("r2"),
            reminder("r3", lease_until=now + timedelta(minutes=1)),
            reminder("e1", template="escalated_to_you"),
            reminder("r4"),
        ]
        await ledger.record(documents)
        suppressed = await ledger.suppress_queued(
            feedback_id=item, template="top_reminder", except_event_id="r4", reason="superseded"
        )
        assert suppressed == {"email": 2}
        status = {
            d["event_id"]: (d["status"], d["reason"]) async for d in ledger.deliveries.find({"feedback_id": item})
        }
        assert status == {
            "r1": ("suppressed", "superseded"),
            "r2": ("suppressed", "superseded"),
            "r3": ("queued", None),
            "e1": ("queued", None),
            "r4": ("queued", None),
        }
    finally:
        await mongo.close()


async def test_a_stop_mid_send_lets_the_message_finish_and_records_it_once(stack: Stack) -> None:
    mongo = MongoResource(stack.mongodb_uri, unique("notify_drain").replace("-", "_"), app_name="drain")
    ledger = DeliveryLedger(mongo.db["deliveries"])
    item = unique("item")
    document = assigned(item, utc_now())
    await ledger.record([document])
    on_the_wire, release = asyncio.Event(), asyncio.Event()
    replica = dispatcher(stack, mongo, "draining", asyncio.Event())
    real_send = replica.email.send

    async def slow_send(mail: Email, *, sent_at: datetime) -> Outcome:
        on_the_wire.set()
        await release.wait()  # a slow SMTP server: the stop arrives while the message is being sent
        return await real_send(mail, sent_at=sent_at)

    replica.email.send = slow_send  # type: ignore[method-assign]
    task = asyncio.create_task(replica.run())
    try:
        await asyncio.wait_for(on_the_wire.wait(), timeout=30)
        task.cancel()
        await asyncio.sleep(0.2)
        assert not task.done(), "the stop waits for the message on the wire"
        release.set()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), timeout=30)
        stored = await ledger.get(document["_id"])
        assert stored is not None and stored["status"] == "sent" and stored["attempts"] == 1
        async with httpx.AsyncClient(timeout=30) as http:
            counts = await Mailpit(http, stack.mailpit_url).message_ids()
        assert counts[f"{document['_id']}@replicas.heard.example"] == 1
    finally:
        task.cancel()
        await replica.email.close()
        await mongo.close()
