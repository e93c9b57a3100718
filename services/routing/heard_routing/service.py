"""Routing's handlers and the durable escalation scheduler.

One document per feedback item (`cases`) holds the assignment and its SLA clock, so every
change — including the events it causes (embedded outbox) — is a single atomic write.
Deadlines are claimed with an atomic find-and-modify lease; the lease's fencing token guards
the write that fires, so a replica that lost its lease (paused, partitioned, killed) cannot
fire anything, and the event id (feedback, level, repeat) is the same on every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from heard_routing import domain
from heard_routing.metrics import AGE_BANDS, EscalationMetrics
from heard_routing.policy import LEVEL_NAMES, Areas, Organisation, RoutingRules, SlaPolicy
from heard_shared import events as ev
from heard_shared import mongo
from heard_shared.events import CloudEvent, deterministic_event_id, utc_now
from heard_shared.kafka import TRANSIENT_ERRORS
from heard_shared.logs import get_logger
from heard_shared.mongo import Document, GroupFindById, GroupInsert, GroupUpdate, epoch_ms
from heard_shared.outbox import (
    PENDING_FIELD,
    SEQUENCE_FIELD,
    OutboxRelay,
    OutgoingEvent,
    outbox_fields,
    published_on_insert,
    with_outbox,
)

log = get_logger(__name__)


# Fields present only while a clock runs; stopping the clock unsets them. `open_since_ms` marks unanswered
# negative items, `triage_since_ms` items waiting for a person's triage: each gauge is one index range.
STOPPED_CLOCK = {"due_ms": "", "deadline_ms": "", "open_since_ms": "", "triage_since_ms": ""}
GAUGE_RANGES = ("open_since_ms", "triage_since_ms")


def at_level(level: int) -> Document:
    """`{"$eq": level}`, the same as a bare `level` on MongoDB; nx-27017 translates a bare value to SQL that also
    looks inside arrays, which no index serves, and `$eq` to the plain comparison its (level, range) index answers:
    26 counts of 1,977 open items among 129,898 went from 11.8 ms to 0.6 ms each."""
    return {"$eq": level}


# How long a handler waits for Kafka to take the event it just staged. A whole consumer batch publishes at once, so
# on a busy broker the last acknowledgements take seconds; nobody else waits, and the relay's alternative (one
# document at a time) is far slower. Past this the broker counts as down and the relay takes over.
CONSUMER_PUBLISH_SECONDS = 10.0
# Escalations in flight at once while the scheduler works through claimed deadlines (see `_fire_claimed`).
FIRES_AT_ONCE = 16


def _running_clock(deadline: datetime, submitted_at: datetime, *, stage: str = "acknowledge") -> Document:
    since = "triage_since_ms" if stage == "triage" else "open_since_ms"
    return {"due_ms": epoch_ms(deadline), "deadline_ms": epoch_ms(deadline), since: epoch_ms(submitted_at)}


def _clock_fields(deadlines: domain.Deadlines, submitted_at: datetime) -> tuple[Document, Document]:
    """($set, $unset) that make a case's clock match `deadlines`: running for its stage, or stopped."""
    due_at = deadlines.due_at
    if deadlines.stage is None or due_at is None:
        return {"clock": "stopped"}, STOPPED_CLOCK
    running = _running_clock(due_at, submitted_at, stage=deadlines.stage)
    return (
        {
            "clock": "open",
            "stage": deadlines.stage,
            "due_at": due_at,
            "acknowledge_by": deadlines.acknowledge_by,
            "sla_answer_by": deadlines.answer_by,
            "answer_by": deadlines.answer_by,
            "triage_by": deadlines.triage_by,
            **running,
        },
        {field: "" for field in STOPPED_CLOCK if field not in running},
    )


def _rule_kind(rule: str) -> str:
    """A bounded metric label: 'critical:north-precinct' → critical, 'north-precinct' → rule."""
    if ":" in rule:
        return rule.split(":")[0]
    return rule if rule in ("fallback", "commendation", "triage", "contest") else "rule"


