from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heard_routing import domain
from heard_routing.config import CONFIG_DIR
from heard_routing.files import ConfigFileError
from heard_routing.policy import TOP_LEVEL, load_all
from heard_shared.events import FeedbackSubmittedV1, PublicLocation

POLICY, ORG, RULES, AREAS = load_all(
    sla=CONFIG_DIR / "sla-policy.yaml",
    organisation=CONFIG_DIR / "organisation.yaml",
    rules=CONFIG_DIR / "routing-rules.yaml",
)
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def feedback(**changes: object) -> FeedbackSubmittedV1:
    fields: dict[str, object] = {
        "feedback_id": "f",
        "channel": "api",
        "kind": "concern",
        "language": "en",
        "text": "noise at night",
        "severity": "negative",
        "negative": True,
        "submitted_at": NOW,
    }
    return FeedbackSubmittedV1.model_validate(fields | changes)


def test_category_rule_wins_first() -> None:
    assert domain.assign(feedback(category="Parking"), org=ORG, rules=RULES, areas=AREAS).unit_id == "traffic-unit"


def test_point_in_precinct_polygon_routes_to_that_precinct() -> None:
    located = feedback(location=PublicLocation(latitude=44.90, longitude=-93.25))
    assert domain.assign(located, org=ORG, rules=RULES, areas=AREAS).unit_id == "south-patrol"


def test_neighbourhood_and_keywords_route_and_nothing_falls_back() -> None:
    north = feedback(location=PublicLocation(neighbourhood="northgate"))
    assert domain.assign(north, org=ORG, rules=RULES, areas=AREAS).unit_id == "north-patrol"
    meeting = feedback(text="Thanks for the youth program", kind="praise", negative=False, severity="positive")
    assert domain.assign(meeting, org=ORG, rules=RULES, areas=AREAS).rule == "community-events"
    assert domain.assign(feedback(), org=ORG, rules=RULES, areas=AREAS).rule == "fallback"


def test_complaint_naming_an_officer_skips_the_officers_whole_chain() -> None:
    named = feedback(kind="complaint", officer_badge="4127", location=PublicLocation(neighbourhood="Northgate"))
    assignment = domain.assign(named, org=ORG, rules=RULES, areas=AREAS)
    assert assignment.unit_id == "professional-standards"
    assert not set(assignment.chain) & set(ORG.chain("north-patrol")[:3])
    assert assignment.recused_badge == "4127"


def test_praise_naming_an_officer_goes_to_their_supervisor_as_a_commendation() -> None:
    praise = feedback(kind="praise", negative=False, severity="positive", officer_badge="4127")
    assignment = domain.assign(praise, org=ORG, rules=RULES, areas=AREAS)
    assert (assignment.unit_id, assignment.commendation_badge) == ("north-sergeants", "4127")


def test_escalation_climbs_one_level_and_repeats_forever_at_the_top() -> None:
    clock = domain.Clock(feedback_id="f", severity="critical", level=0, stage="acknowledge", due_at=NOW, repeat=0)
    levels = []
    for _ in range(TOP_LEVEL + 3):
        step = domain.escalate(clock, now=clock.due_at, policy=POLICY)
        levels.append((step.level, step.reason, step.repeat))
        clock = domain.Clock("f", "critical", step.level, "acknowledge", step.next_due_at, step.repeat)
    assert [lvl for lvl, _, _ in levels] == [1, 2, 3, 4, 4, 4, 4]
    assert levels[-1] == (4, "reminder", 3)


def test_a_late_firing_gives_the_next_level_a_full_window_from_now() -> None:
    clock = domain.Clock(feedback_id="f", severity="negative", level=0, stage="answer", due_at=NOW, repeat=0)
    later = NOW + timedelta(days=3)
    step = domain.escalate(clock, now=later, policy=POLICY)
    assert step.next_due_at == later + POLICY.windows(severity="negative", level=1).answer
    assert step.reason == "answer_overdue"


def test_invalid_files_are_refused_with_file_line_and_reason(tmp_path: Path) -> None:
    broken = tmp_path / "sla.yaml"
    broken.write_text(
        "severities:\n  critical: {acknowledge: 4h, answer: 3d}\n  negative: {acknowledge: soon}\n"
        "top_reminder_period: 1d\n"
    )
    with pytest.raises(ConfigFileError) as refused:
        load_all(sla=broken, organisation=CONFIG_DIR / "organisation.yaml", rules=CONFIG_DIR / "routing-rules.yaml")
    message = str(refused.value)
    assert f"{broken}:3" in message and "severities.negative" in message


def test_rules_pointing_at_unknown_units_are_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("fallback_unit: nobody\nrules: []\n")
    with pytest.raises(ConfigFileError, match="fallback_unit 'nobody'"):
        load_all(sla=CONFIG_DIR / "sla-policy.yaml", organisation=CONFIG_DIR / "organisation.yaml", rules=rules)


def test_a_referral_never_returns_to_the_referring_unit_or_a_recused_chain() -> None:
    item = feedback(location=PublicLocation(neighbourhood="Northgate"))
    moved = domain.reassign_after_referral(
        from_unit="north-patrol",
        suggested_unit=None,
        recused_badge=None,
        feedback=item,
        org=ORG,
        rules=RULES,
        areas=AREAS,
    )
    assert moved.unit_id != "north-patrol"
    suggested = domain.reassign_after_referral(
        from_unit="north-patrol",
        suggested_unit="traffic-unit",
        recused_badge=None,
        feedback=item,
        org=ORG,
        rules=RULES,
        areas=AREAS,
    )
    assert (suggested.unit_id, suggested.rule) == ("traffic-unit", "referral:suggested")
    recused = domain.reassign_after_referral(
        from_unit="professional-standards",
        suggested_unit="north-sergeants",
        recused_badge="4127",
        feedback=item,
        org=ORG,
        rules=RULES,
        areas=AREAS,
    )
    assert recused.unit_id not in ORG.chain("north-patrol")[:3]


def test_a_contest_reopens_one_level_above_the_highest_reached_but_never_past_the_board() -> None:
    assert domain.reopened_level(0) == 1
    assert domain.reopened_level(3) == 4
    assert domain.reopened_level(4) == 4
