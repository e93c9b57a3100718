"""Analytics' read model on the real broker and database: redelivered and reordered events change no figure, and a
rebuild from the topics gives the same public figures as the live consumer.

Each test writes its items into a year of its own (far in the future), so the figures it compares are its own, even
though the topics also hold every other test's events.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry
from pymongo.errors import ConnectionFailure

from bench.analytics import seed
from heard_analytics import cli, figures, opendata, rebuild
from heard_analytics import facts as domain
from heard_analytics.bootstrap import build_service, subscribe
from heard_analytics.config import AnalyticsSettings
from heard_analytics.service import AnalyticsService
from heard_devstack import Stack
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.events import CloudEvent
from heard_shared.kafka import EventConsumer, Inbox, KafkaDeadLetterSink, create_broker
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import MongoResource
from tests.analytics_events import lifecycle
from tests.helpers import eventually, unique

pytestmark = pytest.mark.integration

KEY = b"integration-public-id-key"


@dataclass
class Live:
    """Analytics consuming the real topics into its own database, the way the service does (own consumer group)."""

    settings: AnalyticsSettings
    service: AnalyticsService
    mongo: MongoResource
    group: str
    stop: Callable[[], Awaitable[None]]


@pytest.fixture
async def live(stack: Stack) -> AsyncIterator[Live]:
    settings = AnalyticsSettings(
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        mongodb_uri=stack.mongodb_uri,
        mongodb_database=unique("analytics_live").replace("-", "_"),
        suppression_threshold=1,
        min_items_for_statistics=1,
    )
    await topics.ensure_topics(stack.kafka_bootstrap)
    mongo = MongoResource(stack.mongodb_uri, settings.mongodb_database, app_name="analytics-live-test")
    service = build_service(settings, mongo.db, CollectorRegistry())
    await service.start()
    broker = create_broker(stack.kafka_bootstrap, client_id="analytics-live-test")
    sink = KafkaDeadLetterSink(stack.kafka_bootstrap, client_id="analytics-live-test")
    group = unique("analytics-live")
    consumer = EventConsumer(
        broker, group_id=group, inbox=Inbox(mongo.db["inbox"]), metrics=ServiceMetrics("test"), dead_letters=sink
    )
    subscribe(consumer, service)
    consumer.register()
    await sink.start()
    await broker.start()
    stopped = False

    async def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            await broker.stop()
            await sink.stop()

    try:
        yield Live(settings, service, mongo, group, stop)
    finally:
        await stop()
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()


async def publish(bootstrap: str, events: list[CloudEvent[Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for event in events:
            spec = ev.EVENT_SPECS[event.type]
            await producer.send_and_wait(spec.topic, ev.encode(event), key=(event.subject or "").encode())
    finally:
        await producer.stop()


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        return dict(await reader.end_offsets(await rebuild.consumed_partitions(bootstrap)))
    finally:
        await reader.stop()


async def caught_up(live: Live, until: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """Waits until the live consumer group has committed every offset up to `until`; returns its offsets."""
    assert until, "the topics have partitions"
    admin = AIOKafkaAdminClient(bootstrap_servers=live.settings.kafka_bootstrap_servers)
    await admin.start()

    async def committed() -> dict[TopicPartition, int] | None:
        offsets = {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(live.group)).items()}
        done = all(offsets.get(tp, 0) >= end for tp, end in until.items() if end > 0)
        return {tp: max(offsets.get(tp, 0), 0) for tp in until} if done else None

    try:
        return await eventually(committed, timeout=90, what="the live consumer to catch up")
    finally:
        await admin.close()


async def public_figures(service: AnalyticsService, year: int, **where: str) -> dict[str, Any]:
    """Every table of the JSON API for a filter, as the public reads it."""
    await service.publish_once()
    report = await service.report(figures.Filters(year, **where))
    rules = service.rules
    return {
        table.id: [{c.name: opendata.json_value(row.get(c.name), rules) for c in table.columns} for row in table.rows]
        for table in report.tables.values()
        if table.id != "overdue"  # "right now": compared separately, it depends on the clock
    }


async def test_redelivered_and_reordered_events_change_no_figure(live: Live, stack: Stack) -> None:
    year = random.randint(2100, 2149)
    start = datetime(year, 3, 2, 9, tzinfo=UTC)
    in_order: list[CloudEvent[Any]] = []
    shuffled: list[CloudEvent[Any]] = []
    for n in range(10):
        # The same ten histories, once in Northgate as they happened, once in Old Town in any order and twice over.
        in_order += lifecycle(unique("in-order"), "Northgate", start + timedelta(days=n), n)
        again = lifecycle(unique("shuffled"), "Old Town", start + timedelta(days=n), n)
        copies = [e.model_copy(update={"id": e.id + "-copy"}) for e in again]  # the same facts under new ids
        mixed = again + again + copies  # the same events twice, and the same facts under new ids
        random.Random(n).shuffle(mixed)
        shuffled += mixed
    await publish(stack.kafka_bootstrap, in_order + shuffled)
    await caught_up(live, await end_offsets(stack.kafka_bootstrap))

    north = await public_figures(live.service, year, area="north/Northgate")
    old_town = await public_figures(live.service, year, area="central/Old Town")
    assert north == old_town
    funnel = {row["stage"]: row["items"] for row in north["funnel"]}
    # Escalated: items 0, 3, 6, 9, and the contested 1 and 5 (a contest reopens one level up); 4 and 9 withdrawn.
    assert (funnel["submitted"], funnel["escalated_1"], funnel["closed"]) == (10, 6, 8)
    contested = next(row for row in north["other"] if row["measure"] == "contested")
    assert contested["items"] == 2


async def test_a_rebuild_from_the_topics_publishes_the_same_figures_as_the_live_read_model(
    live: Live, stack: Stack
) -> None:
    year = random.randint(2150, 2199)
    start = datetime(year, 5, 1, 8, tzinfo=UTC)
    events = [e for n in range(12) for e in lifecycle(unique("rebuilt"), "Southport", start + timedelta(days=n), n)]
    await publish(stack.kafka_bootstrap, events)
    offsets = await caught_up(live, await end_offsets(stack.kafka_bootstrap))
    await live.stop()  # freeze the live read model at those offsets

    fresh = MongoResource(stack.mongodb_uri, unique("analytics_rebuilt").replace("-", "_"), app_name="rebuild-test")
    try:
        rebuilt = build_service(live.settings, fresh.db, CollectorRegistry())
        await rebuilt.start()
        report = await rebuild.replay(rebuilt.model, stack.kafka_bootstrap, until=offsets)
        assert report.events >= len(events) and report.changed >= len(events)

        assert await rebuild.differences(live.mongo.db, fresh.db) == []
        for where in ({}, {"area": "south/Southport"}, {"kind": "complaint"}):
            assert await public_figures(rebuilt, year, **where) == await public_figures(live.service, year, **where)
        rows = (await rebuilt.item_release(year, key=KEY)).rows
        assert rows == (await live.service.item_release(year, key=KEY)).rows and len(rows) == 12
        assert await rebuilt.overdue(figures.Filters(year)) == await live.service.overdue(figures.Filters(year))

        # The operator's command does the same into a database of its own, and says it matches.
        summary = await cli.rebuild_into(
            live.settings, database=fresh.db.name, replace=True, compare=True, concurrency=1
        )
        assert summary["matches_live"] is True and summary["events"] == report.events, summary
        with pytest.raises(SystemExit, match="not empty"):
            await cli.rebuild_into(live.settings, database=fresh.db.name, replace=False, compare=False, concurrency=1)
        with pytest.raises(SystemExit, match="live database"):
            await cli.rebuild_into(
                live.settings, database=live.settings.mongodb_database, replace=True, compare=False, concurrency=1
            )
    finally:
        await fresh.client.drop_database(fresh.db.name)
        await fresh.close()


class CutOnce:
    """A collection whose `n`-th call of `method` is carried out and then fails as a lost connection would: the
    process dies between two writes of a round."""

    def __init__(self, inner: Any, method: str, n: int) -> None:
        self.inner, self.method, self.n, self.calls = inner, method, n, 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if name != self.method:
            return target

        async def cut(*args: Any, **kwargs: Any) -> Any:
            result = await target(*args, **kwargs)
            self.calls += 1
            if self.calls == self.n:
                raise ConnectionFailure(f"cut after {self.method} #{self.n}")
            return result

        return cut


def expected_read_model(events: list[CloudEvent[Any]], areas: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cells' counters and the open items, folded from the events with the domain functions alone."""
    facts: dict[str, dict[str, Any]] = {}
    for event in events:
        facts[event.subject or ""] = domain.merge(facts.get(event.subject or "", {}), event, areas)
    cells: dict[str, dict[str, int]] = {}
    open_items: dict[str, Any] = {}
    for item, item_facts in facts.items():
        for cell_id, counters in domain.contribution(item_facts).items():
            cell = cells.setdefault(cell_id, {})
            for name, value in counters.items():
                cell[name] = cell.get(name, 0) + value
        if (entry := domain.overdue_entry(item_facts)) is not None:
            open_items[item] = {"_id": item, **entry}
    return {k: {n: v for n, v in c.items() if v} for k, c in cells.items()}, open_items


