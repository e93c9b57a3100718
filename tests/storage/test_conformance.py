"""Storage conformance: Heard's own storage patterns against the MongoDB-wire server under test.

Each test drives the real helpers (routing's scheduler and handlers, the outbox, intake's indexes, the
inbox, group inserts) and checks what only the server can guarantee: a single-document update is atomic
(no lost update, a compare-and-set has one winner), leases and fencing hold under racing replicas, unique
indexes refuse duplicates, sparse ranges see only running clocks, and values come back with their types.
A server that fails here cannot carry the accountability guarantee, whatever else it passes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from heard_intake import ledger
from heard_intake.service import IntakeService
from heard_shared import events as ev
from heard_shared.events import utc_now
from heard_shared.kafka import Inbox
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import Document, GroupInsert, MongoResource, count, epoch_ms, migrate_once
from heard_shared.outbox import OUTBOX_FIELD, PENDING_FIELD, OutboxRelay, OutgoingEvent, outbox_fields, with_outbox
from tests.integration.scheduler_support import RecordingPublisher, build_scheduler, open_case

pytestmark = pytest.mark.storage

WRITERS = 100


async def seed_due(mongo: MongoResource, count_: int, *, due_in: timedelta = timedelta(seconds=-1)) -> list[str]:
    now = utc_now()
    ids = [f"fb-{i:05d}" for i in range(count_)]
    await mongo.db["cases"].insert_many([open_case(i, due_at=now + due_in, submitted_at=now) for i in ids])
    return ids


def answered(feedback_id: str) -> ev.CloudEvent[ev.FeedbackAnsweredV1]:
    return ev.new_event(
        ev.ANSWERED,
        ev.FeedbackAnsweredV1(feedback_id=feedback_id, answer="We have looked into it.", answered_at=utc_now()),
        source="urn:heard:intake",
        subject=feedback_id,
    )


async def test_concurrent_increments_on_one_document_are_all_kept(mongo: MongoResource) -> None:
    counters = mongo.db["counters"]
    await counters.insert_one({"_id": "one", "n": 0, "a": 0, "b": 0})
    await asyncio.gather(
        *(counters.update_one({"_id": "one"}, {"$inc": {"n": 1}}) for _ in range(WRITERS)),
        *(counters.update_one({"_id": "one"}, {"$inc": {"a": 1}}) for _ in range(WRITERS // 2)),
        *(counters.update_one({"_id": "one"}, {"$inc": {"b": 1}}) for _ in range(WRITERS // 2)),
    )
    assert await counters.find_one({"_id": "one"}) == {"_id": "one", "n": WRITERS, "a": WRITERS // 2, "b": WRITERS // 2}


async def test_a_compare_and_set_has_exactly_one_winner(mongo: MongoResource) -> None:
    """Routing's fenced writes: many writers holding the same token, one may apply."""
    cases = mongo.db["cases"]
    await cases.insert_one({"_id": "case", "fencing": 7, "winner": None, "pushed": []})
    results = await asyncio.gather(
        *(
            cases.update_one(
                {"_id": "case", "fencing": 7},
                with_outbox({"$set": {"winner": n}, "$inc": {"fencing": 1}, "$push": {"pushed": {"by": n}}}),
            )
            for n in range(WRITERS)
        )
    )
    assert sum(result.modified_count for result in results) == 1
    document = await cases.find_one({"_id": "case"})
    assert document is not None and document["fencing"] == 8
    assert document["pushed"] == [{"by": document["winner"]}]


async def test_answers_racing_claims_and_firings_are_never_lost(mongo: MongoResource) -> None:
    """Routing's handlers and two schedulers on the same items: every answer stops its clock for good."""
    ids = await seed_due(mongo, 200)
    replicas = [build_scheduler(mongo, instance_id=f"replica-{n}", batch=25)[0] for n in range(2)]

    async def answer_all() -> None:
        for feedback_id in ids:
            await replicas[0].on_answered(answered(feedback_id))

    await asyncio.gather(answer_all(), *(replica.tick() for replica in replicas), *(r.tick() for r in replicas))
    cases = mongo.db["cases"]
    still_open = [c["_id"] async for c in cases.find({"clock": "open"}, {"_id": 1})]
    assert still_open == [], f"{len(still_open)} answered items kept an open clock"
    assert await cases.count_documents({"answered_at": {"$exists": True}}) == len(ids)
    assert await count(cases, {"due_ms": {"$exists": True}}) == 0, "a stopped clock has no scheduling keys"


