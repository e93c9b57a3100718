"""Notify's use cases: record the deliveries an event calls for, then send them, each exactly as the ledger says.

`on_event` is the consumer's handler: it updates notify's small projection of the item (enough to know
whether a reminder is still due and what is overdue), plans deliveries (`heard_notify.domain`) and writes
them to the ledger before anything is sent. `Dispatcher.run` claims due deliveries and sends them: for a
resident it first asks intake for the address (intake audits the disclosure and refuses after erasure or
withdrawal of consent), checks the suppression list, renders the template in the recipient's language, marks
the attempt as sending, sends, and records the outcome fenced by the attempt number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from heard_notify import domain
from heard_notify.channels import (
    Email,
    Outcome,
    Sms,
    SmsProvider,
    SmtpSender,
    WebhookMessage,
    WebhookSender,
    message_id_for,
    thread_root_for,
)
from heard_notify.contacts import Directory
from heard_notify.i18n import render
from heard_notify.intake import Disclosure, IntakeContacts, IntakeUnavailable
from heard_notify.keys import NotifyKeys
from heard_notify.ledger import Claimed, DeliveryLedger, delivery_id
from heard_notify.metrics import NotifyMetrics
from heard_notify.subscriptions import SubscriptionRegistry
from heard_notify.suppression import SuppressionList
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.events import CloudEvent, utc_now
from heard_shared.kafka import DeadLetterSink
from heard_shared.logs import get_logger
from heard_shared.mongo import Document

log = get_logger(__name__)

# Events whose deliveries depend on what earlier events said of the item (see `NotifyService.on_event`).
_PLANNED_FROM_THE_ITEM = frozenset(
    {ev.ESCALATED.event_type, ev.ACKNOWLEDGED.event_type, ev.ANSWERED.event_type, ev.CLOSED.event_type}
)


@dataclass(frozen=True)
class Timing:
    lease: timedelta
    retry_base: float
    retry_cap: float
    give_up_after: timedelta
    max_attempts: int
    # How long a stop waits for messages already on the wire (k8s gives 30 s between SIGTERM and SIGKILL).
    shutdown_grace: timedelta = timedelta(seconds=10)


@dataclass(frozen=True)
class Links:
    public_base_url: str
    staff_url_template: str
    message_id_domain: str


def backoff(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: a random wait up to base * 2^(attempt-1), capped."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class ItemProjection:
    """What notify knows of each item, from events only (it never reads another service's database)."""

    def __init__(self, items: AsyncCollection[Document]) -> None:
        self.items = items

    async def ensure_indexes(self) -> None:
        await self.items.create_index("unit_id")

    async def apply(self, event: CloudEvent[Any]) -> None:
        data, fid = event.data, event.subject or getattr(event.data, "feedback_id", None)
        if fid is None:
            return
        changes: Document = {}
        if isinstance(data, ev.FeedbackSubmittedV1):
            changes = {
                "severity": data.severity,
                "language": data.language,
                "has_contact": int(data.has_contact),
                "resident_channels": domain.resident_channels(data),
                "submitted_at": data.submitted_at,
            }
        elif isinstance(data, ev.FeedbackAcknowledgedV1):
            changes = {"acknowledged_at": data.acknowledged_at}
        elif isinstance(data, ev.FeedbackAnsweredV1):
            changes = {"answered_at": data.answered_at}
        elif isinstance(data, ev.FeedbackClosedV1):
            changes = {"closed_at": data.closed_at, "resolution": data.resolution}
        elif isinstance(data, ev.FeedbackReopenedV1):
            changes = {"reopened_at": data.reopened_at}
        if changes:
            await self.items.update_one({"_id": fid}, {"$set": changes}, upsert=True)
        if isinstance(data, ev.FeedbackRoutedV1):
            await self._assign(
                fid,
                data.level,
                data.routed_at,
                {
                    "unit_id": data.unit_id,
                    "severity": data.severity,
                    "routed_at": data.routed_at,
                    "acknowledge_by": data.acknowledge_by,
                    "answer_by": data.answer_by,
                },
            )
        elif isinstance(data, ev.FeedbackEscalatedV1) and data.reason != "reminder":
            await self._assign(fid, data.level, data.fired_at, {"unit_id": data.unit_id, "routed_at": data.fired_at})
        elif isinstance(data, ev.FeedbackEscalatedV1):
            # The newest top-level reminder supersedes older ones still waiting to be sent.
            await self.items.update_one(
                {"_id": fid, "$or": [{"top_reminder": {"$exists": False}}, {"top_reminder": {"$lt": data.repeat}}]},
                {"$set": {"top_reminder": data.repeat}},
            )

    async def _assign(self, fid: str, level: int, at: datetime, fields: Document) -> None:
        # Topics are not ordered against each other: an older decision must not undo a newer one.
        newer: Document = {
            "$or": [
                {"level": {"$exists": False}},
                {"level": {"$lt": level}},
                {"level": level, "assigned_at": {"$lte": at}},
            ]
        }
        with contextlib.suppress(DuplicateKeyError):  # the item exists with a newer assignment
            await self.items.update_one(
                {"_id": fid, **newer}, {"$set": {**fields, "level": level, "assigned_at": at}}, upsert=True
            )

    async def get(self, fid: str) -> Document:
        return await self.items.find_one({"_id": fid}) or {}

    async def of_unit(self, unit_id: str) -> list[Document]:
        return [item async for item in self.items.find({"unit_id": unit_id})]


def _state(item: Mapping[str, Any]) -> domain.ItemState:
    return domain.ItemState(
        level=item.get("level"),
        unit_id=item.get("unit_id"),
        acknowledged_at=item.get("acknowledged_at"),
        answered_at=item.get("answered_at"),
        closed_at=item.get("closed_at"),
        reopened_at=item.get("reopened_at"),
        routed_at=item.get("routed_at"),
        top_reminder=item.get("top_reminder"),
    )


class NotifyService:
    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        items: ItemProjection,
        directory: Directory,
        subscriptions: SubscriptionRegistry,
        policy: domain.Policy,
        timing: Timing,
        metrics: NotifyMetrics,
        wake: asyncio.Event,
    ) -> None:
        self.ledger = ledger
        self.items = items
        self.directory = directory
        self.subscriptions = subscriptions
        self.policy = policy
        self.timing = timing
        self.metrics = metrics
        self.wake = wake

    async def on_event(self, event: CloudEvent[Any]) -> None:
        await self.items.apply(event)
        item: Document = {}
        if event.type in _PLANNED_FROM_THE_ITEM and event.subject:
            # Whether an escalated item is critical (urgent for every level) was said when it was routed, and on which
            # channels its resident can be reached when it was submitted: no message is planned that intake would
            # refuse an address for (a third of all deliveries at the scale bench's mix).
            item = await self.items.get(event.subject)
        newest_top_reminder = (
            event.type == ev.ESCALATED.event_type
            and event.data.reason == "reminder"
            and item.get("top_reminder") == event.data.repeat
        )
        planned = domain.plan_deliveries(
            event,
            directory=self.directory,
            subscriptions=await self.subscriptions.active(),
            policy=self.policy,
            severity=item.get("severity"),
            resident_channels=item.get("resident_channels", [] if item.get("has_contact") == 0 else None),
        )
        now = utc_now()
        documents = [self._document(event.source, event.id, event.type, event.subject, p, now) for p in planned]
        created = await self.ledger.record(documents)
        if newest_top_reminder and event.subject:
            # Older top-level reminders still queued would only be claimed to be found superseded: drop them now,
            # so an item unanswered at the top for long does not fill the queue ahead of other people's messages.
            superseded = await self.ledger.suppress_queued(
                feedback_id=event.subject, template="top_reminder", except_event_id=event.id, reason="superseded"
            )
            for channel, count in superseded.items():
                self.metrics.deliveries.labels(channel, "suppressed").inc(count)
        if created:
            self.wake.set()

    def _document(
        self,
        source: str,
        event_id: str,
        event_type: str,
        feedback_id: str | None,
        planned: domain.Planned,
        now: datetime,
    ) -> Document:
        reason = None
        if planned.audience == "staff":
            contact = self.directory.resolve(planned.recipient)
            planned, reason = domain.apply_preferences(planned, contact, now=now, zone=self.directory.file.zone)
        due = max(planned.not_before or now, now)
        return self.ledger.new(
            delivery=delivery_id(
                source, event_id, planned.recipient, planned.channel, planned.template, planned.variant
            ),
            feedback_id=feedback_id,
            event_id=event_id,
            event_type=event_type,
            recipient=planned.recipient,
            audience=planned.audience,
            channel=planned.channel,
            template=planned.template,
            variant=planned.variant,
            urgent=planned.urgent,
            context=planned.context,
            due_at=due,
            now=now,
            give_up_at=due + self.timing.give_up_after,
            status="suppressed" if reason else "queued",
            reason=reason,
        )

    async def plan_digests(self, *, now: datetime | None = None) -> int:
        """Today's digest for every staff contact, due at the department's digest time (idempotent)."""
        now = now or utc_now()
        today = domain.local_day(now, self.directory.file.zone)
        documents = [
            self._document("urn:heard:notify", f"digest:{today.isoformat()}", "digest", None, planned, now)
            for planned, _ in domain.digest_plans(self.directory, today=today)
        ]
        return await self.ledger.record(documents)

    async def run_digest_planner(self, *, interval_seconds: float) -> None:
        while True:
            try:
                await self.plan_digests()
            except PyMongoError as error:
                log.warning("digest planner waiting for MongoDB", error=repr(error))
            await asyncio.sleep(interval_seconds)


