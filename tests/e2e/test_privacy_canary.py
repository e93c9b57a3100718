"""Personal data never leaves intake: known canary values go in through every door, then every Kafka topic
(except intake's own inbound topic), every other service's database and every log file is searched for them.
Notify does write to the canary (it asks intake for the address at send time): Mailpit's mailbox is the one
place outside intake where the canary may appear, and the test checks it arrived there.

Contact details must also never be stored in plaintext, not even in intake's own database (they are
encrypted at rest); free text is intake's to keep, but leaves it only redacted.
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid
from collections.abc import Iterable
from typing import Any

import bson
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from heard_devstack import SERVICES, Stack
from heard_shared import topics
from tests.e2e.conftest import CITY_SYSTEMS, public_count, staff, submit
from tests.helpers import TopicReader, eventually, produce
from tests.mailpit import Mailpit

pytestmark = pytest.mark.e2e


class Canaries:
    """Unique values nobody else would ever write, and the forms they could leak in."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        digits = "".join(random.choices(string.digits, k=4))
        more_digits = "".join(random.choices(string.digits, k=4))
        letters = "".join(random.choices("ABCDEFGHJKMNPRSTUVWXYZ", k=3))
        self.marker = f"canary-marker-{tag}"
        self.name = f"Zelda Canaryname{tag}"
        self.contact_email = f"zelda.{tag}@canary-contact.example"
        self.contact_phone = f"+1 651 555 {digits}"
        self.text_email = f"tips.{tag}@canary-text.example"
        self.text_phone = f"(763) 555-{more_digits}"
        self.plate = f"7{letters}{digits[:3]}"
        self.address = f"{more_digits} Canarystreet{tag} Lane"
        self.contact_needles = [f"Canaryname{tag}", self.contact_email, self.contact_phone, f"651555{digits}"]
        self.text_needles = [self.text_email, self.text_phone, f"763555{more_digits}", self.plate, f"Canarystreet{tag}"]

    @property
    def all_needles(self) -> list[str]:
        return self.contact_needles + self.text_needles

    def text(self, what: str) -> str:
        return (
            f"{what} {self.marker}: the officer in the car with plate {self.plate} ignored me. "
            f"Write to {self.text_email} or call {self.text_phone}."
        )

    def contact(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "email": self.contact_email,
            "phone": self.contact_phone,
            "consent_to_contact": True,
        }


def hits(needles: Iterable[str], blob: bytes) -> list[str]:
    lowered = blob.lower()
    return [needle for needle in needles if needle.lower().encode() in lowered]