async def test_racing_replicas_lease_each_deadline_once_and_fencing_stops_a_stale_holder(
    mongo: MongoResource,
) -> None:
    ids = await seed_due(mongo, 300)
    replicas = [build_scheduler(mongo, instance_id=f"replica-{n}", batch=50) for n in range(3)]
    claims = await asyncio.gather(*(service.claim_due(utc_now(), limit=300) for service, _ in replicas))
    claimed = [case["_id"] for batch in claims for case in batch]
    assert sorted(claimed) == sorted(set(claimed)), "no deadline leased by two replicas"
    assert set(claimed) <= set(ids)

    slow, _ = replicas[0]
    fast, fast_publisher = build_scheduler(mongo, instance_id="fast", lease=timedelta(milliseconds=1))
    if claims[0]:
        stale = claims[0][0]
        # The lease lapses; another replica claims the same deadline again (a new fencing token) and fires.
        await mongo.db["cases"].update_one({"_id": stale["_id"]}, {"$set": {"due_ms": 0}})
        [taken] = [c for c in await fast.claim_due(utc_now(), limit=500) if c["_id"] == stale["_id"]]
        assert taken["fencing"] > stale["fencing"]
        assert await fast.fire(taken) is True
        assert await slow.fire(stale) is False, "the stale token is fenced off"
        assert [json.loads(v)["subject"] for t, _, v in fast_publisher.published if t == "feedback.escalated"] == [
            stale["_id"]
        ]


async def test_sparse_range_claims_see_only_running_clocks_in_deadline_order(mongo: MongoResource) -> None:
    service, _ = build_scheduler(mongo, instance_id="sparse")
    await service.ensure_indexes()
    now = utc_now()
    cases = mongo.db["cases"]
    await cases.insert_many(
        [open_case(f"due-{i}", due_at=now - timedelta(seconds=i), submitted_at=now) for i in range(5)]
        + [open_case(f"later-{i}", due_at=now + timedelta(hours=1), submitted_at=now) for i in range(5)]
    )
    await service.on_answered(answered("due-0"))
    await cases.insert_many([{"_id": f"stopped-{i}", "clock": "stopped", "level": 0} for i in range(50)])
    claimed = await service.claim_due(now, limit=10)
    assert [case["_id"] for case in claimed] == ["due-4", "due-3", "due-2", "due-1"]
    assert await count(cases, {"open_since_ms": {"$gt": 0, "$lte": epoch_ms(now) + 1}}) == 9
    assert await count(cases, {"deadline_ms": {"$lt": epoch_ms(now)}}) == 4


async def test_unique_indexes_refuse_duplicates_and_sparse_ones_allow_absence(mongo: MongoResource) -> None:
    intake = IntakeService(
        feedback=mongo.db["feedback"],
        outbox=OutboxRelay(RecordingPublisher(ServiceMetrics("conformance")), ServiceMetrics("conformance")),
        source="urn:heard:intake",
        contact_cipher=None,  # type: ignore[arg-type]  # no submission here needs one
    )
    await intake.ensure_indexes()
    feedback = mongo.db["feedback"]
    await feedback.insert_many([{"_id": f"city-{i}"} for i in range(3)])  # no tracking code: sparse
    await feedback.insert_one({"_id": "a", "tracking_hash": "h1"})
    with pytest.raises(DuplicateKeyError):
        await feedback.insert_one({"_id": "b", "tracking_hash": "h1"})
    with pytest.raises(DuplicateKeyError):
        await feedback.insert_one({"_id": "a"})
    found = await feedback.find_one({"tracking_hash": "h1"}, {"_id": 1})
    assert found == {"_id": "a"}

    grouped = GroupInsert(feedback)
    outcomes = await asyncio.gather(
        *(grouped.insert({"_id": f"g-{i}", "tracking_hash": f"g{i % 5}"}) for i in range(10)), return_exceptions=True
    )
    assert sum(isinstance(outcome, DuplicateKeyError) for outcome in outcomes) == 5

    inbox = Inbox(mongo.db["inbox"])
    event = answered("a")
    assert not await inbox.seen("routing", event)
    await asyncio.gather(*(inbox.remember("routing", event) for _ in range(10)))
    assert await inbox.seen("routing", event)
    assert await mongo.db["inbox"].count_documents({}) == 1


async def test_the_outbox_loses_nothing_when_writers_stage_while_it_flushes(mongo: MongoResource) -> None:
    publisher = RecordingPublisher(ServiceMetrics("conformance"))
    relay = OutboxRelay(publisher, ServiceMetrics("conformance"))
    cases = mongo.db["cases"]
    await relay.ensure_indexes(cases)

    def staged(n: int) -> OutgoingEvent:
        return OutgoingEvent(ev.ANSWERED, answered(f"item-{n}"))

    first = staged(0)
    await cases.insert_one({"_id": "doc", "n": 0, **outbox_fields(first)})
    more = [staged(n) for n in range(1, 40)]

    async def stage(event: OutgoingEvent) -> None:
        await cases.update_one({"_id": "doc"}, with_outbox({"$inc": {"n": 1}}, event))

    # Writers stage events while flushes (which take turns per document) publish and remove them.
    await asyncio.gather(*(stage(event) for event in more), *(relay.flush(cases, "doc") for _ in range(10)))
    await relay.relay_once(cases)
    document = await cases.find_one({"_id": "doc"})
    assert document is not None
    assert document[OUTBOX_FIELD] == [] and document[PENDING_FIELD] == 0 and document["n"] == len(more)
    published = [json.loads(value)["id"] for _, _, value in publisher.published]
    assert set(published) == {event.event.id for event in [first, *more]}, "every staged event was published"


