"""The audit ledger: an append-only, hash-chained history of every feedback item, for the oversight board.

Each entry's `hash` is SHA-256 over the canonical JSON of the entry without its hash, and each entry
carries the previous entry's hash (`prev_hash`), so editing, reordering or removing any stored entry
breaks the chain from that point on. The feedback record also keeps the chain's head (`audit_seq`,
`audit_head`), so cutting entries off the end is caught too.

Crash safety without multi-document transactions: a state change stages its ledger entries inside the
feedback document in the same single-document write as the change itself (like the event outbox), and
`flush` then appends them to the `audit` collection. A crash in between leaves them staged; the relay
appends them later. Appends are idempotent on the entry id (the event id where an event caused the
entry), and the unique (feedback_id, seq) index makes racing writers collide instead of forking the chain:
the loser re-reads the chain and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from heard_shared.events import utc_now
from heard_shared.logs import get_logger
from heard_shared.mongo import DUPLICATE_KEY, Document
from heard_shared.outbox import DocumentLock, relay_each

log = get_logger(__name__)

AuditAction = Literal[
    "submitted",
    "routed",
    "referred",
    "acknowledged",
    "answered",
    "escalated",
    "contested",
    "reopened",
    "withdrawn",
    "closed",
    "replied",
    "note_added",
    "erased",
    "contact_disclosed",
    "consent_withdrawn",
    "triaged",
]
GENESIS_HASH = "0" * 64
STAGED_FIELD = "_audit_staged"
# Counts every entry ever staged, so a flush can tell "nothing was staged since I read" with an integer
# comparison instead of comparing arrays of documents (which not every MongoDB-wire server can do).
STAGED_SEQ_FIELD = "_audit_staged_seq"
DUE_FIELD = "_audit_due"
HEAD_SEQ_FIELD = "audit_seq"
HEAD_HASH_FIELD = "audit_head"
# What `flush` reads of a record: a write that returns these saves it a read.
FLUSH_FIELDS: Document = {STAGED_FIELD: 1, STAGED_SEQ_FIELD: 1, HEAD_SEQ_FIELD: 1, HEAD_HASH_FIELD: 1}
# Ids of the latest consumed events whose entries the record staged, newest last. A write that stages a consumed
# event's entry applies only while its id is not here, and adds it: a redelivered event stages nothing, so an entry
# staged with a new id cannot be in the chain yet and goes right after the head without reading the chain. Bounded
# because top-level reminders repeat without end; a redelivery comes from the consumer's uncommitted batch, a few
# events back at most.
RECORDED_FIELD = "_recorded_events"
RECORDED_KEPT = 64
# Not part of what is hashed: `_id` is derived from (feedback_id, seq) and `hash` is the result.
_UNHASHED = frozenset({"_id", "hash"})


# -- pure: entries, hashing, verification ----------------------------------------------------------------------


def stage(
    action: AuditAction,
    *,
    actor: str,
    at: datetime | None = None,
    details: Mapping[str, Any] | None = None,
    event_id: str | None = None,
) -> Document:
    """An entry waiting for its place in the chain. `details` must never hold plaintext personal data."""
    return {
        "entry_id": event_id or str(uuid.uuid4()),
        "event_id": event_id,
        "action": action,
        "actor": actor,
        "at": _millis(at or utc_now()),
        "details": dict(details or {}),
    }


def _millis(moment: datetime) -> datetime:
    """BSON dates keep milliseconds; the hash is over what is stored, so cut the rest before hashing."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _millis(value).strftime("%Y-%m-%dT%H:%M:%S.") + f"{_millis(value).microsecond // 1000:03d}Z"
    if isinstance(value, Mapping):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    return value


def canonical_json(entry: Mapping[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTC dates to the millisecond: the same entry always gives the same bytes."""
    body = {k: v for k, v in entry.items() if k not in _UNHASHED}
    return json.dumps(_canonical_value(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(entry)).hexdigest()


def chain_entry(*, feedback_id: str, seq: int, prev_hash: str, staged: Mapping[str, Any]) -> Document:
    entry: Document = {
        "feedback_id": feedback_id,
        "seq": seq,
        "entry_id": staged["entry_id"],
        "event_id": staged.get("event_id"),
        "action": staged["action"],
        "actor": staged["actor"],
        "at": _millis(staged["at"]),
        "details": dict(staged.get("details") or {}),
        "prev_hash": prev_hash,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def stored_entry(entry: Document) -> Document:
    """A chained entry as the `audit` collection stores it: its `_id` makes a second writer of a seq collide."""
    return {"_id": f"{entry['feedback_id']}:{entry['seq']:09d}", **entry}


def first_entry(feedback_id: str, staged: Mapping[str, Any]) -> Document:
    """Entry 1 of a new item's chain: it follows the genesis hash, so it is known before anything is stored."""
    return stored_entry(chain_entry(feedback_id=feedback_id, seq=1, prev_hash=GENESIS_HASH, staged=staged))


@dataclass(frozen=True)
class Verification:
    verified: bool
    broken_at: int | None = None
    reason: str | None = None
    entries: int = 0


def verify_chain(entries: Iterable[Mapping[str, Any]], *, head: tuple[int, str] | None = None) -> Verification:
    """Checks sequence, links and hashes; `head` is the (seq, hash) the feedback record last saw appended."""
    ordered = sorted(entries, key=lambda e: int(e.get("seq", 0)))
    previous = GENESIS_HASH
    expected_seq = 1
    for entry in ordered:
        seq = entry.get("seq")
        if seq != expected_seq:
            return Verification(False, expected_seq, f"entry {expected_seq} is missing", len(ordered))
        if entry.get("prev_hash") != previous:
            return Verification(False, expected_seq, "does not link to the entry before it", len(ordered))
        if entry_hash(entry) != entry.get("hash"):
            return Verification(False, expected_seq, "content does not match its hash", len(ordered))
        previous = str(entry["hash"])
        expected_seq += 1
    if head is not None:
        head_seq, head_hash = head
        if head_seq >= expected_seq:
            return Verification(False, expected_seq, f"entries {expected_seq}..{head_seq} are missing", len(ordered))
        if ordered[head_seq - 1]["hash"] != head_hash:
            return Verification(False, head_seq, "differs from the entry the record saw appended", len(ordered))
    return Verification(True, None, None, len(ordered))


# -- staging inside the feedback document ----------------------------------------------------------------------


def with_audit(update: Document, *entries: Document) -> Document:
    """Adds staged entries to a MongoDB update so they are written with the state change they record."""
    if not entries:
        return update
    merged = {op: dict(fields) for op, fields in update.items()}
    merged.setdefault("$push", {})[STAGED_FIELD] = {"$each": list(entries)}
    merged.setdefault("$inc", {})[STAGED_SEQ_FIELD] = len(entries)
    merged.setdefault("$set", {})[DUE_FIELD] = True
    return merged


def _not_remembered(event_id: str) -> Document:
    """Filter terms: the record remembers events (see RECORDED_FIELD), and not this one."""
    # `$nin`, not `$ne`: nx-27017 compares `$ne` with the whole array instead of with each element.
    return {RECORDED_FIELD: {"$exists": True, "$nin": [event_id]}}


def _remembering(update: Document, event_id: str) -> Document:
    """`update` (its operators copied) that also remembers `event_id`, keeping the newest RECORDED_KEPT."""
    merged = {op: dict(fields) for op, fields in update.items()}
    merged.setdefault("$push", {})[RECORDED_FIELD] = {"$each": [event_id], "$slice": -RECORDED_KEPT}
    return merged


def with_consumed(update: Document, entry: Document) -> tuple[Document, Document]:
    """(filter terms, update): stages a consumed event's entry and remembers its id (see RECORDED_FIELD), unless the
    record already remembers it. A record stored before intake remembered ids has none: see `without_memory`."""
    return _not_remembered(entry["event_id"]), _remembering(with_audit(update, entry), entry["event_id"])


# What `append_directly` reads of a record.
APPEND_FIELDS: Document = {**FLUSH_FIELDS, RECORDED_FIELD: 1}


@dataclass(frozen=True)
class DirectAppend:
    """A consumed event's entry chained right after the head a record showed, to be inserted before the record's own
    write, which then applies the change, remembers the event and moves the head at once: two writes where staging
    takes three (the change with the staged entry, the insert, the head's move with the staged list's clearing)."""

    stored: Document  # the chain entry, as the `audit` collection stores it
    guard: Document  # filter terms: the head is still the one read, and the event is still not remembered
    head: Document  # $set terms: the new head

    def applied_to(self, update: Document) -> Document:
        merged = _remembering(update, self.stored["entry_id"])
        merged.setdefault("$set", {}).update(self.head)
        return merged


def append_directly(record: Mapping[str, Any], entry: Document) -> DirectAppend | None:
    """How to append a consumed event's entry to the chain of `record` (read with APPEND_FIELDS) without staging it;
    None when it must be staged: the record remembers the event (a redelivery) or remembers none (stored before
    the memory), has no head yet (its chain is being started) or has entries staged (they go first)."""
    memory, head = record.get(RECORDED_FIELD), head_of(record)
    if memory is None or entry["event_id"] in memory or head is None or record.get(STAGED_FIELD):
        return None
    seq, prev_hash = head
    chained = chain_entry(feedback_id=str(record["_id"]), seq=seq + 1, prev_hash=prev_hash, staged=entry)
    return DirectAppend(
        stored=stored_entry(chained),
        guard={**_not_remembered(entry["event_id"]), HEAD_SEQ_FIELD: seq},
        head={HEAD_SEQ_FIELD: seq + 1, HEAD_HASH_FIELD: chained["hash"]},
    )


def without_memory(update: Document, entry: Document) -> tuple[Document, Document]:
    """The same for a record that remembers no ids yet: its chain may already hold the entry, so the flush must
    read the chain. The write starts the memory."""
    _, merged = with_consumed(update, entry)
    return {RECORDED_FIELD: {"$exists": False}}, merged


def audit_fields(*entries: Document) -> Document:
    """The same for a document being inserted."""
    return {STAGED_FIELD: list(entries), STAGED_SEQ_FIELD: len(entries), DUE_FIELD: bool(entries), RECORDED_FIELD: []}


def chain_started(first: Document) -> tuple[Document, Document]:
    """(filter, update): records in a new item's document that its only staged entry is now entry 1 of the chain.

    Applies only while nothing was ever appended (no head yet) and that entry is still the only one
    staged; otherwise another flush has taken over and records the head itself.
    """
    return (
        {"_id": first["feedback_id"], HEAD_SEQ_FIELD: {"$exists": False}, STAGED_FIELD: {"$size": 1}},
        {"$set": {STAGED_FIELD: [], DUE_FIELD: False, HEAD_SEQ_FIELD: 1, HEAD_HASH_FIELD: first["hash"]}},
    )


# -- the collection --------------------------------------------------------------------------------------------


class LedgerContention(Exception):
    """Too many writers raced for the same chain; the staged entries stay and the relay tries again."""


class AuditLedger:
    def __init__(self, entries: AsyncCollection[Document], *, max_attempts: int = 50) -> None:
        self.entries = entries
        self.max_attempts = max_attempts

    async def ensure_indexes(self) -> None:
        await self.entries.create_index([("feedback_id", 1), ("seq", 1)], unique=True)
        # The oversight board's list of severity changes reads entries by action, newest first.
        await self.entries.create_index([("action", 1), ("at", -1)])

    async def chain(self, feedback_id: str) -> list[Document]:
        cursor = self.entries.find({"feedback_id": feedback_id}).sort("seq", 1)
        return [entry async for entry in cursor]

    async def append(self, feedback_id: str, *staged: Mapping[str, Any]) -> tuple[int, tuple[int, str] | None]:
        """Appends entries not yet in the chain, in order; returns how many and the chain's head afterwards."""
        appended = 0
        links = await self._links(feedback_id)
        position = 0
        attempts = 0
        while position < len(staged):
            entry = staged[position]
            if entry["entry_id"] in links.ids:
                position += 1  # already there: a retry, a redelivery or a second flusher got here first
                continue
            seq, prev_hash = links.next()
            document = chain_entry(feedback_id=feedback_id, seq=seq, prev_hash=prev_hash, staged=entry)
            try:
                await self.entries.insert_one(stored_entry(document))
            except DuplicateKeyError:
                # Someone else took this seq since we read the chain: read it again and find our place.
                attempts += 1
                if attempts >= self.max_attempts:
                    raise LedgerContention(f"gave up appending to the chain of {feedback_id}") from None
                await asyncio.sleep(0.005 * attempts)
                links = await self._links(feedback_id)
                continue
            links.add(document)
            appended += 1
            position += 1
        return appended, links.head

    async def insert(self, stored: Document) -> bool:
        """Inserts one chained entry (see `append_directly`); False when its seq is taken: someone appended first."""
        try:
            await self.entries.insert_one(stored)
        except DuplicateKeyError:
            return False
        return True

    async def start_chains(self, firsts: list[Document]) -> None:
        """Appends entry 1 (see `first_entry`) of many new chains in one write; entries already there are skipped."""
        try:
            await self.entries.insert_many(firsts, ordered=False)
        except BulkWriteError as error:
            # A flusher got there first with the very same entry (same seq, same content, same _id).
            if any(failure.get("code") != DUPLICATE_KEY for failure in error.details.get("writeErrors", [])):
                raise

    async def _links(self, feedback_id: str) -> _Links:
        cursor = self.entries.find({"feedback_id": feedback_id}, {"entry_id": 1, "seq": 1, "hash": 1})
        links = _Links()
        async for entry in cursor:
            links.add(entry)
        return links

    async def verify(self, feedback_id: str, *, head: tuple[int, str] | None = None) -> Verification:
        return verify_chain(await self.chain(feedback_id), head=head)

    async def feedback_ids(self) -> list[str]:
        return sorted(str(value) for value in await self.entries.distinct("feedback_id"))

    # -- moving staged entries into the chain ------------------------------------------------------------------

    async def flush(
        self,
        records: AsyncCollection[Document],
        feedback_id: str,
        *,
        record: Mapping[str, Any] | None = None,
        fresh: Container[str] = (),
    ) -> int:
        """Appends the entries staged in one feedback document, then removes them there; returns how many.

        `record` is the document as the caller's own write returned it, which saves reading it again; `fresh` names
        the entries that write staged, which cannot be in the chain yet.
        """
        document = record
        if document is None:
            document = await records.find_one(
                {"_id": feedback_id}, {STAGED_FIELD: 1, STAGED_SEQ_FIELD: 1, HEAD_SEQ_FIELD: 1, HEAD_HASH_FIELD: 1}
            )
        staged: list[Document] = (document or {}).get(STAGED_FIELD) or []
        sequence = (document or {}).get(STAGED_SEQ_FIELD)
        if not staged:
            return 0
        head = head_of(document)
        only_fresh = all(entry["entry_id"] in fresh for entry in staged)
        if (
            head
            and sequence is not None
            and only_fresh
            and await self._append_after(records, feedback_id, head, staged, sequence)
        ):
            return len(staged)
        appended, head = await self.append(feedback_id, *staged)
        if head is not None:
            head_seq, head_hash = head
            await records.update_one(
                {
                    "_id": feedback_id,
                    "$or": [{HEAD_SEQ_FIELD: {"$exists": False}}, {HEAD_SEQ_FIELD: {"$lt": head_seq}}],
                },
                {"$set": {HEAD_SEQ_FIELD: head_seq, HEAD_HASH_FIELD: head_hash}},
            )
        cleared = await records.update_one(
            {"_id": feedback_id, STAGED_SEQ_FIELD: sequence}, {"$set": {STAGED_FIELD: [], DUE_FIELD: False}}
        )
        if sequence is None or not cleared.modified_count:
            # More was staged meanwhile: remove exactly what is now in the chain ($pullAll matches by value,
            # which FerretDB 1.x supports; it has no query conditions inside $pull).
            await records.update_one({"_id": feedback_id}, {"$pullAll": {STAGED_FIELD: staged}})
            await records.update_one({"_id": feedback_id, STAGED_FIELD: {"$size": 0}}, {"$set": {DUE_FIELD: False}})
        return appended

    async def _append_after(
        self,
        records: AsyncCollection[Document],
        feedback_id: str,
        head: tuple[int, str],
        staged: Sequence[Mapping[str, Any]],
        sequence: int,
    ) -> bool:
        """Appends entries nobody can have appended yet right after the head the record names, then moves the head and
        empties the staged list in one write: two round trips instead of five. False leaves the rest to `flush`'s
        general way, which reads the chain: the record's head was behind the chain (a flush stopped between its
        insert and its update; the unique seq says so), or the record changed meanwhile."""
        seq, prev_hash = head
        for entry in staged:
            document = chain_entry(feedback_id=feedback_id, seq=seq + 1, prev_hash=prev_hash, staged=entry)
            if not await self.insert(stored_entry(document)):
                return False
            seq, prev_hash = seq + 1, document["hash"]
        moved = await records.update_one(
            {"_id": feedback_id, STAGED_SEQ_FIELD: sequence, HEAD_SEQ_FIELD: head[0]},
            {"$set": {STAGED_FIELD: [], DUE_FIELD: False, HEAD_SEQ_FIELD: seq, HEAD_HASH_FIELD: prev_hash}},
        )
        return bool(moved.modified_count)

    async def try_flush(
        self,
        records: AsyncCollection[Document],
        feedback_id: str,
        *,
        record: Mapping[str, Any] | None = None,
        fresh: Container[str] = (),
    ) -> None:
        """The fast path after a write: a failure here is fine, the relay appends the staged entries later."""
        try:
            await self.flush(records, feedback_id, record=record, fresh=fresh)
        except (PyMongoError, LedgerContention) as error:
            log.warning("audit append deferred to relay", feedback_id=feedback_id, error=repr(error))

    async def relay_once(
        self,
        records: AsyncCollection[Document],
        *,
        limit: int = 500,
        skip: Container[str] = (),
        lock: DocumentLock | None = None,
    ) -> int:
        """One pass over items with staged entries; `skip` names items whose writer is still finishing them."""
        # Ids first, work after, as in the outbox relay: no cursor stays open while appending.
        due = [document["_id"] async for document in records.find({DUE_FIELD: True}, {"_id": 1}).limit(limit)]

        async def append(feedback_id: str) -> int:
            async with lock(feedback_id) if lock else contextlib.nullcontext():
                return await self.flush(records, feedback_id)

        appended, failure = await relay_each((feedback_id for feedback_id in due if feedback_id not in skip), append)
        if failure is not None:
            raise failure
        return appended


class _Links:
    """What an append needs to know of a chain: the entry ids in it and its last link."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.last: tuple[int, str] | None = None

    def add(self, entry: Mapping[str, Any]) -> None:
        self.ids.add(str(entry["entry_id"]))
        seq = int(entry["seq"])
        if self.last is None or seq > self.last[0]:
            self.last = (seq, str(entry["hash"]))

    def next(self) -> tuple[int, str]:
        return (1, GENESIS_HASH) if self.last is None else (self.last[0] + 1, self.last[1])

    @property
    def head(self) -> tuple[int, str] | None:
        return self.last


def public_entry(entry: Mapping[str, Any]) -> Document:
    """An entry as the oversight endpoint and the CLI show it."""
    return {
        "seq": entry.get("seq"),
        "at": _canonical_value(entry["at"]) if isinstance(entry.get("at"), datetime) else entry.get("at"),
        "action": entry.get("action"),
        "actor": entry.get("actor"),
        "details": _canonical_value(entry.get("details") or {}),
        "event_id": entry.get("event_id"),
        "entry_id": entry.get("entry_id"),
        "prev_hash": entry.get("prev_hash"),
        "hash": entry.get("hash"),
    }


def head_of(record: Mapping[str, Any] | None) -> tuple[int, str] | None:
    if not record or record.get(HEAD_SEQ_FIELD) is None or record.get(HEAD_HASH_FIELD) is None:
        return None
    return int(record[HEAD_SEQ_FIELD]), str(record[HEAD_HASH_FIELD])