class Dispatcher:
    """Claims due deliveries and sends them, `concurrency` at a time, until cancelled."""

    def __init__(
        self,
        *,
        ledger: DeliveryLedger,
        items: ItemProjection,
        directory: Directory,
        subscriptions: SubscriptionRegistry,
        intake: IntakeContacts,
        suppression: SuppressionList,
        keys: NotifyKeys,
        email: SmtpSender,
        webhooks: WebhookSender,
        sms: SmsProvider,
        links: Links,
        timing: Timing,
        metrics: NotifyMetrics,
        dead_letters: DeadLetterSink,
        owner: str,
        concurrency: int,
        poll_seconds: float,
        wake: asyncio.Event,
    ) -> None:
        self.ledger = ledger
        self.items = items
        self.directory = directory
        self.subscriptions = subscriptions
        self.intake = intake
        self.suppression = suppression
        self.keys = keys
        self.email = email
        self.webhooks = webhooks
        self.sms = sms
        self.links = links
        self.timing = timing
        self.metrics = metrics
        self.dead_letters = dead_letters
        self.owner = owner
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.wake = wake
        self.running: dict[asyncio.Task[None], str] = {}  # each delivery task, with its delivery id
        self.sending: set[str] = set()  # deliveries marked as sending by this process and not finished yet

    async def run(self) -> None:
        this = asyncio.current_task()
        try:
            while True:
                if this is not None and this.cancelling():
                    # A stop that something below swallowed on the way (CI once saw the dispatcher poll on for 15
                    # minutes with a cancellation pending): stop all the same.
                    raise asyncio.CancelledError
                try:
                    claimed = await self.tick()
                except PyMongoError as error:
                    log.warning("dispatcher waiting for MongoDB", error=repr(error))
                    claimed = 0
                if claimed == 0 or len(self.running) >= self.concurrency:
                    self.wake.clear()
                    await _wait(self.wake, self.poll_seconds)
        finally:
            await self._drain()

    async def _drain(self) -> None:
        """On shutdown, a message already on the wire finishes and records its outcome, so the next start does not
        send it again (a stop mid-send looks like a crash: e-mail and webhooks go out twice, SMS becomes maybe_sent);
        deliveries not yet sending go back to the queue at once. Bounded by the channel timeouts."""
        for task, held in self.running.items():
            if held not in self.sending:
                task.cancel()
        running = set(self.running)
        if running:
            _, late = await asyncio.wait(running, timeout=self.timing.shutdown_grace.total_seconds())
            for task in late:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def tick(self) -> int:
        free = self.concurrency - len(self.running)
        if free <= 0:
            return 0
        now = utc_now()
        claimed = await self.ledger.claim_due(owner=self.owner, now=now, lease=self.timing.lease, limit=free)
        for one in claimed:
            task = asyncio.create_task(self.deliver(one), name=f"deliver-{one.id}")
            self.running[task] = one.id
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.pop(task, None)
        if self.concurrency - len(self.running) >= max(1, self.concurrency // 4):
            self.wake.set()  # enough slots are free to claim a batch (one claim per slot would cost a query each)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", error=repr(task.exception()))

    # -- one delivery --------------------------------------------------------------------------------------------

    async def deliver(self, claimed: Claimed) -> None:
        document = claimed.document
        channel = document["channel"]
        started = utc_now()
        entry: dict[str, Any] = {"started_at": started.isoformat()}
        if claimed.interrupted:
            entry["previous_attempt"] = "interrupted while sending"
            if channel == "sms":
                # The text may have reached the person: never send it blindly again.
                await self._finish(claimed, Outcome("maybe_sent", "interrupted"), entry)
                return
        try:
            outcome = await self._attempt(claimed, entry)
        except asyncio.CancelledError:
            # Shutting down: a delivery that had not begun sending goes back at once instead of waiting out its lease.
            if claimed.id not in self.sending:
                await self.ledger.release(claimed, now=utc_now(), due=utc_now())
            raise
        except IntakeUnavailable as error:
            outcome = Outcome("retry", "intake_unavailable", str(error)[:300])
        except PyMongoError:
            raise
        except Exception as error:
            log.exception("delivery failed unexpectedly", delivery_id=claimed.id)
            outcome = Outcome("failed", "internal_error", f"{type(error).__name__}: {error}"[:300])
        if outcome is not None:
            entry["duration_ms"] = round((utc_now() - started).total_seconds() * 1000, 1)
            await self._finish(claimed, outcome, entry)

    async def _attempt(self, claimed: Claimed, entry: dict[str, Any]) -> Outcome | None:
        document = claimed.document
        template, _channel = document["template"], document["channel"]
        context = json.loads(document["context"])
        if document["feedback_id"] and template in ("reminder", "follow_up", "top_reminder"):
            moot = domain.moot_reason(template, context, _state(await self.items.get(document["feedback_id"])))
            if moot:
                return Outcome("suppressed", moot)
        audience = document["audience"]
        if audience == "system":
            return await self._send_webhook_to_subscription(claimed, entry)
        if audience == "resident":
            return await self._send_to_resident(claimed, context, entry)
        return await self._send_to_staff(claimed, context, entry)

    async def _send_to_resident(self, claimed: Claimed, context: Document, entry: dict[str, Any]) -> Outcome | None:
        document = claimed.document
        channel = document["channel"]
        answer = await self.intake.disclose(
            feedback_id=document["feedback_id"], delivery_id=claimed.id, channel=channel, purpose=document["template"]
        )
        if not isinstance(answer, Disclosure):
            return Outcome("suppressed", answer.code, answer.message[:200])
        address_hash = self.keys.address_hash(channel, answer.address)
        blocked = await self.suppression.reason(address_hash)
        if blocked:
            return Outcome("suppressed", blocked)
        values = {
            **context,
            "feedback_id": document["feedback_id"],
            "tracking_url": answer.tracking_url or "",
            "yes_url": self._link("follow-up", claimed.id, "/yes"),
            "no_url": self._link("follow-up", claimed.id, "/no"),
        }
        fields = {"address_hash": address_hash, "language": answer.language}
        return await self._send_rendered(claimed, answer.address, answer.language, values, fields, entry, resident=True)

    async def _send_to_staff(self, claimed: Claimed, context: Document, entry: dict[str, Any]) -> Outcome | None:
        document = claimed.document
        contact = self.directory.resolve(document["recipient"])
        if contact is None:
            return Outcome("failed", "contact_removed", "the contact is no longer in the contacts file")
        values = {**context, "feedback_id": document["feedback_id"] or "", "unit_name": context.get("unit_name", "")}
        values["staff_url"] = self._staff_url(values["feedback_id"])
        if document["template"] == "digest":
            values |= await self._digest(context["unit_id"], document)
            if not values["overdue"] and not values["new"]:
                return Outcome("suppressed", "nothing_to_report")
        if contact.channel == "webhook":
            payload = json.dumps({"type": f"heard.staff.{document['template']}", "data": _webhook_safe(values)})
            return await self._send_webhook(
                claimed, WebhookMessage(contact.webhook or "", claimed.id, payload, contact.webhook_secrets()), entry
            )
        address = contact.email or contact.sms or ""
        return await self._send_rendered(
            claimed, address, contact.language, values, {"language": contact.language}, entry
        )

    async def _send_rendered(
        self,
        claimed: Claimed,
        address: str,
        language: str,
        values: Document,
        fields: Document,
        entry: dict[str, Any],
        *,
        resident: bool = False,
    ) -> Outcome | None:
        document = claimed.document
        channel = document["channel"]
        unsubscribe = self._link("unsubscribe", claimed.id) if resident and channel == "email" else None
        rendered = render(
            document["template"],
            language,
            {**values, "unsubscribe_url": unsubscribe},
            zone=self.directory.file.timezone,
        )
        now = utc_now()
        if channel == "email":
            message_id = message_id_for(claimed.id, self.links.message_id_domain)
            mail = Email(
                to=address,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                message_id=message_id,
                thread_root=thread_root_for(
                    document["feedback_id"] or document["recipient"],
                    document["recipient"],
                    self.links.message_id_domain,
                ),
                language=language,
                unsubscribe_url=unsubscribe,
            )
            if not await self._mark_sending(claimed, now, {**fields, "message_id": message_id}):
                return None
            return await self._timed("email", self.email.send(mail, sent_at=now), entry)
        if not await self._mark_sending(claimed, now, fields):
            return None
        return await self._timed("sms", self.sms.send(Sms(address, rendered.sms, claimed.id)), entry)

    async def _send_webhook_to_subscription(self, claimed: Claimed, entry: dict[str, Any]) -> Outcome | None:
        subscription_id = claimed.document["recipient"].removeprefix("subscription:")
        endpoint = await self.subscriptions.get(subscription_id)
        if endpoint is None:
            return Outcome("failed", "subscription_removed")
        if not endpoint.enabled:
            return Outcome("suppressed", "endpoint_disabled", endpoint.disabled_reason or "")
        payload = json.dumps(json.loads(claimed.document["context"]), separators=(",", ":"))
        outcome = await self._send_webhook(
            claimed, WebhookMessage(endpoint.url, claimed.id, payload, endpoint.secrets), entry
        )
        if outcome is not None and outcome.kind == "gone":
            await self.subscriptions.set_enabled(subscription_id, False, reason="the endpoint answered 410 Gone")
            log.warning("webhook endpoint disabled after 410", subscription=subscription_id)
        return outcome

    async def _send_webhook(self, claimed: Claimed, message: WebhookMessage, entry: dict[str, Any]) -> Outcome | None:
        now = utc_now()
        if not await self._mark_sending(claimed, now, {}):
            return None
        return await self._timed("webhook", self.webhooks.send(message, at=now), entry)

    async def _mark_sending(self, claimed: Claimed, now: datetime, details: Document) -> bool:
        marked = await self.ledger.mark_sending(claimed, now=now, details=details)
        if marked:
            self.sending.add(claimed.id)
        return marked

    async def _timed(self, channel: str, sending: Any, entry: dict[str, Any]) -> Outcome:
        started = asyncio.get_running_loop().time()
        outcome: Outcome = await sending
        elapsed = asyncio.get_running_loop().time() - started
        self.metrics.attempt_seconds.labels(channel).observe(elapsed)
        entry["send_ms"] = round(elapsed * 1000, 1)
        return outcome

    # -- outcome -----------------------------------------------------------------------------------------------

    async def _finish(self, claimed: Claimed, outcome: Outcome, entry: dict[str, Any]) -> None:
        document = claimed.document
        now = utc_now()
        entry |= {"outcome": outcome.kind, "code": outcome.code, "finished_at": now.isoformat()}
        if outcome.detail:
            entry["detail"] = outcome.detail
        fields: Document = {"reason": None if outcome.kind == "sent" else outcome.code}
        status: str
        next_due: datetime | None = None
        if outcome.kind == "retry":
            wait = backoff(claimed.attempt, base=self.timing.retry_base, cap=self.timing.retry_cap)
            if outcome.retry_after is not None:
                wait = max(wait, outcome.retry_after)
            next_due = now + timedelta(seconds=wait)
            if claimed.attempt >= self.timing.max_attempts or next_due > document["give_up_at"]:
                status = "failed"
                fields["reason"] = f"gave_up:{outcome.code}"
            else:
                status = "queued"
                entry["retry_at"] = next_due.isoformat()
        elif outcome.kind == "gone":
            status = "failed"
        else:
            status = outcome.kind
        if status == "sent":
            fields["sent_at"] = now
        self.sending.discard(claimed.id)
        if not await self.ledger.finish(claimed, status=status, now=now, entry=entry, next_due=next_due, fields=fields):
            log.warning("outcome not recorded: the claim was lost", delivery_id=claimed.id)
            return
        self.metrics.deliveries.labels(document["channel"], "retried" if status == "queued" else status).inc()
        if status == "bounced" and document["audience"] == "resident":
            refreshed = await self.ledger.get(claimed.id)
            if refreshed and refreshed.get("address_hash"):
                await self.suppression.add(refreshed["address_hash"], reason="bounced", delivery_id=claimed.id)
        if status == "failed":
            await self._dead_letter(claimed, fields["reason"] or outcome.code, outcome.detail)

    async def _dead_letter(self, claimed: Claimed, code: str, detail: str) -> None:
        document = claimed.document
        summary = {
            k: document.get(k)
            for k in ("feedback_id", "event_id", "event_type", "recipient", "channel", "template", "variant")
        }
        value = json.dumps({"delivery_id": claimed.id, **summary, "attempts": claimed.attempt}).encode()
        headers = [
            ("dlq.reason.code", code.encode()),
            ("dlq.reason", (detail or code)[:2000].encode()),
            ("dlq.source.topic", b"notify.deliveries"),
            ("dlq.service", b"notify"),
            ("dlq.failed_at", utc_now().isoformat().encode()),
        ]
        try:
            await self.dead_letters.send(
                topics.DEAD_LETTER,
                value=value,
                key=(document.get("feedback_id") or claimed.id).encode(),
                headers=headers,
            )
        except Exception as error:  # noqa: BLE001 - the ledger already says failed; the alert still counts it
            log.warning("could not publish the dead letter", delivery_id=claimed.id, error=repr(error))
        self.metrics.service.dead_letters.labels("notify", "notify.deliveries", code.split(":")[-1]).inc()
        log.warning("delivery dead-lettered", delivery_id=claimed.id, code=code)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _link(self, purpose: str, delivery: str, suffix: str = "") -> str:
        return (
            f"{self.links.public_base_url.rstrip('/')}/v1/{purpose}/{self.keys.link_token(purpose, delivery)}{suffix}"
        )

    def _staff_url(self, feedback_id: str) -> str:
        return self.links.staff_url_template.format(feedback_id=feedback_id)

    async def _digest(self, unit_id: str, document: Document) -> Document:
        now = utc_now()
        since = now - timedelta(days=1)
        overdue, new = [], []
        for item in await self.items.of_unit(unit_id):
            if domain.is_overdue(item, now):
                deadline = item.get("answer_by") if item.get("acknowledged_at") else item.get("acknowledge_by")
                overdue.append(
                    {
                        "feedback_id": item["_id"],
                        "deadline": (deadline or item.get("answer_by") or now).isoformat(),
                        "severity": item.get("severity"),
                        "staff_url": self._staff_url(item["_id"]),
                    }
                )
            elif item.get("routed_at") and item["routed_at"] > since and not item.get("closed_at"):
                new.append({"feedback_id": item["_id"], "staff_url": self._staff_url(item["_id"])})
        overdue.sort(key=lambda entry: entry["deadline"])
        return {"overdue": overdue, "new": new, "date": document["variant"]}


def _webhook_safe(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in values.items()
        if k
        in {
            "feedback_id",
            "unit_id",
            "level",
            "severity",
            "reason",
            "stage",
            "deadline",
            "staff_url",
            "overdue",
            "new",
            "date",
        }
    }


async def _wait(event: asyncio.Event, timeout: float) -> None:
    # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that arrives as the event is set (a delivery
    # finishing as the service stops), and the dispatcher then never stops.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
