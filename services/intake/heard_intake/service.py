"""Intake's use cases: each keyword-only, each one state change written together with its events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from heard_intake import domain, severity
from heard_shared import events as ev
from heard_shared.events import CloudEvent, FeedbackInboundV1, PublicLocation, deterministic_event_id, utc_now
from heard_shared.mongo import Document
from heard_shared.outbox import OutboxRelay, OutgoingEvent, outbox_fields, with_outbox


class FeedbackNotFound(Exception):
    pass


@dataclass(frozen=True)
class Submission:
    feedback_id: str
    tracking_code: str | None
    duplicate: bool = False


class IntakeService:
    def __init__(self, *, feedback: AsyncCollection[Document], outbox: OutboxRelay, source: str) -> None:
        self.feedback = feedback
        self.outbox = outbox
        self.source = source

    async def ensure_indexes(self) -> None:
        await self.feedback.create_index("tracking_hash", unique=True, sparse=True)
        await self.feedback.create_index([("unit_id", 1), ("status", 1)])
        await self.outbox.ensure_indexes(self.feedback)

    # -- submissions -------------------------------------------------------------------

    async def submit(
        self, *, data: FeedbackInboundV1, channel: ev.Channel, origin: tuple[str, str] | None = None
    ) -> Submission:
        """Stores one feedback item and stages `feedback.submitted` in the same write.

        `origin` is the CloudEvents (source, id) of a city system's event: the feedback id is derived
        from it, so a redelivered or re-sent event finds the existing item instead of a second one.
        """
        feedback_id = deterministic_event_id("inbound", *origin) if origin else str(uuid.uuid4())
        tracking_code = None if origin else domain.new_tracking_code()
        now = utc_now()
        assessment = severity.assess_severity(
            kind=data.kind, text=data.text, rating=data.rating, language=data.language
        )
        location = data.location
        submitted = ev.new_event(
            ev.SUBMITTED,
            ev.FeedbackSubmittedV1(
                feedback_id=feedback_id,
                channel=channel,
                kind=data.kind,
                category=data.category,
                language=data.language,
                text=domain.redact(data.text),
                location=PublicLocation(
                    latitude=location.latitude, longitude=location.longitude, neighbourhood=location.neighbourhood
                )
                if location
                else None,
                officer_badge=data.officer_badge,
                rating=data.rating,
                severity=assessment.severity,
                negative=assessment.negative,
                severity_reasons=assessment.reasons,
                has_contact=data.contact is not None,
                submitted_at=now,
            ),
            source=self.source,
            subject=feedback_id,
            event_id=deterministic_event_id(feedback_id, "submitted"),
            time=now,
        )
        document: Document = {
            "_id": feedback_id,
            **data.model_dump(mode="python", exclude_none=True),
            "channel": channel,
            "status": "submitted",
            "severity": assessment.severity,
            "negative": assessment.negative,
            "severity_reasons": assessment.reasons,
            "submitted_at": now,
            "updated_at": now,
            "level": None,
            "unit_id": None,
            "history": [{"status": "submitted", "at": now}],
            **outbox_fields(OutgoingEvent(ev.SUBMITTED, submitted)),
        }
        if tracking_code:
            document["tracking_hash"] = domain.tracking_code_hash(tracking_code)
        if origin:
            document["origin"] = {"source": origin[0], "id": origin[1]}
        try:
            await self.feedback.insert_one(document)
        except DuplicateKeyError:
            return Submission(feedback_id, None, duplicate=True)
        await self.outbox.try_flush(self.feedback, feedback_id)
        return Submission(feedback_id, tracking_code)

    # -- reads -------------------------------------------------------------------------

    async def get(self, feedback_id: str) -> Document:
        document = await self.feedback.find_one({"_id": feedback_id}, {"_outbox": 0})
        if document is None:
            raise FeedbackNotFound(feedback_id)
        return document

    async def find_by_tracking_code(self, code: str) -> Document:
        normalised = domain.normalise_tracking_code(code)
        document = None
        if normalised:
            document = await self.feedback.find_one(
                {"tracking_hash": domain.tracking_code_hash(normalised)}, {"_outbox": 0}
            )
        if document is None:
            raise FeedbackNotFound(code)
        return document

    async def list_for_staff(self, *, unit_id: str | None, status: str | None, limit: int) -> list[Document]:
        query: Document = {}
        if unit_id:
            query["unit_id"] = unit_id
        if status:
            query["status"] = status
        cursor = self.feedback.find(query, {"_outbox": 0, "contact": 0}).sort("submitted_at", 1).limit(limit)
        return [document async for document in cursor]

    # -- staff actions -----------------------------------------------------------------

    async def _transition(
        self,
        feedback_id: str,
        *,
        expected_status: str,
        changes: Document,
        history: Document,
        event: OutgoingEvent | None,
    ) -> Document:
        """Applies a change only if nobody changed the status meanwhile (compare-and-set)."""
        now = changes.get("updated_at", utc_now())
        update = with_outbox(
            {"$set": {**changes, "updated_at": now}, "$push": {"history": history}}, *([event] if event else [])
        )
        updated = await self.feedback.find_one_and_update(
            {"_id": feedback_id, "status": expected_status},
            update,
            return_document=ReturnDocument.AFTER,
        )
        if updated is None:
            current = await self.get(feedback_id)
            raise domain.GuardViolation("conflict", f"feedback changed meanwhile (now {current['status']!r}); retry")
        if event:
            await self.outbox.try_flush(self.feedback, feedback_id)
        return updated

    async def acknowledge(self, *, feedback_id: str, actor: str) -> Document:
        current = await self.get(feedback_id)
        domain.check_can_acknowledge(current["status"])
        now = utc_now()
        event = ev.new_event(
            ev.ACKNOWLEDGED,
            ev.FeedbackAcknowledgedV1(feedback_id=feedback_id, unit_id=current.get("unit_id"), acknowledged_at=now),
            source=self.source,
            subject=feedback_id,
            time=now,
        )
        return await self._transition(
            feedback_id,
            expected_status=current["status"],
            changes={"status": "acknowledged", "acknowledged_at": now, "updated_at": now},
            history={"status": "acknowledged", "at": now, "by": actor},
            event=OutgoingEvent(ev.ACKNOWLEDGED, event),
        )

    async def answer(self, *, feedback_id: str, answer: str, actor: str) -> Document:
        current = await self.get(feedback_id)
        domain.check_can_answer(current["status"])
        now = utc_now()
        event = ev.new_event(
            ev.ANSWERED,
            ev.FeedbackAnsweredV1(
                feedback_id=feedback_id, unit_id=current.get("unit_id"), answer=domain.redact(answer), answered_at=now
            ),
            source=self.source,
            subject=feedback_id,
            time=now,
        )
        return await self._transition(
            feedback_id,
            expected_status=current["status"],
            changes={
                "status": "answered",
                "answer": {"text": answer, "answered_at": now, "by": actor},
                "updated_at": now,
            },
            history={"status": "answered", "at": now, "by": actor},
            event=OutgoingEvent(ev.ANSWERED, event),
        )

    async def close(self, *, feedback_id: str, actor: str) -> Document:
        current = await self.get(feedback_id)
        domain.check_can_close(
            status=current["status"], negative=current["negative"], has_published_answer=bool(current.get("answer"))
        )
        now = utc_now()
        event = ev.new_event(
            ev.CLOSED,
            ev.FeedbackClosedV1(feedback_id=feedback_id, closed_at=now, resolution="answered"),
            source=self.source,
            subject=feedback_id,
            time=now,
        )
        return await self._transition(
            feedback_id,
            expected_status=current["status"],
            changes={"status": "closed", "closed_at": now, "updated_at": now},
            history={"status": "closed", "at": now, "by": actor},
            event=OutgoingEvent(ev.CLOSED, event),
        )

    # -- what routing decided ----------------------------------------------------------

    async def record_routing(self, event: CloudEvent[Any]) -> None:
        data: ev.FeedbackRoutedV1 = event.data
        await self.feedback.update_one(
            {"_id": data.feedback_id, "status": "submitted"},
            {
                "$set": {
                    "status": "routed",
                    "unit_id": data.unit_id,
                    "level": data.level,
                    "acknowledge_by": data.acknowledge_by,
                    "answer_by": data.answer_by,
                    "updated_at": utc_now(),
                },
                "$push": {"history": {"status": "routed", "at": data.routed_at, "unit_id": data.unit_id}},
            },
        )

    async def record_escalation(self, event: CloudEvent[Any]) -> None:
        data: ev.FeedbackEscalatedV1 = event.data
        history = {
            "status": "escalated",
            "at": data.fired_at,
            "unit_id": data.unit_id,
            "level": data.level,
            "reason": data.reason,
        }
        # An escalation that arrives after the answer changes the responsible unit on record only.
        await self.feedback.update_one(
            {
                "_id": data.feedback_id,
                "status": {"$in": ["submitted", "routed", "acknowledged", "escalated"]},
                "$or": [{"level": None}, {"level": {"$lte": data.level}}],
            },
            {
                "$set": {"status": "escalated", "unit_id": data.unit_id, "level": data.level, "updated_at": utc_now()},
                "$push": {"history": history},
            },
        )

    async def record_inbound(self, event: CloudEvent[Any]) -> None:
        await self.submit(data=event.data, channel="kafka", origin=(event.source, event.id))


def public_view(document: Document) -> Document:
    """What a resident sees with their tracking code: never contact data or internal notes."""
    answer = document.get("answer")
    return {
        "feedback_id": document["_id"],
        "status": document["status"],
        "kind": document["kind"],
        "category": document.get("category"),
        "submitted_at": _iso(document["submitted_at"]),
        "answer": {"text": answer["text"], "answered_at": _iso(answer["answered_at"])} if answer else None,
        "history": [{"status": h["status"], "at": _iso(h["at"])} for h in document.get("history", [])],
    }


def staff_view(document: Document) -> Document:
    view = {k: v for k, v in document.items() if k not in {"_id", "tracking_hash", "contact", "history", "origin"}}
    view["feedback_id"] = document["_id"]
    view["history"] = document.get("history", [])
    view["has_contact"] = "contact" in document
    return view


def _iso(value: datetime) -> str:
    return value.isoformat()
