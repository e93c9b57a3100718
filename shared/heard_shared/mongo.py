"""MongoDB client lifecycle over pymongo's async API (Motor reached end of life on 2026-05-14)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient, UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError, WriteConcernError, WriteError

Document = dict[str, Any]
DUPLICATE_KEY = 11000
# The collection, in each service's database, that records the data migrations done (see `migrate_once`).
MIGRATIONS = "migrations"


class MongoResource:
    """One client per process and event loop; closed at shutdown."""

    def __init__(self, uri: str, database: str, *, app_name: str) -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            appname=app_name,
            tz_aware=True,
            serverSelectionTimeoutMS=5000,
            connectTimeoutMS=5000,
            # A server that stops answering fails the operation (a 503 to an HTTP caller, a retry for a consumer)
            # instead of holding the request, its connection and its caller forever.
            socketTimeoutMS=30000,
            directConnection=None if "replicaSet=" in uri else True,
        )
        self.db: AsyncDatabase[Document] = self.client[database]

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
        except Exception:  # noqa: BLE001 - readiness only reports, it never raises
            return False
        return True

    async def close(self) -> None:
        await self.client.close()


def epoch_ms(moment: datetime) -> int:
    """Scheduling keys are integers: every MongoDB-wire server indexes numbers, not all index dates (nx-27017
    evaluates a date range in Python, document by document)."""
    return int(moment.timestamp() * 1000)


async def migrate_once(database: AsyncDatabase[Document], name: str, migration: Callable[[], Awaitable[Any]]) -> bool:
    """Runs a data migration unless `database` records it as done; records it once it finished. True if it ran.

    A migration's query (documents still lacking a field) is typically one no index serves: run at every start it
    cost each start seconds of a busy local store at 100,000 items. Replicas starting together may both run it, so
    a migration must be safe to repeat; one that fails is not recorded and runs again at the next start.
    """
    migrations = database[MIGRATIONS]
    if await migrations.find_one({"_id": name}) is not None:
        return False
    await migration()
    await migrations.update_one({"_id": name}, {"$setOnInsert": {"done_at": datetime.now(UTC)}}, upsert=True)
    return True


async def count(collection: AsyncCollection[Document], query: Document) -> int:
    """Documents matching `query`, with the `count` command.

    `count_documents` wraps the filter in an aggregation ($match + $group), which MongoDB answers from the
    index but nx-27017 (the local store) evaluates document by document in Python: measured 23 s for 10,000
    matches among 100,000, holding the database meanwhile. The `count` command is an index range on both
    (130 ms there). MongoDB 7/8 support it; it is left out of the Stable API, which Heard does not pin.
    """
    reply = await collection.database.command("count", collection.name, query=query)
    return int(reply["n"])


class _Group:
    """Group commit: operations that arrive while one round trip is on the wire go together in the next.

    Each caller still waits until its own operation is done and gets its own outcome. A lone operation goes
    out at once, so light traffic pays no delay; under load one round trip serves many callers, which is
    where a consumer's or a request's time goes on a busy server.
    """

    def __init__(self, collection: AsyncCollection[Document], *, max_batch: int = 256) -> None:
        self.collection = collection
        self.max_batch = max_batch
        self._queue: list[tuple[Any, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def _submit(self, operation: Any) -> Any:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((operation, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name=f"{type(self).__name__}-{self.collection.name}")
        return await done

    async def _drain(self) -> None:
        while self._queue:
            batch = self._queue[: self.max_batch]
            del self._queue[: len(batch)]
            try:
                outcomes = await self._run([operation for operation, _ in batch])
            except Exception as error:  # noqa: BLE001 - every waiting caller gets the failure as its own
                for _, done in batch:
                    _settle(done, error, None)
            else:
                for (_, done), (own_error, result) in zip(batch, outcomes, strict=True):
                    _settle(done, own_error, result)

    async def _run(self, operations: list[Any]) -> list[tuple[BaseException | None, Any]]:
        """One round trip for `operations`: per operation, (its error or None, its result)."""
        raise NotImplementedError


def _bulk_outcomes(count: int, error: BulkWriteError) -> list[tuple[BaseException | None, Any]]:
    """Per operation of an unordered bulk write that failed in part: its own error, or None where it applied."""
    failed = {failure["index"]: failure for failure in error.details.get("writeErrors", [])}
    concern = error.details.get("writeConcernErrors") or []
    outcomes: list[tuple[BaseException | None, Any]] = []
    for index in range(count):
        if index in failed:
            outcomes.append((_write_error(failed[index]), None))
        elif concern:
            outcomes.append((WriteConcernError(concern[0].get("errmsg", ""), concern[0].get("code")), None))
        else:
            outcomes.append((None, None))
    return outcomes


class GroupInsert(_Group):
    """Group commit for inserts (unordered `insert_many`): a duplicate key is raised to the caller whose document
    it was, and the others are stored regardless."""

    async def insert(self, document: Document) -> None:
        await self._submit(document)

    async def _run(self, operations: list[Any]) -> list[tuple[BaseException | None, Any]]:
        try:
            await self.collection.insert_many(operations, ordered=False)
        except BulkWriteError as error:
            return _bulk_outcomes(len(operations), error)
        return [(None, None)] * len(operations)


class GroupUpdate(_Group):
    """Group commit for single-document updates by `_id` (one unordered `bulk_write`).

    Each update is atomic on its own document, as `update_one` is; unordered is safe because callers that must
    not overlap on one document (one consumer lane per item) wait for their previous update before the next.
    Updates that differ only in their `_id` (an outbox emptied after publishing, say) go as one `update_many`
    over those ids, which applies the same conditional update to each document on its own.
    A bulk write reports no per-update match count, so this is for updates whose caller needs only to know
    that the update was applied or refused: a conditional update that matches nothing is not an error.
    """

    async def update_one(self, filter: Document, update: Document, *, upsert: bool = False) -> None:
        await self._submit((filter, update, upsert))

    async def _run(self, operations: list[Any]) -> list[tuple[BaseException | None, Any]]:
        # Same condition besides `_id`, same update, no upsert, distinct documents → one statement; its members
        # share its outcome. Two updates of one document stay two statements (an `$inc` must apply twice).
        statements: dict[Any, list[int]] = {}
        documents: dict[Any, set[str]] = {}
        for index, (filter, update, upsert) in enumerate(operations):
            key: Any = index
            if not upsert and isinstance(filter.get("_id"), str):
                alike = repr(({k: v for k, v in filter.items() if k != "_id"}, update))
                if filter["_id"] not in documents.setdefault(alike, set()):
                    key = alike
                    documents[alike].add(filter["_id"])
            statements.setdefault(key, []).append(index)
        requests: list[UpdateOne | UpdateMany] = []
        for members in statements.values():
            filter, update, upsert = operations[members[0]]
            if len(members) == 1:
                requests.append(UpdateOne(filter, update, upsert=upsert))
            else:
                ids = [operations[index][0]["_id"] for index in members]
                requests.append(UpdateMany({**filter, "_id": {"$in": ids}}, update))
        try:
            await self.collection.bulk_write(requests, ordered=False)
        except BulkWriteError as error:
            outcomes = _bulk_outcomes(len(requests), error)
            per_operation: list[tuple[BaseException | None, Any]] = [(None, None)] * len(operations)
            for outcome, members in zip(outcomes, statements.values(), strict=True):
                for index in members:
                    per_operation[index] = outcome
            return per_operation
        return [(None, None)] * len(operations)


class GroupFindById(_Group):
    """Group reads by `_id` (one `$in` query), with one projection for every read of this group."""

    def __init__(
        self, collection: AsyncCollection[Document], *, projection: Document | None = None, max_batch: int = 256
    ) -> None:
        super().__init__(collection, max_batch=max_batch)
        self.projection = projection

    async def find_one(self, document_id: Any) -> Document | None:
        found: Document | None = await self._submit(document_id)
        return found

    async def _run(self, operations: list[Any]) -> list[tuple[BaseException | None, Any]]:
        wanted = list(dict.fromkeys(operations))
        found = {
            document["_id"]: document
            async for document in self.collection.find({"_id": {"$in": wanted}}, self.projection)
        }
        return [(None, found.get(document_id)) for document_id in operations]


def _write_error(failure: Document) -> PyMongoError:
    message, code = failure.get("errmsg", "write failed"), failure.get("code")
    if code == DUPLICATE_KEY:
        return DuplicateKeyError(message, code, failure)
    return WriteError(message, code, failure)


def _settle(done: asyncio.Future[Any], error: BaseException | None, result: Any) -> None:
    if done.done():  # the caller was cancelled (its client went away); the operation happened all the same
        return
    if error is None:
        done.set_result(result)
    else:
        done.set_exception(error)
