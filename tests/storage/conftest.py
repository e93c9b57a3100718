"""The storage conformance suite's one fixture: a database on whatever MongoDB-wire server is under test.

`MONGODB_URI=mongodb://… pytest tests/storage` runs it against that server (a production MongoDB, another
MongoDB-wire server) and nothing else is started; without it, the session's test stack starts the default
store. Every test works in a database of its own, `heard_conformance_<random>`, and drops it at the end.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from heard_shared.mongo import MongoResource
from tests.helpers import unique


@pytest.fixture(scope="session")
def mongodb_uri(request: pytest.FixtureRequest) -> str:
    uri = os.environ.get("MONGODB_URI")
    if uri:
        return uri
    # Resolved outside the event loop: starting the session's servers runs its own loop.
    return str(request.getfixturevalue("stack").mongodb_uri)


@pytest.fixture
async def mongo(mongodb_uri: str) -> AsyncIterator[MongoResource]:
    resource = MongoResource(mongodb_uri, unique("heard_conformance").replace("-", "_"), app_name="conformance")
    try:
        yield resource
    finally:
        await resource.client.drop_database(resource.db.name)
        await resource.close()