@pytest.mark.parametrize(
    ("collection", "method", "n"),
    [
        ("rounds", "insert_one", 1),  # the first round's journal entry written
        ("items", "bulk_write", 1),  # … and its items
        ("cells", "bulk_write", 1),  # … and the cells incremented
        ("open_items", "bulk_write", 1),  # … and the open items changed
        ("rounds", "delete_one", 1),  # … and its journal entry removed
        ("cells", "update_many", 1),  # … and the cells' markers cleared
    ],
)
async def test_a_round_cut_anywhere_reaches_the_cells_exactly_once_after_redelivery(
    stack: Stack, collection: str, method: str, n: int
) -> None:
    settings = AnalyticsSettings(
        mongodb_uri=stack.mongodb_uri, mongodb_database=unique("analytics_cut").replace("-", "_")
    )
    mongo = MongoResource(stack.mongodb_uri, settings.mongodb_database, app_name="cut-test")
    start = datetime(2101, 2, 3, 9, tzinfo=UTC)
    histories = [lifecycle(unique("cut"), "Northgate", start + timedelta(days=k), k) for k in range(24)]
    try:
        service = build_service(settings, mongo.db, CollectorRegistry())
        model = service.model
        await model.ensure_indexes()
        cut = CutOnce(getattr(model, collection), method, n)
        setattr(model, collection, cut)

        async def deliver(history: list[CloudEvent[Any]]) -> None:
            for event in history:
                await model.apply(event)

        # Every item's events in order, items at once (as the consumer's lanes), so rounds hold many items.
        first = await asyncio.gather(*(deliver(h) for h in histories), return_exceptions=True)
        assert cut.calls >= n, "the cut happened"
        # A cut before the round's events are answered fails them; in the tidying after, the round counts as done.
        tidying = method in ("delete_one", "update_many")
        assert any(isinstance(outcome, ConnectionFailure) for outcome in first) != tidying
        # The consumer commits nothing past a failure: every event comes again.
        await asyncio.gather(*(deliver(h) for h in histories))
        await model.finish_pending()

        cells, open_items = expected_read_model([e for h in histories for e in h], model.areas)
        stored = {doc["_id"]: rebuild._figures(doc) async for doc in mongo.db["cells"].find({})}
        assert stored == cells
        assert {doc["_id"]: doc async for doc in mongo.db["open_items"].find({})} == open_items
        assert await mongo.db["rounds"].count_documents({}) == 0, "no round left unfinished"
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()


