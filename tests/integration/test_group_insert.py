"""Group commit of inserts, updates and reads on the tests' MongoDB-wire server: each caller gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymongo.errors import DuplicateKeyError

from heard_devstack import Stack
from heard_shared.mongo import GroupFindById, GroupInsert, GroupUpdate, MongoResource
from tests.helpers import unique

pytestmark = pytest.mark.integration


@pytest.fixture
async def mongo(stack: Stack) -> AsyncIterator[MongoResource]:
    resource = MongoResource(stack.mongodb_uri, unique("group_insert").replace("-", "_"), app_name="group-insert")
    yield resource
    await resource.client.drop_database(resource.db.name)
    await resource.close()


async def test_concurrent_inserts_share_round_trips_and_keep_their_own_errors(mongo: MongoResource) -> None:
    collection = mongo.db["items"]
    await collection.create_index("code", unique=True)
    await collection.insert_many([{"_id": "taken-1", "code": "a"}, {"_id": "x", "code": "taken-code"}])
    inserts = GroupInsert(collection, max_batch=16)

    documents = [{"_id": f"item-{n}", "code": f"code-{n}"} for n in range(60)]
    documents[7]["_id"] = "taken-1"  # an existing _id
    documents[33]["code"] = "taken-code"  # an existing value of another unique index
    documents[50]["_id"] = documents[49]["_id"]  # two callers racing for one _id
    outcomes = await asyncio.gather(*(inserts.insert(d) for d in documents), return_exceptions=True)

    refused = {n for n, outcome in enumerate(outcomes) if outcome is not None}
    assert refused == {7, 33, 50}
    assert all(isinstance(outcomes[n], DuplicateKeyError) for n in refused)
    stored = {d["_id"] async for d in collection.find({"_id": {"$regex": "^item-"}}, {"_id": 1})}
    assert stored == {d["_id"] for n, d in enumerate(documents) if n not in refused}

    # Alone, an insert goes out at once and still reports its own duplicate.
    await inserts.insert({"_id": "alone", "code": "alone"})
    with pytest.raises(DuplicateKeyError):
        await inserts.insert({"_id": "alone", "code": "alone-again"})


async def test_grouped_updates_and_reads_share_round_trips_and_keep_their_own_outcomes(mongo: MongoResource) -> None:
    collection = mongo.db["items"]
    await collection.create_index("code", unique=True)
    await collection.insert_many([{"_id": f"item-{n}", "code": f"code-{n}", "seq": 1, "hits": 0} for n in range(40)])
    updates = GroupUpdate(collection, max_batch=16)

    # The same conditional update for many documents (one statement per group), where one no longer matches.
    await collection.update_one({"_id": "item-3"}, {"$set": {"seq": 2}})
    cleared = [updates.update_one({"_id": f"item-{n}", "seq": 1}, {"$set": {"cleared": True}}) for n in range(20)]
    # An update of one document twice in one group applies twice; an upsert and a duplicate key get their own.
    twice = [updates.update_one({"_id": "item-30"}, {"$inc": {"hits": 1}}) for _ in range(2)]
    upsert = updates.update_one({"_id": "new"}, {"$set": {"code": "new"}}, upsert=True)
    taken = updates.update_one({"_id": "item-31"}, {"$set": {"code": "code-32"}})
    outcomes = await asyncio.gather(*cleared, *twice, upsert, taken, return_exceptions=True)

    assert outcomes[:-1] == [None] * (len(outcomes) - 1)
    assert isinstance(outcomes[-1], DuplicateKeyError)
    done = {d["_id"] async for d in collection.find({"cleared": True}, {"_id": 1})}
    assert done == {f"item-{n}" for n in range(20)} - {"item-3"}
    assert (await collection.find_one({"_id": "item-30"}) or {})["hits"] == 2
    assert await collection.find_one({"_id": "new"}) is not None

    reads = GroupFindById(collection, projection={"code": 1})
    found = await asyncio.gather(*(reads.find_one(i) for i in ["item-1", "missing", "item-2", "item-1"]))
    assert found == [{"_id": "item-1", "code": "code-1"}, None, {"_id": "item-2", "code": "code-2"}, found[0]]
