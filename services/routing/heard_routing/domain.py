"""Routing's pure core: who answers, and what happens when a deadline passes. No I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from heard_routing.policy import PS_LEVEL, TOP_LEVEL, Areas, Organisation, RoutingRules, SlaPolicy
from heard_shared.events import SEVERITY_RANK, FeedbackSubmittedV1

# What the running clock waits for: a person's triage (items not assessed negative), an acknowledgement,
# or an answer (negative items).
Stage = Literal["triage", "acknowledge", "answer"]


@dataclass(frozen=True)
class Assignment:
    unit_id: str
    chain: list[str]
    rule: str
    recused_badge: str | None = None
    commendation_badge: str | None = None
    level: int = 0


def assign(feedback: FeedbackSubmittedV1, *, org: Organisation, rules: RoutingRules, areas: Areas) -> Assignment:
    """First matching rule wins; a complaint naming an officer goes to professional standards (recusal)."""
    officer = org.officer(feedback.officer_badge) if feedback.officer_badge else None
    if officer is not None and feedback.negative:
        # Neither the officer's unit nor its supervisors or command may handle it.
        # It starts at the professional-standards level, so its next step is the oversight board.
        ps = org.professional_standards.id
        return Assignment(ps, org.chain(ps), "recusal:named-officer", recused_badge=officer.badge, level=PS_LEVEL)
    if officer is not None and feedback.kind == "praise":
        supervisor = org.chain(officer.unit)[1]
        return Assignment(
            supervisor,
            [*org.chain(officer.unit)[1:], org.oversight_board.id],
            "commendation",
            commendation_badge=officer.badge,
        )
    text = feedback.text.lower()
    location = feedback.location
    inside = (
        areas.containing(location.latitude, location.longitude)
        if location and location.latitude is not None and location.longitude is not None
        else set()
    )
    neighbourhood = (location.neighbourhood or "").casefold() if location else ""
    for rule in rules.rules:
        match = rule.match
        if (
            (feedback.category and feedback.category.casefold() in {c.casefold() for c in match.categories})
            or (inside & set(match.areas))
            or (neighbourhood and neighbourhood in {n.casefold() for n in match.neighbourhoods})
            or any(k.casefold() in text for k in match.keywords)
        ):
            return Assignment(rule.unit, org.chain(rule.unit), rule.id)
    return Assignment(rules.fallback_unit, org.chain(rules.fallback_unit), "fallback")


def start_higher(assignment: Assignment, *, severity: str, policy: SlaPolicy) -> Assignment:
    """Misconduct goes straight up: a new assignment starts at its severity's level (critical: professional
    standards, unless the policy says otherwise). A recusal already starts at professional standards."""
    level = policy.start_level(severity)
    if assignment.recused_badge is not None or level <= assignment.level:
        return assignment
    return dataclasses.replace(
        assignment, unit_id=assignment.chain[level], level=level, rule=f"{severity}:{assignment.rule}"
    )


@dataclass(frozen=True)
class Deadlines:
    """What an item waits for now (`stage`; None when nothing is owed) and the deadlines that apply."""

    stage: Stage | None
    acknowledge_by: datetime | None = None
    answer_by: datetime | None = None
    triage_by: datetime | None = None

    @property
    def due_at(self) -> datetime | None:
        if self.stage is None:
            return None
        return {"triage": self.triage_by, "acknowledge": self.acknowledge_by, "answer": self.answer_by}[self.stage]


def first_deadlines(
    *, negative: bool, severity: str, level: int, now: datetime, policy: SlaPolicy, acknowledged: bool, triaged: bool
) -> Deadlines:
    """Every item gets a clock: negative items must be acknowledged and answered; the others must be triaged
    by a person (who then confirms or changes kind and severity) — praise included."""
    if not negative:
        return Deadlines(None) if triaged else Deadlines("triage", triage_by=now + policy.triage)
    windows = policy.windows(severity=severity, level=level)
    return Deadlines("answer" if acknowledged else "acknowledge", now + windows.acknowledge, now + windows.answer, None)


@dataclass(frozen=True)
class CaseAtTriage:
    """What routing knows of an item when a person's triage decision arrives."""

    severity: str
    negative: bool
    level: int
    start_level: int
    chain: list[str]
    recused: bool
    acknowledged: bool
    acknowledge_by: datetime | None
    answer_by: datetime | None


@dataclass(frozen=True)
class Retriaged:
    level: int
    start_level: int
    unit_id: str
    deadlines: Deadlines
    newly_critical: bool


