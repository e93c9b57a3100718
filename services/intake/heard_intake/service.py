"""Intake's use cases: each keyword-only, each one state change written together with its events.

Every state change also stages its audit-ledger entries in the same single-document write (see
`heard_intake.ledger`), so a change can never land without its record in the tamper-evident history.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from heard_intake import domain, ledger, severity
from heard_intake.ledger import AuditLedger, Verification, audit_fields, head_of, public_entry, verify_chain, with_audit
from heard_intake.metrics import TriageMetrics
from heard_intake.privacy import ContactCipher
from heard_intake.settle import SubmissionSettler
from heard_shared import events as ev
from heard_shared.events import (
    CloudEvent,
    Contact,
    FeedbackInboundV1,
    FeedbackKind,
    PublicLocation,
    Severity,
    StaffRole,
    deterministic_event_id,
    utc_now,
)
from heard_shared.kafka import TRANSIENT_ERRORS
from heard_shared.keyed_lock import KeyedLock
from heard_shared.logs import get_logger
from heard_shared.mongo import Document, GroupInsert, epoch_ms, migrate_once
from heard_shared.outbox import WITHOUT_OUTBOX, OutboxRelay, OutgoingEvent, outbox_fields, with_outbox

log = get_logger(__name__)

RESIDENT = "resident"
ROUTING = "routing"
RETENTION = "system:retention"
# Never sent to staff or residents: secrets, ciphertext, bookkeeping.
_PRIVATE_FIELDS = frozenset(
    {
        "_id",
        "tracking_hash",
        "tracking_code_encrypted",
        "idempotency",
        "contact",
        "contact_encrypted",
        "history",
        "origin",
    }
)
_LIST_PROJECTION: Document = {
    **WITHOUT_OUTBOX,
    "contact": 0,
    "contact_encrypted": 0,
    "tracking_code_encrypted": 0,
    "idempotency": 0,
    ledger.STAGED_FIELD: 0,
}


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key seen before with a different request, or whose item no longer keeps its code (erased)."""


class FeedbackNotFound(Exception):
    pass


P = ParamSpec("P")
CONFLICT_ATTEMPTS = 5
RETENTION_BATCH = 500
# Epoch ms of an item's closing (closed or withdrawn), kept until the retention purge has looked at it: the purge
# reads one index range instead of every closed item (nx-27017 evaluated the date range on `closed_at` in Python,
# 4.2 s of the store's time at 113,000 items on every run, against 1 ms). Set at every closing, with or without contact
# details, because the staff views do not load them; the purge removes it from every item it looked at.
CONTACT_CLOSED_FIELD = "contact_closed_ms"
HOLDS_CONTACT: Document = {"$or": [{"contact_encrypted": {"$exists": True}}, {"contact": {"$exists": True}}]}


def _retry_on_conflict(action: Callable[P, Awaitable[Document]]) -> Callable[P, Awaitable[Document]]:
    """Runs a use case again when its compare-and-set lost to a concurrent change.

    Routing's events change an item's status in the background (routed, escalated); a resident or officer
    acting at that moment should not be told to retry by hand. Each attempt re-reads the item and re-checks
    the lifecycle rules, so a retry can still be refused for a real reason: only the first attempt uses the item
    its caller read (`seen`).
    """

    @functools.wraps(action)
    async def retrying(*args: P.args, **kwargs: P.kwargs) -> Document:
        attempt = 1
        while True:
            try:
                return await action(*args, **kwargs)
            except domain.GuardViolation as refused:
                if refused.code != "conflict" or attempt >= CONFLICT_ATTEMPTS:
                    raise
            kwargs.pop("seen", None)
            await asyncio.sleep(0.02 * attempt)
            attempt += 1

    return retrying


@dataclass(frozen=True)
class Submission:
    feedback_id: str
    tracking_code: str | None
    duplicate: bool = False


