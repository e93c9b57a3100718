"""Intake's pure core: severity, triage, tracking codes, redaction and the lifecycle guards. No I/O."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from heard_intake.severity import NEGATIVE_KINDS, SeverityAssessment
from heard_shared.events import SEVERITY_RANK, FeedbackKind, Severity, TriageDecision

ItemT = TypeVar("ItemT", bound=Mapping[str, Any])

Status = Literal[
    "submitted", "routed", "acknowledged", "answered", "closed", "withdrawn", "escalated", "reopened", "referred"
]
STATUSES: tuple[str, ...] = (
    "submitted",
    "routed",
    "acknowledged",
    "answered",
    "closed",
    "withdrawn",
    "escalated",
    "reopened",
    "referred",
)

# Crockford's base32 without I, L, O, U: nothing to confuse when read aloud or typed from paper.
TRACKING_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TRACKING_GROUPS, TRACKING_GROUP_LENGTH = 4, 5  # 20 symbols × 5 bits = 100 bits of randomness


def new_tracking_code() -> str:
    # 32 symbols are exactly 5 bits each, so slicing one draw of random bits is uniform; it also asks the
    # kernel for randomness once per code instead of once per symbol (`secrets.choice`).
    length = TRACKING_GROUPS * TRACKING_GROUP_LENGTH
    bits = secrets.randbits(5 * length)
    symbols = "".join(TRACKING_ALPHABET[(bits >> (5 * i)) & 31] for i in range(length))
    return "-".join(symbols[i : i + TRACKING_GROUP_LENGTH] for i in range(0, len(symbols), TRACKING_GROUP_LENGTH))


def normalise_tracking_code(code: str) -> str | None:
    """Accepts lower case, spaces, missing dashes and the usual misreadings (O→0, I/L→1)."""
    cleaned = re.sub(r"[\s-]", "", code.upper()).translate(str.maketrans("OIL", "011"))
    if len(cleaned) != TRACKING_GROUPS * TRACKING_GROUP_LENGTH or any(c not in TRACKING_ALPHABET for c in cleaned):
        return None
    return "-".join(cleaned[i : i + TRACKING_GROUP_LENGTH] for i in range(0, len(cleaned), TRACKING_GROUP_LENGTH))


def tracking_code_hash(code: str) -> str:
    """Only the hash is stored: a leaked database does not reveal residents' codes."""
    return hashlib.sha256(code.encode()).hexdigest()


def idempotency_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def request_fingerprint(body: Mapping[str, Any], channel: str) -> str:
    """Tells a resent request from another one under the same Idempotency-Key (hashed: it covers text and contact)."""
    canonical = json.dumps({"channel": channel, "body": body}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<!\w)(?:\+?\d[\d\s().-]{6,}\d)(?!\w)")


# Licence plates. Residents write them in capitals ("ABC 1234", "7ABC123"); lower case is only trusted after a
# word that says "plate", because "at 1234 Main St" would otherwise lose its street number.
_PLATE_CONTEXT = re.compile(
    r"\b(?P<word>licen[cs]e\s+plates?|plates?|tags?|placas?|matr[ií]culas?)"
    r"(?P<lead>(?:\s+(?:number|no\.?|n[uú]mero|de))?\s*[:#]?\s*)"
    r"(?P<plate>[A-Za-z0-9]{1,4}(?:[ -]?[A-Za-z0-9]{1,4})?)\b",
    re.IGNORECASE,
)
_PLATE_LETTERS_DIGITS = re.compile(r"\b[A-Z]{2,3}[ -]?\d{3,4}\b")  # "ABC 1234", "AB-123", "ABC1234"
_PLATE_MIXED = re.compile(r"\b[A-Z0-9]{5,8}\b")  # "7ABC123", "8XYZ99": judged by its letters and digits below
# Capitalised words followed by a number that are not plates: roads, addresses, times, "US 101".
_NOT_PLATE_PREFIXES = frozenset(
    {"HWY", "RTE", "RT", "US", "SR", "CR", "FM", "APT", "STE", "NO", "PO", "BOX", "RM", "EXT", "AM", "PM", "CH"}
)
# A badge number is how a resident names an officer; it must reach routing and oversight intact.
_BADGE_BEFORE = re.compile(
    r"(?:badge|shield|officer|placa|oficial|agente)\s*(?:number|no\.?|n[uú]mero|#)?\s*#?\s*$", re.IGNORECASE
)


