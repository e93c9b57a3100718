"""What a resident's tracking page may show: with whom the item is and why it moved, the answer as published
(redacted, as the staff member's preview showed it), never staff's internal words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from heard_intake.service import PUBLIC_FIELDS, public_view

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class ReadFields(dict[str, Any]):
    """A document that remembers which fields were read from it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)


def test_the_tracking_page_fetches_every_field_the_public_view_reads() -> None:
    document = ReadFields(
        _id="f-1",
        status="answered",
        kind="complaint",
        submitted_at=AT,
        answer={"text": "Done", "answered_at": AT},
        history=[{"status": "submitted", "at": AT}],
    )
    public_view(document)
    assert document.read - {"_id"} <= set(PUBLIC_FIELDS), "add the field to PUBLIC_FIELDS"
    assert {"status", "answer", "history", "level", "erased_at"} <= document.read


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
