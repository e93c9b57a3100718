"""Finishes new submissions off the request path, many at a time.

A submission is safe once its document is inserted: the document carries its `feedback.submitted` event
(outbox) and its first audit-ledger entry (staged), and the request publishes the event before it
answers. What is left is bookkeeping nobody waits for: append the ledger entry to the chain and empty
the outbox and the staging field. Done one submission at a time that is four more round trips each
(re-read, append, record the head, clear); here one `insert_many` appends every entry 1 that arrived
meanwhile, and one `bulk_write` records each chain's head and empties each outbox. Nothing is
re-read: entry 1 of a new chain and the events just published are known in memory.

If a batch fails, or the process dies first, the relays find the staged entries and pending events and
finish the work (republishing is harmless: consumers deduplicate by event id). While a submission is
queued here the relays leave it alone (`unsettled`), so they do not race to publish it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from heard_intake import ledger
from heard_intake.ledger import AuditLedger
from heard_shared.keyed_lock import KeyedLock
from heard_shared.logs import get_logger
from heard_shared.mongo import Document
from heard_shared.outbox import published_on_insert

log = get_logger(__name__)


@dataclass(frozen=True)
class NewSubmission:
    feedback_id: str
    first_entry: Document  # entry 1 of its audit chain, as `ledger.first_entry` built it
    published: bool  # its `feedback.submitted` went out; if not, the outbox relay publishes it later


@dataclass
class _Claim:
    settler: SubmissionSettler
    feedback_id: str
    queued: bool = False

    def settle(self, first_entry: Document, *, published: bool) -> None:
        self.settler._add(NewSubmission(self.feedback_id, first_entry, published))
        self.queued = True


class SubmissionSettler:
    def __init__(
        self,
        feedback: AsyncCollection[Document],
        audit: AuditLedger,
        serial: KeyedLock,
        *,
        max_batch: int = 500,
        gather_seconds: float = 0.05,
    ) -> None:
        self.feedback = feedback
        self.audit = audit
        self.serial = serial
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self.unsettled: set[str] = set()
        self._queue: list[NewSubmission] = []
        self._worker: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def claim(self, feedback_id: str) -> Iterator[_Claim]:
        """Keeps the relays off a new submission from before its insert until it is settled.

        Leaving the block without calling `settle` (a duplicate, an error) hands the item back to the relays.
        """
        # A resent request (same id) may be in flight beside the first: only the claim that marked the item unmarks it.
        marked = feedback_id not in self.unsettled
        self.unsettled.add(feedback_id)
        claim = _Claim(self, feedback_id)
        try:
            yield claim
        finally:
            if marked and not claim.queued:
                self.unsettled.discard(feedback_id)

    def _add(self, submission: NewSubmission) -> None:
        self._queue.append(submission)
        if self._worker is None or self._worker.done():
            # Started on demand, so every IntakeService settles its submissions with no loop to wire up.
            self._worker = asyncio.create_task(self._drain(), name="settle-submissions")

    async def idle(self) -> None:
        """Returns once everything queued so far is settled (or handed to the relays)."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def _drain(self) -> None:
        while self._queue:
            # Nobody waits for this work, so let a batch gather: a round trip costs far more than its size.
            await asyncio.sleep(self.gather_seconds)
            batch = self._queue[: self.max_batch]
            del self._queue[: len(batch)]
            try:
                await self.settle(batch)
            except PyMongoError as error:
                log.warning("settling new submissions deferred to the relays", count=len(batch), error=repr(error))
            except Exception:
                log.exception("settling new submissions failed; the relays will finish them", count=len(batch))
            finally:
                self.unsettled.difference_update(submission.feedback_id for submission in batch)

    async def settle(self, batch: list[NewSubmission]) -> None:
        await self.audit.start_chains([submission.first_entry for submission in batch])
        async with self.serial.all_of(submission.feedback_id for submission in batch):
            together = [UpdateOne(*_combined(submission)) for submission in batch]
            result = await self.feedback.bulk_write(together, ordered=False)
            if result.matched_count < len(together):
                # Conditional both, so where the combined update applied these change nothing.
                apart = [UpdateOne(*update) for submission in batch for update in _apart(submission)]
                await self.feedback.bulk_write(apart, ordered=False)


def _apart(submission: NewSubmission) -> list[tuple[Document, Document]]:
    """When another writer got in first on one side: settle whichever side is still this submission's."""
    updates = [ledger.chain_started(submission.first_entry)]
    if submission.published:
        updates.append(published_on_insert(submission.feedback_id, staged=1))
    return updates


def _combined(submission: NewSubmission) -> tuple[Document, Document]:
    """The common case in one update: record the chain's head and empty the outbox together."""
    head_filter, head_update = ledger.chain_started(submission.first_entry)
    if not submission.published:
        return head_filter, head_update
    outbox_filter, outbox_update = published_on_insert(submission.feedback_id, staged=1)
    return head_filter | outbox_filter, {"$set": head_update["$set"] | outbox_update["$set"]}
