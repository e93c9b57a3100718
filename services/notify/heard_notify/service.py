"""Records one delivery per event and recipient; the delivery id makes a redelivered event a no-op."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from heard_notify.domain import deliveries_for
from heard_shared.events import CloudEvent, deterministic_event_id, utc_now
from heard_shared.mongo import Document


class NotifyService:
    def __init__(self, *, deliveries: AsyncCollection[Document], registry: CollectorRegistry) -> None:
        self.deliveries = deliveries
        self.delivered = Counter(
            "heard_notify_deliveries_total",
            "Deliveries recorded, by channel and template.",
            ["channel", "template"],
            registry=registry,
        )

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_index([("feedback_id", 1), ("created_at", 1)])
        await self.deliveries.create_index("recipient")

    async def on_event(self, event: CloudEvent[Any]) -> None:
        for delivery in deliveries_for(event):
            try:
                await self.deliveries.insert_one(
                    {
                        "_id": deterministic_event_id(event.source, event.id, delivery.recipient),
                        "event_id": event.id,
                        "event_type": event.type,
                        "feedback_id": event.subject,
                        "recipient": delivery.recipient,
                        "channel": delivery.channel,
                        "template": delivery.template,
                        "status": "delivered",
                        "created_at": utc_now(),
                    }
                )
            except DuplicateKeyError:
                continue
            self.delivered.labels(delivery.channel, delivery.template).inc()

    async def list(self, *, feedback_id: str | None, recipient: str | None, limit: int) -> list[Document]:
        query: Document = {}
        if feedback_id:
            query["feedback_id"] = feedback_id
        if recipient:
            query["recipient"] = recipient
        cursor = self.deliveries.find(query).sort("created_at", 1).limit(limit)
        return [{**{k: v for k, v in d.items() if k != "_id"}, "delivery_id": d["_id"]} async for d in cursor]
