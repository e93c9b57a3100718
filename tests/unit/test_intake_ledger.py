"""The audit ledger's pure core: canonical hashing, chaining and verification."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from heard_intake import ledger

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def build_chain(feedback_id: str = "fb-1", count: int = 4) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    previous = ledger.GENESIS_HASH
    actions: list[ledger.AuditAction] = ["submitted", "routed", "acknowledged", "answered", "closed", "replied"]
    for seq in range(1, count + 1):
        staged = ledger.stage(
            actions[(seq - 1) % len(actions)],
            actor="resident" if seq == 1 else "officer-7",
            at=T0 + timedelta(minutes=seq),
            details={"level": seq, "deadline": T0 + timedelta(days=seq)},
        )
        entry = ledger.chain_entry(feedback_id=feedback_id, seq=seq, prev_hash=previous, staged=staged)
        entries.append(entry)
        previous = entry["hash"]
    return entries


def test_hash_covers_every_field_but_itself_and_is_independent_of_key_order() -> None:
    entry = build_chain(count=1)[0]
    reordered = dict(reversed(list(entry.items())))
    assert ledger.entry_hash(reordered) == entry["hash"] == ledger.entry_hash(entry)
    assert ledger.entry_hash({**entry, "_id": "anything"}) == entry["hash"], "_id is derived, not hashed"
    for field, value in [("actor", "someone-else"), ("seq", 9), ("details", {"level": 2}), ("action", "closed")]:
        assert ledger.entry_hash({**entry, field: value}) != entry["hash"], field
    assert ledger.entry_hash({**entry, "extra": 1}) != entry["hash"], "an added field is noticed too"


def test_times_are_hashed_to_the_millisecond_because_that_is_what_mongodb_stores() -> None:
    entry = build_chain(count=1)[0]
    stored = {**entry, "at": entry["at"].replace(microsecond=123000)}
    assert ledger.entry_hash(stored) == entry["hash"]
    elsewhere = {**entry, "at": entry["at"].astimezone(UTC)}
    assert ledger.entry_hash(elsewhere) == entry["hash"]
    assert b'"at":"2026-03-01T12:01:00.123Z"' in ledger.canonical_json(entry)


def test_an_intact_chain_verifies() -> None:
    chain = build_chain()
    result = ledger.verify_chain(chain, head=(4, chain[-1]["hash"]))
    assert result == ledger.Verification(True, None, None, 4)
    assert ledger.verify_chain([]).verified
    assert ledger.verify_chain(list(reversed(chain))).verified, "order of reading does not matter"


def test_an_edited_entry_breaks_the_chain_at_that_entry() -> None:
    chain = build_chain()
    chain[2] = {**chain[2], "actor": "somebody-nicer"}
    result = ledger.verify_chain(chain)
    assert (result.verified, result.broken_at) == (False, 3)
    assert result.reason == "content does not match its hash"


def test_an_edit_with_a_recomputed_hash_still_breaks_the_next_link() -> None:
    chain = build_chain()
    forged = {**chain[1], "details": {"level": 0}}
    forged["hash"] = ledger.entry_hash(forged)
    chain[1] = forged
    result = ledger.verify_chain(chain)
    assert (result.verified, result.broken_at) == (False, 3)
    assert result.reason == "does not link to the entry before it"


def test_removed_entries_are_found_in_the_middle_and_at_the_end() -> None:
    chain = build_chain()
    middle = ledger.verify_chain(chain[:1] + chain[2:])
    assert (middle.verified, middle.broken_at) == (False, 2)
    head = (4, chain[-1]["hash"])
    assert ledger.verify_chain(chain[:3]).verified, "without the head a cut end cannot be seen"
    cut = ledger.verify_chain(chain[:3], head=head)
    assert (cut.verified, cut.broken_at) == (False, 4)


def test_a_replaced_tail_does_not_match_the_head_the_record_saw() -> None:
    chain = build_chain()
    head = (4, chain[-1]["hash"])
    rewritten = [
        *chain[:3],
        ledger.chain_entry(
            feedback_id="fb-1", seq=4, prev_hash=chain[2]["hash"], staged=ledger.stage("closed", actor="x")
        ),
    ]
    result = ledger.verify_chain(rewritten, head=head)
    assert (result.verified, result.broken_at) == (False, 4)


def test_staged_entries_ride_along_with_the_state_change() -> None:
    entry = ledger.stage("replied", actor="resident", details={"text_length": 5})
    update = ledger.with_audit({"$set": {"status": "answered"}, "$push": {"history": {"x": 1}}}, entry)
    assert update["$push"][ledger.STAGED_FIELD] == {"$each": [entry]}
    assert update["$push"]["history"] == {"x": 1}
    assert update["$set"] == {"status": "answered", ledger.DUE_FIELD: True}
    assert update["$inc"] == {ledger.STAGED_SEQ_FIELD: 1}, "a flush tells what was staged since it read by this count"
    assert ledger.with_audit({"$set": {}}) == {"$set": {}}
    staged = {ledger.STAGED_FIELD: [entry], ledger.STAGED_SEQ_FIELD: 1, ledger.DUE_FIELD: True}
    assert ledger.audit_fields(entry) == {**staged, ledger.RECORDED_FIELD: []}, "a new record remembers no event yet"


def test_a_consumed_events_entry_is_staged_only_while_its_id_is_not_remembered() -> None:
    entry = ledger.stage("routed", actor="routing", event_id="event-1")
    guard, update = ledger.with_consumed({"$set": {"status": "routed"}}, entry)
    assert guard == {ledger.RECORDED_FIELD: {"$exists": True, "$nin": ["event-1"]}}
    assert update["$push"][ledger.STAGED_FIELD] == {"$each": [entry]}
    assert update["$push"][ledger.RECORDED_FIELD] == {"$each": ["event-1"], "$slice": -ledger.RECORDED_KEPT}
    assert update["$set"] == {"status": "routed", ledger.DUE_FIELD: True}
    old_guard, old_update = ledger.without_memory({"$set": {"status": "routed"}}, entry)
    assert old_guard == {ledger.RECORDED_FIELD: {"$exists": False}} and old_update == update


def test_a_consumed_events_entry_is_chained_directly_only_after_a_settled_head_and_while_not_remembered() -> None:
    entry = ledger.stage("routed", actor="routing", event_id="event-2")
    record = {
        "_id": "f1",
        ledger.HEAD_SEQ_FIELD: 4,
        ledger.HEAD_HASH_FIELD: "h4",
        ledger.STAGED_FIELD: [],
        ledger.RECORDED_FIELD: ["event-1"],
    }
    direct = ledger.append_directly(record, entry)
    assert direct is not None
    assert (direct.stored["seq"], direct.stored["prev_hash"], direct.stored["_id"]) == (5, "h4", "f1:000000005")
    assert direct.guard == {ledger.RECORDED_FIELD: {"$exists": True, "$nin": ["event-2"]}, ledger.HEAD_SEQ_FIELD: 4}
    update = direct.applied_to({"$set": {"status": "routed"}, "$push": {"history": {"x": 1}}})
    assert update["$set"] == {
        "status": "routed",
        ledger.HEAD_SEQ_FIELD: 5,
        ledger.HEAD_HASH_FIELD: direct.stored["hash"],
    }
    assert update["$push"] == {
        "history": {"x": 1},
        ledger.RECORDED_FIELD: {"$each": ["event-2"], "$slice": -ledger.RECORDED_KEPT},
    }
    for staged_instead in (
        {**record, ledger.RECORDED_FIELD: ["event-1", "event-2"]},  # a redelivery
        {k: v for k, v in record.items() if k != ledger.RECORDED_FIELD},  # stored before the memory
        {k: v for k, v in record.items() if k != ledger.HEAD_SEQ_FIELD},  # its chain is still being started
        {**record, ledger.STAGED_FIELD: [ledger.stage("note_added", actor="a")]},  # what is staged goes first
    ):
        assert ledger.append_directly(staged_instead, entry) is None


def test_event_caused_entries_are_identified_by_the_event_id() -> None:
    assert ledger.stage("routed", actor="routing", event_id="evt-1")["entry_id"] == "evt-1"
    assert ledger.stage("note_added", actor="a")["entry_id"] != ledger.stage("note_added", actor="a")["entry_id"]


def test_public_entries_show_dates_as_text() -> None:
    shown = ledger.public_entry(build_chain(count=1)[0])
    assert shown["at"] == "2026-03-01T12:01:00.123Z"
    assert shown["details"]["deadline"] == "2026-03-02T12:00:00.123Z"
    assert ledger.head_of({"audit_seq": 3, "audit_head": "ab"}) == (3, "ab")
    assert ledger.head_of({}) is None
