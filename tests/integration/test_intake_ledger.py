"""Intake's audit ledger, contact encryption and retention on the real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from cryptography.fernet import Fernet

from heard_devstack import ROOT, Stack
from heard_intake import ledger
from heard_intake.ledger import AuditLedger
from heard_intake.privacy import ContactCipher
from heard_intake.service import CONTACT_CLOSED_FIELD, IntakeService
from heard_shared import events as ev
from heard_shared.events import Contact, FeedbackInboundV1, utc_now
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import Document, MongoResource, count
from heard_shared.outbox import OUTBOX_FIELD, PENDING_FIELD, OutboxRelay
from tests.helpers import eventually, unique
from tests.integration.scheduler_support import RecordingPublisher

pytestmark = pytest.mark.integration

CANARY_EMAIL = "ledger-canary@example.org"


class Intake:
    def __init__(self, mongo: MongoResource, database: str, key: str) -> None:
        self.mongo = mongo
        self.database = database
        metrics = ServiceMetrics("intake")
        self.publisher = RecordingPublisher(metrics)
        self.service = IntakeService(
            feedback=mongo.db["feedback"],
            outbox=OutboxRelay(self.publisher, metrics),
            source="urn:heard:intake",
            contact_cipher=ContactCipher([key]),
            audit=AuditLedger(mongo.db["audit"]),
            contact_retention=timedelta(days=365),
        )

    def topics(self) -> list[str]:
        return [topic for topic, _, _ in self.publisher.published]


@pytest.fixture
async def intake(stack: Stack) -> AsyncIterator[Intake]:
    database = unique("intake_ledger").replace("-", "_")
    mongo = MongoResource(stack.mongodb_uri, database, app_name="intake-ledger-test")
    built = Intake(mongo, database, Fernet.generate_key().decode())
    await built.service.ensure_indexes()
    yield built
    await mongo.client.drop_database(database)
    await mongo.close()


async def submit(intake: Intake, **fields: Any) -> tuple[str, str]:
    data = FeedbackInboundV1(kind="complaint", text="The officer shouted at me for no reason", **fields)
    submission = await intake.service.submit(data=data, channel="api")
    assert submission.tracking_code is not None
    await intake.service.settler.idle()
    return submission.feedback_id, submission.tracking_code


def routed(feedback_id: str, *, unit: str = "north-patrol", level: int = 0) -> ev.CloudEvent[Any]:
    now = utc_now()
    return ev.new_event(
        ev.ROUTED,
        ev.FeedbackRoutedV1(
            feedback_id=feedback_id,
            unit_id=unit,
            unit_name=unit.title(),
            level=level,
            rule="test",
            negative=True,
            severity="negative",
            acknowledge_by=now + timedelta(hours=1),
            answer_by=now + timedelta(days=1),
            routed_at=now,
        ),
        source="urn:heard:routing",
        subject=feedback_id,
    )


def escalated(feedback_id: str, *, level: int, unit: str) -> ev.CloudEvent[Any]:
    now = utc_now()
    return ev.new_event(
        ev.ESCALATED,
        ev.FeedbackEscalatedV1(
            feedback_id=feedback_id,
            reason="acknowledge_overdue",
            from_level=level - 1,
            level=level,
            level_name="supervisor",
            unit_id=unit,
            deadline=now - timedelta(seconds=1),
            fired_at=now,
            repeat=0,
            fencing_token=1,
        ),
        source="urn:heard:routing",
        subject=feedback_id,
    )


async def actions(intake: Intake, feedback_id: str) -> list[str]:
    return [
        entry["action"] async for entry in intake.mongo.db["audit"].find({"feedback_id": feedback_id}).sort("seq", 1)
    ]


def cli(intake: Intake, stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HEARD_INTAKE_MONGODB_URI": stack.mongodb_uri,
        "HEARD_INTAKE_MONGODB_DATABASE": intake.database,
    }
    return subprocess.run(
        [sys.executable, "-m", "heard_intake.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


async def test_every_state_change_is_in_a_verified_chain_and_an_edit_is_detected(intake: Intake, stack: Stack) -> None:
    service = intake.service
    feedback_id, code = await submit(intake)
    routing = routed(feedback_id)
    await service.record_routing(routing)
    await service.record_routing(routing)  # redelivered: recorded once
    await service.record_escalation(escalated(feedback_id, level=1, unit="north-sergeants"))
    await service.acknowledge(feedback_id=feedback_id, actor="sgt-ortiz")
    await service.add_note(feedback_id=feedback_id, text="Called the resident back", actor="sgt-ortiz")
    await service.answer(feedback_id=feedback_id, answer="We reviewed the body camera footage.", actor="sgt-ortiz")
    await service.reply(tracking_code=code, text="Thank you, but I disagree.")
    await service.contest(tracking_code=code, reason="The footage was never shown to me.")
    await service.answer(feedback_id=feedback_id, answer="You can view it at the station.", actor="lt-park")
    await service.close(feedback_id=feedback_id, actor="lt-park")

    assert await actions(intake, feedback_id) == [
        "submitted",
        "routed",
        "escalated",
        "acknowledged",
        "note_added",
        "answered",
        "replied",
        "contested",
        "reopened",
        "answered",
        "closed",
    ]
    entries, verification = await service.audit_trail(feedback_id)
    assert verification.verified and verification.broken_at is None
    assert [e["seq"] for e in entries] == list(range(1, 12))
    assert entries[1]["event_id"] == routing.id
    record = await intake.mongo.db["feedback"].find_one({"_id": feedback_id})
    assert record is not None
    assert record[ledger.HEAD_SEQ_FIELD] == 11 and record[ledger.HEAD_HASH_FIELD] == entries[-1]["hash"]
    assert record[ledger.STAGED_FIELD] == [] and not record[ledger.DUE_FIELD]
    assert "feedback.reopened" in intake.topics()

    ok = cli(intake, stack, "verify-audit", "--feedback-id", feedback_id)
    assert ok.returncode == 0, ok.stderr
    assert '"verified": true' in ok.stdout

    # Someone with database access rewrites who acknowledged the item.
    await intake.mongo.db["audit"].update_one({"feedback_id": feedback_id, "seq": 4}, {"$set": {"actor": "nobody"}})
    _, tampered = await service.audit_trail(feedback_id)
    assert (tampered.verified, tampered.broken_at) == (False, 4)
    detected = cli(intake, stack, "verify-audit")
    assert detected.returncode == 1
    assert '"broken_at": 4' in detected.stdout


async def test_cutting_entries_off_the_end_is_detected(intake: Intake) -> None:
    feedback_id, _ = await submit(intake)
    await intake.service.record_routing(routed(feedback_id))
    await intake.service.acknowledge(feedback_id=feedback_id, actor="officer")
    await intake.mongo.db["audit"].delete_one({"feedback_id": feedback_id, "seq": 3})
    _, verification = await intake.service.audit_trail(feedback_id)
    assert (verification.verified, verification.broken_at) == (False, 3)


async def test_racing_writers_never_fork_a_chain(intake: Intake, stack: Stack) -> None:
    feedback_id = unique("race")
    others = [MongoResource(stack.mongodb_uri, intake.database, app_name=f"writer-{n}") for n in range(3)]
    writers = [AuditLedger(mongo.db["audit"]) for mongo in others]
    await writers[0].ensure_indexes()
    entries = [ledger.stage("note_added", actor=f"writer-{n}", details={"n": n}) for n in range(24)]
    await asyncio.gather(*(writers[n % 3].append(feedback_id, entry) for n, entry in enumerate(entries)))
    chain = await writers[0].chain(feedback_id)
    assert [e["seq"] for e in chain] == list(range(1, 25))
    assert {e["entry_id"] for e in chain} == {e["entry_id"] for e in entries}
    assert ledger.verify_chain(chain).verified
    # The same entries again (a retry after a crash) add nothing.
    assert (await writers[1].append(feedback_id, *entries))[0] == 0
    for mongo in others:
        await mongo.close()


def counting_chain_reads(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Counts the ledger's reads of an audit chain from now on; the result tells how many so far."""
    reads = 0
    read_links = AuditLedger._links

    async def counted(self: AuditLedger, of: str) -> Any:
        nonlocal reads
        reads += 1
        return await read_links(self, of)

    monkeypatch.setattr(AuditLedger, "_links", counted)
    return lambda: reads


