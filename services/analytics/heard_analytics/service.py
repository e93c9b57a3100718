"""Read model and statistics built from every feedback topic.

Each event is recorded once by its id (insert-or-skip), and the per-item read model is updated
with `$set`/`$max` of facts, so redelivery never double counts. Statistics are computed from the
read model on request rather than kept as counters that could drift.
"""

from __future__ import annotations

import statistics
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from heard_shared import events as ev
from heard_shared.events import CloudEvent, utc_now
from heard_shared.mongo import Document


class AnalyticsService:
    def __init__(
        self, *, events: AsyncCollection[Document], items: AsyncCollection[Document], registry: CollectorRegistry
    ) -> None:
        self.events = events
        self.items = items
        self.events_total = Counter(
            "heard_analytics_events_total", "Feedback events counted, by type.", ["type"], registry=registry
        )
        self.submitted_total = Counter(
            "heard_analytics_feedback_submitted_total",
            "Feedback submitted, by severity.",
            ["severity"],
            registry=registry,
        )

    async def ensure_indexes(self) -> None:
        await self.events.create_index("type")

    async def on_event(self, event: CloudEvent[Any]) -> None:
        try:
            await self.events.insert_one(
                {
                    "_id": f"{event.source}|{event.id}",
                    "type": event.type,
                    "feedback_id": event.subject,
                    "recorded_at": utc_now(),
                }
            )
            first_time = True
        except DuplicateKeyError:
            first_time = False
        await self._apply(event)
        if first_time:
            self.events_total.labels(event.type).inc()
            if isinstance(event.data, ev.FeedbackSubmittedV1):
                self.submitted_total.labels(event.data.severity).inc()

    async def _apply(self, event: CloudEvent[Any]) -> None:
        data = event.data
        update: Document
        if isinstance(data, ev.FeedbackSubmittedV1):
            update = {
                "$set": {
                    "severity": data.severity,
                    "negative": data.negative,
                    "kind": data.kind,
                    "category": data.category,
                    "language": data.language,
                    "channel": data.channel,
                    "neighbourhood": data.location.neighbourhood if data.location else None,
                    "submitted_at": data.submitted_at,
                }
            }
        elif isinstance(data, ev.FeedbackRoutedV1):
            update = {"$set": {"unit_id": data.unit_id, "rule": data.rule, "routed_at": data.routed_at}}
        elif isinstance(data, ev.FeedbackAcknowledgedV1):
            update = {"$set": {"acknowledged_at": data.acknowledged_at}}
        elif isinstance(data, ev.FeedbackAnsweredV1):
            update = {"$set": {"answered_at": data.answered_at}}
        elif isinstance(data, ev.FeedbackEscalatedV1):
            update = {"$max": {"max_level": data.level}, "$addToSet": {"escalation_ids": event.id}}
        elif isinstance(data, ev.FeedbackClosedV1):
            update = {"$set": {"closed_at": data.closed_at, "resolution": data.resolution}}
        else:
            return
        await self.items.update_one({"_id": event.subject}, update, upsert=True)

    async def stats(self) -> dict[str, Any]:
        by_type: dict[str, int] = {}
        async for record in self.events.find({}, {"type": 1}):
            by_type[record["type"]] = by_type.get(record["type"], 0) + 1
        items = [item async for item in self.items.find({"submitted_at": {"$exists": True}})]
        negative = [i for i in items if i.get("negative")]
        answer_seconds = [(i["answered_at"] - i["submitted_at"]).total_seconds() for i in items if i.get("answered_at")]
        by_severity: dict[str, int] = {}
        for item in items:
            by_severity[item["severity"]] = by_severity.get(item["severity"], 0) + 1
        return {
            "events": by_type,
            "feedback": {
                "total": len(items),
                "by_severity": by_severity,
                "negative": len(negative),
                "negative_unanswered": sum(1 for i in negative if not i.get("answered_at")),
                "answered": len(answer_seconds),
                "escalated": sum(1 for i in items if i.get("escalation_ids")),
                "median_time_to_answer_seconds": statistics.median(answer_seconds) if answer_seconds else None,
            },
        }
