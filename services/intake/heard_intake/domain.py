"""Intake's pure core: severity, tracking codes, redaction and the lifecycle guards. No I/O."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Literal

Status = Literal["submitted", "routed", "acknowledged", "answered", "closed", "withdrawn", "escalated"]

# Crockford's base32 without I, L, O, U: nothing to confuse when read aloud or typed from paper.
TRACKING_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TRACKING_GROUPS, TRACKING_GROUP_LENGTH = 4, 5  # 20 symbols × 5 bits = 100 bits of randomness


def new_tracking_code() -> str:
    symbols = "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(TRACKING_GROUPS * TRACKING_GROUP_LENGTH))
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


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<!\w)(?:\+?\d[\d\s().-]{6,}\d)(?!\w)")


def redact(text: str) -> str:
    """Removes e-mail addresses and phone numbers before text leaves intake in an event."""
    return _PHONE.sub("[phone]", _EMAIL.sub("[email]", text))


class GuardViolation(Exception):
    """A lifecycle rule refused the action; `code` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


OPEN_STATUSES: frozenset[str] = frozenset({"submitted", "routed", "acknowledged", "escalated", "answered"})


def check_can_acknowledge(status: str) -> None:
    if status not in {"submitted", "routed", "escalated"}:
        raise GuardViolation("invalid_transition", f"feedback in status {status!r} cannot be acknowledged")


def check_can_answer(status: str) -> None:
    if status not in {"submitted", "routed", "acknowledged", "escalated", "answered"}:
        raise GuardViolation("invalid_transition", f"feedback in status {status!r} cannot be answered")


def check_can_close(*, status: str, negative: bool, has_published_answer: bool) -> None:
    if status in {"closed", "withdrawn"}:
        raise GuardViolation("already_closed", f"feedback is already {status}")
    if negative and not has_published_answer:
        raise GuardViolation(
            "answer_required",
            "negative feedback cannot be closed until an answer has been published to the resident",
        )
