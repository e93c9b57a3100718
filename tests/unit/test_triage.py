"""Severity at intake and a person's triage: declared allegations, flags, who may lower what. Pure, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heard_intake import access, domain
from heard_intake.auth import Principal
from heard_intake.service import public_view, staff_view
from heard_intake.severity import SeverityAssessment
from heard_shared.allegations import ALLEGATION_CODES, ALLEGATIONS, BY_CODE
from heard_shared.events import FeedbackInboundV1

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
REASON = "Second-hand account; the resident's own words describe a parking ticket, not force."


def principal(*roles: str, unit: str | None = None) -> Principal:
    return Principal(name="someone", roles=frozenset(roles), unit_id=unit)


def triage(**overrides: Any) -> domain.Triage:
    arguments: dict[str, Any] = {
        "status": "routed",
        "current_kind": "complaint",
        "current_severity": "critical",
        "kind": "complaint",
        "severity": "critical",
        "reason": None,
        "may_lower_critical": False,
    }
    return domain.triage(**(arguments | overrides))


def refused(**overrides: Any) -> tuple[str, int]:
    with pytest.raises(domain.GuardViolation) as violation:
        triage(**overrides)
    return violation.value.code, violation.value.status


# -- severity at intake ----------------------------------------------------------------------------------------


def test_any_declared_allegation_makes_the_item_critical_whatever_the_text_says() -> None:
    calm = SeverityAssessment("positive", False, ["kind:praise", "sentiment:0.80"])
    decided = domain.decide_severity(calm, allegations=["retaliation"])
    assert (decided.severity, decided.negative, decided.triage_state) == ("critical", True, "not_required")
    assert decided.reasons[0] == "allegation:retaliation" and "kind:praise" in decided.reasons


def test_an_unsure_assessment_is_negative_and_flagged_for_triage() -> None:
    unsure = SeverityAssessment("negative", True, ["sentiment:-0.04"], uncertain=True)
    decided = domain.decide_severity(unsure, allegations=[])
    assert (decided.severity, decided.negative, decided.triage_state) == ("negative", True, "flagged")
    assert "uncertain" in decided.reasons


def test_items_not_assessed_negative_await_triage_and_negative_ones_need_none() -> None:
    assert domain.decide_severity(SeverityAssessment("neutral", False, []), allegations=[]).triage_state == "awaiting"
    assert domain.decide_severity(SeverityAssessment("positive", False, []), allegations=[]).triage_state == "awaiting"
    negative = SeverityAssessment("negative", True, ["kind:complaint"])
    assert domain.decide_severity(negative, allegations=[]).triage_state == "not_required"


def test_the_allegation_list_is_fixed_bilingual_and_normalised() -> None:
    assert len(ALLEGATIONS) == len(ALLEGATION_CODES) == len(BY_CODE) == 10
    assert all(a.label_en and a.label_es and a.description_en and a.description_es for a in ALLEGATIONS)
    declared = FeedbackInboundV1(kind="concern", text="x", allegations=["retaliation", "force", "retaliation"])
    assert declared.allegations == ["force", "retaliation"], "each code once, in the list's order"
    with pytest.raises(ValueError, match="allegations"):
        FeedbackInboundV1.model_validate({"kind": "concern", "text": "x", "allegations": ["rudeness"]})


# -- triage rules ----------------------------------------------------------------------------------------------


def test_raising_is_free_and_confirming_changes_nothing() -> None:
    raised = triage(current_kind="question", current_severity="neutral", kind="complaint", severity="negative")
    assert (raised.decision, raised.negative, raised.direction) == ("raised", True, "raised")
    confirmed = triage()
    assert (confirmed.decision, confirmed.direction) == ("confirmed", None)
    reclassified = triage(current_kind="question", current_severity="neutral", kind="suggestion", severity="neutral")
    assert reclassified.decision == "reclassified"
    swapped = triage(current_kind="praise", current_severity="positive", kind="praise", severity="neutral")
    assert (swapped.decision, swapped.direction) == ("reclassified", None), "positive and neutral are one step"


def test_lowering_needs_a_written_reason() -> None:
    lowered = dict(current_severity="negative", kind="question", severity="neutral")
    assert refused(**lowered) == ("reason_required", 422)
    assert refused(**lowered, reason="   no    ") == ("reason_required", 422)
    done = triage(**lowered, reason=REASON)
    assert (done.decision, done.negative, done.direction) == ("lowered", False, "lowered")


def test_only_professional_standards_or_oversight_may_lower_a_critical_item() -> None:
    assert refused(severity="negative", reason=REASON) == ("lowering_critical_needs_role", 403)
    assert triage(severity="negative", reason=REASON, may_lower_critical=True).decision == "lowered"
    # A critical item that stays critical may be reclassified by anyone who may act on it.
    assert triage(kind="concern").decision == "reclassified"
    assert access.may_lower_critical(principal("professional_standards"))
    assert access.may_lower_critical(principal("oversight"))
    for role in ("unit_member", "supervisor", "commander", "admin"):
        assert not access.may_lower_critical(principal(role, unit="north-patrol"))


def test_a_complaint_or_concern_stays_negative_and_a_closed_item_keeps_its_severity() -> None:
    assert refused(current_severity="negative", severity="neutral", reason=REASON) == ("severity_below_kind", 422)
    assert refused(status="closed") == ("already_closed", 409)


def test_who_may_triage_and_the_role_recorded() -> None:
    access.check_can_triage(principal("unit_member", unit="north-patrol"), "north-patrol")
    access.check_can_triage(principal("oversight"), "north-patrol")  # read-only otherwise, but may triage
    with pytest.raises(access.AccessDenied):
        access.check_can_triage(principal("unit_member", unit="south-patrol"), "north-patrol")
    assert access.acting_role(principal("supervisor", "professional_standards")) == "professional_standards"
    assert access.acting_role(principal("unit_member", unit="x")) == "unit_member"


# -- what staff and residents see ------------------------------------------------------------------------------


def test_an_untriaged_item_cannot_be_closed_and_its_triage_deadline_makes_it_overdue() -> None:
    with pytest.raises(domain.GuardViolation) as refusal:
        domain.check_can_close(status="routed", negative=False, has_published_answer=False, awaiting_triage=True)
    assert refusal.value.code == "triage_required"
    domain.check_can_close(status="routed", negative=False, has_published_answer=False)
    item = {"status": "routed", "triage_state": "awaiting", "triage_by": NOW - timedelta(hours=1)}
    assert domain.overdue_since(item, NOW) == NOW - timedelta(hours=1)
    assert domain.overdue_since({**item, "triage_state": "done"}, NOW) is None


def test_staff_see_the_triage_flags_and_residents_do_not_see_triage() -> None:
    record = {
        "_id": "f",
        "status": "routed",
        "kind": "question",
        "severity": "negative",
        "negative": True,
        "triage_state": "flagged",
        "submitted_at": NOW,
        "history": [
            {"status": "submitted", "at": NOW},
            {"status": "routed", "action": "triaged", "at": NOW, "by": "sgt", "reason": REASON},
        ],
    }
    view = staff_view(record, now=NOW)
    assert (view["needs_triage"], view["flagged_for_triage"], view["allegations"]) == (True, True, [])
    assert len(view["history"]) == 2
    resident = public_view(record | {"allegations": ["discourtesy"]})
    assert [entry["status"] for entry in resident["history"]] == ["submitted"]
    assert resident["allegations"] == ["discourtesy"] and "severity" not in resident
    legacy = staff_view({k: v for k, v in record.items() if k != "triage_state"} | {"negative": False}, now=NOW)
    assert legacy["triage_state"] == "awaiting", "records from before triage still show they need it"


def test_erasure_redacts_triage_reasons_like_other_staff_text() -> None:
    record = {"text": "x", "triages": [{"reason": "call me on 555-123-4567 please", "decision": "lowered"}]}
    changes, _ = domain.erasure(record)
    assert "555" not in changes["triages"][0]["reason"] and changes["triages"][0]["decision"] == "lowered"
