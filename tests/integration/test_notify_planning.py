"""Notify's planning on a real MongoDB-wire server: what an item's earlier events stored decides what its later events
plan. A resident is planned messages only on the channels feedback.submitted said they can be reached on, so no
delivery is claimed only for intake to refuse its address."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from heard_devstack import Stack
from heard_notify import domain
from heard_notify.contacts import load_directory
from heard_notify.keys import NotifyKeys
from heard_notify.ledger import DeliveryLedger
from heard_notify.metrics import NotifyMetrics
from heard_notify.service import ItemProjection, NotifyService, Timing
from heard_notify.subscriptions import SubscriptionRegistry
from heard_shared import events as ev
from heard_shared.events import utc_now
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import MongoResource
from tests.helpers import unique

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def submitted(
    feedback_id: str, *, has_contact: bool, channels: list[ev.ResidentChannel] | None = None
) -> ev.CloudEvent[ev.FeedbackSubmittedV1]:
    data = ev.FeedbackSubmittedV1(
        feedback_id=feedback_id,
        channel="api",
        kind="complaint",
        language="en",
        text="The patrol car blocked the bike lane.",
        severity="negative",
        negative=True,
        has_contact=has_contact,
        contact_channels=channels,
        submitted_at=utc_now(),
    )
    return ev.new_event(ev.SUBMITTED, data, source="urn:test", subject=feedback_id)


def answered(feedback_id: str) -> ev.CloudEvent[ev.FeedbackAnsweredV1]:
    data = ev.FeedbackAnsweredV1(feedback_id=feedback_id, answer="We spoke to the officer.", answered_at=utc_now())
    return ev.new_event(ev.ANSWERED, data, source="urn:test", subject=feedback_id)


async def test_an_answer_is_planned_only_on_the_channels_its_resident_can_be_reached_on(stack: Stack) -> None:
    mongo = MongoResource(stack.mongodb_uri, unique("notify_planning").replace("-", "_"), app_name="planning")
    ledger = DeliveryLedger(mongo.db["deliveries"])
    service = NotifyService(
        ledger=ledger,
        items=ItemProjection(mongo.db["items"]),
        directory=load_directory(ROOT / "config" / "contacts.yaml", None),
        subscriptions=SubscriptionRegistry(
            mongo.db["subscriptions"], NotifyKeys("planning-test-key-" + "x" * 20), allow_private=False
        ),
        policy=domain.Policy(),
        timing=Timing(
            lease=timedelta(seconds=30), retry_base=1, retry_cap=1, give_up_after=timedelta(hours=1), max_attempts=3
        ),
        metrics=NotifyMetrics(ServiceMetrics("notify")),
        wake=asyncio.Event(),
    )
    anonymous, by_email, from_before, unseen = unique("anonymous"), unique("email"), unique("before"), unique("unseen")

    async def resident_messages(feedback_id: str) -> set[tuple[str, str]]:
        found = ledger.deliveries.find({"feedback_id": feedback_id, "audience": "resident"})
        return {(delivery["template"], delivery["channel"]) async for delivery in found}

    try:
        for event in (submitted(anonymous, has_contact=False), answered(anonymous)):
            await service.on_event(event)
        for event in (submitted(by_email, has_contact=True, channels=["email"]), answered(by_email)):
            await service.on_event(event)
        # Published before intake named channels: both are planned, and intake decides at send time.
        for event in (submitted(from_before, has_contact=True), answered(from_before)):
            await service.on_event(event)
        # The answer overtook the submission (topics are not ordered against each other): nobody knows yet.
        await service.on_event(answered(unseen))

        assert await resident_messages(anonymous) == set()
        assert await resident_messages(by_email) == {("received", "email"), ("answered", "email")}
        assert await resident_messages(from_before) == {
            ("received", "email"),
            ("received", "sms"),
            ("answered", "email"),
            ("answered", "sms"),
        }
        assert await resident_messages(unseen) == {("answered", "email"), ("answered", "sms")}
    finally:
        await mongo.close()
