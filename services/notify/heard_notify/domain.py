"""Who hears about what, and when. Pure: an event and what notify knows of the item in, planned deliveries out.

Residents hear about their own item (only with consent, which intake checks at send time; nothing is planned
on a channel the resident gave no address or consent for, once feedback.submitted said so): received,
acknowledged, escalated, answered, closed, and a follow-up about a week after closing. The assigned unit
hears of a new item and gets reminders before its deadlines (and a daily digest of what is overdue, planned
by `digest_plans`). Every level an item escalates to hears when it arrives. The oversight board hears of
every item that reaches it, every top-level reminder and every critical item on arrival. City systems that
subscribed get a thin signed webhook per event type. New event types plug in by adding a planner to
`PLANNERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from heard_notify.contacts import Contact, Directory, QuietHours, staff_recipient
from heard_shared import events as ev
from heard_shared.events import CloudEvent

Audience = Literal["resident", "staff", "system"]
RESIDENT = "resident"
RESIDENT_CHANNELS: tuple[ev.ResidentChannel, ...] = get_args(ev.ResidentChannel)
# Staff templates a `digest` contact gets in the daily digest instead of one by one.
DIGESTIBLE = frozenset({"assigned", "reminder"})


@dataclass(frozen=True)
class Planned:
    """One delivery to make: who, how, with which template; `variant` tells apart two of one template."""

    recipient: str
    channel: str
    template: str
    audience: Audience
    urgent: bool = False
    not_before: datetime | None = None
    variant: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    follow_up_after: timedelta = timedelta(days=7)
    reminder_lead_fraction: float = 0.25


@dataclass(frozen=True)
class Subscription:
    """A city system's webhook endpoint and the event types it asked for (`*` for all)."""

    id: str
    event_types: frozenset[str]
    enabled: bool = True

    def wants(self, event_type: str) -> bool:
        return self.enabled and ("*" in self.event_types or event_type in self.event_types)


@dataclass(frozen=True)
class Plan:
    event: CloudEvent[Any]
    directory: Directory
    policy: Policy
    severity: str | None  # what notify learnt from feedback.submitted/routed, if it arrived first
    # The channels the resident may be messaged on, once notify has seen feedback.submitted (None before that).
    resident_channels: Collection[str] | None = None

    @property
    def critical(self) -> bool:
        return self.severity == "critical"

    def resident(
        self, template: str, context: Mapping[str, Any], *, not_before: datetime | None = None
    ) -> list[Planned]:
        # Contact details and consent come with the submission or never: intake would refuse any other channel.
        channels = RESIDENT_CHANNELS if self.resident_channels is None else self.resident_channels
        return [
            Planned(RESIDENT, channel, template, "resident", not_before=not_before, context=context)
            for channel in RESIDENT_CHANNELS
            if channel in channels
        ]

    def unit(
        self,
        unit_id: str,
        template: str,
        context: Mapping[str, Any],
        *,
        urgent: bool = False,
        not_before: datetime | None = None,
        variant: str = "",
    ) -> list[Planned]:
        urgent = urgent or self.critical or unit_id == self.directory.oversight_board
        return [
            Planned(
                staff_recipient(unit_id, contact),
                contact.channel,
                template,
                "staff",
                urgent=urgent,
                not_before=not_before,
                variant=variant,
                context={**context, "unit_id": unit_id},
            )
            for contact in self.directory.contacts_of(unit_id)
        ]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def resident_channels(data: ev.FeedbackSubmittedV1) -> list[str] | None:
    """Where the resident may be messaged, as feedback.submitted says; None when it does not say (published before
    intake named channels): both are planned then, and intake decides at send time."""
    if not data.has_contact:
        return []
    return None if data.contact_channels is None else list(data.contact_channels)


def _submitted(plan: Plan, data: ev.FeedbackSubmittedV1) -> list[Planned]:
    plan = replace(plan, resident_channels=resident_channels(data))
    return plan.resident("received", {"kind": data.kind, "category": data.category})


def _reminders(plan: Plan, data: ev.FeedbackRoutedV1) -> list[Planned]:
    planned: list[Planned] = []
    for stage, deadline in (("acknowledge", data.acknowledge_by), ("answer", data.answer_by)):
        if deadline is None or deadline <= data.routed_at:
            continue
        lead = (deadline - data.routed_at) * plan.policy.reminder_lead_fraction
        context = {"stage": stage, "deadline": _iso(deadline), "level": data.level, "unit_name": data.unit_name}
        planned += plan.unit(data.unit_id, "reminder", context, not_before=deadline - lead, variant=stage)
    return planned


