"""The pure core of the read model: what analytics knows about one item, and what the item adds to the statistics.

`merge` folds one event into an item's facts. Every fact is a first (minimum), a last (maximum) or a value that
never changes, so merging is idempotent and does not depend on the order events arrive in — Kafka orders an item's
events within a topic, not across topics, and a rebuild replays topic by topic. `contribution` turns the facts
into counters of the item's cell (its submission month, place, kind and category); the read model adds to the
cells only the difference between what an item contributes now and what it already added, so every stage is
counted once however often, and in whatever order, its events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from heard_analytics import histogram
from heard_analytics.areas import Areas
from heard_shared import events as ev
from heard_shared.allegations import ALLEGATION_CODES
from heard_shared.events import SEVERITY_RANK, CloudEvent

Facts = dict[str, Any]
Counters = dict[str, int]

KINDS: tuple[str, ...] = ("complaint", "concern", "question", "suggestion", "praise")
# Categories that may be published. Anything else a submitter wrote is counted as "other" (it is free text);
# an item without a category is "none". Allegation types are counted apart (an item may declare several).
CATEGORIES: tuple[str, ...] = ("conduct", "response_time", "traffic", "parking", "speeding", "other", "none")
OVERSIGHT_BOARD_LEVEL = 4
ESCALATION_LEVELS = (1, 2, 3)

# Stages after submission whose time since submission is kept as a histogram.
TIMED_STAGES: tuple[str, ...] = (
    "acknowledged",
    "answered",
    *(f"escalated_{level}" for level in ESCALATION_LEVELS),
    "board",
    "closed",
)


def allegation_counter(code: str) -> str:
    return f"allegation_{code}"


# Every counter a cell holds (besides the `t_<stage>_<bin>` histograms); the data dictionary describes each.
COUNTERS: tuple[str, ...] = (
    "submitted",
    "negative",
    *TIMED_STAGES,
    "withdrawn",
    "open",
    "contested",
    "contest_answered_again",
    "contest_withdrawn",
    "contest_pending",
    "acknowledge_due",
    "acknowledged_in_time",
    "answer_due",
    "answered_in_time",
    "session_items",
    "session_answered",
    "triaged",
    "lowered_at_triage",
    "with_allegation",
    *(allegation_counter(code) for code in ALLEGATION_CODES),
)


def histogram_field(stage: str, index: int) -> str:
    return f"t_{stage}_{index}"


def parse_histogram_field(name: str) -> tuple[str, int] | None:
    if not name.startswith("t_"):
        return None
    stage, _, index = name[2:].rpartition("_")
    return (stage, int(index)) if stage in TIMED_STAGES and index.isdigit() else None


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def public_category(category: str | None) -> str:
    if not category:
        return "none"
    normalised = category.strip().lower().replace(" ", "_").replace("-", "_")
    return normalised if normalised in CATEGORIES else "other"


def _ms(moment: datetime) -> int:
    """Moments are kept as epoch milliseconds: exact on every MongoDB-wire server (nx-27017 turns some stored
    dates into text) and equal after a round trip (MongoDB keeps milliseconds)."""
    return int(moment.timestamp() * 1000)


def _ms_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else _ms(moment)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _earliest(current: int | None, candidate: int) -> int:
    return candidate if current is None or candidate < current else current


def _latest(current: int | None, candidate: int) -> int:
    return candidate if current is None or candidate > current else current


def merge(facts: Facts, event: CloudEvent[Any], areas: Areas) -> Facts:
    """The item's facts after `event`; the input is not modified."""
    data = event.data
    out = dict(facts)
    if isinstance(data, ev.FeedbackSubmittedV1):
        if "submitted_at" not in out:
            place = areas.locate(data.location)
            out |= {
                "submitted_at": _ms(data.submitted_at),
                "month": month_of(data.submitted_at),
                "precinct": place.precinct,
                "neighbourhood": place.neighbourhood,
                "kind": data.kind,
                "category": public_category(data.category),
                "severity": data.severity,
                "negative": 1 if data.negative else 0,
                "channel": data.channel,
                "language": data.language,
                "allegations": list(data.allegations or ()),
            }
    elif isinstance(data, ev.FeedbackRoutedV1):
        out["level"] = max(out.get("level", 0), data.level)
        if data.level > 0:
            out["reached"] = _reached(out.get("reached"), data.level, _ms(data.routed_at))
        if data.answer_by is not None or data.acknowledge_by is not None:
            if data.rule == "contest":
                if "round_routed_at" not in out or _ms(data.routed_at) > out["round_routed_at"]:
                    out |= {
                        "round_routed_at": _ms(data.routed_at),
                        "round_acknowledge_by": _ms_or_none(data.acknowledge_by),
                        "round_answer_by": _ms_or_none(data.answer_by),
                    }
            elif "deadlines_routed_at" not in out or _ms(data.routed_at) < out["deadlines_routed_at"]:
                # The first routing's deadlines are the ones the department promised; a referral keeps them.
                out |= {
                    "deadlines_routed_at": _ms(data.routed_at),
                    "acknowledge_by": _ms_or_none(data.acknowledge_by),
                    "answer_by": _ms_or_none(data.answer_by),
                }
    elif isinstance(data, ev.FeedbackAcknowledgedV1):
        out["acknowledged_at"] = _earliest(out.get("acknowledged_at"), _ms(data.acknowledged_at))
        out["last_acknowledged_at"] = _latest(out.get("last_acknowledged_at"), _ms(data.acknowledged_at))
    elif isinstance(data, ev.FeedbackAnsweredV1):
        out["answered_at"] = _earliest(out.get("answered_at"), _ms(data.answered_at))
        out["last_answered_at"] = _latest(out.get("last_answered_at"), _ms(data.answered_at))
    elif isinstance(data, ev.FeedbackEscalatedV1):
        out["level"] = max(out.get("level", 0), data.level)
        if data.level > 0 and data.repeat == 0:
            out["reached"] = _reached(out.get("reached"), data.level, _ms(data.fired_at))
        if data.reason == "acknowledge_overdue":
            out["acknowledge_missed"] = _earliest(out.get("acknowledge_missed"), _ms(data.deadline))
        elif data.reason == "answer_overdue":
            out["answer_missed"] = _earliest(out.get("answer_missed"), _ms(data.deadline))
    elif isinstance(data, ev.FeedbackClosedV1):
        closed_at = out.get("closed_at")
        # The latest closure decides the resolution; on a tie "answered" wins, so the order of arrival never matters.
        if (
            closed_at is None
            or _ms(data.closed_at) > closed_at
            or (_ms(data.closed_at) == closed_at and data.resolution == "answered")
        ):
            out |= {"closed_at": _ms(data.closed_at), "resolution": data.resolution}
    elif isinstance(data, ev.FeedbackTriagedV1):
        # The latest triage decides; on a tie the lower severity wins, so the order of arrival never matters.
        triaged_at, severity = _ms(data.triaged_at), data.severity
        last = out.get("triaged_at")
        if (
            last is None
            or triaged_at > last
            or (triaged_at == last and SEVERITY_RANK[severity] < SEVERITY_RANK[out["severity_after_triage"]])
        ):
            out |= {"triaged_at": triaged_at, "severity_after_triage": severity}
    elif isinstance(data, ev.FeedbackReopenedV1):
        out["contested_at"] = _earliest(out.get("contested_at"), _ms(data.reopened_at))
        out["last_reopened_at"] = _latest(out.get("last_reopened_at"), _ms(data.reopened_at))
    return out


