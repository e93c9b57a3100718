"""Who hears what, and when: the pure planner, staff preferences and the relevance of scheduled messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from heard_notify import domain
from heard_notify.contacts import load_directory
from heard_shared import events as ev

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # 09:00 in Riverton (America/Chicago)
DIRECTORY = load_directory(ROOT / "config" / "contacts.yaml", ROOT / "config" / "organisation.yaml")
POLICY = domain.Policy(follow_up_after=timedelta(days=7), reminder_lead_fraction=0.25)


def plan(
    data: Any,
    spec: Any,
    *,
    severity: str | None = None,
    resident_channels: list[str] | None = None,
    subscriptions: Any = (),
) -> list[domain.Planned]:
    event = ev.new_event(spec, data, source="urn:test", subject="f1", time=NOW)
    return domain.plan_deliveries(
        event,
        directory=DIRECTORY,
        subscriptions=subscriptions,
        policy=POLICY,
        severity=severity,
        resident_channels=resident_channels,
    )


def routed(level: int = 0, unit: str = "north-patrol", severity: Any = "negative", hours: int = 24) -> Any:
    return ev.FeedbackRoutedV1(
        feedback_id="f1",
        unit_id=unit,
        unit_name="North Precinct Patrol",
        level=level,
        rule="r",
        negative=True,
        severity=severity,
        acknowledge_by=NOW + timedelta(hours=hours),
        answer_by=NOW + timedelta(hours=4 * hours),
        routed_at=NOW,
    )


def escalated(reason: Any = "answer_overdue", level: int = 2, unit: str = "patrol-command", repeat: int = 0) -> Any:
    return ev.FeedbackEscalatedV1(
        feedback_id="f1",
        reason=reason,
        from_level=level - 1 if reason != "reminder" else level,
        level=level,
        level_name="commander",
        unit_id=unit,
        deadline=NOW,
        fired_at=NOW,
        repeat=repeat,
        fencing_token=3,
    )


def keyed(planned: list[domain.Planned]) -> set[tuple[str, str, str, str]]:
    return {(p.recipient, p.channel, p.template, p.variant) for p in planned}


# With contact details, as published before intake named the channels (contact_channels absent).
SUBMITTED = ev.FeedbackSubmittedV1(
    feedback_id="f1",
    channel="api",
    kind="complaint",
    language="es",
    text="x",
    severity="negative",
    negative=True,
    has_contact=True,
    submitted_at=NOW,
)


def test_a_resident_with_contact_hears_of_receipt_on_both_channels_intake_decides_which_exist() -> None:
    assert keyed(plan(SUBMITTED, ev.SUBMITTED)) == {
        ("resident", "email", "received", ""),
        ("resident", "sms", "received", ""),
    }
    anonymous = SUBMITTED.model_copy(update={"has_contact": False})
    assert plan(anonymous, ev.SUBMITTED) == []


def test_a_new_item_reaches_its_unit_with_reminders_before_each_deadline() -> None:
    planned = plan(routed(), ev.ROUTED)
    assert keyed(planned) == {
        ("unit:north-patrol/duty-desk", "email", "assigned", ""),
        ("unit:north-patrol/duty-desk", "email", "reminder", "acknowledge"),
        ("unit:north-patrol/duty-desk", "email", "reminder", "answer"),
    }
    reminders = {p.variant: p.not_before for p in planned if p.template == "reminder"}
    # A quarter of each window left: 24h window -> at 18h; 96h window -> at 72h.
    assert reminders == {"acknowledge": NOW + timedelta(hours=18), "answer": NOW + timedelta(hours=72)}
    assert not any(p.urgent for p in planned)


def test_a_critical_item_reaches_the_oversight_board_on_arrival_bypassing_preferences() -> None:
    # Critical items start at professional standards (level 3); routing marks the arrival.
    arrival = routed(severity="critical", unit="professional-standards", level=3)
    arrival = arrival.model_copy(update={"critical_on_arrival": True, "oversight_board_id": "oversight-board"})
    planned = plan(arrival, ev.ROUTED)
    board = [p for p in planned if p.recipient.startswith("unit:oversight-board/")]
    assert {(p.channel, p.template) for p in board} == {("email", "critical"), ("sms", "critical")}
    assert all(p.urgent for p in planned), "critical messages bypass digests and quiet hours"
    # Any later routing of the same critical item (a referral, a contest) is not a new arrival for the board.
    again = plan(routed(severity="critical", unit="professional-standards", level=3), ev.ROUTED)
    assert not [p for p in again if p.template == "critical"]


def triaged(previous: Any, severity: Any, decision: Any, role: Any = "professional_standards") -> Any:
    return ev.FeedbackTriagedV1(
        feedback_id="f1",
        decision=decision,
        kind="complaint",
        severity=severity,
        negative=severity in ("negative", "critical"),
        previous_kind="complaint",
        previous_severity=previous,
        by_role=role,
        unit_id="professional-standards",
        triaged_at=NOW,
    )


def test_the_board_hears_at_once_when_a_critical_item_is_lowered() -> None:
    planned = plan(triaged("critical", "negative", "lowered"), ev.TRIAGED)
    assert keyed(planned) == {
        ("unit:oversight-board/clerk", "email", "critical_lowered", ""),
        ("unit:oversight-board/chair-phone", "sms", "critical_lowered", ""),
    }
    assert all(p.urgent for p in planned), "never held for a digest or quiet hours"
    assert planned[0].context["severity"] == "negative" and planned[0].context["by_role"] == "professional_standards"
    # Other triage decisions need no message of their own: a raise to critical arrives as a critical routing,
    # a lowering of a non-critical item is in the board's list of severity changes.
    for quiet in (
        triaged("negative", "critical", "raised"),
        triaged("negative", "neutral", "lowered", role="supervisor"),
        triaged("critical", "critical", "confirmed"),
    ):
        assert not [p for p in plan(quiet, ev.TRIAGED) if p.audience == "staff"]


def test_each_level_hears_on_arrival_and_the_resident_is_told_in_plain_words() -> None:
    planned = plan(escalated(), ev.ESCALATED)
    assert keyed(planned) == {
        ("unit:patrol-command/commander", "email", "escalated_to_you", ""),
        ("resident", "email", "escalated", ""),
        ("resident", "sms", "escalated", ""),
    }


def test_top_level_reminders_go_to_the_board_only_never_to_the_resident() -> None:
    planned = plan(escalated(reason="reminder", level=4, unit="oversight-board", repeat=3), ev.ESCALATED)
    assert {p.recipient for p in planned} == {"unit:oversight-board/clerk", "unit:oversight-board/chair-phone"}
    assert {p.template for p in planned} == {"top_reminder"} and all(p.urgent for p in planned)


def test_an_item_reaching_the_board_is_urgent_for_the_board() -> None:
    planned = plan(escalated(reason="answer_overdue", level=4, unit="oversight-board"), ev.ESCALATED)
    board = [p for p in planned if p.audience == "staff"]
    assert {p.template for p in board} == {"escalated_to_you"} and all(p.urgent for p in board)


def test_answer_and_closing_reach_the_resident_and_a_follow_up_is_scheduled_a_week_later() -> None:
    answered = plan(ev.FeedbackAnsweredV1(feedback_id="f1", answer="We did it.", answered_at=NOW), ev.ANSWERED)
    assert keyed(answered) == {("resident", "email", "answered", ""), ("resident", "sms", "answered", "")}
    assert answered[0].context["answer"] == "We did it."
    closed = plan(ev.FeedbackClosedV1(feedback_id="f1", closed_at=NOW, resolution="answered"), ev.CLOSED)
    follow_ups = [p for p in closed if p.template == "follow_up"]
    assert {p.not_before for p in follow_ups} == {NOW + timedelta(days=7)}
    withdrawn = plan(ev.FeedbackClosedV1(feedback_id="f1", closed_at=NOW, resolution="withdrawn"), ev.CLOSED)
    assert {p.template for p in withdrawn} == {"closed"}


def test_a_resident_is_planned_messages_only_on_the_channels_they_can_be_reached_on() -> None:
    later = [
        (escalated(), ev.ESCALATED),
        (ev.FeedbackAcknowledgedV1(feedback_id="f1", acknowledged_at=NOW), ev.ACKNOWLEDGED),
        (ev.FeedbackAnsweredV1(feedback_id="f1", answer="Done.", answered_at=NOW), ev.ANSWERED),
        (ev.FeedbackClosedV1(feedback_id="f1", closed_at=NOW, resolution="answered"), ev.CLOSED),
    ]
    for data, spec in later:
        for channels, expected in (([], set()), (["email"], {"email"}), (["email", "sms"], {"email", "sms"})):
            planned = plan(data, spec, resident_channels=channels)
            assert {p.channel for p in planned if p.audience == "resident"} == expected
        # Before feedback.submitted has arrived nobody knows: both are planned, and intake decides at send time.
        planned = plan(data, spec, resident_channels=None)
        assert {p.channel for p in planned if p.audience == "resident"} == {"email", "sms"}
    assert keyed(plan(escalated(), ev.ESCALATED, resident_channels=[])) == {
        ("unit:patrol-command/commander", "email", "escalated_to_you", "")
    }


def test_feedback_submitted_says_where_the_resident_can_be_reached() -> None:
    with_contact = ev.Contact(email="a@example.org", phone="+1 555 0100", consent_to_contact=True)
    assert with_contact.channels() == ["email", "sms"]
    assert with_contact.model_copy(update={"phone": None}).channels() == ["email"]
    assert with_contact.model_copy(update={"consent_to_contact": False}).channels() == []
    submitted = SUBMITTED.model_copy(update={"contact_channels": ["email"]})
    assert keyed(plan(submitted, ev.SUBMITTED)) == {("resident", "email", "received", "")}
    assert domain.resident_channels(submitted) == ["email"]
    assert domain.resident_channels(submitted.model_copy(update={"has_contact": False})) == []
    assert domain.resident_channels(submitted.model_copy(update={"contact_channels": None})) is None, "an old event"


def test_subscribed_city_systems_get_a_thin_payload_without_free_text() -> None:
    subscriptions = [
        domain.Subscription("city-311", frozenset({ev.ANSWERED.event_type})),
        domain.Subscription("records", frozenset({"*"}), enabled=False),
    ]
    answered = ev.FeedbackAnsweredV1(feedback_id="f1", unit_id="u", answer="Call 555-0100.", answered_at=NOW)
    [webhook] = [p for p in plan(answered, ev.ANSWERED, subscriptions=subscriptions) if p.channel == "webhook"]
    assert webhook.recipient == "subscription:city-311" and webhook.template == ev.ANSWERED.event_type
    assert webhook.context["type"] == ev.ANSWERED.event_type
    assert set(webhook.context["data"]) == {"feedback_id", "event_id", "unit_id", "answered_at"}
    assert "555" not in str(webhook.context)


def test_new_event_types_plug_in_through_the_planner_table() -> None:
    assert set(domain.PLANNERS) <= set(ev.EVENT_SPECS)
    assert set(domain.WEBHOOK_FIELDS) == set(ev.EVENT_SPECS) - {ev.INBOUND.event_type}


@pytest.mark.parametrize(
    ("local_time", "expected_local_end"),
    [("23:30", "07:00 next day"), ("03:00", "07:00 same day"), ("12:00", None)],
)
def test_quiet_hours_delay_non_urgent_staff_messages(local_time: str, expected_local_end: str | None) -> None:
    contact = DIRECTORY.resolve("unit:traffic-unit/duty-desk")  # quiet 22:00-07:00
    zone = DIRECTORY.file.zone
    hour, minute = map(int, local_time.split(":"))
    now = datetime(2026, 11, 2, hour, minute, tzinfo=zone).astimezone(UTC)
    planned = domain.Planned("unit:traffic-unit/duty-desk", "email", "assigned", "staff")
    scheduled, reason = domain.apply_preferences(planned, contact, now=now, zone=zone)
    assert reason is None
    if expected_local_end is None:
        assert scheduled.not_before is None
    else:
        assert scheduled.not_before is not None
        local = scheduled.not_before.astimezone(zone)
        day = 3 if "next" in expected_local_end else 2
        assert (local.day, local.hour, local.minute) == (day, 7, 0)
    urgent, _ = domain.apply_preferences(
        domain.Planned("unit:traffic-unit/duty-desk", "email", "assigned", "staff", urgent=True),
        contact,
        now=now,
        zone=zone,
    )
    assert urgent.not_before is None


def test_digest_contacts_get_new_items_and_reminders_in_the_daily_digest_only() -> None:
    contact = DIRECTORY.resolve("unit:community-liaison/office")
    zone = DIRECTORY.file.zone
    for template in ("assigned", "reminder"):
        planned = domain.Planned("unit:community-liaison/office", "email", template, "staff")
        assert domain.apply_preferences(planned, contact, now=NOW, zone=zone)[1] == "in_daily_digest"
    escalation = domain.Planned("unit:community-liaison/office", "email", "escalated_to_you", "staff")
    assert domain.apply_preferences(escalation, contact, now=NOW, zone=zone)[1] is None
    digests = domain.digest_plans(DIRECTORY, today=NOW.date())
    assert {p.recipient for p, _ in digests} >= {"unit:community-liaison/office", "unit:north-patrol/duty-desk"}
    assert {due.astimezone(zone).hour for _, due in digests} == {8}


def test_scheduled_messages_become_moot_when_the_item_moved_on() -> None:
    context = {"stage": "acknowledge", "level": 0}
    assert domain.moot_reason("reminder", context, domain.ItemState(level=0)) is None
    assert domain.moot_reason("reminder", context, domain.ItemState(level=0, acknowledged_at=NOW)) == "deadline_met"
    assert domain.moot_reason("reminder", context, domain.ItemState(level=1)) == "item_moved_on"
    answer = {"stage": "answer", "level": 0}
    assert domain.moot_reason("reminder", answer, domain.ItemState(level=0, acknowledged_at=NOW)) is None
    assert domain.moot_reason("reminder", answer, domain.ItemState(level=0, closed_at=NOW)) == "item_closed"
    reopened = domain.ItemState(closed_at=NOW, reopened_at=NOW + timedelta(hours=1))
    assert domain.moot_reason("follow_up", {}, reopened) == "item_reopened"
    assert domain.moot_reason("follow_up", {}, domain.ItemState(closed_at=NOW)) is None
    assert domain.moot_reason("top_reminder", {"repeat": 3}, domain.ItemState(top_reminder=5)) == "superseded"
    assert domain.moot_reason("top_reminder", {"repeat": 5}, domain.ItemState(top_reminder=5)) is None


def test_overdue_means_a_passed_deadline_still_awaited() -> None:
    due = {"acknowledge_by": NOW - timedelta(hours=1), "answer_by": NOW + timedelta(days=1)}
    assert domain.is_overdue(due, NOW)
    assert not domain.is_overdue({**due, "acknowledged_at": NOW - timedelta(hours=2)}, NOW)
    assert domain.is_overdue({**due, "acknowledged_at": NOW, "answer_by": NOW - timedelta(minutes=1)}, NOW)
    assert not domain.is_overdue({**due, "answered_at": NOW}, NOW)
    assert domain.is_overdue({**due, "answered_at": NOW, "reopened_at": NOW + timedelta(seconds=1)}, NOW)
