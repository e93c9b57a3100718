"""Routing's pure core: who answers, and what happens when a deadline passes. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from heard_routing.policy import PS_LEVEL, TOP_LEVEL, Areas, Organisation, RoutingRules, SlaPolicy
from heard_shared.events import FeedbackSubmittedV1

Stage = Literal["acknowledge", "answer"]


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


@dataclass(frozen=True)
class Clock:
    """The SLA clock of one negative item, as the scheduler sees it."""

    feedback_id: str
    severity: str
    level: int
    stage: Stage
    due_at: datetime
    repeat: int


@dataclass(frozen=True)
class Escalation:
    reason: Literal["acknowledge_overdue", "answer_overdue", "reminder", "referral_limit"]
    from_level: int
    level: int
    repeat: int
    next_due_at: datetime


def escalate(clock: Clock, *, now: datetime, policy: SlaPolicy) -> Escalation:
    """One step up the chain; at the top, a reminder that repeats forever on a fixed period.

    The next window starts from `now` (the firing time), so after downtime a missed deadline
    fires once, late, and the next level still gets its full window.
    """
    if clock.level >= TOP_LEVEL:
        return Escalation("reminder", clock.level, clock.level, clock.repeat + 1, now + policy.top_reminder_period)
    level = clock.level + 1
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