async def test_a_staff_action_appends_after_the_head_without_reading_the_chain_unless_the_head_is_behind(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, feedback = intake.service, intake.mongo.db["feedback"]
    feedback_id, _ = await submit(intake)
    await service.record_routing(routed(feedback_id))
    chain_reads = counting_chain_reads(monkeypatch)
    await service.acknowledge(feedback_id=feedback_id, actor="officer")
    assert chain_reads() == 0  # the record's head (2) was the chain's: entry 3 went right after it

    # A flush stopped between its insert and its update: the chain has an entry the record's head does not.
    await service.ledger.append(feedback_id, ledger.stage("note_added", actor="relay"))
    await service.add_note(feedback_id=feedback_id, text="Called back", actor="officer")
    assert chain_reads() >= 1  # entry 4 was taken, so the note's flush read the chain and went after it

    # An entry still staged from before (its flush stopped) goes the general way too, and is not appended twice.
    leftover = ledger.stage("replied", actor="resident")
    await feedback.update_one({"_id": feedback_id}, ledger.with_audit({"$set": {}}, leftover))
    await service.ledger.append(feedback_id, leftover)
    await service.answer(feedback_id=feedback_id, answer="We have reviewed it.", actor="officer")

    assert await actions(intake, feedback_id) == [
        "submitted",
        "routed",
        "acknowledged",
        "note_added",
        "note_added",
        "replied",
        "answered",
    ]
    entries, verification = await service.audit_trail(feedback_id)
    assert verification.verified, verification
    record = await feedback.find_one({"_id": feedback_id})
    assert record is not None and record[ledger.HEAD_SEQ_FIELD] == 7 and record[ledger.STAGED_FIELD] == []
    assert record[ledger.HEAD_HASH_FIELD] == entries[-1]["hash"]


async def test_routing_events_append_without_reading_the_chain_and_redeliveries_are_recorded_once(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, feedback = intake.service, intake.mongo.db["feedback"]
    feedback_id, _ = await submit(intake)
    chain_reads = counting_chain_reads(monkeypatch)
    routing, first_escalation = routed(feedback_id), escalated(feedback_id, level=1, unit="north-sergeants")
    await service.record_routing(routing)
    await service.record_escalation(first_escalation)
    assert chain_reads() == 0
    # Redelivered after a crash before the consumer committed: already remembered, so nothing is staged again.
    await service.record_routing(routing)
    await service.record_escalation(first_escalation)
    assert await actions(intake, feedback_id) == ["submitted", "routed", "escalated"]

    # A record stored before intake remembered events: its chain already holds the redelivered escalation.
    second_escalation = escalated(feedback_id, level=2, unit="north-lieutenants")
    await service.record_escalation(second_escalation)
    await feedback.update_one({"_id": feedback_id}, {"$unset": {ledger.RECORDED_FIELD: ""}})
    await service.record_escalation(second_escalation)
    assert await actions(intake, feedback_id) == ["submitted", "routed", "escalated", "escalated"]
    _, verification = await service.audit_trail(feedback_id)
    assert verification.verified, verification
    record = await feedback.find_one({"_id": feedback_id})
    assert record is not None and record[ledger.STAGED_FIELD] == [] and not record[ledger.DUE_FIELD]
    assert record[ledger.RECORDED_FIELD] == [second_escalation.id], "the redelivery started the memory"


async def test_a_routing_event_chains_its_entry_before_the_records_write_and_a_crash_between_leaves_no_double(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, feedback = intake.service, intake.mongo.db["feedback"]
    feedback_id, _ = await submit(intake)
    staged_writes = 0
    apply_first = IntakeService._apply_first

    async def counted(self: IntakeService, *args: Any) -> Any:
        nonlocal staged_writes
        staged_writes += 1
        return await apply_first(self, *args)

    monkeypatch.setattr(IntakeService, "_apply_first", counted)
    routing = routed(feedback_id)
    await service.record_routing(routing)
    assert staged_writes == 0, "the entry went into the chain first, and one update moved the head"
    record = await feedback.find_one({"_id": feedback_id})
    assert record is not None and record[ledger.HEAD_SEQ_FIELD] == 2 and record["status"] == "routed"
    assert record[ledger.STAGED_SEQ_FIELD] == 1, "nothing was staged after the submission"

    # The process stopped after inserting an escalation's entry, before the record's update: the redelivered event
    # finds its seq taken, goes the staged way, and the flush finds the entry already chained.
    escalation = escalated(feedback_id, level=1, unit="north-sergeants")
    entry = ledger.stage("escalated", actor="routing", event_id=escalation.id)
    direct = ledger.append_directly(record, entry)
    assert direct is not None and await service.ledger.insert(direct.stored)
    await service.record_escalation(escalation)
    assert staged_writes == 1
    assert await actions(intake, feedback_id) == ["submitted", "routed", "escalated"]
    _, verification = await service.audit_trail(feedback_id)
    assert verification.verified, verification
    record = await feedback.find_one({"_id": feedback_id})
    assert record is not None and record[ledger.HEAD_SEQ_FIELD] == 3 and record["status"] == "escalated"
    assert record[ledger.STAGED_FIELD] == [] and record[ledger.RECORDED_FIELD] == [routing.id, escalation.id]


async def test_entries_staged_before_a_crash_are_appended_by_the_relay(intake: Intake) -> None:
    feedback_id, _ = await submit(intake)
    feedback = intake.mongo.db["feedback"]
    # The state change and its staged entry were written; the process died before appending it.
    staged = ledger.stage("acknowledged", actor="officer")
    await feedback.update_one({"_id": feedback_id}, ledger.with_audit({"$set": {"status": "acknowledged"}}, staged))
    assert await actions(intake, feedback_id) == ["submitted"]
    assert await intake.service.ledger.relay_once(feedback) == 1
    assert await actions(intake, feedback_id) == ["submitted", "acknowledged"]
    assert await intake.service.ledger.relay_once(feedback) == 0


async def test_contact_details_are_encrypted_at_rest_and_removed_after_retention(intake: Intake) -> None:
    contact = Contact(name="Ledger Canary", email=CANARY_EMAIL, phone="+1 612 555 0142", consent_to_contact=True)
    feedback_id, code = await submit(intake, contact=contact)
    feedback = intake.mongo.db["feedback"]
    raw = await feedback.find_one({"_id": feedback_id})
    assert raw is not None
    assert CANARY_EMAIL not in repr(raw) and "Ledger Canary" not in repr(raw)
    assert await intake.service.contact_of(feedback_id) == contact
    [(_, _, published)] = intake.publisher.published
    event = ev.decode(published)
    assert (event.data.has_contact, event.data.contact_channels) == (True, ["email", "sms"]), "channels for notify"
    assert CANARY_EMAIL not in published.decode() and "555" not in published.decode(), "never an address"

    await intake.service.withdraw(tracking_code=code, reason="Resolved with a neighbour")
    assert await intake.service.purge_expired_contacts() == 0, "still within retention"
    later = utc_now() + timedelta(days=366)
    assert await intake.service.purge_expired_contacts(now=later) == 1
    assert await intake.service.contact_of(feedback_id) is None
    assert await actions(intake, feedback_id) == ["submitted", "withdrawn", "erased"]
    entries, verification = await intake.service.audit_trail(feedback_id)
    assert verification.verified
    assert entries[-1]["actor"] == "system:retention"
    assert entries[-1]["details"]["reason"] == "retention"
    assert CANARY_EMAIL not in repr(entries)


async def test_retention_reaches_items_closed_before_closings_were_marked_and_unmarks_those_without_contact(
    intake: Intake,
) -> None:
    feedback = intake.mongo.db["feedback"]
    unmarked_id, unmarked_code = await submit(intake, contact=Contact(email=CANARY_EMAIL))
    bare_id, bare_code = await submit(intake)
    erased_id, erased_code = await submit(intake, contact=Contact(email=CANARY_EMAIL))
    for code in (unmarked_code, bare_code, erased_code):
        await intake.service.withdraw(tracking_code=code)
    await intake.service.erase(tracking_code=erased_code)
    # Closed by a version that did not mark closings yet.
    await feedback.update_one({"_id": unmarked_id}, {"$unset": {CONTACT_CLOSED_FIELD: ""}})
    later = utc_now() + timedelta(days=366)

    assert await intake.service.purge_expired_contacts(now=later) == 0, "only marked closings are in the range"
    await intake.service.mark_closed_contacts()
    assert await intake.service.purge_expired_contacts(now=later, limit=1) == 1, "batch after batch"

    assert await intake.service.contact_of(unmarked_id) is None
    assert await actions(intake, unmarked_id) == ["submitted", "withdrawn", "erased"]
    assert await actions(intake, bare_id) == ["submitted", "withdrawn"], "nothing to delete, nothing recorded"
    assert await actions(intake, erased_id) == ["submitted", "withdrawn", "erased"], "erased once, on request"
    assert await count(feedback, {CONTACT_CLOSED_FIELD: {"$exists": True}}) == 0, "the range holds nothing looked at"


async def test_erasure_keeps_the_record_and_its_status(intake: Intake) -> None:
    contact = Contact(email=CANARY_EMAIL)
    feedback_id, code = await submit(
        intake, contact=contact, location={"address": "12 Elm St", "neighbourhood": "Northgate"}
    )
    await intake.service.reply(tracking_code=code, text="My name is Ledger Canary")
    erased = await intake.service.erase(tracking_code=code)
    again = await intake.service.erase(tracking_code=code)
    assert erased["status"] == again["status"] == "submitted"
    raw = await intake.mongo.db["feedback"].find_one({"_id": feedback_id})
    assert raw is not None
    assert "contact_encrypted" not in raw
    assert raw["location"] == {"neighbourhood": "Northgate"}
    assert "Ledger Canary" not in repr(raw) and "Elm" not in repr(raw)
    assert raw["kind"] == "complaint" and raw["severity"] in {"negative", "critical"}
    assert await actions(intake, feedback_id) == ["submitted", "replied", "erased"], "erased once"


class GatedPublisher(RecordingPublisher):
    """Fails like an unreachable broker while `broken`; with `hold_next`, the next publish waits for `release`."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        super().__init__(metrics)
        self.broken = False
        self.hold_next = False
        self.release = asyncio.Event()

    async def publish_raw(self, *, topic: str, key: str, value: bytes) -> None:
        if self.hold_next:
            self.hold_next = False
            await self.release.wait()
        if self.broken:
            raise KafkaConnectionError("broker unreachable")
        await super().publish_raw(topic=topic, key=key, value=value)


async def settled_record(intake: Intake, feedback_id: str) -> Document:
    record = await intake.mongo.db["feedback"].find_one({"_id": feedback_id})
    assert record is not None
    return record


async def test_a_new_submission_is_settled_in_the_background_with_one_publish(intake: Intake) -> None:
    data = FeedbackInboundV1(kind="complaint", text="The officer shouted at me for no reason")
    submissions = await asyncio.gather(*(intake.service.submit(data=data, channel="api") for _ in range(40)))
    await intake.service.settler.idle()
    assert not intake.service.settler.unsettled
    for submission in submissions:
        record = await settled_record(intake, submission.feedback_id)
        assert record[OUTBOX_FIELD] == [] and record[PENDING_FIELD] == 0
        assert record[ledger.STAGED_FIELD] == [] and not record[ledger.DUE_FIELD]
        entries, verification = await intake.service.audit_trail(submission.feedback_id)
        assert verification.verified and [e["action"] for e in entries] == ["submitted"]
        assert (record[ledger.HEAD_SEQ_FIELD], record[ledger.HEAD_HASH_FIELD]) == (1, entries[0]["hash"])
    assert intake.topics() == ["feedback.submitted"] * 40
    assert await intake.service.relay_once() == 0, "nothing left for the relays"


async def test_routing_recorded_before_the_settler_ran_keeps_one_chain(intake: Intake) -> None:
    data = FeedbackInboundV1(kind="complaint", text="Nobody called me back about the break-in")
    submissions = [await intake.service.submit(data=data, channel="api") for _ in range(20)]
    # Routing's answers arrive while the settler may still be appending entry 1 of the same chains.
    await asyncio.gather(*(intake.service.record_routing(routed(s.feedback_id)) for s in submissions))
    await intake.service.settler.idle()
    for submission in submissions:
        assert await actions(intake, submission.feedback_id) == ["submitted", "routed"]
        _, verification = await intake.service.audit_trail(submission.feedback_id)
        assert verification.verified
        record = await settled_record(intake, submission.feedback_id)
        assert record[ledger.HEAD_SEQ_FIELD] == 2 and record[ledger.STAGED_FIELD] == []


async def test_an_event_the_broker_refused_is_published_later_by_the_relay(stack: Stack) -> None:
    database = unique("intake_settle").replace("-", "_")
    mongo = MongoResource(stack.mongodb_uri, database, app_name="intake-settle-test")
    intake = Intake(mongo, database, Fernet.generate_key().decode())
    publisher = GatedPublisher(intake.publisher.metrics)
    intake.service.outbox.publisher = intake.publisher = publisher
    await intake.service.ensure_indexes()
    try:
        publisher.broken = True
        feedback_id, _ = await submit(intake)
        record = await settled_record(intake, feedback_id)
        assert record[PENDING_FIELD] == 1, "stored, not published: still pending"
        assert record[ledger.STAGED_FIELD] == [], "the ledger is settled all the same"

        # Until the relay gets an event through again, requests do not wait for Kafka at all.
        publisher.broken = False
        assert not intake.service.outbox.fast_path_open
        assert await intake.service.relay_once() == 1, "the refused event"
        assert intake.service.outbox.fast_path_open

        # While a submission is between its insert and its settling, the relays leave it alone. (Its publish is
        # held, not failed: the fast path's bound must not run out meanwhile on a loaded machine.)
        intake.service.outbox.fast_path_seconds = 60
        publisher.hold_next = True
        praise = FeedbackInboundV1(kind="praise", text="Thanks for walking me home")
        in_flight = asyncio.create_task(intake.service.submit(data=praise, channel="api"))

        async def claimed() -> bool:
            return len(intake.service.settler.unsettled) == 1

        await eventually(claimed, timeout=5, interval=0.01, what="the submission to be claimed")
        assert await intake.service.relay_once() == 0, "the relays leave a submission in flight alone"
        publisher.release.set()
        second = await in_flight
        await intake.service.settler.idle()
        assert await intake.service.relay_once() == 0
        assert [key for _, key, _ in publisher.published] == [feedback_id, second.feedback_id]
        assert (await settled_record(intake, feedback_id))[PENDING_FIELD] == 0
    finally:
        await mongo.client.drop_database(database)
        await mongo.close()
