"""Which city systems may publish feedback into Heard on `feedback.inbound`.

A CloudEvent's `source` names the system that produced it. Only registered sources are accepted:
anything else is dead-lettered with reason `unregistered_source`, so a misconfigured or unknown
producer is visible (and alerting) instead of silently becoming feedback. Sources come from
`HEARD_INTAKE_CITY_SYSTEMS` (JSON: source URI -> name) and from the `city_systems` collection,
which operators fill at run time without a restart.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from heard_intake.service import IntakeService
from heard_shared.events import CloudEvent, InvalidEvent, utc_now
from heard_shared.mongo import Document

# A registration made in the collection is seen within this many seconds by every replica.
CACHE_SECONDS = 5.0


class CitySystemRegistry:
    def __init__(self, collection: AsyncCollection[Document], configured: Mapping[str, str] | None = None) -> None:
        self.collection = collection
        self.configured = dict(configured or {})
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def register(self, *, source: str, name: str) -> None:
        await self.collection.update_one(
            {"_id": source},
            {"$set": {"name": name, "revoked_at": None}, "$setOnInsert": {"registered_at": utc_now()}},
            upsert=True,
        )
        self._cache.pop(source, None)

    async def revoke(self, *, source: str) -> bool:
        result = await self.collection.update_one(
            {"_id": source, "revoked_at": None}, {"$set": {"revoked_at": utc_now()}}
        )
        self._cache.pop(source, None)
        return result.modified_count > 0

    async def all(self) -> dict[str, str]:
        registered = {
            str(document["_id"]): str(document["name"]) async for document in self.collection.find({"revoked_at": None})
        }
        return {**self.configured, **registered}

    async def name_of(self, source: str) -> str | None:
        """The system's name, or None when the source is not registered."""
        if source in self.configured:
            return self.configured[source]
        cached = self._cache.get(source)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        document = await self.collection.find_one({"_id": source, "revoked_at": None})
        name = str(document["name"]) if document else None
        self._cache[source] = (time.monotonic(), name)
        return name


class InboundFromCitySystems:
    """The `feedback.inbound` handler: checks the source, then hands the event to intake."""

    def __init__(self, registry: CitySystemRegistry, service: IntakeService) -> None:
        self.registry = registry
        self.service = service

    async def __call__(self, event: CloudEvent[Any]) -> None:
        if await self.registry.name_of(event.source) is None:
            # InvalidEvent from a handler is dead-lettered at once with this code (see EventConsumer),
            # and not remembered as processed: once the source is registered, a replay is accepted.
            raise InvalidEvent(
                "unregistered_source",
                f"source {event.source!r} is not a registered city system; register it before publishing",
            )
        await self.service.record_inbound(event)
