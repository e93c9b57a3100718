"""The delivery ledger: every delivery is written before any attempt, and every attempt is recorded.

A delivery's id is derived from (event, recipient, channel, template, variant), so a redelivered event, a
restart or a second replica inserts nothing new. Sending is claimed: a conditional update takes a due,
unleased delivery and increments its attempt number, which then fences every later write (a replica whose
lease expired cannot record an outcome over a newer attempt). Just before a message leaves, the attempt is
marked as sending; an attempt found marked but without an outcome was interrupted mid-send (a crash), which
the dispatcher treats per channel (e-mail and webhooks are resent under the same Message-ID / webhook-id,
which receivers deduplicate on; SMS is recorded as "maybe sent" and not resent blindly).

Statuses: queued → sent, or failed / bounced / suppressed / maybe_sent. While a delivery is queued it carries
`claimable_ms`, the moment (epoch ms) from which a replica may claim it: the later of its due time and the end
of its current lease. Claims are one range over that single integer field, which every MongoDB-wire server
answers from an index; a date range over (status, due_at) was evaluated document by document on nx-27017
(measured: 2–3 s a claim with 8,000 deliveries queued, holding the store meanwhile). A finished delivery has no
`claimable_ms`, so the range only ever covers the queue. Attempts are kept as JSON strings
in `attempt_log` (strings behave the same on MongoDB and the local MongoDB-wire servers; embedded
documents inside $push do not), and flags are 0/1 integers rather than booleans for the same reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from heard_shared.events import deterministic_event_id, utc_now
from heard_shared.mongo import DUPLICATE_KEY, Document, epoch_ms, migrate_once

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FINAL_STATUSES = ("sent", "failed", "bounced", "suppressed", "maybe_sent")


def delivery_id(event_source: str, event_id: str, recipient: str, channel: str, template: str, variant: str) -> str:
    return deterministic_event_id("delivery", event_source, event_id, recipient, channel, template, variant)


@dataclass(frozen=True)
class Claimed:
    """A delivery this replica now holds; `attempt` fences every write about it."""

    document: Document
    attempt: int

    @property
    def id(self) -> str:
        return str(self.document["_id"])

    @property
    def interrupted(self) -> bool:
        """An earlier attempt began sending and no outcome was recorded since (its process died, or its lease
        ran out and a later claim took over before it got as far as sending)."""
        sending = int(self.document.get("sending_attempt", 0))
        return self.attempt > sending > int(self.document.get("outcome_attempt", 0))


class DeliveryLedger:
    def __init__(self, deliveries: AsyncCollection[Document]) -> None:
        self.deliveries = deliveries

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_index("claimable_ms", sparse=True)
        await migrate_once(self.deliveries.database, "deliveries.claimable_ms", self._key_queued_deliveries)
        await self.deliveries.create_index([("feedback_id", ASCENDING), ("created_at", ASCENDING)])
        await self.deliveries.create_index([("recipient", ASCENDING), ("created_at", ASCENDING)])

    async def _key_queued_deliveries(self) -> None:
        """Deliveries queued before `claimable_ms` existed get it (ids first: no cursor open while writing)."""
        unkeyed: Document = {"status": "queued", "claimable_ms": {"$exists": False}}
        for document in await self.deliveries.find(unkeyed, {"due_at": 1, "lease_until": 1}).to_list():
            claimable = epoch_ms(max(document["due_at"], document["lease_until"]))
            await self.deliveries.update_one({"_id": document["_id"], **unkeyed}, {"$set": {"claimable_ms": claimable}})

    @staticmethod
    def new(
        *,
        delivery: str,
        feedback_id: str | None,
        event_id: str,
        event_type: str,
        recipient: str,
        audience: str,
        channel: str,
        template: str,
        variant: str,
        urgent: bool,
        context: Mapping[str, Any],
        due_at: datetime,
        now: datetime,
        give_up_at: datetime,
        status: str = "queued",
        reason: str | None = None,
    ) -> Document:
        document: Document = {
            "_id": delivery,
            "feedback_id": feedback_id,
            "event_id": event_id,
            "event_type": event_type,
            "recipient": recipient,
            "audience": audience,
            "channel": channel,
            "template": template,
            "variant": variant,
            "urgent": int(urgent),
            "context": json.dumps(dict(context), sort_keys=True),
            "status": status,
            "reason": reason,
            "attempts": 0,
            "sending_attempt": 0,
            "outcome_attempt": 0,
            "attempt_log": [],
            "due_at": due_at,
            "give_up_at": give_up_at,
            "lease_until": EPOCH,
            "lease_owner": None,
            "created_at": now,
            "updated_at": now,
        }
        if status == "queued":
            document["claimable_ms"] = epoch_ms(due_at)
        return document

    async def record(self, documents: Iterable[Document]) -> int:
        """Inserts deliveries that do not exist yet; returns how many were new."""
        batch = list(documents)
        if not batch:
            return 0
        try:
            result = await self.deliveries.insert_many(batch, ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as error:
            failures = error.details.get("writeErrors", [])
            if any(failure.get("code") != DUPLICATE_KEY for failure in failures):
                raise
            return len(batch) - len(failures)

    async def claim_due(self, *, owner: str, now: datetime, lease: timedelta, limit: int) -> list[Claimed]:
        """Takes up to `limit` due deliveries for this replica; another replica's live lease is respected."""
        due: Document = {"claimable_ms": {"$lte": epoch_ms(now)}}
        # Ids first, claims after: no cursor stays open while writing (SQLite-backed servers hold writers back).
        candidates = [
            document["_id"]
            async for document in self.deliveries.find(due, {"_id": 1}).sort("claimable_ms", ASCENDING).limit(limit)
        ]
        if not candidates:
            return []
        lease_until = now + lease
        lease_fields: Document = {"lease_until": lease_until, "claimable_ms": epoch_ms(lease_until), "updated_at": now}
        claim: Document = {"$set": lease_fields, "$inc": {"attempts": 1}}
        # One write claims the batch: each document is re-checked and updated atomically on its own, so of two
        # replicas racing for one delivery only one matches; the claim token then reads back exactly ours.
        lease_fields["lease_owner"] = f"{owner}#{uuid.uuid4().hex}"
        await self.deliveries.update_many({"_id": {"$in": candidates}, **due}, claim)
        found = self.deliveries.find({"_id": {"$in": candidates}, "lease_owner": lease_fields["lease_owner"]})
        return [Claimed(document, int(document["attempts"])) async for document in found]

    async def suppress_queued(
        self, *, feedback_id: str, template: str, except_event_id: str, reason: str
    ) -> dict[str, int]:
        """Suppresses an item's queued, unclaimed deliveries of one template made for other events; returns how
        many per channel. A claimed one is left to its holder, which finds it moot at send time."""
        now = utc_now()
        moot: Document = {
            "feedback_id": feedback_id,
            "template": template,
            "status": "queued",
            "event_id": {"$ne": except_event_id},
            "lease_until": {"$lte": now},
        }
        found = [d async for d in self.deliveries.find(moot, {"_id": 1, "channel": 1})]
        if not found:
            return {}
        # No attempt is made, so none is logged; the reason says why it was never sent.
        ids = [document["_id"] for document in found]
        suppressed = {"status": "suppressed", "reason": reason, "finished_at": now, "updated_at": now}
        await self.deliveries.update_many(
            {**moot, "_id": {"$in": ids}}, {"$set": suppressed, "$unset": {"claimable_ms": ""}}
        )
        counts: dict[str, int] = {}
        async for document in self.deliveries.find({"_id": {"$in": ids}, "finished_at": now}, {"channel": 1}):
            counts[document["channel"]] = counts.get(document["channel"], 0) + 1
        return counts

    async def mark_sending(self, claimed: Claimed, *, now: datetime, details: Mapping[str, Any] | None = None) -> bool:
        """Records that attempt N is about to leave; False if the claim was lost (another replica took over)."""
        result = await self.deliveries.update_one(
            {"_id": claimed.id, "attempts": claimed.attempt, "status": "queued"},
            {"$set": {"sending_attempt": claimed.attempt, "sending_at": now, **(details or {})}},
        )
        return bool(result.modified_count)

    async def finish(
        self,
        claimed: Claimed,
        *,
        status: str,
        now: datetime,
        entry: Mapping[str, Any],
        next_due: datetime | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> bool:
        """Records attempt N's outcome; `status` "queued" with `next_due` schedules the next attempt."""
        update: Document = {
            "$set": {
                "status": status,
                "outcome_attempt": claimed.attempt,
                "lease_until": EPOCH,
                "lease_owner": None,
                "updated_at": now,
                **(fields or {}),
            },
            "$push": {"attempt_log": json.dumps({"attempt": claimed.attempt, **entry}, default=str)},
        }
        if next_due is not None:
            update["$set"]["due_at"] = next_due
        if status == "queued":
            update["$set"]["claimable_ms"] = epoch_ms(next_due or claimed.document["due_at"])
        else:
            update["$unset"] = {"claimable_ms": ""}
        if status in FINAL_STATUSES:
            update["$set"]["finished_at"] = now
        result = await self.deliveries.update_one({"_id": claimed.id, "attempts": claimed.attempt}, update)
        return bool(result.modified_count)

    async def release(self, claimed: Claimed, *, now: datetime, due: datetime) -> None:
        """Gives a claimed delivery back untouched (its attempt did not start), e.g. at shutdown."""
        await self.deliveries.update_one(
            {"_id": claimed.id, "attempts": claimed.attempt, "status": "queued"},
            {
                "$set": {
                    "lease_until": EPOCH,
                    "lease_owner": None,
                    "due_at": due,
                    "claimable_ms": epoch_ms(due),
                    "updated_at": now,
                },
                "$inc": {"attempts": -1},
            },
        )

    async def get(self, delivery: str) -> Document | None:
        return await self.deliveries.find_one({"_id": delivery})

    async def list(
        self, *, feedback_id: str | None, recipient: str | None, status: str | None, limit: int
    ) -> list[Document]:
        query: Document = {}
        if feedback_id:
            query["feedback_id"] = feedback_id
        if recipient:
            query["recipient"] = recipient
        if status:
            query["status"] = status
        cursor = self.deliveries.find(query).sort("created_at", ASCENDING).limit(limit)
        return [document async for document in cursor]

    async def oldest_due_queued(self, now: datetime) -> datetime | None:
        """The due time of the longest-waiting delivery nobody holds (one being sent is not waiting)."""
        document = await self.deliveries.find_one(
            {"claimable_ms": {"$lte": epoch_ms(now)}}, {"due_at": 1}, sort=[("claimable_ms", ASCENDING)]
        )
        return document["due_at"] if document else None


def public_delivery(document: Mapping[str, Any]) -> Document:
    """A delivery as the API shows it (the staff console's source): status, attempts, never an address."""
    log = [json.loads(entry) for entry in document.get("attempt_log") or []]
    return {
        "delivery_id": document["_id"],
        "feedback_id": document.get("feedback_id"),
        "event_id": document.get("event_id"),
        "event_type": document.get("event_type"),
        "recipient": document.get("recipient"),
        "audience": document.get("audience"),
        "channel": document.get("channel"),
        "template": document.get("template"),
        "variant": document.get("variant") or None,
        "language": document.get("language"),
        "status": document.get("status"),
        "reason": document.get("reason"),
        "urgent": bool(document.get("urgent")),
        "attempts": len(log),
        "attempt_log": log,
        "message_id": document.get("message_id"),
        "due_at": _iso(document.get("due_at")),
        "created_at": _iso(document.get("created_at")),
        "updated_at": _iso(document.get("updated_at")),
        "finished_at": _iso(document.get("finished_at")),
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None
