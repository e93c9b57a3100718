from __future__ import annotations

from datetime import UTC, datetime

from heard_notify.domain import deliveries_for
from heard_shared import events as ev

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_answer_reaches_the_resident_and_the_unit() -> None:
    event = ev.new_event(
        ev.ANSWERED,
        ev.FeedbackAnsweredV1(feedback_id="f", unit_id="north-patrol", answer="ok", answered_at=NOW),
        source="s",
        subject="f",
    )
    assert [d.recipient for d in deliveries_for(event)] == ["resident:f", "unit:north-patrol"]


def test_escalation_reaches_the_new_level() -> None:
    event = ev.new_event(
        ev.ESCALATED,
        ev.FeedbackEscalatedV1(
            feedback_id="f",
            reason="reminder",
            from_level=4,
            level=4,
            level_name="civilian oversight board",
            unit_id="oversight-board",
            deadline=NOW,
            fired_at=NOW,
            repeat=2,
            fencing_token=7,
        ),
        source="s",
        subject="f",
    )
    [delivery] = deliveries_for(event)
    assert (delivery.recipient, delivery.template) == ("unit:oversight-board", "reminder")
