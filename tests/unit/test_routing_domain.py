from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from heard_routing import domain
from heard_routing.config import CONFIG_DIR
from heard_routing.files import ConfigFileError
from heard_routing.policy import PS_LEVEL, TOP_LEVEL, SlaPolicy, load_all
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


# -- every item has a clock; misconduct goes straight up; triage re-derives ------------------------------------

NORTH = ORG.chain("north-patrol")


def case_at_triage(**changes: object) -> domain.CaseAtTriage:
    fields: dict[str, object] = {
        "severity": "neutral",
        "negative": False,
        "level": 0,
        "start_level": 0,
        "chain": NORTH,
        "recused": False,
        "acknowledged": False,
        "acknowledge_by": None,
        "answer_by": None,
    }
    return domain.CaseAtTriage(**(fields | changes))  # type: ignore[arg-type]


def test_items_not_assessed_negative_get_a_triage_deadline_praise_included() -> None:
    for severity in ("neutral", "positive"):
        deadlines = domain.first_deadlines(
            negative=False, severity=severity, level=0, now=NOW, policy=POLICY, acknowledged=False, triaged=False
        )
        assert (deadlines.stage, deadlines.due_at) == ("triage", NOW + POLICY.triage)
        assert deadlines.acknowledge_by is None and deadlines.answer_by is None
    triaged = domain.first_deadlines(
        negative=False, severity="neutral", level=0, now=NOW, policy=POLICY, acknowledged=False, triaged=True
    )
    assert triaged.stage is None, "a person already triaged it: nothing more is owed"


def test_an_untriaged_item_escalates_like_any_other_and_repeats_at_the_top() -> None:
    clock = domain.Clock(feedback_id="f", severity="neutral", level=0, stage="triage", due_at=NOW, repeat=0)
    step = domain.escalate(clock, now=NOW, policy=POLICY)
    assert (step.reason, step.level, step.next_due_at) == ("triage_overdue", 1, NOW + POLICY.triage)
    top = domain.escalate(dataclasses.replace(clock, level=TOP_LEVEL), now=NOW, policy=POLICY)
    assert (top.reason, top.level, top.repeat, top.next_due_at) == ("reminder", TOP_LEVEL, 1, NOW + POLICY.triage)


def test_critical_items_start_at_professional_standards_unless_the_policy_says_otherwise() -> None:
    north = domain.assign(
        feedback(location=PublicLocation(neighbourhood="Northgate")), org=ORG, rules=RULES, areas=AREAS
    )
    critical = domain.start_higher(north, severity="critical", policy=POLICY)
    assert (critical.unit_id, critical.level, critical.rule) == (
        "professional-standards",
        PS_LEVEL,
        "critical:north-precinct",
    )
    assert critical.chain == NORTH, "the chain stays the unit's, so a lowering can hand it back"
    assert domain.start_higher(north, severity="negative", policy=POLICY) == north
    at_unit = POLICY.model_copy(update={"start_levels": {"critical": 0}})
    assert domain.start_higher(north, severity="critical", policy=at_unit) == north
    assert (
        SlaPolicy.model_validate({"severities": POLICY.severities, "top_reminder_period": "1d"}).start_level("critical")
        == PS_LEVEL
    ), "professional standards is the default when the file is silent"


def test_recusal_keeps_working_for_critical_items() -> None:
    named = feedback(kind="complaint", severity="critical", officer_badge="4127")
    assignment = domain.start_higher(
        domain.assign(named, org=ORG, rules=RULES, areas=AREAS), severity="critical", policy=POLICY
    )
    assert (assignment.unit_id, assignment.rule, assignment.recused_badge) == (
        "professional-standards",
        "recusal:named-officer",
        "4127",
    )
    assert not set(assignment.chain) & set(ORG.chain("north-patrol")[:3])


def test_a_per_level_window_caps_the_severity_window_and_never_extends_it() -> None:
    critical_at_ps = POLICY.windows(severity="critical", level=PS_LEVEL)
    assert critical_at_ps.acknowledge == POLICY.severities["critical"].acknowledge
    negative_at_ps = POLICY.windows(severity="negative", level=PS_LEVEL)
    assert negative_at_ps.answer == POLICY.levels[PS_LEVEL].answer < POLICY.severities["negative"].answer


def test_raising_to_critical_moves_the_item_up_with_deadlines_that_never_get_later() -> None:
    earlier = NOW + timedelta(minutes=30)
    case = case_at_triage(severity="negative", negative=True, acknowledge_by=earlier, answer_by=NOW + timedelta(days=9))
    result = domain.after_triage(case, severity="critical", negative=True, now=NOW, policy=POLICY)
    assert (result.level, result.unit_id, result.newly_critical) == (PS_LEVEL, "professional-standards", True)
    assert result.deadlines.acknowledge_by == earlier
    assert result.deadlines.answer_by == NOW + POLICY.severities["critical"].answer
    assert result.deadlines.stage == "acknowledge"


def test_a_neutral_item_raised_to_negative_gets_negative_deadlines_from_the_triage() -> None:
    result = domain.after_triage(
        case_at_triage(acknowledged=True), severity="negative", negative=True, now=NOW, policy=POLICY
    )
    assert (result.level, result.unit_id, result.newly_critical) == (0, "north-patrol", False)
    assert (result.deadlines.stage, result.deadlines.answer_by) == (
        "answer",
        NOW + POLICY.severities["negative"].answer,
    )


def test_lowering_a_critical_item_hands_it_back_to_its_unit_unless_it_already_escalated() -> None:
    critical = case_at_triage(severity="critical", negative=True, level=PS_LEVEL, start_level=PS_LEVEL)
    lowered = domain.after_triage(critical, severity="negative", negative=True, now=NOW, policy=POLICY)
    assert (lowered.level, lowered.unit_id, lowered.start_level) == (0, "north-patrol", 0)
    assert lowered.deadlines.acknowledge_by == NOW + POLICY.severities["negative"].acknowledge
    escalated = dataclasses.replace(critical, level=TOP_LEVEL)
    stays = domain.after_triage(escalated, severity="negative", negative=True, now=NOW, policy=POLICY)
    assert (stays.level, stays.unit_id) == (TOP_LEVEL, "oversight-board"), "what moved up never moves down"
    to_neutral = domain.after_triage(critical, severity="neutral", negative=False, now=NOW, policy=POLICY)
    assert to_neutral.deadlines.stage is None, "triaged as not negative: nothing more is owed"


def test_a_recused_item_stays_with_professional_standards_when_lowered() -> None:
    recused = case_at_triage(
        severity="critical",
        negative=True,
        level=PS_LEVEL,
        start_level=PS_LEVEL,
        chain=ORG.chain("professional-standards"),
        recused=True,
    )
    result = domain.after_triage(recused, severity="negative", negative=True, now=NOW, policy=POLICY)
    assert (result.level, result.unit_id) == (PS_LEVEL, "professional-standards")
