"""What the pages say about an item, in plain words: statuses, the timeline, deadlines and countdowns, what the
board sees, the audit trail. Pure functions of the API's JSON, the unit names and a `gettext`; no I/O.

The lifecycle rules here only decide which buttons a page offers; intake checks every action again and refuses
what its rules do not allow, with a message the page shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from heard_web.i18n import N_, parse_time

Gettext = Callable[[str], str]
Json = Mapping[str, Any]

KINDS: dict[str, tuple[str, str]] = {
    "complaint": (N_("Complaint"), N_("Something went wrong, or someone was treated badly.")),
    "concern": (N_("Concern"), N_("Something worries you and should be looked at.")),
    "suggestion": (N_("Suggestion"), N_("An idea for doing better.")),
    "question": (N_("Question"), N_("You want to know something.")),
    "praise": (N_("Praise"), N_("Something went well, or someone helped.")),
}
STATUSES: dict[str, tuple[str, str]] = {
    "submitted": (N_("Received"), N_("We received your feedback and are finding the right unit for it.")),
    "routed": (N_("Assigned"), N_("A unit is responsible for your feedback and must respond.")),
    "acknowledged": (N_("Being worked on"), N_("The responsible unit acknowledged your feedback.")),
    "escalated": (
        N_("Moved up the chain"),
        N_("It was not handled in time, so it went to the next level up. It keeps rising until it is answered."),
    ),
    "answered": (N_("Answered"), N_("An answer was published. You can reply, or contest it if it is not adequate.")),
    "reopened": (N_("Reopened"), N_("You contested the answer, so it was reopened one level higher.")),
    "referred": (N_("Being handed on"), N_("The unit handed it to another unit, which must respond.")),
    "closed": (N_("Closed"), N_("Your feedback was answered and closed. You can still contest the answer.")),
    "withdrawn": (N_("Withdrawn"), N_("You withdrew your feedback.")),
}
LEVELS = (
    N_("assigned unit"),
    N_("supervisor"),
    N_("commander"),
    N_("professional standards"),
    N_("civilian oversight board"),
)
SEVERITIES = {
    "critical": N_("Critical"),
    "negative": N_("Negative"),
    "neutral": N_("Neutral"),
    "positive": N_("Positive"),
}
ESCALATION_REASONS = {
    "acknowledge_overdue": N_("nobody acknowledged it in time"),
    "answer_overdue": N_("it was not answered in time"),
    "reminder": N_("a reminder: still no answer"),
    "referral_limit": N_("it was handed on too many times"),
}
FINAL = frozenset({"closed", "withdrawn"})
OPEN = frozenset({"submitted", "routed", "acknowledged", "escalated", "answered", "reopened", "referred"})
AWAITING_ACKNOWLEDGEMENT = frozenset({"submitted", "routed", "escalated", "referred", "reopened"})
AWAITING_ANSWER = OPEN - {"answered"}


def label(table: Mapping[str, tuple[str, str]], key: str | None, gettext: Gettext) -> str:
    return gettext(table[key][0]) if key is not None and key in table else str(key or "")


def explanation(table: Mapping[str, tuple[str, str]], key: str | None, gettext: Gettext) -> str:
    return gettext(table[key][1]) if key is not None and key in table else ""


def level_name(level: Any, gettext: Gettext) -> str:
    return gettext(LEVELS[level]) if isinstance(level, int) and 0 <= level < len(LEVELS) else ""


def unit_label(unit_id: str | None, units: Mapping[str, str]) -> str:
    return units.get(unit_id or "", unit_id or "")


@dataclass(frozen=True)
class TimelineEntry:
    at: str
    title: str
    text: str | None = None  # the resident's own words, shown as they wrote them
    actor: str | None = None  # staff pages only


def resident_timeline(history: Iterable[Json], units: Mapping[str, str], gettext: Gettext) -> list[TimelineEntry]:
    """The public history in plain words, oldest first."""
    return [_entry(entry, units, gettext, staff=False) for entry in history]


def staff_timeline(history: Iterable[Json], units: Mapping[str, str], gettext: Gettext) -> list[TimelineEntry]:
    """The full history, with who did what and staff's reasons, oldest first."""
    return [_entry(entry, units, gettext, staff=True) for entry in history]


def _entry(entry: Json, units: Mapping[str, str], gettext: Gettext, *, staff: bool) -> TimelineEntry:
    status, action, at = entry.get("status"), entry.get("action"), str(entry.get("at", ""))
    unit = unit_label(entry.get("unit_id"), units)
    text = entry.get("text") if isinstance(entry.get("text"), str) else None
    actor = str(entry["by"]) if staff and entry.get("by") else None
    if action == "replied":
        title = gettext(N_("The resident replied.")) if staff else gettext(N_("You replied."))
    elif action == "contested":
        title = (
            gettext(N_("The resident contested the answer; it reopened one level higher."))
            if staff
            else gettext(N_("You contested the answer, so it reopened one level higher."))
        )
    elif action == "erased":
        title = gettext(N_("Personal details were erased at the resident's request."))
        text = None
    elif status == "submitted":
        title = gettext(N_("Feedback received."))
    elif status == "routed":
        title = gettext(N_("Assigned to %(unit)s.")) % {"unit": unit}
    elif status == "acknowledged":
        title = gettext(N_("The responsible unit acknowledged it."))
    elif status == "escalated" and entry.get("reason") == "reminder":
        title = gettext(N_("Reminder to %(unit)s: still no answer.")) % {"unit": unit}
    elif status == "escalated":
        reason = ESCALATION_REASONS.get(str(entry.get("reason")), "")
        title = gettext(N_("Moved up to %(level)s (%(unit)s): %(reason)s.")) % {
            "level": level_name(entry.get("level"), gettext),
            "unit": unit,
            "reason": gettext(reason) if reason else "",
        }
    elif status == "answered":
        title = gettext(N_("An answer was published."))
    elif status == "referred":
        title = gettext(N_("Handed on to another unit."))
        if staff and entry.get("reason"):
            text = str(entry["reason"])
    elif status == "closed":
        title = gettext(N_("Closed."))
    elif status == "withdrawn":
        title = gettext(N_("Withdrawn by the resident.")) if staff else gettext(N_("You withdrew it."))
    else:
        title = str(status)
    return TimelineEntry(at=at, title=title, text=text, actor=actor)


