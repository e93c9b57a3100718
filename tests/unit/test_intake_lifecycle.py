"""The lifecycle rules, staff work-list ordering, erasure and access scoping: pure, no I/O."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from heard_intake import access, domain
from heard_intake.auth import Principal
from heard_shared.keyed_lock import KeyedLock

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def refused(check: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(domain.GuardViolation) as violation:
        check(*args, **kwargs)
    return violation.value.code


# -- guards ----------------------------------------------------------------------------------------------------


def test_a_contested_answer_no_longer_allows_closing() -> None:
    answer = {"text": "We looked into it.", "answered_at": NOW}
    assert domain.has_published_answer(answer)
    assert not domain.has_published_answer({**answer, "contested_at": NOW})
    assert not domain.has_published_answer(None)
    code = refused(
        domain.check_can_close,
        status="reopened",
        negative=True,
        has_published_answer=domain.has_published_answer({**answer, "contested_at": NOW}),
    )
    assert code == "answer_required"


def test_only_a_published_answer_can_be_contested() -> None:
    domain.check_can_contest(status="answered", has_published_answer=True)
    domain.check_can_contest(status="closed", has_published_answer=True)
    assert refused(domain.check_can_contest, status="routed", has_published_answer=False) == "no_answer_to_contest"
    assert refused(domain.check_can_contest, status="closed", has_published_answer=False) == "no_answer_to_contest"
    assert refused(domain.check_can_contest, status="reopened", has_published_answer=False) == "already_reopened"
    assert refused(domain.check_can_contest, status="withdrawn", has_published_answer=True) == "feedback_withdrawn"


def test_withdrawing_is_possible_until_the_item_is_final() -> None:
    for status in domain.OPEN_STATUSES:
        domain.check_can_withdraw(status)
    for status in domain.FINAL_STATUSES:
        assert refused(domain.check_can_withdraw, status) == "already_closed"


def test_replies_are_taken_while_the_item_is_open() -> None:
    for status in domain.OPEN_STATUSES:
        domain.check_can_reply(status)
    assert refused(domain.check_can_reply, "closed") == "feedback_closed"
    assert refused(domain.check_can_reply, "withdrawn") == "feedback_withdrawn"


def test_referral_needs_a_unit_to_refer_from_and_an_unanswered_item() -> None:
    domain.check_can_refer(status="routed", unit_id="north-patrol")
    domain.check_can_refer(status="escalated", unit_id="north-sergeants")
    domain.check_can_refer(status="reopened", unit_id="north-sergeants")
    assert refused(domain.check_can_refer, status="submitted", unit_id=None) == "not_routed"
    assert refused(domain.check_can_refer, status="referred", unit_id="x") == "referral_pending"
    assert refused(domain.check_can_refer, status="answered", unit_id="x") == "already_answered"
    assert refused(domain.check_can_refer, status="withdrawn", unit_id="x") == "already_closed"


def test_reopened_and_referred_items_can_be_acknowledged_and_answered() -> None:
    for status in ("reopened", "referred", "escalated", "routed", "submitted"):
        domain.check_can_acknowledge(status)
        domain.check_can_answer(status)
    assert refused(domain.check_can_acknowledge, "answered") == "invalid_transition"
    assert refused(domain.check_can_answer, "withdrawn") == "invalid_transition"


# -- overdue first ---------------------------------------------------------------------------------------------


def item(name: str, *, age_hours: float, status: str = "routed", **deadlines: float) -> dict[str, Any]:
    return {
        "_id": name,
        "status": status,
        "submitted_at": NOW - timedelta(hours=age_hours),
        **{field: NOW + timedelta(hours=offset) for field, offset in deadlines.items()},
    }


def test_overdue_items_come_first_then_the_oldest() -> None:
    items = [
        item("old-on-time", age_hours=50, acknowledge_by=2),
        item("new-overdue-answer", age_hours=1, status="acknowledged", answer_by=-0.5),
        item("oldest-no-deadline", age_hours=90),
        item("mid-overdue-ack", age_hours=10, acknowledge_by=-1),
        item("answered-past-deadline", age_hours=80, status="answered", answer_by=-10),
        item("closed-past-deadline", age_hours=70, status="closed", acknowledge_by=-10),
    ]
    ordered = [i["_id"] for i in domain.overdue_first(items, NOW)]
    assert ordered == [
        "mid-overdue-ack",
        "new-overdue-answer",
        "oldest-no-deadline",
        "answered-past-deadline",
        "closed-past-deadline",
        "old-on-time",
    ]


def test_what_counts_as_overdue() -> None:
    acknowledged = item("a", age_hours=1, status="acknowledged", acknowledge_by=-3, answer_by=5)
    assert domain.overdue_since(acknowledged, NOW) is None, "acknowledged in time: only the answer is awaited"
    late = item("b", age_hours=1, status="routed", acknowledge_by=-3, answer_by=-1)
    assert domain.overdue_since(late, NOW) == NOW - timedelta(hours=3), "the earliest broken deadline"
    assert domain.overdue_since(item("c", age_hours=1, status="reopened", answer_by=0), NOW) == NOW


# -- erasure ---------------------------------------------------------------------------------------------------


def test_erasure_removes_personal_data_and_keeps_what_statistics_need() -> None:
    record = {
        "_id": "fb-1",
        "status": "answered",
        "kind": "complaint",
        "severity": "negative",
        "text": "I am Ana Canary, my plate is 7QXZ493",
        "contact_encrypted": "gAAAA...",
        "location": {"address": "12 Elm St", "latitude": 1.0, "longitude": 2.0, "neighbourhood": "Northgate"},
        "withdrawal_reason": "moved away",
        "answer": {"text": "We called you on 612-555-0199.", "answered_at": NOW},
        "answers": [{"text": "We called you on 612-555-0199.", "answered_at": NOW}],
        "notes": [{"note_id": "n1", "text": "resident email ana@example.org", "at": NOW, "by": "sgt"}],
        "contests": [{"text": "Ana again", "at": NOW}],
        "history": [
            {"status": "submitted", "at": NOW},
            {"status": "answered", "action": "replied", "at": NOW, "by": "resident", "text": "Ana here"},
            {"status": "referred", "at": NOW, "by": "sgt", "reason": "wrong unit, call 612-555-0199"},
        ],
    }
    changes, removed = domain.erasure(record)
    assert removed == [
        "contact_encrypted",
        "location.address",
        "location.latitude",
        "location.longitude",
        "withdrawal_reason",
    ]
    assert changes["text"] == domain.ERASED_TEXT
    assert changes["contests"][0]["text"] == domain.ERASED_TEXT
    assert changes["history"][1]["text"] == domain.ERASED_TEXT
    assert changes["history"][2]["reason"] == "wrong unit, call [phone]"
    assert changes["answer.text"] == "We called you on [phone]."
    assert changes["notes"][0]["text"] == "resident email [email]"
    kept = {"_id", "status", "kind", "severity"}
    assert not kept & set(changes), "the record, its status and statistics stay"
    assert domain.erasure({"status": "closed", "kind": "praise"}) == ({}, [])


# -- access ----------------------------------------------------------------------------------------------------


def principal(*roles: str, unit: str | None = None) -> Principal:
    return Principal(name="someone", roles=frozenset(roles), unit_id=unit)


def denied(check: Any, *args: Any) -> str:
    with pytest.raises(access.AccessDenied) as refusal:
        check(*args)
    return refusal.value.code


def test_unit_members_see_and_act_on_their_own_unit_only() -> None:
    member = principal("unit_member", unit="north-patrol")
    access.check_can_see(member, "north-patrol")
    access.check_can_act(member, "north-patrol")
    assert denied(access.check_can_see, member, "traffic-unit") == "not_your_unit"
    assert denied(access.check_can_act, member, None) == "not_your_unit"
    assert access.list_scope(member, None) == "north-patrol"
    assert access.list_scope(member, "north-patrol") == "north-patrol"
    assert denied(access.list_scope, member, "traffic-unit") == "not_your_unit"
    assert denied(access.list_scope, principal("unit_member"), None) == "no_unit"


def test_supervisors_and_admins_act_everywhere_and_oversight_only_reads() -> None:
    for role in ("supervisor", "commander", "professional_standards", "admin"):
        access.check_can_act(principal(role, unit="north-sergeants"), "traffic-unit")
        assert access.list_scope(principal(role), None) is None
    board = principal("oversight")
    access.check_can_see(board, "traffic-unit")
    assert access.list_scope(board, "traffic-unit") == "traffic-unit"
    assert denied(access.check_can_act, board, "traffic-unit") == "read_only"


def test_the_audit_trail_is_for_oversight_professional_standards_and_admins() -> None:
    for role in ("oversight", "professional_standards", "admin"):
        access.check_can_audit(principal(role))
    for role in ("unit_member", "supervisor", "commander", "city_system"):
        assert denied(access.check_can_audit, principal(role, unit="x")) == "forbidden"


# -- one writer per feedback document --------------------------------------------------------------------------


async def test_writes_to_one_item_take_turns_and_other_items_do_not_wait() -> None:
    serial = KeyedLock()
    order: list[str] = []

    async def write(key: str, name: str, pause: float) -> None:
        async with serial(key):
            order.append(f"{name}+")
            await asyncio.sleep(pause)
            order.append(f"{name}-")

    await asyncio.gather(write("fb-1", "a", 0.02), write("fb-1", "b", 0), write("fb-2", "c", 0))
    assert order.index("a-") < order.index("b+"), "the second writer of fb-1 waited for the first"
    assert order.index("c-") < order.index("a-"), "fb-2 did not wait for fb-1"
    assert len(serial) == 0, "locks are forgotten once idle"
