"""Staff sessions on the real MongoDB-wire server: any replica (any store over the same collection) serves them,
a restart keeps them, the idle timeout and the maximum age end them, and the database never holds the token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import bson
import pytest

from heard_devstack import Stack
from heard_shared.events import utc_now
from heard_shared.mongo import MongoResource
from heard_web.staff_sessions import SessionStore
from tests.helpers import unique

pytestmark = pytest.mark.integration
TOKEN = "heard_integration_secret_token_value"


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Replicas:
    first: SessionStore
    second: SessionStore
    clock: Clock
    mongo: MongoResource


@pytest.fixture
async def replicas(stack: Stack) -> AsyncIterator[Replicas]:
    database = unique("web_sessions").replace("-", "_")
    first_mongo = MongoResource(stack.mongodb_uri, database, app_name="web-sessions-test-1")
    second_mongo = MongoResource(stack.mongodb_uri, database, app_name="web-sessions-test-2")
    clock = Clock(utc_now())
    options = {"idle_timeout": timedelta(minutes=30), "max_age": timedelta(hours=12), "clock": clock}
    first = SessionStore(first_mongo.db["staff_sessions"], **options)  # type: ignore[arg-type]
    second = SessionStore(second_mongo.db["staff_sessions"], **options)  # type: ignore[arg-type]
    await first.ensure_indexes()
    yield Replicas(first, second, clock, first_mongo)
    await first_mongo.client.drop_database(database)
    await first_mongo.close()
    await second_mongo.close()


async def test_a_session_made_by_one_replica_is_served_by_another(replicas: Replicas) -> None:
    secret = await replicas.first.create(
        token=TOKEN, name="Officer Diaz", roles=["unit_member"], unit_id="north-patrol"
    )
    session = await replicas.second.load(secret)
    assert session is not None
    assert (session.token, session.name, session.roles, session.unit_id) == (
        TOKEN,
        "Officer Diaz",
        frozenset({"unit_member"}),
        "north-patrol",
    )
    assert await replicas.second.load(secret + "x") is None
    assert await replicas.second.load("") is None


async def test_the_database_holds_neither_the_cookie_nor_the_token(replicas: Replicas) -> None:
    secret = await replicas.first.create(token=TOKEN, name="Officer Diaz", roles=["unit_member"], unit_id=None)
    stored = [document async for document in replicas.mongo.db["staff_sessions"].find()]
    assert len(stored) == 1
    raw = bson.encode(stored[0])
    assert TOKEN.encode() not in raw and secret.encode() not in raw and b"Officer Diaz" not in raw


async def test_idle_sessions_end_and_activity_keeps_them_alive_up_to_the_maximum_age(replicas: Replicas) -> None:
    secret = await replicas.first.create(token=TOKEN, name="Officer Diaz", roles=["unit_member"], unit_id=None)
    for _ in range(3):  # activity every 20 minutes keeps it alive past the 30-minute idle timeout
        replicas.clock.now += timedelta(minutes=20)
        assert await replicas.second.load(secret) is not None
    replicas.clock.now += timedelta(minutes=31)
    assert await replicas.first.load(secret) is None, "31 minutes without a request end it"

    signed_in_at = replicas.clock.now
    lasting = await replicas.first.create(token=TOKEN, name="Officer Diaz", roles=["unit_member"], unit_id=None)
    for _ in range(100):  # a request every 20 minutes, until the session ends
        if await replicas.first.load(lasting) is None:
            break
        replicas.clock.now += timedelta(minutes=20)
    assert timedelta(hours=12) <= replicas.clock.now - signed_in_at <= timedelta(hours=12, minutes=20)


async def test_signing_out_ends_the_session_everywhere(replicas: Replicas) -> None:
    secret = await replicas.first.create(token=TOKEN, name="Officer Diaz", roles=["unit_member"], unit_id=None)
    session = await replicas.second.load(secret)
    assert session is not None
    await replicas.second.end(session.key)
    assert await replicas.first.load(secret) is None
