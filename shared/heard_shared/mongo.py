"""MongoDB client lifecycle over pymongo's async API (Motor reached end of life on 2026-05-14)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

Document = dict[str, Any]


class MongoResource:
    """One client per process and event loop; closed at shutdown."""

    def __init__(self, uri: str, database: str, *, app_name: str) -> None:
        self.client: AsyncMongoClient[Document] = AsyncMongoClient(
            uri,
            appname=app_name,
            tz_aware=True,
            serverSelectionTimeoutMS=5000,
            connectTimeoutMS=5000,
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
