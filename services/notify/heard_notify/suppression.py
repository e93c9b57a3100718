"""Addresses that must not be written to again: unsubscribed, opted out by SMS STOP, or hard-bounced.

Stored only as keyed hashes (see `NotifyKeys.address_hash`); notify never stores an address.
"""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection

from heard_shared.events import utc_now
from heard_shared.mongo import Document


class SuppressionList:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection

    async def add(self, address_hash: str, *, reason: str, delivery_id: str | None = None) -> None:
        await self.collection.update_one(
            {"_id": address_hash},
            {"$set": {"reason": reason, "delivery_id": delivery_id, "at": utc_now()}},
            upsert=True,
        )

    async def remove(self, address_hash: str) -> bool:
        result = await self.collection.delete_one({"_id": address_hash})
        return bool(result.deleted_count)

    async def reason(self, address_hash: str) -> str | None:
        document = await self.collection.find_one({"_id": address_hash})
        return str(document["reason"]) if document else None