class RoutingService:
    def __init__(
        self,
        *,
        cases: AsyncCollection[Document],
        outbox: OutboxRelay,
        policy: SlaPolicy,
        org: Organisation,
        rules: RoutingRules,
        areas: Areas,
        metrics: EscalationMetrics,
        source: str,
        instance_id: str,
    ) -> None:
        self.cases = cases
        self.outbox = outbox
        self.policy = policy
        self.org = org
        self.rules = rules
        self.areas = areas
        self.metrics = metrics
        self.source = source
        self.instance_id = instance_id
        # A backlog of submissions is handled many at a time (one consumer lane per item): their reads and writes
        # share round trips, which is most of a submission's cost on a busy store.
        self.submission_reads = GroupFindById(
            cases, projection={"routed_at": 1, "early": 1, PENDING_FIELD: 1, SEQUENCE_FIELD: 1}
        )
        self.case_writes = GroupUpdate(cases)
        self.case_inserts = GroupInsert(cases)

    async def ensure_indexes(self) -> None:
        # The scheduling keys exist only while a clock runs (they are unset when it stops), so each
        # query is one single-field index range over open items, on MongoDB and on the local servers.
        for key in STOPPED_CLOCK:
            await self.cases.create_index(key, sparse=True)
        # The gauges count open items by level: with the level first, each count reads only index entries.
        for since in GAUGE_RANGES:
            await self.cases.create_index([("level", 1), (since, 1)], sparse=True)
        await self.outbox.ensure_indexes(self.cases)

    # -- consumed events ---------------------------------------------------------------

    async def on_submitted(self, event: CloudEvent[Any]) -> None:
        data: ev.FeedbackSubmittedV1 = event.data
        # Most submissions are new items: route as if nothing were stored, which is right exactly when the case's
        # insert succeeds. Otherwise (a redelivery, or a staff action that overtook the submission) route again
        # with what is stored. This saves a read per item on a busy store.
        if await self._route(data, existing=None):
            return
        existing = await self.submission_reads.find_one(data.feedback_id)
        if existing is None:
            raise RuntimeError(f"case {data.feedback_id} vanished while routing; retrying")
        if "routed_at" not in existing:
            await self._route(data, existing=existing)

    async def _route(self, data: ev.FeedbackSubmittedV1, *, existing: Document | None) -> bool:
        """Stores the new case (inserted when `existing` is None) and publishes `routed`; False if it was stored."""
        early: Document = (existing or {}).get("early", {})
        triage: Document | None = early.get("triage")
        if triage:
            # A person triaged the item before its submission reached routing: their decision stands.
            data = data.model_copy(update={k: triage[k] for k in ("kind", "severity", "negative")})
        assignment = domain.start_higher(
            domain.assign(data, org=self.org, rules=self.rules, areas=self.areas),
            severity=data.severity,
            policy=self.policy,
        )
        now = utc_now()
        deadlines = domain.first_deadlines(
            negative=data.negative,
            severity=data.severity,
            level=assignment.level,
            now=now,
            policy=self.policy,
            acknowledged="acknowledged_at" in early,
            triaged=triage is not None,
        )
        case: Document = {
            "unit_id": assignment.unit_id,
            "level": assignment.level,
            "start_level": assignment.level,
            "max_level": assignment.level,
            "chain": assignment.chain,
            "rule": assignment.rule,
            "severity": data.severity,
            "negative": data.negative,
            "kind": data.kind,
            "submitted": data.model_dump(mode="json"),
            "submitted_at": data.submitted_at,
            "submitted_ms": epoch_ms(data.submitted_at),
            "routed_at": now,
            "recused_badge": assignment.recused_badge,
            "commendation_badge": assignment.commendation_badge,
            "fencing": 0,
            "repeat": 0,
            "round": 0,
            "lease_owner": None,
        }
        if triage:
            case |= {"triaged_at": triage["at"], "triage_ids": [triage["event_id"]]}
        if "acknowledged_at" in early:
            case["acknowledged_at"] = early["acknowledged_at"]
        clock, _ = _clock_fields(deadlines, data.submitted_at)
        if "answered_at" in early or "closed_at" in early:
            clock = {k: v for k, v in clock.items() if not k.endswith("_ms")} | {"clock": "stopped"}
        case |= clock
        routed = self._routed_event(
            {"_id": data.feedback_id, **case},
            unit_id=assignment.unit_id,
            level=assignment.level,
            rule=assignment.rule,
            now=now,
            acknowledge_by=deadlines.acknowledge_by,
            answer_by=deadlines.answer_by,
            triage_by=deadlines.triage_by,
            critical_on_arrival=data.severity == "critical",
            event_id=deterministic_event_id(data.feedback_id, "routed", 0),
        )
        outgoing = OutgoingEvent(ev.ROUTED, routed)
        with self.outbox.writing(data.feedback_id):
            if existing is None:
                # An insert also costs the store less than an upsert.
                try:
                    await self.case_inserts.insert({"_id": data.feedback_id, **case, **outbox_fields(outgoing)})
                except DuplicateKeyError:
                    return False
            else:
                await self.case_writes.update_one(
                    {"_id": data.feedback_id}, with_outbox({"$set": case}, outgoing), upsert=True
                )
            self.metrics.routed.labels(_rule_kind(assignment.rule)).inc()
            if (existing or {}).get(PENDING_FIELD):
                # Events staged before are still waiting: publish everything in order from the document.
                await self.outbox.try_flush(self.cases, data.feedback_id)
            elif await self.outbox.publish_now(outgoing, within=CONSUMER_PUBLISH_SECONDS):
                # The outbox held only this event, so it is empty again unless something was staged since.
                staged = (existing or {}).get(SEQUENCE_FIELD, 0) + 1
                emptying = self.case_writes.update_one(*published_on_insert(data.feedback_id, staged=staged))
                self.outbox.empty_later(data.feedback_id, emptying)
        return True

    async def on_acknowledged(self, event: CloudEvent[Any]) -> None:
        data: ev.FeedbackAcknowledgedV1 = event.data
        case = await self.cases.find_one({"_id": data.feedback_id})
        if case is None or "routed_at" not in case:
            await self._remember_early(data.feedback_id, "acknowledged_at", data.acknowledged_at)
            return
        if case.get("stage") == "triage" and "acknowledged_at" not in case:
            # Acknowledging is not triage: the triage clock keeps running. Kept for when triage makes it negative.
            await self.cases.update_one(
                {"_id": data.feedback_id, "acknowledged_at": {"$exists": False}},
                {"$set": {"acknowledged_at": data.acknowledged_at}},
            )
            return
        if case.get("clock") == "open" and case.get("stage") == "acknowledge":
            # The answer deadline of the current level still applies; it may already have passed.
            answer_by = case.get("answer_by") or case["sla_answer_by"]
            await self.cases.update_one(
                {"_id": data.feedback_id, "clock": "open", "stage": "acknowledge"},
                {
                    "$set": {
                        "stage": "answer",
                        "due_at": answer_by,
                        "due_ms": epoch_ms(answer_by),
                        "deadline_ms": epoch_ms(answer_by),
                        "acknowledged_at": data.acknowledged_at,
                    }
                },
            )

    async def on_answered(self, event: CloudEvent[Any]) -> None:
        data: ev.FeedbackAnsweredV1 = event.data
        case = await self.cases.find_one({"_id": data.feedback_id})
        if case is None or "routed_at" not in case:
            await self._remember_early(data.feedback_id, "answered_at", data.answered_at)
            return
        result = await self.cases.update_one(
            {"_id": data.feedback_id, "clock": "open"},
            {"$set": {"clock": "stopped", "answered_at": data.answered_at}, "$unset": STOPPED_CLOCK},
        )
        if result.modified_count and case.get("negative"):
            within = data.answered_at <= case["sla_answer_by"]
            self.metrics.answers.labels(case["severity"], str(within).lower()).inc()

    async def on_closed(self, event: CloudEvent[Any]) -> None:
        data: ev.FeedbackClosedV1 = event.data
        await self.cases.update_one(
            {"_id": data.feedback_id, "clock": "open"},
            {"$set": {"clock": "stopped", "closed_at": data.closed_at}, "$unset": STOPPED_CLOCK},
        )

    async def on_reopened(self, event: CloudEvent[Any]) -> None:
        """A contested answer reopens the item one level above the highest it reached, with fresh deadlines."""
        data: ev.FeedbackReopenedV1 = event.data
        case = await self.cases.find_one({"_id": data.feedback_id})
        if case is None or "routed_at" not in case:
            return  # the submission has not reached routing; it will be routed as new
        level = domain.reopened_level(max(case.get("max_level", 0), case["level"]))
        windows = self.policy.windows(severity=case["severity"] if case["negative"] else "negative", level=level)
        now = utc_now()
        unit_id = case["chain"][level]
        round_ = case.get("round", 0) + 1
        routed = self._routed_event(
            case,
            unit_id=unit_id,
            level=level,
            rule="contest",
            now=now,
            acknowledge_by=now + windows.acknowledge,
            answer_by=now + windows.answer,
            event_id=deterministic_event_id(data.feedback_id, "routed", "contest", round_),
        )
        reopened = await self.cases.update_one(
            {"_id": data.feedback_id, "fencing": case["fencing"]},
            with_outbox(
                {
                    "$set": {
                        "clock": "open",
                        "stage": "acknowledge",
                        "level": level,
                        "max_level": level,
                        "unit_id": unit_id,
                        "round": round_,
                        "rule": "contest",
                        "repeat": 0,
                        "negative": True,
                        "severity": case["severity"] if case["negative"] else "negative",
                        "due_at": now + windows.acknowledge,
                        **_running_clock(now + windows.acknowledge, case["submitted_at"]),
                        "sla_answer_by": now + windows.answer,
                        "answer_by": now + windows.answer,
                        "lease_owner": None,
                        "lease_token": None,
                    },
                    "$inc": {"fencing": 1},
                },
                OutgoingEvent(ev.ROUTED, routed),
            ),
        )
        if not reopened.modified_count:
            # Changed between our read and write; raising lets the consumer run this again on fresh state.
            raise RuntimeError(f"case {data.feedback_id} changed while reopening; retrying")
        await self.outbox.try_flush(self.cases, data.feedback_id)

    async def on_referred(self, event: CloudEvent[Any]) -> None:
        """Re-routes a referred item; its SLA clock keeps running, and too many referrals escalate it."""
        data: ev.FeedbackReferredV1 = event.data
        case = await self.cases.find_one({"_id": data.feedback_id})
        if case is None or "routed_at" not in case or event.id in case.get("referral_ids", []):
            return
        now = utc_now()
        referrals = len(case.get("referral_ids", [])) + 1
        if referrals > self.policy.max_referrals and case.get("clock") == "open":
            step = domain.escalate(self._clock(case), now=now, policy=self.policy)
            step = dataclasses.replace(step, reason="referral_limit")
            await self.cases.update_one({"_id": data.feedback_id}, {"$push": {"referral_ids": event.id}})
            await self._escalate(case, step, now=now)
            return
        submitted = ev.FeedbackSubmittedV1.model_validate(case["submitted"])
        assignment = domain.reassign_after_referral(
            from_unit=data.from_unit_id,
            suggested_unit=data.suggested_unit_id,
            recused_badge=case.get("recused_badge"),
            feedback=submitted,
            org=self.org,
            rules=self.rules,
            areas=self.areas,
        )
        routed = self._routed_event(
            case,
            unit_id=assignment.unit_id,
            level=assignment.level,
            rule=assignment.rule,
            now=now,
            acknowledge_by=case.get("acknowledge_by"),
            answer_by=case.get("sla_answer_by"),
            event_id=deterministic_event_id(data.feedback_id, "routed", "referral", event.id),
        )
        await self.cases.update_one(
            {"_id": data.feedback_id},
            with_outbox(
                {
                    "$set": {
                        "unit_id": assignment.unit_id,
                        "chain": assignment.chain,
                        "level": assignment.level,
                        "start_level": assignment.level,
                        "rule": assignment.rule,
                    },
                    "$push": {"referral_ids": event.id},
                },
                OutgoingEvent(ev.ROUTED, routed),
            ),
        )
        await self.outbox.try_flush(self.cases, data.feedback_id)

    async def on_triaged(self, event: CloudEvent[Any]) -> None:
        """A person confirmed or changed kind and severity: the chain position and deadlines follow (see
        `domain.after_triage`). Raising an item to critical tells the oversight board at once."""
        data: ev.FeedbackTriagedV1 = event.data
        case = await self.cases.find_one({"_id": data.feedback_id})
        if case is None or "routed_at" not in case:
            await self._remember_early_triage(data, event.id)
            return
        if event.id in case.get("triage_ids", []):
            return
        decided: Document = {
            "kind": data.kind,
            "severity": data.severity,
            "negative": data.negative,
            "triaged_at": data.triaged_at,
        }
        changed = (data.severity, data.negative) != (case["severity"], case["negative"])
        if case.get("clock") != "open" or not changed:
            # Answered or closed: on record only. Unchanged: a triage clock stops, a negative clock runs on.
            # No fencing needed: a scheduler that leased this case cannot fire once the clock is stopped.
            update: Document = {"$set": decided, "$push": {"triage_ids": event.id}}
            if case.get("clock") == "open" and case.get("stage") == "triage" and not data.negative:
                update = {"$set": {**decided, "clock": "stopped"}, "$push": update["$push"], "$unset": STOPPED_CLOCK}
            await self.cases.update_one({"_id": data.feedback_id}, update)
            return
        result = domain.after_triage(
            domain.CaseAtTriage(
                severity=case["severity"],
                negative=case["negative"],
                level=case["level"],
                start_level=case.get("start_level", domain.starting_level(case["chain"][0], self.org)),
                chain=case["chain"],
                recused=case.get("recused_badge") is not None,
                acknowledged="acknowledged_at" in case,
                acknowledge_by=case.get("acknowledge_by"),
                answer_by=case.get("sla_answer_by"),
            ),
            severity=data.severity,
            negative=data.negative,
            now=utc_now(),
            policy=self.policy,
        )
        now = utc_now()
        clock, stopped = _clock_fields(result.deadlines, case["submitted_at"])
        routed = self._routed_event(
            {**case, **decided},
            unit_id=result.unit_id,
            level=result.level,
            rule="triage",
            now=now,
            acknowledge_by=result.deadlines.acknowledge_by,
            answer_by=result.deadlines.answer_by,
            triage_by=None,
            critical_on_arrival=result.newly_critical,
            event_id=deterministic_event_id(data.feedback_id, "routed", "triage", event.id),
        )
        update = {
            "$set": {
                **decided,
                **clock,
                "unit_id": result.unit_id,
                "level": result.level,
                "start_level": result.start_level,
                "max_level": max(result.level, case.get("max_level", 0)),
                "rule": "triage",
                "repeat": 0,
                "lease_owner": None,
                "lease_token": None,
            },
            "$push": {"triage_ids": event.id},
            "$inc": {"fencing": 1},
        }
        if stopped:
            update["$unset"] = stopped
        applied = await self.cases.update_one(
            {"_id": data.feedback_id, "fencing": case["fencing"]}, with_outbox(update, OutgoingEvent(ev.ROUTED, routed))
        )
        if not applied.modified_count:
            # The scheduler leased or fired it between our read and write: run again on fresh state.
            raise RuntimeError(f"case {data.feedback_id} changed while applying a triage; retrying")
        self.metrics.routed.labels("triage").inc()
        await self.outbox.try_flush(self.cases, data.feedback_id)

    async def _remember_early_triage(self, data: ev.FeedbackTriagedV1, event_id: str) -> None:
        """Triage overtook `submitted` (another topic): the latest decision is applied when it is routed."""
        decision = {
            "kind": data.kind,
            "severity": data.severity,
            "negative": data.negative,
            "at": data.triaged_at,
            "event_id": event_id,
        }
        with contextlib.suppress(DuplicateKeyError):  # the case exists and holds a later decision: keep it
            await self.cases.update_one(
                {
                    "_id": data.feedback_id,
                    "$or": [{"early.triage": {"$exists": False}}, {"early.triage.at": {"$lt": data.triaged_at}}],
                },
                {"$set": {"early.triage": decision}},
                upsert=True,
            )

    def _routed_event(
        self,
        case: Document,
        *,
        unit_id: str,
        level: int,
        rule: str,
        now: datetime,
        acknowledge_by: datetime | None,
        answer_by: datetime | None,
        event_id: str,
        triage_by: datetime | None = None,
        critical_on_arrival: bool = False,
    ) -> CloudEvent[ev.FeedbackRoutedV1]:
        return ev.new_event(
            ev.ROUTED,
            ev.FeedbackRoutedV1(
                feedback_id=case["_id"],
                unit_id=unit_id,
                unit_name=self.org.name_of(unit_id),
                level=level,
                rule=rule,
                negative=case["negative"],
                severity=case["severity"],
                acknowledge_by=acknowledge_by,
                answer_by=answer_by,
                routed_at=now,
                triage_by=triage_by,
                # Absent unless true, so most routed events look as they always did to older consumers.
                critical_on_arrival=True if critical_on_arrival else None,
                oversight_board_id=self.org.oversight_board.id if critical_on_arrival else None,
            ),
            source=self.source,
            subject=case["_id"],
            event_id=event_id,
            time=now,
        )

    async def _remember_early(self, feedback_id: str, field: str, value: datetime) -> None:
        """A staff action overtook `submitted` (other topic, no ordering): keep it for when it arrives."""
        await self.cases.update_one({"_id": feedback_id}, {"$set": {f"early.{field}": value}}, upsert=True)

    # -- the scheduler -----------------------------------------------------------------

    async def claim_due(self, now: datetime, *, limit: int) -> list[Document]:
        """Leases up to `limit` due deadlines for this replica.

        A lease works like a visibility timeout: claiming moves `due_ms` to the lease's expiry (the real
        deadline stays in `deadline_ms`), so "due and not leased" is one index range, and a deadline
        whose holder died becomes due again when the lease runs out — it fires late, never not at all.
        One range query finds candidates; one conditional update leases them, re-checking each
        document, so of several replicas racing for a deadline exactly one wins; the lease token tells
        this replica which ones it won. Each lease increments the document's fencing token.
        """
        now_ms = epoch_ms(now)
        due = {"due_ms": {"$lte": now_ms}, "clock": "open"}
        candidates = [c["_id"] async for c in self.cases.find(due, {"_id": 1}).sort("due_ms", 1).limit(limit)]
        if not candidates:
            return []
        token = uuid.uuid4().hex
        lease_until = epoch_ms(now + self.policy.scheduler.lease)
        await self.cases.update_many(
            {"_id": {"$in": candidates}, **due},
            {
                "$set": {"lease_owner": self.instance_id, "lease_token": token, "due_ms": lease_until},
                "$inc": {"fencing": 1},
            },
        )
        # An answer may stop a clock between the lease and this read: such an item is no longer this replica's.
        won = {"_id": {"$in": candidates}, "lease_token": token, "clock": "open"}
        claimed = [c async for c in self.cases.find(won)]
        return sorted(claimed, key=lambda c: c["deadline_ms"])

    async def fire(self, case: Document) -> bool:
        """Escalates one claimed case; returns False when the lease was lost or the clock stopped meanwhile."""
        now = utc_now()
        step = domain.escalate(self._clock(case), now=now, policy=self.policy)
        return await self._escalate(case, step, now=now)

    @staticmethod
    def _clock(case: Document) -> domain.Clock:
        return domain.Clock(
            feedback_id=case["_id"],
            severity=case["severity"],
            level=case["level"],
            stage=case["stage"],
            due_at=case["due_at"],
            repeat=case.get("repeat", 0),
        )

    async def _escalate(self, case: Document, step: domain.Escalation, *, now: datetime) -> bool:
        """Applies one escalation with its event in a single write, fenced by the token the caller read.

        The event id is a function of (feedback, round, level, repeat) — `round` counts contests — so a
        retry, a second replica or a late duplicate produces the same id and nothing new downstream.
        """
        feedback_id = case["_id"]
        unit_id = case["chain"][step.level]
        escalated = ev.new_event(
            ev.ESCALATED,
            ev.FeedbackEscalatedV1(
                feedback_id=feedback_id,
                reason=step.reason,
                from_level=step.from_level,
                level=step.level,
                level_name=LEVEL_NAMES[step.level],
                unit_id=unit_id,
                deadline=case["due_at"],
                fired_at=now,
                repeat=step.repeat,
                fencing_token=case["fencing"],
            ),
            source=self.source,
            subject=feedback_id,
            time=now,
            event_id=deterministic_event_id(feedback_id, "escalated", case.get("round", 0), step.level, step.repeat),
        )
        changes: Document = {
            "level": step.level,
            "max_level": max(step.level, case.get("max_level", 0)),
            "unit_id": unit_id,
            "repeat": step.repeat,
            "due_at": step.next_due_at,
            "due_ms": epoch_ms(step.next_due_at),
            "deadline_ms": epoch_ms(step.next_due_at),
            "lease_owner": None,
            "lease_token": None,
        }
        if case["stage"] == "answer" or step.reason == "reminder":
            changes["answer_by"] = step.next_due_at
        result = await self.cases.update_one(
            {"_id": feedback_id, "fencing": case["fencing"], "clock": "open"},
            with_outbox({"$set": changes, "$inc": {"fencing": 1}}, OutgoingEvent(ev.ESCALATED, escalated)),
        )
        if not result.modified_count:
            log.info("escalation skipped: lease lost or clock stopped", feedback_id=feedback_id)
            return False
        self.metrics.escalations.labels(str(step.level), step.reason).inc()
        if step.reason != "referral_limit":
            self.metrics.delay.observe(max(0.0, (now - case["due_at"]).total_seconds()))
        await self.outbox.try_flush(self.cases, feedback_id)
        return True

    async def tick(self) -> int:
        """Fires everything due now, batch after batch, then records a heartbeat."""
        fired = 0
        batch = self.policy.scheduler.batch
        while True:
            claimed = await self.claim_due(utc_now(), limit=batch)
            fired += await self._fire_claimed(claimed)
            # A backlog worked through batch after batch is progress, not a stalled scheduler.
            self.metrics.heartbeat.set(utc_now().timestamp())
            if len(claimed) < batch:
                break
        return fired

    async def _fire_claimed(self, claimed: list[Document]) -> int:
        """Fires the claimed cases FIRES_AT_ONCE at a time, earliest deadline first. Each escalation waits on two
        round trips to the store and one to Kafka; one at a time left both idle in between, so a backlog of a few
        thousand due deadlines (a restart after downtime) took minutes and outlived its leases. Every case is
        fenced, so the order in which they finish does not matter. All are waited for before an error is raised."""
        limiter = asyncio.Semaphore(FIRES_AT_ONCE)

        async def fire(case: Document) -> bool:
            async with limiter:
                return await self.fire(case)

        results = await asyncio.gather(*(fire(case) for case in claimed), return_exceptions=True)
        if errors := [result for result in results if isinstance(result, BaseException)]:
            raise errors[0]
        return sum(1 for result in results if result is True)

    async def run_scheduler(self) -> None:
        interval = self.policy.scheduler.tick.total_seconds()
        while True:
            try:
                await self.tick()
            except TRANSIENT_ERRORS as error:
                log.warning("scheduler waiting for MongoDB", error=repr(error))
            except Exception:
                log.exception("scheduler tick failed")
            await asyncio.sleep(interval)

    # -- gauges ------------------------------------------------------------------------

    async def refresh_gauges(self) -> None:
        """Every query is an index range over open items only, so the cost follows the answer, not the table."""
        now = utc_now()
        now_ms = epoch_ms(now)
        upper = now_ms + 1
        for band, limit in AGE_BANDS:
            lower = 0 if limit == float("inf") else now_ms - int(limit * 1000)
            for level in range(5):
                count = await mongo.count(
                    self.cases, {"level": at_level(level), "open_since_ms": {"$gt": lower, "$lte": upper}}
                )
                self.metrics.negative_open.labels(str(level), band).set(count)
            upper = lower
        oldest = await self.cases.find_one(
            {"open_since_ms": {"$gt": 0}}, {"submitted_at": 1}, sort=[("open_since_ms", 1)]
        )
        self.metrics.oldest_unanswered.set((now - oldest["submitted_at"]).total_seconds() if oldest else 0)
        grace_ms = int(self.policy.scheduler.overdue_grace.total_seconds() * 1000)
        overdue = await mongo.count(self.cases, {"deadline_ms": {"$lt": now_ms - grace_ms}})
        self.metrics.overdue_unescalated.set(overdue)
        await self.refresh_triage_gauges(now)

    async def refresh_triage_gauges(self, now: datetime) -> None:
        """Items no person has triaged yet (not assessed negative), by level, and the oldest one's age."""
        for level in range(5):
            count = await mongo.count(self.cases, {"level": at_level(level), "triage_since_ms": {"$gt": 0}})
            self.metrics.awaiting_triage.labels(str(level)).set(count)
        oldest = await self.cases.find_one(
            {"triage_since_ms": {"$gt": 0}}, {"submitted_at": 1}, sort=[("triage_since_ms", 1)]
        )
        self.metrics.oldest_untriaged.set((now - oldest["submitted_at"]).total_seconds() if oldest else 0)

    async def run_gauges(self, interval: timedelta = timedelta(seconds=5)) -> None:
        while True:
            try:
                await self.refresh_gauges()
            except Exception:
                log.exception("gauge refresh failed")
            await asyncio.sleep(interval.total_seconds())