async def test_values_come_back_as_they_were_stored(mongo: MongoResource) -> None:
    """Dates, booleans and documents inside arrays, through inserts and every update operator Heard uses."""
    records = mongo.db["records"]
    at = datetime(2026, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)
    await records.insert_one({"_id": "r", "history": [{"status": "submitted", "at": at}], "location": {"a": "x"}})
    await records.update_one(
        {"_id": "r"},
        {
            "$set": {"answered_at": at, "answer.text": "Thanks", "flag": False},
            "$push": {"history": {"status": "answered", "at": at}},
            "$unset": {"location.a": ""},
            "$inc": {"seq": 2},
        },
    )
    await records.update_one({"_id": "r"}, {"$pullAll": {"history": [{"status": "submitted", "at": at}]}})
    await records.update_one({"_id": "u"}, {"$set": {"at": at}, "$inc": {"n": 1}}, upsert=True)
    document = await records.find_one({"_id": "r"})
    assert document == {
        "_id": "r",
        "history": [{"status": "answered", "at": at}],
        "location": {},
        "answered_at": at,
        "answer": {"text": "Thanks"},
        "flag": False,
        "seq": 2,
    }
    assert isinstance(document["answered_at"], datetime)
    assert await records.find_one({"_id": "u"}) == {"_id": "u", "at": at, "n": 1}


# Filters Heard writes, with the documents MongoDB matches. `$in` beside a condition makes some servers evaluate
# the whole filter in their own code instead of SQL, so each case that can runs both ways.
NULL_AND_MISSING: list[tuple[dict[str, object], list[str]]] = [
    ({"level": None}, ["missing", "null"]),
    ({"level": {"$eq": None}}, ["missing", "null"]),
    ({"$or": [{"level": None}, {"level": {"$lt": 1}}]}, ["missing", "null", "zero"]),
    ({"$or": [{"level": {"$eq": None}}, {"level": {"$gt": 1}}]}, ["missing", "null", "two"]),
    ({"$and": [{"level": None}]}, ["missing", "null"]),
    ({"$nor": [{"level": None}]}, ["two", "zero"]),
    ({"level": {"$ne": None}}, ["two", "zero"]),
    ({"level": {"$exists": False}}, ["missing"]),
    ({"level": {"$exists": True}}, ["null", "two", "zero"]),
    ({"$or": [{"level": {"$exists": False}}, {"level": {"$gt": 1}}]}, ["missing", "two"]),
    ({"level": {"$exists": True, "$lt": 1}}, ["zero"]),
]


@pytest.mark.parametrize("beside", [{}, {"kind": {"$in": ["a", "b"]}}], ids=["alone", "beside-in"])
@pytest.mark.parametrize(("query", "expected"), NULL_AND_MISSING, ids=[str(case[0]) for case in NULL_AND_MISSING])
async def test_null_and_missing_match_as_on_mongodb(
    mongo: MongoResource, query: dict[str, object], expected: list[str], beside: dict[str, object]
) -> None:
    """Intake's "not yet routed" is a null or missing `level` inside `$or`; the ledger's "no head yet" is `$exists`."""
    items = mongo.db["items"]
    await items.insert_many(
        [
            {"_id": "missing", "kind": "a"},
            {"_id": "null", "kind": "a", "level": None},
            {"_id": "zero", "kind": "b", "level": 0},
            {"_id": "two", "kind": "b", "level": 2},
        ]
    )
    full = {**beside, **query}
    assert sorted([d["_id"] async for d in items.find(full, {"_id": 1})]) == expected
    assert await items.count_documents(full) == len(expected)
    assert await count(items, full) == len(expected)
    updated = await items.update_many(full, {"$set": {"hit": 1}})
    assert updated.modified_count == len(expected)
    assert sorted([d["_id"] async for d in items.find({"hit": 1}, {"_id": 1})]) == expected