async def read_every_topic(bootstrap: str, *, skip: set[str]) -> dict[str, list[bytes]]:
    """Every record (key, value and headers) of every topic the broker lists, from the beginning to the end."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(set(await admin.list_topics()) - skip)
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    partitions = [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]
    assert {p.topic for p in partitions} == set(names), "every listed topic has partitions to read"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[str, list[bytes]] = {name: [] for name in names}

        async def drained() -> bool:
            batches = await consumer.getmany(timeout_ms=300, max_records=5000)
            for partition, records in batches.items():
                for record in records:
                    parts = [record.key or b"", record.value or b""] + [v or b"" for _, v in record.headers or ()]
                    found[partition.topic].append(b"\n".join(parts))
            positions = [await consumer.position(tp) for tp in partitions]
            return all(position >= ends[tp] for tp, position in zip(partitions, positions, strict=True))

        await eventually(drained, timeout=60, interval=0, what="reading every topic to its end")
        return found
    finally:
        await consumer.stop()


async def test_personal_data_never_leaves_intake(platform: Stack, http: httpx.AsyncClient) -> None:
    canary = Canaries()
    intake = platform.service_url("intake")

    # Door 1: the resident JSON API, with contact details and a street address.
    created = await submit(
        http,
        platform,
        kind="complaint",
        text=canary.text("Complaint"),
        location={"address": canary.address, "neighbourhood": "Northgate"},
        contact=canary.contact(),
    )
    api_id, code = created["feedback_id"], created["tracking_code"]

    # Door 1b: the resident web form, which hands the same details to intake (web itself keeps none of them).
    web = platform.service_url("web")
    async with httpx.AsyncClient(base_url=web, timeout=10) as browser:
        form = await browser.get("/submit")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, "the form carries its CSRF token"
        sent = await browser.post(
            "/submit",
            data={
                "csrf_token": token.group(1),
                "kind": "complaint",
                "text": canary.text("Web form"),
                "neighbourhood": "Northgate",
                "contact_name": canary.name,
                "contact_email": canary.contact_email,
                "contact_phone": canary.contact_phone,
                "consent": "yes",
            },
        )
        assert sent.status_code == 200 and 'id="tracking-code"' in sent.text, sent.text

    # Door 2: a city system's CloudEvent on feedback.inbound, with contact details.
    source = next(iter(CITY_SYSTEMS))
    inbound = {
        "specversion": "1.0",
        "id": f"canary-{uuid.uuid4()}",
        "source": source,
        "type": "org.heard.feedback.inbound.v1",
        "subject": "case-canary",
        "datacontenttype": "application/json",
        "data": {
            "kind": "concern",
            "text": canary.text("Concern from 311"),
            "location": {"address": canary.address, "neighbourhood": "Downtown"},
            "contact": canary.contact(),
            "external_reference": "311-CANARY",
        },
    }
    async with TopicReader(platform.kafka_bootstrap, topics.SUBMITTED) as submitted:
        await produce(platform.kafka_bootstrap, topics.INBOUND, json.dumps(inbound).encode(), key=b"case-canary")
        records = await submitted.wait_for(
            lambda r: canary.marker.encode() in (r.value or b"") and b"Concern from 311" in (r.value or b""),
            what="the inbound canary to be submitted",
        )
    inbound_id = json.loads(records.value)["subject"]

    # Door 3: an inbound event that cannot be processed. Its bytes (contact details included) are
    # dead-lettered, and must stay on intake's own inbound dead-letter topic.
    broken: dict[str, Any] = {**inbound, "id": f"canary-{uuid.uuid4()}"}
    broken["data"] = {**broken["data"], "kind": "rant"}
    async with TopicReader(platform.kafka_bootstrap, topics.INBOUND_DEAD_LETTER) as inbound_dead_letters:
        await produce(platform.kafka_bootstrap, topics.INBOUND, json.dumps(broken).encode(), key=b"case-canary")
        await inbound_dead_letters.wait_for(
            lambda r: str(broken["id"]).encode() in (r.value or b""), what="the broken canary to be dead-lettered"
        )

    async def routed(feedback_id: str) -> dict[str, Any] | None:
        item = dict((await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())).json())
        return item if item.get("unit_id") else None

    await eventually(lambda: routed(api_id), what="the API canary to be routed")
    await eventually(lambda: routed(inbound_id), what="the inbound canary to be routed")

    # Every other door that takes text: staff referral, staff answer, resident reply and contest.
    refer = await http.post(
        f"{intake}/v1/staff/feedback/{inbound_id}/refer",
        headers=staff(),
        json={"reason": f"Not ours: {canary.text_email}, plate {canary.plate}"},
    )
    assert refer.status_code == 200, refer.text
    answer = await http.post(
        f"{intake}/v1/staff/feedback/{api_id}/answer",
        headers=staff(),
        json={"answer": f"We called {canary.text_phone} about the car {canary.plate}."},
    )
    assert answer.status_code == 200, answer.text
    reply = await http.post(f"{intake}/v1/feedback/{code}/reply", json={"text": f"Reach me at {canary.text_email}"})
    assert reply.status_code == 200, reply.text
    contest = await http.post(f"{intake}/v1/feedback/{code}/contest", json={"reason": f"Plate was {canary.plate}"})
    assert contest.status_code == 200, contest.text

    async def delivered() -> bool:
        response = await http.get(
            f"{platform.service_url('notify')}/v1/deliveries", params={"feedback_id": api_id}, headers=staff()
        )
        return "answered" in {d["template"] for d in response.json()["items"]}

    await eventually(delivered, what="notify to act on the answer")

    # Notify really wrote to the canary: its address was disclosed at send time, and the e-mail is in Mailpit.
    mailbox = Mailpit(http, platform.mailpit_url)

    async def mailed() -> list[dict[str, Any]] | None:
        messages = await mailbox.to(canary.contact_email)
        return messages if any(m["Subject"] == "Your feedback has an answer" for m in messages) else None

    await eventually(mailed, what="the answer e-mail to the canary address in Mailpit")

    async def counted() -> bool:
        return await public_count(http, platform, "other", "measure", "contested", "items") >= 1

    await eventually(counted, what="analytics to count the contest")

    # Stop the services so whatever they buffered reaches their log files before those are searched.
    for service in SERVICES:
        platform.stop_process(service)

    leaks: list[str] = []
    for topic, values in (
        await read_every_topic(platform.kafka_bootstrap, skip={topics.INBOUND, topics.INBOUND_DEAD_LETTER})
    ).items():
        leaks += [f"kafka topic {topic}: {needle}" for value in values for needle in hits(canary.all_needles, value)]

    intake_database = platform.service_env("intake").get("HEARD_INTAKE_MONGODB_DATABASE", "heard_intake")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(platform.mongodb_uri, directConnection=True)
    try:
        for database in await client.list_database_names():
            # Intake keeps free text (that is its job) but never contact details in plaintext.
            needles = canary.contact_needles if database == intake_database else canary.all_needles
            for collection in await client[database].list_collection_names():
                async for document in client[database][collection].find():
                    found = hits(needles, bson.encode(document))
                    leaks += [f"mongodb {database}.{collection}: {needle}" for needle in found]
    finally:
        await client.close()

    log_files = [path for path in platform.logs.rglob("*") if path.is_file()]
    assert log_files, "the platform writes logs"
    for path in log_files:
        leaks += [f"log {path.name}: {needle}" for needle in hits(canary.all_needles, path.read_bytes())]

    assert leaks == [], "personal data left intake:\n" + "\n".join(leaks)