async def test_the_bench_seeder_writes_the_read_model_the_projection_would(stack: Stack) -> None:
    """bench/analytics/seed.py writes a million items in bulk, beside the projection: on a sample, the same cells,
    open items and item facts as the projection applying the same events one by one."""
    now = ev.utc_now()
    seeded = MongoResource(stack.mongodb_uri, unique("analytics_seeded").replace("-", "_"), app_name="seed-test")
    projected = MongoResource(stack.mongodb_uri, unique("analytics_projected").replace("-", "_"), app_name="seed-test")
    settings = AnalyticsSettings(mongodb_uri=stack.mongodb_uri)
    try:
        model = build_service(settings, projected.db, CollectorRegistry()).model
        await model.ensure_indexes()
        areas, count = model.areas, 400
        for year in (now.year - 1, now.year):  # a closed year, and one with items still open
            for batch in seed.items_of_year(year, count, now=now, areas=areas, seed=3):
                await seed.write(seeded.db, batch, now=now)

            async def project(feedback_id: str, events: list[CloudEvent[Any]]) -> None:
                for stand_in in events:
                    await model.apply(seed.as_cloud_event(stand_in, feedback_id))

            await asyncio.gather(
                *(project(*history) for history in seed.histories(year, count, now=now, areas=areas, seed=3))
            )

        assert await rebuild.differences(seeded.db, projected.db) == []
        assert await seeded.db["open_items"].count_documents({}) > 0, "the sample has items still waiting"

        def facts(item: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in item.items() if k not in ("v", "by")}

        stored = {doc["_id"]: facts(doc) async for doc in seeded.db["items"].find({})}
        assert stored == {doc["_id"]: facts(doc) async for doc in projected.db["items"].find({})}
        assert len(stored) == 800
    finally:
        for mongo in (seeded, projected):
            await mongo.client.drop_database(mongo.db.name)
            await mongo.close()