def _reached(current: dict[str, int] | None, level: int, at: int) -> dict[str, int]:
    reached = dict(current or {})
    key = str(level)
    reached[key] = _earliest(reached.get(key), at)
    return reached


def is_open(facts: Facts) -> bool:
    closed_at = facts.get("closed_at")
    reopened = facts.get("last_reopened_at")
    return closed_at is None or (reopened is not None and reopened > closed_at)


@dataclass(frozen=True)
class Cell:
    """The finest grain of the statistics: a month, a place and a kind of feedback."""

    month: str
    precinct: str
    neighbourhood: str
    kind: str
    category: str

    @property
    def id(self) -> str:
        return "|".join((self.month, self.precinct, self.neighbourhood, self.kind, self.category))

    def fields(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "year": int(self.month[:4]),
            "precinct": self.precinct,
            "neighbourhood": self.neighbourhood,
            "kind": self.kind,
            "category": self.category,
        }


def cell_of(facts: Facts) -> Cell | None:
    if "submitted_at" not in facts:
        return None  # a later event overtook `submitted` (another topic); counted once it arrives
    return Cell(facts["month"], facts["precinct"], facts["neighbourhood"], facts["kind"], facts["category"])


def _seconds(start: int, end: int) -> float:
    return max(0.0, (end - start) / 1000)


def stage_moments(facts: Facts) -> dict[str, int | None]:
    """When the item first reached each timed stage (epoch ms), or None."""
    reached: dict[str, int] = facts.get("reached") or {}
    return {
        "acknowledged": facts.get("acknowledged_at"),
        "answered": facts.get("answered_at"),
        **{f"escalated_{level}": reached.get(str(level)) for level in ESCALATION_LEVELS},
        "board": reached.get(str(OVERSIGHT_BOARD_LEVEL)),
        # A withdrawal is an administrative closure: it is counted as a withdrawal, never as a closing time.
        "closed": facts.get("closed_at") if facts.get("resolution") == "answered" else None,
    }