def _routed(plan: Plan, data: ev.FeedbackRoutedV1) -> list[Planned]:
    context = {
        "unit_name": data.unit_name,
        "level": data.level,
        "severity": data.severity,
        "acknowledge_by": _iso(data.acknowledge_by),
        "answer_by": _iso(data.answer_by),
        "rule": data.rule,
    }
    # Level 0 is a new item for its unit; a higher level (a contested answer) is an arrival one level up.
    planned = plan.unit(data.unit_id, "assigned", context)
    planned += _reminders(plan, data)
    # Routing says when an item becomes critical (on submission or raised by triage), once per item becoming
    # critical, whichever level it starts at (professional standards for critical items). The board is the one
    # the contacts file names (checked against the organisation at start-up), so it always has someone to reach.
    board = plan.directory.oversight_board
    if data.critical_on_arrival and data.unit_id != board:
        planned += plan.unit(board, "critical", context, urgent=True)
    return planned


def _triaged(plan: Plan, data: ev.FeedbackTriagedV1) -> list[Planned]:
    """The board hears of every critical item; it also hears, at once, when one stops being critical. The unit
    that gets it back hears from the re-routing (`feedback.routed`, rule triage); the written reason stays in
    intake (the board's list of severity changes), never in a message."""
    if data.previous_severity != "critical" or data.severity == "critical":
        return []
    context = {"severity": data.severity, "by_role": data.by_role, "triaged_at": _iso(data.triaged_at)}
    return plan.unit(plan.directory.oversight_board, "critical_lowered", context, urgent=True)


def _escalated(plan: Plan, data: ev.FeedbackEscalatedV1) -> list[Planned]:
    context = {
        "reason": data.reason,
        "level": data.level,
        "level_name": data.level_name,
        "from_level": data.from_level,
        "missed_deadline": _iso(data.deadline),
        "repeat": data.repeat,
    }
    if data.reason == "reminder":
        # The top level's repeating reminder: to whoever holds the item there (the board), never to the resident.
        return plan.unit(data.unit_id, "top_reminder", context, urgent=True)
    return plan.unit(data.unit_id, "escalated_to_you", context) + plan.resident("escalated", context)


def _acknowledged(plan: Plan, data: ev.FeedbackAcknowledgedV1) -> list[Planned]:
    return plan.resident("acknowledged", {})


def _answered(plan: Plan, data: ev.FeedbackAnsweredV1) -> list[Planned]:
    return plan.resident("answered", {"answer": data.answer, "answered_at": _iso(data.answered_at)})


def _closed(plan: Plan, data: ev.FeedbackClosedV1) -> list[Planned]:
    planned = plan.resident("closed", {"resolution": data.resolution})
    if data.resolution == "answered":
        planned += plan.resident(
            "follow_up", {"closed_at": _iso(data.closed_at)}, not_before=data.closed_at + plan.policy.follow_up_after
        )
    return planned


Planner = Callable[[Plan, Any], list[Planned]]
PLANNERS: dict[str, Planner] = {
    ev.SUBMITTED.event_type: _submitted,
    ev.ROUTED.event_type: _routed,
    ev.ESCALATED.event_type: _escalated,
    ev.ACKNOWLEDGED.event_type: _acknowledged,
    ev.ANSWERED.event_type: _answered,
    ev.CLOSED.event_type: _closed,
    ev.TRIAGED.event_type: _triaged,
}
# What a subscribed city system receives: ids, type, time and public fields; never text that could quote a person.
WEBHOOK_FIELDS: dict[str, tuple[str, ...]] = {
    ev.SUBMITTED.event_type: ("kind", "category", "language", "severity", "negative", "channel", "submitted_at"),
    ev.ROUTED.event_type: ("unit_id", "unit_name", "level", "severity", "acknowledge_by", "answer_by", "routed_at"),
    ev.ESCALATED.event_type: (
        "reason",
        "from_level",
        "level",
        "level_name",
        "unit_id",
        "deadline",
        "fired_at",
        "repeat",
    ),
    ev.ACKNOWLEDGED.event_type: ("unit_id", "acknowledged_at"),
    ev.ANSWERED.event_type: ("unit_id", "answered_at"),
    ev.CLOSED.event_type: ("resolution", "closed_at"),
    ev.REOPENED.event_type: ("reason", "reopened_at"),
    ev.REFERRED.event_type: ("from_unit_id", "suggested_unit_id", "referred_at"),
    # The lowering's written reason never travels on Kafka, so nothing here can quote a person.
    ev.TRIAGED.event_type: (
        "decision",
        "kind",
        "severity",
        "negative",
        "previous_kind",
        "previous_severity",
        "by_role",
        "unit_id",
        "triaged_at",
    ),
}


def webhook_payload(event: CloudEvent[Any]) -> dict[str, Any]:
    """A Standard Webhooks payload (`type`, `timestamp`, `data`) with only the public fields of the event."""
    data = event.data.model_dump(mode="json")
    fields = WEBHOOK_FIELDS.get(event.type, ())
    return {
        "type": event.type,
        "timestamp": _iso(event.time),
        "data": {"feedback_id": event.subject, "event_id": event.id, **{k: data.get(k) for k in fields if k in data}},
    }


