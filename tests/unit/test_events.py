from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from heard_shared import events as ev


def submitted_event() -> ev.CloudEvent[ev.FeedbackSubmittedV1]:
    return ev.new_event(
        ev.SUBMITTED,
        ev.FeedbackSubmittedV1(
            feedback_id="f-1",
            channel="api",
            kind="complaint",
            language="en",
            text="rude",
            severity="negative",
            negative=True,
            submitted_at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
        source="urn:heard:intake",
        subject="f-1",
    )


def test_structured_round_trip_keeps_every_attribute() -> None:
    event = submitted_event()
    decoded = ev.decode(ev.encode(event))
    assert decoded.model_dump() == event.model_dump()
    assert isinstance(decoded.data, ev.FeedbackSubmittedV1)
    assert json.loads(ev.encode(event))["specversion"] == "1.0"


def test_binary_mode_reads_ce_headers() -> None:
    data = {"kind": "praise", "text": "thanks", "language": "es"}
    headers = {
        "ce_specversion": b"1.0",
        "ce_id": b"abc",
        "ce_source": b"urn:city:311",
        "ce_type": ev.INBOUND.event_type.encode(),
        "content-type": b"application/json",
    }
    decoded = ev.decode(json.dumps(data).encode(), headers, expected=(ev.INBOUND,))
    assert decoded.source == "urn:city:311"
    assert decoded.data == ev.FeedbackInboundV1(kind="praise", text="thanks", language="es")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"", "empty_message"),
        (b"[1, 2]", "not_a_cloudevent"),
        (b'{"specversion": "1.0", "id": "1"}', "not_a_cloudevent"),
        (
            b'{"specversion": "1.0", "id": "1", "source": "s", "type": "com.example.other", "data": {}}',
            "unknown_event_type",
        ),
        (
            b'{"specversion": "1.0", "id": "1", "source": "s", "type": "org.heard.feedback.inbound.v1",'
            b' "data": {"kind": "rant", "text": ""}}',
            "schema_violation",
        ),
    ],
)
def test_undecodable_messages_raise_a_stable_code(value: bytes, code: str) -> None:
    with pytest.raises(ev.InvalidEvent) as raised:
        ev.decode(value, expected=(ev.INBOUND,))
    assert raised.value.code == code
    assert raised.value.reason


def test_an_event_of_another_topic_is_refused() -> None:
    with pytest.raises(ev.InvalidEvent) as raised:
        ev.decode(ev.encode(submitted_event()), expected=(ev.INBOUND,))
    assert raised.value.code == "unknown_event_type"


def test_deterministic_ids_depend_only_on_their_parts() -> None:
    assert ev.deterministic_event_id("f", "escalated", 2, 0) == ev.deterministic_event_id("f", "escalated", 2, 0)
    assert ev.deterministic_event_id("f", "escalated", 2, 0) != ev.deterministic_event_id("f", "escalated", 2, 1)


def test_submitted_schema_has_no_contact_fields() -> None:
    """Personal data never travels beyond feedback.inbound: the contract itself has no place for it."""
    schema = ev.FeedbackSubmittedV1.model_json_schema()
    properties = set(schema["properties"])
    for definition in schema.get("$defs", {}).values():
        properties |= set(definition.get("properties", {}))
    assert not properties & {"email", "phone", "contact", "address", "name"}


def test_fields_added_after_v1_are_absent_unless_used() -> None:
    """Events that use none of the later fields look exactly as before, so consumers built on the first v1
    schema keep reading them; only events that carry new facts show new fields."""
    plain = json.loads(ev.encode(submitted_event()))["data"]
    assert not {"allegations", "flagged_for_triage"} & set(plain)
    routed = ev.FeedbackRoutedV1(
        feedback_id="f",
        unit_id="u",
        unit_name="U",
        level=0,
        rule="fallback",
        negative=True,
        severity="negative",
        routed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    data = json.loads(ev.encode(ev.new_event(ev.ROUTED, routed, source="s", subject="f")))["data"]
    assert not {"triage_by", "critical_on_arrival", "oversight_board_id"} & set(data)


def test_a_city_system_may_declare_allegations_in_binary_mode_and_an_unknown_one_is_refused() -> None:
    headers = {
        "ce_specversion": b"1.0",
        "ce_id": b"abc",
        "ce_source": b"urn:city:311",
        "ce_type": ev.INBOUND.event_type.encode(),
        "content-type": b"application/json",
    }
    data = {"kind": "concern", "text": "He asked for cash", "allegations": ["corruption"]}
    decoded = ev.decode(json.dumps(data).encode(), headers, expected=(ev.INBOUND,))
    assert decoded.data.allegations == ["corruption"]
    with pytest.raises(ev.InvalidEvent) as raised:
        ev.decode(json.dumps({**data, "allegations": ["bribe"]}).encode(), headers, expected=(ev.INBOUND,))
    assert raised.value.code == "schema_violation"


def test_a_triage_decision_round_trips() -> None:
    triaged = ev.new_event(
        ev.TRIAGED,
        ev.FeedbackTriagedV1(
            feedback_id="f",
            decision="lowered",
            kind="complaint",
            severity="negative",
            negative=True,
            previous_kind="complaint",
            previous_severity="critical",
            by_role="professional_standards",
            unit_id="professional-standards",
            triaged_at=datetime(2026, 1, 1, tzinfo=UTC),
        ),
        source="urn:heard:intake",
        subject="f",
    )
    decoded = ev.decode(ev.encode(triaged), expected=(ev.TRIAGED,))
    assert decoded.model_dump() == triaged.model_dump()
    assert ev.TRIAGED.topic == "feedback.triaged"
