from __future__ import annotations

import math

import pytest

from heard_intake import domain


def test_tracking_codes_carry_at_least_80_bits_and_read_aloud_cleanly() -> None:
    code = domain.new_tracking_code()
    symbols = code.replace("-", "")
    assert len(symbols) * math.log2(len(domain.TRACKING_ALPHABET)) >= 80
    assert not set(symbols) & set("ILOU")
    assert len({domain.new_tracking_code() for _ in range(1000)}) == 1000


def test_tracking_codes_survive_how_people_type_them() -> None:
    code = domain.new_tracking_code()
    sloppy = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert domain.normalise_tracking_code(sloppy) == code
    assert domain.normalise_tracking_code("too-short") is None


def test_redaction_removes_emails_and_phone_numbers() -> None:
    text = "Call me on +1 (612) 555-0199 or write to jane.doe@example.org about badge 4127."
    redacted = domain.redact(text)
    assert "555" not in redacted and "jane.doe" not in redacted
    assert "badge 4127" in redacted


def test_negative_feedback_cannot_close_without_a_published_answer() -> None:
    with pytest.raises(domain.GuardViolation) as refused:
        domain.check_can_close(status="acknowledged", negative=True, has_published_answer=False)
    assert refused.value.code == "answer_required"
    domain.check_can_close(status="answered", negative=True, has_published_answer=True)
    domain.check_can_close(status="routed", negative=False, has_published_answer=False)


def test_closed_feedback_cannot_be_closed_or_acknowledged_again() -> None:
    with pytest.raises(domain.GuardViolation):
        domain.check_can_close(status="closed", negative=False, has_published_answer=True)
    with pytest.raises(domain.GuardViolation):
        domain.check_can_acknowledge("closed")