async def test_a_condition_beside_or_applies_to_every_branch(mongo: MongoResource) -> None:
    """`{"_id": x, "$or": [...]}` updates x or nothing: never another document that satisfies the `$or`."""
    records = mongo.db["records"]
    await records.insert_many([{"_id": f"r{i}", "status": "open", "seq": 1} for i in range(5)])
    head = {"$or": [{"seq": {"$exists": False}}, {"seq": {"$lt": 2}}]}
    results = await asyncio.gather(
        *(records.update_one({"_id": f"r{i}", **head}, {"$set": {"seq": 2, "by": f"r{i}"}}) for i in (3, 3, 4))
    )
    assert [result.modified_count for result in results].count(1) == 2
    assert {d["_id"]: d.get("by") async for d in records.find({})} == {
        "r0": None,
        "r1": None,
        "r2": None,
        "r3": "r3",
        "r4": "r4",
    }
    assert await records.find_one_and_update({"_id": "r0", "status": "closed", **head}, {"$set": {"seq": 9}}) is None
    assert await records.count_documents({"status": "open", "$or": [{"seq": 9}, {"_id": "r1"}]}) == 1
    assert await count(records, {"seq": {"$gte": 1}, "$or": [{"_id": "r0"}, {"_id": "r4"}]}) == 2
    deleted = await records.delete_many({"_id": {"$in": ["r1", "r2"]}, "$or": [{"seq": 1}, {"seq": 2}]})
    assert deleted.deleted_count == 2 and await records.count_documents({}) == 3


async def test_a_data_migration_runs_once_and_again_only_after_a_failure(mongo: MongoResource) -> None:
    runs: list[str] = []

    async def failing() -> None:
        runs.append("failing")
        raise RuntimeError("store went away mid-migration")

    async def working() -> None:
        runs.append("working")

    with pytest.raises(RuntimeError):
        await migrate_once(mongo.db, "items.new_key", failing)
    assert await migrate_once(mongo.db, "items.new_key", working), "not recorded as done: it runs again"
    assert not await migrate_once(mongo.db, "items.new_key", working)
    assert runs == ["failing", "working"]
    assert await migrate_once(mongo.db, "items.other_key", working), "each migration is recorded by its own name"


async def test_a_consumed_event_is_staged_once_however_often_it_arrives(mongo: MongoResource) -> None:
    """Intake's ledger fast path: a write remembers the event it stages, so a redelivery (even a racing one) stages
    nothing; the memory keeps the latest ids only. Needs `$nin` on an array and `$push` with `$slice`."""
    records = mongo.db["records"]
    await records.insert_many(
        [{"_id": "remembers", **ledger.audit_fields()}, {"_id": "from-before", ledger.STAGED_SEQ_FIELD: 0}]
    )
    entries = [
        ledger.stage("escalated", actor="routing", event_id=f"event-{n:03d}") for n in range(ledger.RECORDED_KEPT + 6)
    ]

    async def deliver(entry: Document) -> Document | None:
        guard, update = ledger.with_consumed({"$set": {"last": entry["event_id"]}}, entry)
        return await records.find_one_and_update(
            {"_id": "remembers", **guard}, update, projection=ledger.FLUSH_FIELDS, return_document=ReturnDocument.AFTER
        )

    # Each event's three copies race one another, a few events at a time: a copy held up behind more than
    # RECORDED_KEPT newer events (all 210 writes at once on a loaded machine did that) is rightly taken for a new one.
    applied: list[Document | None] = []
    for start in range(0, len(entries), 8):
        applied += await asyncio.gather(*(deliver(entry) for entry in entries[start : start + 8] for _ in range(3)))
    assert sum(result is not None for result in applied) == len(entries)
    assert all(set(result) <= {"_id", *ledger.FLUSH_FIELDS} for result in applied if result is not None)
    record = await records.find_one({"_id": "remembers"})
    assert record is not None
    assert sorted(entry["event_id"] for entry in record[ledger.STAGED_FIELD]) == [e["event_id"] for e in entries]
    assert record[ledger.STAGED_SEQ_FIELD] == len(entries)
    assert len(record[ledger.RECORDED_FIELD]) == ledger.RECORDED_KEPT

    # A record stored before the memory: only the memoryless write applies, once, and starts the memory.
    first = entries[0]
    old_guard, old_update = ledger.without_memory({}, first)
    new_guard, new_update = ledger.with_consumed({}, first)
    assert (await records.update_one({"_id": "from-before", **new_guard}, new_update)).modified_count == 0
    assert (await records.update_one({"_id": "from-before", **old_guard}, old_update)).modified_count == 1
    assert (await records.update_one({"_id": "from-before", **old_guard}, old_update)).modified_count == 0
    assert (await records.update_one({"_id": "from-before", **new_guard}, new_update)).modified_count == 0
    assert await records.find_one({"_id": "from-before"}, {ledger.RECORDED_FIELD: 1}) == {
        "_id": "from-before",
        ledger.RECORDED_FIELD: [first["event_id"]],
    }
