"""Feedback lifecycles as the events analytics consumes, for the analytics tests of every tier."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from heard_shared import events as ev
from heard_shared.events import CloudEvent

SOURCE = "urn:heard:test:analytics"


def lifecycle(item: str, neighbourhood: str, start: datetime, variant: int) -> list[CloudEvent[Any]]:
    """A complaint's events by `variant`: submitted, routed, acknowledged; escalated for every third; withdrawn for
    every fifth (n % 5 == 4); else answered and closed, and contested (reopened, routed one level up) for n % 4 == 1.
    Allegations (critical) for n % 3 == 1, confirmed at triage; even ones lowered at triage to neutral."""

    def at(hours: float) -> datetime:
        return start + timedelta(hours=hours)

    def event(spec: ev.EventSpec[Any], data: Any, name: str) -> CloudEvent[Any]:
        return ev.new_event(spec, data, source=SOURCE, subject=item, event_id=f"{item}-{name}", time=data_time(data))

    submitted = ev.FeedbackSubmittedV1(
        feedback_id=item,
        channel="web",
        kind="complaint",
        category="response_time",
        language="en",
        text="redacted",
        location=ev.PublicLocation(neighbourhood=neighbourhood),
        severity="critical" if variant % 3 == 1 else "negative",
        negative=True,
        submitted_at=start,
        allegations=(["force", "discourtesy"] if variant % 6 == 1 else ["discourtesy"]) if variant % 3 == 1 else None,
    )
    routed = ev.FeedbackRoutedV1(
        feedback_id=item,
        unit_id="patrol",
        unit_name="Patrol",
        level=0,
        rule="fallback",
        negative=True,
        severity="negative",
        acknowledge_by=at(24),
        answer_by=at(120),
        routed_at=at(0.1),
    )
    out = [event(ev.SUBMITTED, submitted, "submitted"), event(ev.ROUTED, routed, "routed")]
    out.append(
        event(ev.ACKNOWLEDGED, ev.FeedbackAcknowledgedV1(feedback_id=item, acknowledged_at=at(2 + variant)), "ack")
    )
    if variant % 2 == 0 or variant % 3 == 1:
        lowered = variant % 2 == 0
        triaged = ev.FeedbackTriagedV1(
            feedback_id=item,
            decision="lowered" if lowered else "confirmed",
            kind="complaint",
            severity="neutral" if lowered else submitted.severity,
            negative=not lowered,
            previous_kind="complaint",
            previous_severity=submitted.severity,
            by_role="professional_standards" if submitted.severity == "critical" else "supervisor",
            triaged_at=at(1),
        )
        out.append(event(ev.TRIAGED, triaged, "triaged"))
    if variant % 3 == 0:
        escalated = ev.FeedbackEscalatedV1(
            feedback_id=item,
            reason="answer_overdue",
            from_level=0,
            level=1,
            level_name="supervisor",
            unit_id="patrol-supervisor",
            deadline=at(120),
            fired_at=at(120.1),
            repeat=0,
            fencing_token=1,
        )
        out.append(event(ev.ESCALATED, escalated, "escalated-1"))
    if variant % 5 == 4:
        out.append(
            event(ev.CLOSED, ev.FeedbackClosedV1(feedback_id=item, closed_at=at(30), resolution="withdrawn"), "closed")
        )
        return out
    answered = ev.FeedbackAnsweredV1(feedback_id=item, answer="We sent a patrol.", answered_at=at(48 + 10 * variant))
    out.append(event(ev.ANSWERED, answered, "answered"))
    closed = ev.FeedbackClosedV1(feedback_id=item, closed_at=at(50 + 10 * variant), resolution="answered")
    out.append(event(ev.CLOSED, closed, "closed"))
    if variant % 4 == 1:
        reopened = ev.FeedbackReopenedV1(feedback_id=item, reason="contested", reopened_at=at(60 + 10 * variant))
        out.append(event(ev.REOPENED, reopened, "reopened"))
        contest = routed.model_copy(update={"level": 1, "rule": "contest", "routed_at": at(61 + 10 * variant)})
        out.append(event(ev.ROUTED, contest, "routed-contest"))
    return out


def data_time(data: Any) -> datetime:
    for name in (
        "submitted_at",
        "triaged_at",
        "routed_at",
        "acknowledged_at",
        "answered_at",
        "fired_at",
        "closed_at",
        "reopened_at",
    ):
        if (moment := getattr(data, name, None)) is not None:
            return moment  # type: ignore[no-any-return]
    raise AssertionError(data)