class IntakeService:
    def __init__(
        self,
        *,
        feedback: AsyncCollection[Document],
        outbox: OutboxRelay,
        source: str,
        contact_cipher: ContactCipher,
        audit: AuditLedger | None = None,
        contact_retention: timedelta = timedelta(days=365),
        metrics: TriageMetrics | None = None,
    ) -> None:
        self.feedback = feedback
        self.outbox = outbox
        self.source = source
        self.contact_cipher = contact_cipher
        self.ledger = audit or AuditLedger(feedback.database["audit"])
        # This process's writes to one feedback document take turns (see heard_shared.keyed_lock).
        self.serial = KeyedLock()
        self.inserts = GroupInsert(feedback)
        self.settler = SubmissionSettler(feedback, self.ledger, self.serial)
        self.contact_retention = contact_retention
        self.metrics = metrics or TriageMetrics()

    async def ensure_indexes(self) -> None:
        await self.feedback.create_index("tracking_hash", unique=True, sparse=True)
        await self.feedback.create_index([("unit_id", 1), ("status", 1)])
        await self.feedback.create_index("triage_state")
        await self.feedback.create_index(ledger.DUE_FIELD)
        await self.feedback.create_index(CONTACT_CLOSED_FIELD, sparse=True)
        await self.outbox.ensure_indexes(self.feedback)
        await self.ledger.ensure_indexes()

    # -- submissions -------------------------------------------------------------------

    async def submit(
        self,
        *,
        data: FeedbackInboundV1,
        channel: ev.Channel,
        origin: tuple[str, str] | None = None,
        extra_fields: Document | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Stores one feedback item and stages `feedback.submitted` in the same write.

        `origin` is the CloudEvents (source, id) of a city system's event: the feedback id is derived
        from it, so a redelivered or re-sent event finds the existing item instead of a second one.
        `idempotency_key` does the same for a resident's client (a resent form, a retried POST): the id is derived
        from the key, and the same request sent again gets the first one's item and tracking code back
        (`Submission.duplicate`); with a different request it raises IdempotencyKeyReused.
        `extra_fields` are intake-only links stored with the record (a session id, the submitting city system).
        """
        if origin:
            feedback_id = deterministic_event_id("inbound", *origin)
        elif idempotency_key:
            feedback_id = deterministic_event_id("idempotency", domain.idempotency_key_hash(idempotency_key))
        else:
            feedback_id = str(uuid.uuid4())
        tracking_code = None if origin else domain.new_tracking_code()
        fingerprint = domain.request_fingerprint(data.model_dump(mode="json"), channel) if idempotency_key else None
        now = utc_now()
        assessment = domain.decide_severity(
            severity.assess_severity(kind=data.kind, text=data.text, rating=data.rating, language=data.language),
            allegations=data.allegations or [],
        )
        flagged = assessment.triage_state == "flagged"
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
                contact_channels=data.contact.channels() if data.contact else None,
                submitted_at=now,
                allegations=data.allegations or None,
                flagged_for_triage=True if flagged else None,
            ),
            source=self.source,
            subject=feedback_id,
            event_id=deterministic_event_id(feedback_id, "submitted"),
            time=now,
        )
        outgoing = OutgoingEvent(ev.SUBMITTED, submitted)
        document: Document = {
            "_id": feedback_id,
            # Contact details are stored only encrypted (below), never as plaintext fields.
            **data.model_dump(mode="python", exclude_none=True, exclude={"contact"}),
            "channel": channel,
            "status": "submitted",
            "severity": assessment.severity,
            "negative": assessment.negative,
            "severity_reasons": assessment.reasons,
            "triage_state": assessment.triage_state,
            "submitted_at": now,
            "updated_at": now,
            "level": None,
            "unit_id": None,
            "history": [{"status": "submitted", "at": now}],
            **outbox_fields(outgoing),
        }
        if tracking_code:
            document["tracking_hash"] = domain.tracking_code_hash(tracking_code)
        if origin:
            document["origin"] = {"source": origin[0], "id": origin[1]}
        if fingerprint and tracking_code:
            # Only the hash finds the item, so a replay's code comes from this sealed copy (removed on erasure).
            document["idempotency"] = {
                "fingerprint": fingerprint,
                "sealed_code": self.contact_cipher.encrypt_text(tracking_code),
            }
        for name, value in (extra_fields or {}).items():
            document.setdefault(name, value)  # never overrides what intake itself decided
        if data.contact is not None:
            document["contact_encrypted"] = self.contact_cipher.encrypt(data.contact)
            if tracking_code:
                # Only the hash finds the item; this copy lets notify's messages carry the resident's tracking link.
                document["tracking_code_encrypted"] = self.contact_cipher.encrypt_text(tracking_code)
        staged_entry = ledger.stage(
            "submitted",
            actor=_submitter(channel, origin),
            at=now,
            event_id=submitted.id,
            details={
                "channel": channel,
                "kind": data.kind,
                "language": data.language,
                "severity": assessment.severity,
                "negative": assessment.negative,
                "allegations": data.allegations or [],
                "triage_state": assessment.triage_state,
                "has_contact": data.contact is not None,
            },
        )
        document |= audit_fields(staged_entry)
        # A new document has no other writer yet, so the insert needs no turn in `serial`.
        with self.settler.claim(feedback_id) as claim:
            try:
                await self.inserts.insert(document)
            except DuplicateKeyError:
                if fingerprint is None:
                    return Submission(feedback_id, None, duplicate=True)
                return await self._replay(feedback_id, fingerprint)
            published = await self.outbox.publish_now(outgoing, stored_in=(self.feedback, feedback_id))
            claim.settle(ledger.first_entry(feedback_id, staged_entry), published=published)
        return Submission(feedback_id, tracking_code)

    async def _replay(self, feedback_id: str, fingerprint: str) -> Submission:
        """The item an Idempotency-Key created, for the same request sent again."""
        stored = await self.feedback.find_one({"_id": feedback_id}, {"idempotency": 1})
        first = (stored or {}).get("idempotency") or {}
        if first.get("fingerprint") != fingerprint:
            raise IdempotencyKeyReused()
        return Submission(feedback_id, self.contact_cipher.decrypt_text(first["sealed_code"]), duplicate=True)

    # -- reads -------------------------------------------------------------------------

    async def get(self, feedback_id: str) -> Document:
        document = await self.feedback.find_one({"_id": feedback_id}, WITHOUT_OUTBOX)
        if document is None:
            raise FeedbackNotFound(feedback_id)
        return document

    async def find_by_tracking_code(self, code: str, *, fields: Document = WITHOUT_OUTBOX) -> Document:
        normalised = domain.normalise_tracking_code(code)
        document = None
        if normalised:
            document = await self.feedback.find_one({"tracking_hash": domain.tracking_code_hash(normalised)}, fields)
        if document is None:
            raise FeedbackNotFound(code)
        return document

    async def list_for_staff(
        self,
        *,
        unit_id: str | None,
        status: str | None,
        limit: int,
        now: datetime | None = None,
        triage: str | None = None,
        severity: str | None = None,
        allegation: str | None = None,
    ) -> list[Document]:
        """Overdue first, then oldest first. `status` may be "open" for every status still awaiting work;
        `triage` "needed" for every item a person must still triage (awaiting or flagged)."""
        now = now or utc_now()
        query: Document = {}
        if unit_id:
            query["unit_id"] = unit_id
        if status == "open":
            query["status"] = {"$in": sorted(domain.OPEN_STATUSES)}
        elif status:
            query["status"] = status
        if triage == "needed":
            query["triage_state"] = {"$in": sorted(domain.NEEDS_TRIAGE)}
        elif triage:
            query["triage_state"] = triage
        if severity:
            query["severity"] = severity
        if allegation:
            query["allegations"] = allegation
        # Overdue items are fetched on their own so a long backlog of newer items cannot push them past `limit`.
        overdue_query: Document = {
            **query,
            "$or": [
                {"status": {"$in": sorted(domain.AWAITING_ACKNOWLEDGEMENT)}, "acknowledge_by": {"$lte": now}},
                {"status": {"$in": sorted(domain.AWAITING_ANSWER)}, "answer_by": {"$lte": now}},
                {
                    "status": {"$in": sorted(domain.OPEN_STATUSES)},
                    "triage_state": "awaiting",
                    "triage_by": {"$lte": now},
                },
            ],
        }
        found: dict[str, Document] = {}
        for candidates in (overdue_query, query):
            cursor = self.feedback.find(candidates, _LIST_PROJECTION).sort("submitted_at", 1).limit(limit)
            async for document in cursor:
                found.setdefault(document["_id"], document)
        return domain.overdue_first(found.values(), now)[:limit]

    async def contact_of(self, feedback_id: str) -> Contact | None:
        """The decrypted contact details, for the few places allowed to use them (never events or logs)."""
        document = await self.feedback.find_one({"_id": feedback_id}, {"contact_encrypted": 1})
        if document is None:
            raise FeedbackNotFound(feedback_id)
        token = document.get("contact_encrypted")
        return self.contact_cipher.decrypt(token) if token else None

    async def audit_trail(self, feedback_id: str) -> tuple[list[Document], Verification]:
        """The item's ledger entries and whether they verify; staged entries are appended first."""
        async with self.serial(feedback_id):
            await self.ledger.try_flush(self.feedback, feedback_id)
        record = await self.feedback.find_one(
            {"_id": feedback_id}, {ledger.HEAD_SEQ_FIELD: 1, ledger.HEAD_HASH_FIELD: 1}
        )
        entries = await self.ledger.chain(feedback_id)
        if record is None and not entries:
            raise FeedbackNotFound(feedback_id)
        return entries, verify_chain(entries, head=head_of(record))

    # -- staff actions -----------------------------------------------------------------

    async def _transition(
        self,
        feedback_id: str,
        *,
        expected_status: str,
        changes: Document,
        history: Document | None,
        event: OutgoingEvent | None,
        audit: Sequence[Document] = (),
        push: Document | None = None,
        unset: Sequence[str] = (),
        guard: Document | None = None,
    ) -> Document:
        """Applies a change only if nobody changed the status (and `guard`) meanwhile (compare-and-set).

        The change, its event (outbox) and its audit entries are one single-document write.
        """
        now = changes.get("updated_at", utc_now())
        update: Document = {"$set": {**changes, "updated_at": now}}
        pushes = dict(push or {})
        if history is not None:
            pushes["history"] = history
        if pushes:
            update["$push"] = pushes
        if unset:
            update["$unset"] = {field: "" for field in unset}
        update = with_audit(with_outbox(update, *([event] if event else [])), *audit)
        async with self.serial(feedback_id):
            updated = await self.feedback.find_one_and_update(
                {"_id": feedback_id, "status": expected_status, **(guard or {})},
                update,
                return_document=ReturnDocument.AFTER,
            )
            if updated is None:
                current = await self.get(feedback_id)
                raise domain.GuardViolation(
                    "conflict", f"feedback changed meanwhile (now {current['status']!r}); retry"
                )
            # Both flushes start from the document this write returned, under the item's turn: nothing else can
            # have changed it, so neither reads it again.
            if event:
                await self.outbox.try_flush(self.feedback, feedback_id, document=updated)
            if audit:
                fresh = {entry["entry_id"] for entry in audit}
                await self.ledger.try_flush(self.feedback, feedback_id, record=updated, fresh=fresh)
        return updated

    @_retry_on_conflict
    async def acknowledge(self, *, feedback_id: str, actor: str, seen: Document | None = None) -> Document:
        current = seen or await self.get(feedback_id)
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
            audit=[
                ledger.stage(
                    "acknowledged",
                    actor=actor,
                    at=now,
                    event_id=event.id,
                    details={"unit_id": current.get("unit_id"), "from_status": current["status"]},
                )
            ],
        )

    @_retry_on_conflict
    async def answer(self, *, feedback_id: str, answer: str, actor: str, seen: Document | None = None) -> Document:
        current = seen or await self.get(feedback_id)
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
            push={"answers": {"text": answer, "answered_at": now, "by": actor}},
            audit=[
                ledger.stage(
                    "answered",
                    actor=actor,
                    at=now,
                    event_id=event.id,
                    # The digest lets the board prove the published text was not changed later, without the
                    # ledger holding the text (it may quote the resident).
                    details={
                        "unit_id": current.get("unit_id"),
                        "from_status": current["status"],
                        "answer_sha256": hashlib.sha256(answer.encode()).hexdigest(),
                        "answer_length": len(answer),
                    },
                )
            ],
        )

    @_retry_on_conflict
    async def close(self, *, feedback_id: str, actor: str, seen: Document | None = None) -> Document:
        current = seen or await self.get(feedback_id)
        domain.check_can_close(
            status=current["status"],
            negative=current["negative"],
            has_published_answer=domain.has_published_answer(current.get("answer")),
            awaiting_triage=current.get("triage_state") == "awaiting",
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
            changes={
                "status": "closed",
                "closed_at": now,
                CONTACT_CLOSED_FIELD: epoch_ms(now),
                "resolution": "answered",
                "updated_at": now,
            },
            history={"status": "closed", "at": now, "by": actor},
            event=OutgoingEvent(ev.CLOSED, event),
            audit=[
                ledger.stage(
                    "closed",
                    actor=actor,
                    at=now,
                    event_id=event.id,
                    details={"resolution": "answered", "from_status": current["status"]},
                )
            ],
        )

    @_retry_on_conflict
    async def refer(
        self, *, feedback_id: str, reason: str, suggested_unit_id: str | None, actor: str, seen: Document | None = None
    ) -> Document:
        """The assigned unit hands the item on; routing picks the new unit and the SLA clock keeps running."""
        current = seen or await self.get(feedback_id)
        domain.check_can_refer(status=current["status"], unit_id=current.get("unit_id"))
        now = utc_now()
        from_unit_id = str(current["unit_id"])
        event = ev.new_event(
            ev.REFERRED,
            ev.FeedbackReferredV1(
                feedback_id=feedback_id,
                from_unit_id=from_unit_id,
                # Markers can make the redacted text a little longer than what the request allowed.
                reason=domain.redact(reason)[:500],
                suggested_unit_id=suggested_unit_id,
                referred_at=now,
            ),
            source=self.source,
            subject=feedback_id,
            time=now,
        )
        return await self._transition(
            feedback_id,
            expected_status=current["status"],
            changes={"status": "referred", "referred_at": now, "updated_at": now},
            history={
                "status": "referred",
                "at": now,
                "by": actor,
                "from_unit_id": from_unit_id,
                "suggested_unit_id": suggested_unit_id,
                "reason": reason,
            },
            event=OutgoingEvent(ev.REFERRED, event),
            audit=[
                ledger.stage(
                    "referred",
                    actor=actor,
                    at=now,
                    event_id=event.id,
                    details={
                        "from_unit_id": from_unit_id,
                        "suggested_unit_id": suggested_unit_id,
                        "reason_length": len(reason),
                    },
                )
            ],
        )

    @_retry_on_conflict
    async def add_note(self, *, feedback_id: str, text: str, actor: str, seen: Document | None = None) -> Document:
        """An internal note: seen by staff and the board, never by the resident, never on Kafka."""
        current = seen or await self.get(feedback_id)
        now = utc_now()
        note_id = str(uuid.uuid4())
        return await self._transition(
            feedback_id,
            expected_status=current["status"],
            changes={"updated_at": now},
            history=None,
            event=None,
            push={"notes": {"note_id": note_id, "text": text, "at": now, "by": actor}},
            audit=[
                ledger.stage("note_added", actor=actor, at=now, details={"note_id": note_id, "text_length": len(text)})
            ],
        )

    @_retry_on_conflict
    async def triage(
        self,
        *,
        feedback_id: str,
        kind: FeedbackKind | None,
        severity: Severity | None,
        reason: str | None,
        actor: str,
        role: StaffRole,
        may_lower_critical: bool,
        seen: Document | None = None,
    ) -> Document:
        """A person confirms or changes kind and severity (see `domain.triage`); routing re-derives the clock.

        The decision, its event and its ledger entry are one write; the written reason stays in the record
        (staff view and the oversight board's list) and only its digest goes into the ledger and nothing on Kafka.
        """
        current = seen or await self.get(feedback_id)
        decided = domain.triage(
            status=current["status"],
            current_kind=current["kind"],
            current_severity=current["severity"],
            kind=kind or current["kind"],
            severity=severity or current["severity"],
            reason=reason,
            may_lower_critical=may_lower_critical,
        )
        reason = reason.strip() if reason and reason.strip() else None
        now = utc_now()
        event = ev.new_event(
            ev.TRIAGED,
            ev.FeedbackTriagedV1(
                feedback_id=feedback_id,
                decision=decided.decision,
                kind=decided.kind,
                severity=decided.severity,
                negative=decided.negative,
                previous_kind=current["kind"],
                previous_severity=current["severity"],
                by_role=role,
                unit_id=current.get("unit_id"),
                triaged_at=now,
            ),
            source=self.source,
            subject=feedback_id,
            time=now,
        )
        change: Document = {
            "decision": decided.decision,
            "from_kind": current["kind"],
            "from_severity": current["severity"],
            "to_kind": decided.kind,
            "to_severity": decided.severity,
            "role": role,
        }
        updated = await self._transition(
            feedback_id,
            expected_status=current["status"],
            changes={
                "kind": decided.kind,
                "severity": decided.severity,
                "negative": decided.negative,
                "triage_state": "done",
                "triaged_at": now,
                "updated_at": now,
            },
            # Nobody changed kind or severity since we read them: the rules were checked against what is stored.
            guard={"kind": current["kind"], "severity": current["severity"]},
            history={
                "status": current["status"],
                "action": "triaged",
                "at": now,
                "by": actor,
                **change,
                "reason": reason,
            },
            push={"triages": {**change, "at": now, "by": actor, "reason": reason, "event_id": event.id}},
            event=OutgoingEvent(ev.TRIAGED, event),
            audit=[
                ledger.stage(
                    "triaged",
                    actor=actor,
                    at=now,
                    event_id=event.id,
                    details={
                        **change,
                        "unit_id": current.get("unit_id"),
                        "reason_sha256": hashlib.sha256(reason.encode()).hexdigest() if reason else None,
                        "reason_length": len(reason or ""),
                    },
                )
            ],
        )
        self.metrics.decisions.labels(decided.decision).inc()
        if decided.direction:
            self.metrics.severity_changes.labels(decided.direction, current["severity"], decided.severity).inc()
        return updated

    async def severity_changes(self, *, direction: str, limit: int, before: datetime | None = None) -> list[Document]:
        """Every lowering (or raising) of severity, newest first, from the audit ledger — the tamper-evident
        record — with the written reason from the item and whether it still matches the ledger's digest."""
        query: Document = {"action": "triaged", "details.decision": direction}
        if before is not None:
            query["at"] = {"$lt": before}
        entries = [entry async for entry in self.ledger.entries.find(query).sort("at", -1).limit(limit)]
        reasons: dict[str, str | None] = {}
        ids = sorted({entry["feedback_id"] for entry in entries})
        async for record in self.feedback.find({"_id": {"$in": ids}}, {"triages": 1, "erased_at": 1}):
            for decision in record.get("triages") or []:
                reasons[decision["event_id"]] = decision.get("reason")
        changes = []
        for entry in entries:
            details = entry.get("details") or {}
            reason = reasons.get(entry.get("event_id") or "")
            digest = hashlib.sha256(reason.encode()).hexdigest() if reason else None
            changes.append(
                {
                    "feedback_id": entry["feedback_id"],
                    "at": entry["at"],
                    "by": entry["actor"],
                    "role": details.get("role"),
                    "decision": details.get("decision"),
                    "from": {"kind": details.get("from_kind"), "severity": details.get("from_severity")},
                    "to": {"kind": details.get("to_kind"), "severity": details.get("to_severity")},
                    "unit_id": details.get("unit_id"),
                    "reason": reason,
                    # False after an erasure request redacted the reason, or if the record was altered.
                    "reason_matches_ledger": digest == details.get("reason_sha256"),
                    "ledger_entry": public_entry(entry),
                }
            )
        return changes

    # -- resident actions (the tracking code is the resident's key) ---------------------

    @_retry_on_conflict
    async def reply(self, *, tracking_code: str, text: str) -> Document:
        """Adds the resident's words to the public history; the status stays what it was."""
        current = await self.find_by_tracking_code(tracking_code)
        domain.check_can_reply(current["status"])
        now = utc_now()
        return await self._transition(
            current["_id"],
            expected_status=current["status"],
            changes={"updated_at": now},
            history={"status": current["status"], "action": "replied", "at": now, "by": RESIDENT, "text": text},
            event=None,
            audit=[
                ledger.stage(
                    "replied",
                    actor=RESIDENT,
                    at=now,
                    details={"status": current["status"], "text_length": len(text)},
                )
            ],
        )

    @_retry_on_conflict
    async def contest(self, *, tracking_code: str, reason: str) -> Document:
        """The resident finds the answer inadequate: the item reopens and routing moves it one level up."""
        current = await self.find_by_tracking_code(tracking_code)
        domain.check_can_contest(
            status=current["status"], has_published_answer=domain.has_published_answer(current.get("answer"))
        )
        feedback_id = current["_id"]
        now = utc_now()
        event = ev.new_event(
            ev.REOPENED,
            ev.FeedbackReopenedV1(feedback_id=feedback_id, reason="contested", reopened_at=now),
            source=self.source,
            subject=feedback_id,
            time=now,
        )
        return await self._transition(
            feedback_id,
            expected_status=current["status"],
            # The contested answer stays on record but no longer counts as published: closing needs a new one.
            changes={"status": "reopened", "answer.contested_at": now, "reopened_at": now, "updated_at": now},
            unset=("closed_at", CONTACT_CLOSED_FIELD, "resolution"),
            push={"contests": {"text": reason, "at": now}},
            history={"status": "reopened", "action": "contested", "at": now, "by": RESIDENT, "text": reason},
            event=OutgoingEvent(ev.REOPENED, event),
            audit=[
                ledger.stage(
                    "contested",
                    actor=RESIDENT,
                    at=now,
                    details={"from_status": current["status"], "text_length": len(reason)},
                ),
                ledger.stage("reopened", actor=RESIDENT, at=now, event_id=event.id, details={"reason": "contested"}),
            ],
        )

    @_retry_on_conflict
    async def withdraw(self, *, tracking_code: str, reason: str | None = None) -> Document:
        """The resident's own exit: the only way negative feedback closes without an answer."""
        current = await self.find_by_tracking_code(tracking_code)
        domain.check_can_withdraw(current["status"])
        feedback_id = current["_id"]
        now = utc_now()
        event = ev.new_event(
            ev.CLOSED,
            ev.FeedbackClosedV1(feedback_id=feedback_id, closed_at=now, resolution="withdrawn"),
            source=self.source,
            subject=feedback_id,
            time=now,
        )
        changes: Document = {
            "status": "withdrawn",
            "closed_at": now,
            CONTACT_CLOSED_FIELD: epoch_ms(now),
            "resolution": "withdrawn",
            "updated_at": now,
        }
        if reason:
            changes["withdrawal_reason"] = reason
        return await self._transition(
            feedback_id,
            expected_status=current["status"],
            changes=changes,
            history={"status": "withdrawn", "at": now, "by": RESIDENT},
            event=OutgoingEvent(ev.CLOSED, event),
            audit=[
                ledger.stage(
                    "withdrawn",
                    actor=RESIDENT,
                    at=now,
                    event_id=event.id,
                    details={"from_status": current["status"], "reason_given": bool(reason)},
                )
            ],
        )

    @_retry_on_conflict
    async def erase(self, *, tracking_code: str) -> Document:
        """The resident's erasure request: personal data out; the record, its status and statistics stay.

        Other services never received personal data (events carry redacted text and no contact), so
        there is nothing to erase beyond this record; the ledger holds no personal data either.
        """
        current = await self.find_by_tracking_code(tracking_code)
        if current.get("erased_at"):
            return current
        now = utc_now()
        changes, removed = domain.erasure(current)
        history: list[Document] = list(changes.get("history") or current.get("history") or [])
        changes["history"] = [*history, {"status": current["status"], "action": "erased", "at": now, "by": RESIDENT}]
        return await self._transition(
            current["_id"],
            expected_status=current["status"],
            changes={**changes, "erased_at": now, "updated_at": now},
            unset=removed,
            history=None,
            event=None,
            # The whole history is rewritten, so nothing may have been added since it was read.
            guard={"updated_at": current["updated_at"]},
            audit=[
                ledger.stage(
                    "erased",
                    actor=RESIDENT,
                    at=now,
                    details={"reason": "request", "fields": sorted({*removed, *changes})},
                )
            ],
        )

    # -- retention -----------------------------------------------------------------------

    async def purge_expired_contacts(self, *, now: datetime | None = None, limit: int = RETENTION_BATCH) -> int:
        """Deletes contact details of items closed longer than the retention period; returns how many.

        Works through everything due, `limit` items at a time (a backlog after downtime goes in one run).
        """
        now = now or utc_now()
        cutoff = now - self.contact_retention
        due: Document = {CONTACT_CLOSED_FIELD: {"$lte": epoch_ms(cutoff)}}
        expired: Document = {
            **due,
            "status": {"$in": sorted(domain.FINAL_STATUSES)},
            "closed_at": {"$lte": cutoff},
            **HOLDS_CONTACT,
        }
        purged = 0
        while ids := [document["_id"] async for document in self.feedback.find(due, {"_id": 1}).limit(limit)]:
            for feedback_id in ids:
                if await self._purge_contact(feedback_id, expired, now=now):
                    purged += 1
                else:
                    # Nothing to delete (closed without contact details, or erased on request since): off the range,
                    # so every item looked at leaves it and the next batch starts with new ones.
                    await self.feedback.update_one({"_id": feedback_id, **due}, {"$unset": {CONTACT_CLOSED_FIELD: ""}})
            if len(ids) < limit:
                break
        return purged

    async def _purge_contact(self, feedback_id: str, expired: Document, *, now: datetime) -> bool:
        entry = ledger.stage(
            "erased",
            actor=RETENTION,
            at=now,
            details={"reason": "retention", "fields": ["contact"], "retention_days": self.contact_retention.days},
        )
        async with self.serial(feedback_id):
            result = await self.feedback.update_one(
                {"_id": feedback_id, **expired},
                with_audit(
                    {
                        "$unset": {
                            "contact_encrypted": "",
                            "contact": "",
                            "tracking_code_encrypted": "",
                            CONTACT_CLOSED_FIELD: "",
                        },
                        "$set": {"contact_purged_at": now},
                    },
                    entry,
                ),
            )
            if not result.modified_count:
                return False
            await self.ledger.try_flush(self.feedback, feedback_id)
        return True

    async def mark_closed_contacts(self) -> None:
        """Items closed before `contact_closed_ms` existed get it from their `closed_at` (ids first: no cursor open
        while writing). Each update is conditioned on the `closed_at` read, so an item reopened and closed again
        meanwhile keeps the mark of its new closing."""
        unmarked: Document = {
            "status": {"$in": sorted(domain.FINAL_STATUSES)},
            "closed_at": {"$exists": True},
            CONTACT_CLOSED_FIELD: {"$exists": False},
            **HOLDS_CONTACT,
        }
        for document in await self.feedback.find(unmarked, {"closed_at": 1}).to_list():
            await self.feedback.update_one(
                {**unmarked, "_id": document["_id"], "closed_at": document["closed_at"]},
                {"$set": {CONTACT_CLOSED_FIELD: epoch_ms(document["closed_at"])}},
            )

    async def run_retention(self, *, interval_seconds: float) -> None:
        while True:
            try:
                await migrate_once(
                    self.feedback.database, f"feedback.{CONTACT_CLOSED_FIELD}", self.mark_closed_contacts
                )
                purged = await self.purge_expired_contacts()
                if purged:
                    log.info("contact details past retention deleted", count=purged)
            except PyMongoError as error:
                log.warning("retention waiting for MongoDB", error=repr(error))
            except Exception:
                log.exception("retention run failed")
            await asyncio.sleep(interval_seconds)

    # -- what routing decided ----------------------------------------------------------

    async def record_routing(self, event: CloudEvent[Any]) -> None:
        """Routing assigned (or, after a referral, re-assigned) the item; the decision is always audited."""
        data: ev.FeedbackRoutedV1 = event.data
        entry = ledger.stage(
            "routed",
            actor=ROUTING,
            at=data.routed_at,
            event_id=event.id,
            details={
                "unit_id": data.unit_id,
                "level": data.level,
                "rule": data.rule,
                "acknowledge_by": data.acknowledge_by,
                "answer_by": data.answer_by,
                "triage_by": data.triage_by,
                "critical_on_arrival": bool(data.critical_on_arrival),
            },
        )
        assignment: Document = {
            "unit_id": data.unit_id,
            # The unit's display name (Open311's agency_responsible); tied to its id because an
            # escalation later changes unit_id without carrying a name.
            "routed_unit": {"id": data.unit_id, "name": data.unit_name},
            "level": data.level,
            "acknowledge_by": data.acknowledge_by,
            "answer_by": data.answer_by,
            "triage_by": data.triage_by,
            "assigned_at": data.routed_at,
            "updated_at": utc_now(),
        }
        # Topics are not ordered against each other: a late decision must not undo a newer one (an escalation).
        newer: Document = {
            "$or": [
                {"level": None},
                {"level": {"$lt": data.level}},
                {"level": data.level, "assigned_at": {"$lt": data.routed_at}},
                {"level": data.level, "assigned_at": {"$exists": False}},
                # A triage or a referral can move an item down (a lowered critical item leaves professional
                # standards; a referral starts at the new unit): it applies unless something newer (an
                # escalation after it) is already recorded.
                *([{"assigned_at": {"$lt": data.routed_at}}] if _moves_down(data.rule) else []),
            ]
        }
        history = {"status": "routed", "at": data.routed_at, "unit_id": data.unit_id, "event_id": event.id}
        updates: tuple[tuple[Document, Document], ...] = (
            # Waiting for a unit: it now has one.
            (
                {"status": {"$in": ["submitted", "referred"]}, **newer},
                {"$set": {**assignment, "status": "routed"}, "$push": {"history": history}},
            ),
            # Being worked on: the unit and deadlines change, the status stays.
            (
                {"status": {"$in": sorted(domain.AWAITING_ANSWER - {"submitted", "referred"})}, **newer},
                {"$set": assignment},
            ),
            # Answered, closed or a stale decision: on record only.
            ({}, {}),
        )
        await self._record(data.feedback_id, updates, entry)

    async def record_escalation(self, event: CloudEvent[Any]) -> None:
        data: ev.FeedbackEscalatedV1 = event.data
        entry = ledger.stage(
            "escalated",
            actor=ROUTING,
            at=data.fired_at,
            event_id=event.id,
            details={
                "reason": data.reason,
                "from_level": data.from_level,
                "level": data.level,
                "level_name": data.level_name,
                "unit_id": data.unit_id,
                "deadline": data.deadline,
                "repeat": data.repeat,
            },
        )
        history = {
            "status": "escalated",
            "at": data.fired_at,
            "unit_id": data.unit_id,
            "level": data.level,
            "reason": data.reason,
            "event_id": event.id,
        }
        updates: tuple[tuple[Document, Document], ...] = (
            (
                {
                    "status": {"$in": sorted(domain.AWAITING_ANSWER)},
                    "$or": [{"level": None}, {"level": {"$lte": data.level}}],
                    "history.event_id": {"$ne": event.id},
                },
                {
                    "$set": {
                        "status": "escalated",
                        "unit_id": data.unit_id,
                        "level": data.level,
                        "assigned_at": data.fired_at,
                        "updated_at": utc_now(),
                    },
                    "$push": {"history": history},
                },
            ),
            # After an answer the escalation changes nothing here, but the board still sees it happened.
            ({}, {}),
        )
        await self._record(data.feedback_id, updates, entry)

    async def _record(self, feedback_id: str, updates: Sequence[tuple[Document, Document]], entry: Document) -> None:
        """Applies the first update whose condition holds and appends the event's ledger entry.

        Commonly the entry goes right after the record's head and the update moves the head (`_append_directly`).
        Otherwise it is staged in the same write as the change. A redelivered event applies nothing (see
        `ledger.RECORDED_FIELD`), so an entry a write staged is new to the chain and goes right after its head too.
        """
        async with self.serial(feedback_id):
            if await self._append_directly(feedback_id, updates, entry):
                return
            recorded = await self._apply_first(feedback_id, updates, entry, ledger.with_consumed)
            if recorded is not None:
                await self.ledger.try_flush(self.feedback, feedback_id, record=recorded, fresh={entry["entry_id"]})
                return
            # A redelivery, or a record from before intake remembered events: the chain may hold the entry already,
            # and the general flush reads it (it also appends what a redelivered event's first delivery left staged).
            await self._apply_first(feedback_id, updates, entry, ledger.without_memory)
            await self.ledger.try_flush(self.feedback, feedback_id)

    async def _append_directly(
        self, feedback_id: str, updates: Sequence[tuple[Document, Document]], entry: Document
    ) -> bool:
        """The common case in two writes (see `ledger.DirectAppend`), after a read that waits for no write on a store
        that reads beside its writer. False leaves the event to the staged way, whose flush finds the entry if it was
        inserted here: the chain then runs ahead of the record's head, which the general flush puts right."""
        record = await self.feedback.find_one({"_id": feedback_id}, ledger.APPEND_FIELDS)
        direct = ledger.append_directly(record, entry) if record else None
        if direct is None or not await self.ledger.insert(direct.stored):
            return False
        for condition, update in updates:
            applied = await self.feedback.update_one(
                {"_id": feedback_id, **direct.guard, **condition}, direct.applied_to(update)
            )
            if applied.matched_count:
                return True
        return False

    async def _apply_first(
        self,
        feedback_id: str,
        updates: Sequence[tuple[Document, Document]],
        entry: Document,
        staging: Callable[[Document, Document], tuple[Document, Document]],
    ) -> Document | None:
        """The record after the first of `updates` that applied, or None; returns what a flush reads of it."""
        for condition, update in updates:
            guard, staged = staging(update, entry)
            recorded = await self.feedback.find_one_and_update(
                {"_id": feedback_id, **guard, **condition},
                staged,
                projection=ledger.FLUSH_FIELDS,
                return_document=ReturnDocument.AFTER,
            )
            if recorded is not None:
                return recorded
        return None

    async def relay_once(self) -> int:
        """Publishes events and appends ledger entries a crash or an outage left behind; returns how many.

        Takes each item's turn like every other write, and leaves alone what the settler is still finishing.
        """
        unsettled, serial = self.settler.unsettled, self.serial
        relayed = await self.outbox.relay_once(self.feedback, skip=unsettled, lock=serial)
        return relayed + await self.ledger.relay_once(self.feedback, skip=unsettled, lock=serial)

    async def run_relays(self, *, interval_seconds: float = 1.0) -> None:
        waits_for_infrastructure: tuple[type[BaseException], ...] = (
            PyMongoError,
            ledger.LedgerContention,
            *TRANSIENT_ERRORS,
        )
        while True:
            try:
                await self.relay_once()
            except waits_for_infrastructure as error:
                log.warning("relays waiting for infrastructure", error=repr(error))
            except Exception:
                log.exception("relay error")
            await asyncio.sleep(interval_seconds)

    async def record_inbound(self, event: CloudEvent[Any]) -> None:
        await self.submit(data=event.data, channel="kafka", origin=(event.source, event.id))


