"""What a resident's tracking page may show: with whom the item is and why it moved, the answer as published
(redacted, as the staff member's preview showed it), never staff's internal words."""

from __future__ import annotations

from datetime import UTC, datetime

from heard_intake.service import public_view

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_the_public_view_names_units_levels_and_escalation_reasons_but_not_staff_reasons() -> None:
    document = {
        "_id": "f-1",
        "status": "escalated",
        "kind": "complaint",
        "submitted_at": AT,
        "unit_id": "north-sergeants",
        "level": 1,
        "answer": {"text": "Write to desk@riverton.example", "answered_at": AT, "by": "Officer Diaz"},
        "notes": [{"text": "internal: call the sergeant", "at": AT, "by": "Officer Diaz"}],
        "history": [
            {"status": "submitted", "at": AT},
            {"status": "routed", "at": AT, "unit_id": "north-patrol", "event_id": "e1"},
            {"status": "referred", "at": AT, "by": "Officer Diaz", "reason": "internal: not our beat"},
            {
                "status": "escalated",
                "at": AT,
                "unit_id": "north-sergeants",
                "level": 1,
                "reason": "acknowledge_overdue",
            },
            {"status": "escalated", "action": "replied", "at": AT, "by": "resident", "text": "Any news?"},
        ],
    }
    view = public_view(document)
    assert (view["unit_id"], view["level"]) == ("north-sergeants", 1)
    assert view["history"][1] == {"status": "routed", "at": AT.isoformat(), "unit_id": "north-patrol"}
    assert view["history"][2] == {"status": "referred", "at": AT.isoformat()}
    assert view["history"][3]["reason"] == "acknowledge_overdue" and view["history"][3]["level"] == 1
    assert view["history"][4] == {"status": "escalated", "action": "replied", "at": AT.isoformat(), "text": "Any news?"}
    assert "internal" not in repr(view)
    assert view["answer"]["text"] == "Write to [email]", "the answer as the staff member's preview showed it"