def after_triage(case: CaseAtTriage, *, severity: str, negative: bool, now: datetime, policy: SlaPolicy) -> Retriaged:
    """Re-derives the chain position and the deadlines from a person's triage decision.

    - The start level follows the new severity (raised to critical: professional standards; lowered from
      critical: back to the assigned unit). An item that escalation or a contest already moved above its start
      stays where it is, or goes higher: responsibility that moved up because nobody acted never moves down.
    - Not negative: a person has looked at it and nothing more is owed, so the clock stops.
    - Negative: deadlines of the new severity from now; a raise never makes a deadline later than it was.
    - A recused item stays with professional standards whatever its severity.
    """
    new_start = case.start_level if case.recused else policy.start_level(severity)
    moved = case.level != case.start_level
    level = max(case.level, new_start) if moved else new_start
    raised = SEVERITY_RANK[severity] > SEVERITY_RANK[case.severity]
    newly_critical = severity == "critical" and case.severity != "critical"
    if not negative:
        deadlines = Deadlines(None)
    else:
        windows = policy.windows(severity=severity, level=level)
        acknowledge_by, answer_by = now + windows.acknowledge, now + windows.answer
        if raised and case.negative:
            acknowledge_by = min(acknowledge_by, case.acknowledge_by or acknowledge_by)
            answer_by = min(answer_by, case.answer_by or answer_by)
        deadlines = Deadlines("answer" if case.acknowledged else "acknowledge", acknowledge_by, answer_by)
    return Retriaged(level, new_start, case.chain[level], deadlines, newly_critical)


@dataclass(frozen=True)
class Clock:
    """The SLA clock of one item, as the scheduler sees it."""

    feedback_id: str
    severity: str
    level: int
    stage: Stage
    due_at: datetime
    repeat: int


@dataclass(frozen=True)
class Escalation:
    reason: Literal["acknowledge_overdue", "answer_overdue", "reminder", "referral_limit", "triage_overdue"]
    from_level: int
    level: int
    repeat: int
    next_due_at: datetime


def escalate(clock: Clock, *, now: datetime, policy: SlaPolicy) -> Escalation:
    """One step up the chain; at the top, a reminder that repeats forever on a fixed period (the triage window
    for an item nobody has triaged, `top_reminder_period` otherwise).

    The next window starts from `now` (the firing time), so after downtime a missed deadline
    fires once, late, and the next level still gets its full window.
    """
    if clock.level >= TOP_LEVEL:
        # An item still waiting for triage is reminded once per triage window; an unanswered one more often.
        period = policy.triage if clock.stage == "triage" else policy.top_reminder_period
        return Escalation("reminder", clock.level, clock.level, clock.repeat + 1, now + period)
    level = clock.level + 1
    if clock.stage == "triage":
        return Escalation("triage_overdue", clock.level, level, 0, now + policy.triage)
    windows = policy.windows(severity=clock.severity, level=level)
    window = windows.acknowledge if clock.stage == "acknowledge" else windows.answer
    reason: Literal["acknowledge_overdue", "answer_overdue"] = (
        "acknowledge_overdue" if clock.stage == "acknowledge" else "answer_overdue"
    )
    return Escalation(reason, clock.level, level, 0, now + window)


def reassign_after_referral(
    *,
    from_unit: str,
    suggested_unit: str | None,
    recused_badge: str | None,
    feedback: FeedbackSubmittedV1,
    org: Organisation,
    rules: RoutingRules,
    areas: Areas,
) -> Assignment:
    """A referral moves the item to the suggested unit when that is allowed, else to the next rule's unit.

    Never back to the referring unit, and never into a recused officer's own chain.
    """
    forbidden = {from_unit}
    if recused_badge and (officer := org.officer(recused_badge)) is not None:
        forbidden |= set(org.chain(officer.unit)[:3])
    known = {u.id for u in org.units} | {org.professional_standards.id}
    if suggested_unit and suggested_unit in known and suggested_unit not in forbidden:
        return Assignment(
            suggested_unit,
            org.chain(suggested_unit),
            "referral:suggested",
            recused_badge=recused_badge,
            level=starting_level(suggested_unit, org),
        )
    remaining = RoutingRules(
        fallback_unit=rules.fallback_unit if rules.fallback_unit not in forbidden else org.professional_standards.id,
        areas_file=rules.areas_file,
        rules=[r for r in rules.rules if r.unit not in forbidden],
    )
    choice = assign(feedback.model_copy(update={"officer_badge": None}), org=org, rules=remaining, areas=areas)
    return Assignment(
        choice.unit_id,
        choice.chain,
        f"referral:{choice.rule}",
        recused_badge=recused_badge,
        level=starting_level(choice.unit_id, org),
    )


def starting_level(unit_id: str, org: Organisation) -> int:
    """Professional standards sits at level 3 of every chain; an item given to it starts there."""
    return PS_LEVEL if unit_id == org.professional_standards.id else 0


def reopened_level(highest_level: int) -> int:
    """A contest reopens the item one level above the highest it reached."""
    return min(highest_level + 1, TOP_LEVEL)