def outcome(facts: Facts) -> str:
    """Where the item stands: open, answered (closed with an answer) or withdrawn."""
    return "open" if is_open(facts) else str(facts.get("resolution", "open"))


def contribution(facts: Facts) -> dict[str, Counters]:
    """Counters the item adds to its cell(s), keyed by cell id."""
    cell = cell_of(facts)
    if cell is None:
        return {}
    submitted_at: int = facts["submitted_at"]
    counters: Counters = {"submitted": 1}
    if facts.get("negative"):
        counters["negative"] = 1
    for stage, moment in stage_moments(facts).items():
        if moment is not None:
            counters[stage] = 1
            counters[histogram_field(stage, histogram.bin_of(_seconds(submitted_at, moment)))] = 1
    if facts.get("resolution") == "withdrawn" and not is_open(facts):
        counters["withdrawn"] = 1
    if is_open(facts):
        counters["open"] = 1
    if (contested_at := facts.get("last_reopened_at")) is not None:
        counters["contested"] = 1
        last_answer = facts.get("last_answered_at")
        if last_answer is not None and last_answer > contested_at:
            counters["contest_answered_again"] = 1
        elif counters.get("withdrawn"):
            counters["contest_withdrawn"] = 1
        else:
            counters["contest_pending"] = 1
    counters |= _deadline_counters(facts)
    if facts.get("channel") == "session":
        counters["session_items"] = 1
        if facts.get("answered_at") is not None:
            counters["session_answered"] = 1
    triaged = facts.get("severity_after_triage")
    if triaged is not None:
        counters["triaged"] = 1
        # Lowered as triage names it (positive and neutral are one step): against the severity intake assessed.
        if SEVERITY_RANK[triaged] < SEVERITY_RANK[facts["severity"]]:
            counters["lowered_at_triage"] = 1
    allegations: list[str] = facts.get("allegations") or []
    for code in allegations:
        counters[allegation_counter(code)] = 1
    if allegations:
        counters["with_allegation"] = 1
    return {cell.id: counters}


def _deadline_counters(facts: Facts) -> Counters:
    """Whether the first promised deadlines were met, once that is decided.

    A deadline is decided when the action happened (in time or late) or when routing escalated the item because
    it passed. An item withdrawn before its deadline, with the action still missing, is left out: withdrawal is
    not a response, and counting it either way would distort the share.
    """
    counters: Counters = {}
    for action, due_field, done_field, missed_field in (
        ("acknowledge", "acknowledge_by", "acknowledged_at", "acknowledge_missed"),
        ("answer", "answer_by", "answered_at", "answer_missed"),
    ):
        due: int | None = facts.get(due_field)
        if due is None:
            continue
        done: int | None = facts.get(done_field)
        missed: int | None = facts.get(missed_field)
        if done is not None and done <= due:
            counters[f"{action}_due"] = 1
            counters[f"{'acknowledged' if action == 'acknowledge' else 'answered'}_in_time"] = 1
        elif done is not None or (missed is not None and missed <= due):
            counters[f"{action}_due"] = 1
    return counters


def difference(desired: dict[str, Counters], applied: dict[str, Counters]) -> dict[str, Counters]:
    """What must be added to each cell so that it holds `desired` instead of `applied`; zero entries left out."""
    delta: dict[str, Counters] = {}
    for cell_id in set(desired) | set(applied):
        want, have = desired.get(cell_id, {}), applied.get(cell_id, {})
        change = {name: want.get(name, 0) - have.get(name, 0) for name in set(want) | set(have)}
        change = {name: value for name, value in change.items() if value}
        if change:
            delta[cell_id] = change
    return delta


def overdue_entry(facts: Facts) -> dict[str, Any] | None:
    """An open item still waiting for the action its current deadline asks for, or None.

    Kept in a small collection of open items so "overdue right now, by level" never reads the whole history.
    """
    cell = cell_of(facts)
    if cell is None or not is_open(facts):
        return None
    reopened = facts.get("last_reopened_at")
    if reopened is None:
        acknowledged, answered = facts.get("acknowledged_at"), facts.get("answered_at")
        acknowledge_by, answer_by = facts.get("acknowledge_by"), facts.get("answer_by")
    else:
        last_ack, last_answer = facts.get("last_acknowledged_at"), facts.get("last_answered_at")
        acknowledged = last_ack if last_ack is not None and last_ack > reopened else None
        answered = last_answer if last_answer is not None and last_answer > reopened else None
        acknowledge_by, answer_by = facts.get("round_acknowledge_by"), facts.get("round_answer_by")
    if answered is not None:
        return None
    due = answer_by if acknowledged is not None else acknowledge_by
    if due is None:
        return None
    return {**cell.fields(), "level": facts.get("level", 0), "due": due}
