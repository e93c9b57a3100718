"""Group commit of inserts on the MongoDB-wire server the tests run: each caller gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pymongo.errors import DuplicateKeyError

from heard_devstack import Stack
from heard_shared.mongo import GroupInsert, MongoResource
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