def plan_deliveries(
    event: CloudEvent[Any],
    *,
    directory: Directory,
    subscriptions: Iterable[Subscription],
    policy: Policy,
    severity: str | None = None,
    resident_channels: Collection[str] | None = None,
) -> list[Planned]:
    """`severity` and `resident_channels` are what notify learnt of the item from earlier events, if any."""
    planner = PLANNERS.get(event.type)
    # The event's own severity when it has one (routed, submitted); else what notify learnt earlier.
    severity = getattr(event.data, "severity", None) or severity
    planned = planner(Plan(event, directory, policy, severity, resident_channels), event.data) if planner else []
    if event.type in WEBHOOK_FIELDS:
        planned += [
            Planned(f"subscription:{s.id}", "webhook", event.type, "system", context=webhook_payload(event))
            for s in subscriptions
            if s.wants(event.type)
        ]
    return planned


# -- staff preferences: digests and quiet hours --------------------------------------------------------------


def end_of_quiet_hours(moment: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime | None:
    """When the quiet hours around `moment` end, or None if `moment` is not within them."""
    local = moment.astimezone(zone)
    start, end, now = quiet.start, quiet.end, local.time()
    overnight = start > end
    inside = (now >= start or now < end) if overnight else (start <= now < end)
    if not inside:
        return None
    ends_on = local.date() + timedelta(days=1) if overnight and now >= start else local.date()
    return datetime.combine(ends_on, end, tzinfo=zone)


def apply_preferences(
    planned: Planned, contact: Contact | None, *, now: datetime, zone: ZoneInfo
) -> tuple[Planned, str | None]:
    """(the delivery as it should be scheduled, a suppression reason or None) for one staff contact."""
    if contact is None or planned.urgent:
        return planned, None
    if contact.mode == "digest" and planned.template in DIGESTIBLE:
        return planned, "in_daily_digest"
    if contact.quiet_hours is not None:
        due = max(planned.not_before or now, now)
        ends = end_of_quiet_hours(due, contact.quiet_hours, zone)
        if ends is not None:
            return replace(planned, not_before=ends), None
    return planned, None


def digest_plans(directory: Directory, *, today: date) -> list[tuple[Planned, datetime]]:
    """One digest per staff contact for `today`, due at the department's digest time."""
    zone = directory.file.zone
    due = datetime.combine(today, directory.file.digest_time, tzinfo=zone)
    plans = []
    for unit_id in directory.units():
        for contact in directory.contacts_of(unit_id):
            planned = Planned(
                staff_recipient(unit_id, contact),
                contact.channel,
                "digest",
                "staff",
                not_before=due,
                variant=today.isoformat(),
                context={"unit_id": unit_id, "date": today.isoformat()},
            )
            plans.append((planned, due))
    return plans


# -- relevance at send time ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemState:
    """What notify's projection knows of an item when a scheduled delivery comes due."""

    level: int | None = None
    unit_id: str | None = None
    acknowledged_at: datetime | None = None
    answered_at: datetime | None = None
    closed_at: datetime | None = None
    reopened_at: datetime | None = None
    routed_at: datetime | None = None
    top_reminder: int | None = None  # the newest top-level reminder's number


def moot_reason(template: str, context: Mapping[str, Any], item: ItemState) -> str | None:
    """Why a scheduled delivery no longer makes sense (the deadline was met, the item moved on), or None."""
    if template == "reminder":
        if item.closed_at is not None and (item.reopened_at is None or item.closed_at > item.reopened_at):
            return "item_closed"
        if item.level is not None and item.level != context.get("level"):
            return "item_moved_on"
        if context.get("stage") == "acknowledge" and item.acknowledged_at is not None:
            return "deadline_met"
        answered_since_routing = item.answered_at is not None and (
            item.routed_at is None or item.answered_at >= item.routed_at
        )
        if answered_since_routing:
            return "deadline_met"
    if template == "top_reminder" and item.top_reminder is not None and context.get("repeat", 0) < item.top_reminder:
        # The board needs "still unanswered, reminder N", not every older reminder that waited in the queue.
        return "superseded"
    reopened = item.reopened_at is not None and (item.closed_at is None or item.reopened_at > item.closed_at)
    if template == "follow_up" and reopened:
        return "item_reopened"
    return None


def is_overdue(item: Mapping[str, Any], now: datetime) -> bool:
    """An item still waiting for an acknowledgement or an answer whose deadline has passed."""
    if item.get("closed_at") and not (item.get("reopened_at") and item["reopened_at"] > item["closed_at"]):
        return False
    answered = item.get("answered_at") and not (item.get("reopened_at") and item["reopened_at"] > item["answered_at"])
    if answered:
        return False
    acknowledge_by, answer_by = item.get("acknowledge_by"), item.get("answer_by")
    if not item.get("acknowledged_at") and acknowledge_by and acknowledge_by <= now:
        return True
    return bool(answer_by and answer_by <= now)


def local_day(now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date()