# What `public_view` reads. A resident's status check fetches only these: not the text, contact data, ledger or
# routing fields, about half of a stored item.
PUBLIC_FIELDS: Document = dict.fromkeys(
    ("status", "kind", "category", "allegations", "submitted_at", "answer", "erased_at", "unit_id", "level", "history"),
    1,
)


def public_view(document: Document) -> Document:
    """What a resident sees with their tracking code: never contact data, internal notes or staff reasons."""
    answer = document.get("answer")
    return {
        "feedback_id": document["_id"],
        "status": document["status"],
        "kind": document["kind"],
        "category": document.get("category"),
        "allegations": document.get("allegations") or [],  # what the resident declared, as they declared it
        "submitted_at": _iso(document["submitted_at"]),
        "answer": {
            # As published everywhere else (event, session summary): what the answer preview showed staff.
            "text": domain.redact(answer["text"]),
            "answered_at": _iso(answer["answered_at"]),
            "contested": bool(answer.get("contested_at")),
        }
        if answer
        else None,
        "erased": bool(document.get("erased_at")),
        # Who has it now and at which level of the chain: the department's units are public, people are not.
        "unit_id": document.get("unit_id"),
        "level": document.get("level"),
        "history": [_public_history(entry) for entry in document.get("history", []) if _shown_to_resident(entry)],
    }