def _looks_like_badge(text: str, start: int) -> bool:
    return bool(_BADGE_BEFORE.search(text[max(0, start - 24) : start]))


def _redact_plates(text: str) -> str:
    def in_context(match: re.Match[str]) -> str:
        plate, rest = match["plate"], ""
        parts = re.split(r"[ -]", plate, maxsplit=1)
        if len(parts) == 2 and not any(c.isdigit() for c in parts[1]):
            # "placa 4127 del oficial": the next word was swallowed; it is not part of the plate.
            plate, rest = parts[0], plate[len(parts[0]) :]
        has_digit = any(c.isdigit() for c in plate)
        # Spanish "placa" is both a plate and a police badge: only a mix of letters and digits is a plate.
        needs_letter = match["word"].lower().startswith("placa")
        if not has_digit or (needs_letter and not any(c.isalpha() for c in plate)):
            return match[0]
        return f"{match['word']}{match['lead']}[plate]{rest}"

    def letters_digits(match: re.Match[str]) -> str:
        prefix = re.match(r"[A-Z]+", match[0])
        if (prefix and prefix[0] in _NOT_PLATE_PREFIXES) or _looks_like_badge(text, match.start()):
            return match[0]
        return "[plate]"

    def mixed(match: re.Match[str]) -> str:
        token = match[0]
        letters = sum(c.isalpha() for c in token)
        digits = len(token) - letters
        if letters < 2 or digits < 2 or _looks_like_badge(text, match.start()):
            return token
        return "[plate]"

    text = _PLATE_CONTEXT.sub(in_context, text)
    text = _PLATE_LETTERS_DIGITS.sub(letters_digits, text)
    return _PLATE_MIXED.sub(mixed, text)


def redact(text: str) -> str:
    """Removes e-mail addresses, phone numbers and licence plates before text leaves intake in an event.

    Over-redaction is the safe side: intake keeps the original, so nothing is lost for the people who
    handle the item, while a missed phone number would travel to every consumer of the topic.
    """
    return _redact_plates(_PHONE.sub("[phone]", _EMAIL.sub("[email]", text)))