async def test_a_replica_publishes_what_another_replica_applied(stack: Stack) -> None:
    """Each replica reads the cells it wrote by id and only other writers' recent cells by time: a replica that
    applied nothing still publishes what its peer applied, and cells written by a writer with no stamp at all."""
    settings = AnalyticsSettings(
        mongodb_uri=stack.mongodb_uri,
        mongodb_database=unique("analytics_replicas").replace("-", "_"),
        suppression_threshold=1,
        min_items_for_statistics=1,
    )
    mongo = MongoResource(stack.mongodb_uri, settings.mongodb_database, app_name="replicas-test")
    year = random.randint(2200, 2249)
    start = datetime(year, 4, 1, 8, tzinfo=UTC)
    try:
        writer, reader = (build_service(settings, mongo.db, CollectorRegistry()) for _ in range(2))
        await writer.start()
        await reader.start()

        async def submitted(service: AnalyticsService) -> Any:
            await service.publish_once()
            funnel = (await public_figures(service, year))["funnel"]
            return next(row["items"] for row in funnel if row["stage"] == "submitted")

        await reader.publish_once()  # its first look reads every cell; from then on, only changes
        for n in range(3):
            for event in lifecycle(unique("replica"), "Northgate", start + timedelta(days=n), n):
                await writer.model.apply(event)
        assert await submitted(writer) == 3
        assert await submitted(reader) == 3, "the peer's cells, read by time"
        # A cell written now by a writer that does not stamp itself (the version before this one).
        cell = domain.Cell(f"{year}-04", "central", "Old Town", "complaint", "response_time")
        stamp = int(ev.utc_now().timestamp() * 1000)
        await mongo.db["cells"].insert_one({"_id": cell.id, **cell.fields(), "submitted": 1, "updated_ms": stamp})
        assert await submitted(writer) == 4 and await submitted(reader) == 4
    finally:
        await mongo.client.drop_database(mongo.db.name)
        await mongo.close()