@dataclass(frozen=True)
class Deadline:
    what: str  # "acknowledge" or "answer"
    due_at: datetime
    remaining: timedelta  # negative once passed

    @property
    def overdue(self) -> bool:
        return self.remaining <= timedelta(0)


def next_deadline(item: Json, now: datetime) -> Deadline | None:
    """The deadline the item waits on now: acknowledging first, then answering."""
    status = item.get("status")
    for what, statuses, key in (
        ("acknowledge", AWAITING_ACKNOWLEDGEMENT, "acknowledge_by"),
        ("answer", AWAITING_ANSWER, "answer_by"),
    ):
        due = parse_time(item.get(key))
        if status in statuses and due is not None:
            return Deadline(what, due, due - now)
    return None


@dataclass(frozen=True)
class Actions:
    """The buttons an item page offers to someone who may act on it."""

    acknowledge: bool
    answer: bool
    refer: bool
    close: bool


def staff_actions(item: Json) -> Actions:
    status = str(item.get("status"))
    return Actions(
        acknowledge=status in AWAITING_ACKNOWLEDGEMENT,
        answer=status in OPEN,
        refer=status in OPEN - {"answered", "referred"} and bool(item.get("unit_id")),
        close=status not in FINAL,
    )


@dataclass(frozen=True)
class ResidentActions:
    reply: bool
    contest: bool
    withdraw: bool
    erase: bool


def resident_actions(view: Json) -> ResidentActions:
    status = str(view.get("status"))
    answer = view.get("answer") or {}
    return ResidentActions(
        reply=status not in FINAL,
        contest=status in {"answered", "closed"} and bool(answer) and not answer.get("contested"),
        withdraw=status not in FINAL,
        erase=not view.get("erased"),
    )


@dataclass(frozen=True)
class BoardItem:
    """One item at the civilian oversight board: how long it has waited and how often the board was reminded."""

    item: Json
    reached_board_at: datetime | None
    age: timedelta
    reminders: int
    last_reminder_at: datetime | None
    answered: bool


def board_item(item: Json, board_unit: str, now: datetime) -> BoardItem:
    history = list(item.get("history") or [])
    arrivals = [
        parse_time(entry.get("at"))
        for entry in history
        if entry.get("status") == "escalated"
        and entry.get("unit_id") == board_unit
        and entry.get("reason") != "reminder"
    ]
    reminders = [
        parse_time(entry.get("at"))
        for entry in history
        if entry.get("status") == "escalated" and entry.get("reason") == "reminder"
    ]
    submitted = parse_time(item.get("submitted_at")) or now
    return BoardItem(
        item=item,
        reached_board_at=next((at for at in arrivals if at), None),
        age=now - submitted,
        reminders=len(reminders),
        last_reminder_at=max((at for at in reminders if at), default=None),
        answered=bool(item.get("answer")) and not (item.get("answer") or {}).get("contested_at"),
    )


AUDIT_ACTIONS = {
    "submitted": N_("submitted"),
    "routed": N_("routed"),
    "acknowledged": N_("acknowledged"),
    "answered": N_("answered"),
    "closed": N_("closed"),
    "escalated": N_("escalated"),
    "referred": N_("referred"),
    "replied": N_("resident replied"),
    "contested": N_("resident contested"),
    "reopened": N_("reopened"),
    "withdrawn": N_("withdrawn"),
    "erased": N_("personal data erased"),
    "note_added": N_("internal note added"),
}


@dataclass(frozen=True)
class AuditRow:
    seq: int | None
    at: str
    action: str
    actor: str
    details: list[tuple[str, str]] = field(default_factory=list)
    hash: str = ""
    broken: bool = False


def audit_rows(trail: Json, gettext: Gettext) -> list[AuditRow]:
    broken_at = trail.get("broken_at")
    rows = []
    for entry in trail.get("entries") or []:
        action = str(entry.get("action"))
        details = [(str(key), _detail(value)) for key, value in sorted((entry.get("details") or {}).items())]
        rows.append(
            AuditRow(
                seq=entry.get("seq"),
                at=str(entry.get("at") or ""),
                action=gettext(AUDIT_ACTIONS[action]) if action in AUDIT_ACTIONS else action,
                actor=str(entry.get("actor") or ""),
                details=details,
                hash=str(entry.get("hash") or "")[:16],
                broken=broken_at is not None and entry.get("seq") == broken_at,
            )
        )
    return rows


def _detail(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)