class GuardViolation(Exception):
    """A lifecycle rule refused the action; `code` is stable, the message says why, `status` is the HTTP answer."""

    def __init__(self, code: str, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# -- severity at intake and triage by a person ------------------------------------------------------------------

# awaiting: not assessed negative, so a person must triage it by its triage deadline (routing's clock);
# flagged: the assessor was unsure, so it is treated as negative until a person triages it;
# not_required: assessed negative with confidence (a person may still triage it); done: a person triaged it.
TriageState = Literal["awaiting", "flagged", "not_required", "done"]
NEEDS_TRIAGE: frozenset[str] = frozenset({"awaiting", "flagged"})
MIN_LOWERING_REASON = 10


@dataclass(frozen=True)
class IntakeSeverity:
    severity: Severity
    negative: bool
    reasons: list[str]
    triage_state: TriageState


def decide_severity(assessment: SeverityAssessment, *, allegations: Sequence[str]) -> IntakeSeverity:
    """The severity intake records: the assessor's, except that any declared allegation makes the item critical.

    A declared allegation is the resident's own statement of misconduct; no wording can argue it away, so the
    text classifier is not asked. An unsure assessment is negative and flagged for a person's triage; an item
    not assessed negative gets a triage deadline instead of acknowledge and answer deadlines.
    """
    if allegations:
        reasons = [f"allegation:{code}" for code in allegations]
        return IntakeSeverity("critical", True, reasons + assessment.reasons, "not_required")
    if assessment.uncertain:
        return IntakeSeverity("negative", True, [*assessment.reasons, "uncertain"], "flagged")
    state: TriageState = "not_required" if assessment.negative else "awaiting"
    return IntakeSeverity(assessment.severity, assessment.negative, list(assessment.reasons), state)


@dataclass(frozen=True)
class Triage:
    decision: TriageDecision
    kind: FeedbackKind
    severity: Severity
    negative: bool

    @property
    def direction(self) -> Literal["raised", "lowered"] | None:
        return self.decision if self.decision in ("raised", "lowered") else None


def triage(
    *,
    status: str,
    current_kind: str,
    current_severity: str,
    kind: FeedbackKind,
    severity: Severity,
    reason: str | None,
    may_lower_critical: bool,
) -> Triage:
    """A person confirms or changes an item's kind and severity.

    Raising is free. Lowering needs a written reason; lowering a critical item also needs the professional
    standards or oversight role. A complaint or concern is at least negative, as at intake.
    """
    if status in FINAL_STATUSES:
        raise GuardViolation("already_closed", f"feedback is already {status}; its severity is on record")
    if kind in NEGATIVE_KINDS and SEVERITY_RANK[severity] < SEVERITY_RANK["negative"]:
        raise GuardViolation(
            "severity_below_kind",
            f"a {kind} is negative or critical; change the kind too if it is not a {kind}",
            status=422,
        )
    change = SEVERITY_RANK[severity] - SEVERITY_RANK[current_severity]
    if change < 0:
        if current_severity == "critical" and not may_lower_critical:
            raise GuardViolation(
                "lowering_critical_needs_role",
                "only professional standards or the oversight board may lower a critical item",
                status=403,
            )
        if len((reason or "").strip()) < MIN_LOWERING_REASON:
            raise GuardViolation(
                "reason_required",
                f"lowering the severity needs a written reason of at least {MIN_LOWERING_REASON} characters",
                status=422,
            )
    decision: TriageDecision
    if change > 0:
        decision = "raised"
    elif change < 0:
        decision = "lowered"
    elif (kind, severity) == (current_kind, current_severity):
        decision = "confirmed"
    else:
        decision = "reclassified"
    return Triage(decision, kind, severity, SEVERITY_RANK[severity] >= SEVERITY_RANK["negative"])


OPEN_STATUSES: frozenset[str] = frozenset(
    {"submitted", "routed", "acknowledged", "escalated", "answered", "reopened", "referred"}
)
FINAL_STATUSES: frozenset[str] = frozenset({"closed", "withdrawn"})
AWAITING_ACKNOWLEDGEMENT: frozenset[str] = frozenset({"submitted", "routed", "escalated", "referred", "reopened"})
AWAITING_ANSWER: frozenset[str] = OPEN_STATUSES - {"answered"}


def has_published_answer(answer: Mapping[str, Any] | None) -> bool:
    """An answer the resident contested no longer counts: the item needs a new one before it may close."""
    return bool(answer) and not (answer or {}).get("contested_at")


def check_can_acknowledge(status: str) -> None:
    if status not in AWAITING_ACKNOWLEDGEMENT:
        raise GuardViolation("invalid_transition", f"feedback in status {status!r} cannot be acknowledged")


def check_can_answer(status: str) -> None:
    # An answered item may be answered again: staff correct or complete what they published.
    if status not in OPEN_STATUSES:
        raise GuardViolation("invalid_transition", f"feedback in status {status!r} cannot be answered")


def check_can_close(*, status: str, negative: bool, has_published_answer: bool, awaiting_triage: bool = False) -> None:
    if status in FINAL_STATUSES:
        raise GuardViolation("already_closed", f"feedback is already {status}")
    if awaiting_triage:
        raise GuardViolation(
            "triage_required",
            "nobody has confirmed this item's kind and severity yet; triage it before closing it",
        )
    if negative and not has_published_answer:
        raise GuardViolation(
            "answer_required",
            "negative feedback cannot be closed until an answer has been published to the resident",
        )


def check_can_reply(status: str) -> None:
    if status == "withdrawn":
        raise GuardViolation("feedback_withdrawn", "this feedback was withdrawn; submit new feedback instead")
    if status == "closed":
        raise GuardViolation(
            "feedback_closed", "this feedback is closed; contest the answer to reopen it, or submit new feedback"
        )


def check_can_contest(*, status: str, has_published_answer: bool) -> None:
    if status == "withdrawn":
        raise GuardViolation("feedback_withdrawn", "withdrawn feedback cannot be contested")
    if status == "reopened":
        raise GuardViolation("already_reopened", "the answer is already contested; a new answer will follow")
    if status not in {"answered", "closed"} or not has_published_answer:
        raise GuardViolation("no_answer_to_contest", "an answer can be contested once it has been published")


def check_can_withdraw(status: str) -> None:
    if status in FINAL_STATUSES:
        raise GuardViolation("already_closed", f"feedback is already {status}")


def check_can_refer(*, status: str, unit_id: str | None) -> None:
    if status in FINAL_STATUSES:
        raise GuardViolation("already_closed", f"feedback is already {status}")
    if status == "answered":
        raise GuardViolation("already_answered", "answered feedback is not referred; the answer stands or is contested")
    if status == "referred":
        raise GuardViolation("referral_pending", "the item was already referred and awaits its new unit")
    if unit_id is None:
        raise GuardViolation("not_routed", "the item has no unit yet, so there is nothing to refer from")


# -- staff work lists -----------------------------------------------------------------------------------------


def overdue_since(item: Mapping[str, Any], now: datetime) -> datetime | None:
    """The earliest passed deadline the item still waits on, or None if it is on time."""
    status = item.get("status")
    waiting = []
    if status in OPEN_STATUSES and item.get("triage_state") == "awaiting" and item.get("triage_by") is not None:
        waiting.append(item["triage_by"])
    if status in AWAITING_ACKNOWLEDGEMENT and item.get("acknowledge_by") is not None:
        waiting.append(item["acknowledge_by"])
    if status in AWAITING_ANSWER and item.get("answer_by") is not None:
        waiting.append(item["answer_by"])
    passed = [deadline for deadline in waiting if deadline <= now]
    return min(passed) if passed else None


def overdue_first(items: Iterable[ItemT], now: datetime) -> list[ItemT]:
    """Overdue items first, then everything else; oldest first within each group.

    Staff work their list top down, so the items that already broke a promise to a resident must be
    where they look first, however many newer items arrived since.
    """
    return sorted(items, key=lambda item: (overdue_since(item, now) is None, item["submitted_at"]))


# -- erasure ---------------------------------------------------------------------------------------------------

ERASED_TEXT = "[erased at the resident's request]"
RESIDENT_ACTOR = "resident"
# Stored fields that identify or locate the resident. The neighbourhood stays: it is what the statistics use.
PERSONAL_FIELDS: tuple[str, ...] = (
    "contact",
    "contact_encrypted",
    "tracking_code_encrypted",
    "idempotency",  # its fingerprint covers the resident's words and contact; its sealed code is a way back in
    "location.address",
    "location.latitude",
    "location.longitude",
    "withdrawal_reason",
)


def erasure(record: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """What a resident's erasure request changes: (`$set` fields, fields to remove).

    The resident's own words are replaced, because no pattern finds every name in free text; what staff
    wrote (answers, notes, referral reasons) stays, with e-mail addresses, phone numbers and plates redacted.
    Kind, category, severity, status and dates stay, so the record and every statistic remain true.
    """
    changes: dict[str, Any] = {}
    if record.get("text"):
        changes["text"] = ERASED_TEXT
    history = record.get("history") or []
    if any("text" in entry or "reason" in entry for entry in history):
        changes["history"] = [_erase_history_entry(entry) for entry in history]
    if record.get("contests"):
        changes["contests"] = [{**contest, "text": ERASED_TEXT} for contest in record["contests"]]
    if record.get("notes"):
        changes["notes"] = [{**note, "text": redact(note["text"])} for note in record["notes"]]
    if any(entry.get("reason") for entry in record.get("triages") or []):
        changes["triages"] = [
            {**entry, "reason": redact(entry["reason"])} if entry.get("reason") else entry
            for entry in record["triages"]
        ]
    answer = record.get("answer")
    if answer and answer.get("text"):
        changes["answer.text"] = redact(answer["text"])
    if record.get("answers"):
        changes["answers"] = [{**item, "text": redact(item["text"])} for item in record["answers"]]
    removed = [field for field in PERSONAL_FIELDS if _has_path(record, field)]
    return changes, removed


def _erase_history_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    erased = dict(entry)
    if "text" in erased:
        erased["text"] = ERASED_TEXT if erased.get("by") == RESIDENT_ACTOR else redact(str(erased["text"]))
    if "reason" in erased and isinstance(erased["reason"], str):
        erased["reason"] = redact(erased["reason"])
    return erased


def _has_path(record: Mapping[str, Any], path: str) -> bool:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True