_PUBLIC_MOVES = frozenset({"routed", "escalated"})


def _moves_down(rule: str) -> bool:
    """Routing decisions that may put an item at a lower level than an escalation had reached."""
    return rule == "triage" or rule.startswith("referral:")


def _shown_to_resident(entry: Document) -> bool:
    # How staff classify an item is internal; the resident sees what was done, not how it was filed.
    return entry.get("action") != "triaged"


def _public_history(entry: Document) -> Document:
    item: Document = {"status": entry["status"], "at": _iso(entry["at"])}
    if "action" in entry:
        item["action"] = entry["action"]
    if entry.get("by") == RESIDENT and "text" in entry:
        item["text"] = entry["text"]  # the resident's own words; staff reasons stay internal
    if entry["status"] in _PUBLIC_MOVES and "action" not in entry:
        # With whom it went and why it moved up (a reason code, never staff's words).
        item |= {key: entry[key] for key in ("unit_id", "level", "reason") if key in entry}
    return item


def staff_view(document: Document, *, now: datetime | None = None) -> Document:
    view = {k: v for k, v in document.items() if k not in _PRIVATE_FIELDS and not k.startswith("_")}
    view["feedback_id"] = document["_id"]
    view["history"] = document.get("history", [])
    view["has_contact"] = "contact_encrypted" in document or "contact" in document
    view["overdue"] = domain.overdue_since(document, now or utc_now()) is not None
    # Records from before triage existed have no state: a negative one needs none, any other one does.
    state = document.get("triage_state") or ("not_required" if document.get("negative") else "awaiting")
    view["triage_state"] = state
    view["needs_triage"] = state in domain.NEEDS_TRIAGE
    view["flagged_for_triage"] = state == "flagged"
    view.setdefault("allegations", [])
    return view


def _submitter(channel: str, origin: tuple[str, str] | None) -> str:
    """Who the ledger names for a submission: residents stay anonymous, systems by their source."""
    if origin:
        return f"system:{origin[0]}"
    return {"api": RESIDENT, "web": RESIDENT, "session": "facilitator"}.get(channel, f"system:{channel}")


def _iso(value: datetime) -> str:
    return value.isoformat()
