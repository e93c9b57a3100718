"""The published event contract (schemas/) is generated from the code and stays in sync with it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from cloudevents.v1.http import CloudEvent as SdkCloudEvent
from cloudevents.v1.kafka import to_structured

from heard_shared import contract
from heard_shared import events as ev

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_committed_schemas_match_the_code() -> None:
    stale = [str(path) for path, text in contract.rendered().items() if not path.exists() or path.read_text() != text]
    assert not stale, f"regenerate with `make schemas`: {stale}"


def test_asyncapi_lists_one_channel_per_event_type_plus_the_dead_letter_topics() -> None:
    document = contract.asyncapi_document()
    assert set(document["channels"]) == {spec.topic for spec in ev.EVENT_SPECS.values()} | {
        "feedback.deadletter",
        "feedback.inbound.deadletter",
    }
    for spec in ev.EVENT_SPECS.values():
        assert spec.event_type.endswith(".v1"), "types are versioned"


def schema_for(spec: ev.EventSpec[Any]) -> dict[str, Any]:
    return dict(json.loads((contract.SCHEMAS_DIR / "events" / f"{spec.event_type}.json").read_text()))


@pytest.mark.parametrize(
    ("spec", "data"),
    [
        (
            ev.SUBMITTED,
            ev.FeedbackSubmittedV1(
                feedback_id="f",
                channel="api",
                kind="praise",
                language="es",
                text="gracias",
                severity="positive",
                negative=False,
                submitted_at=NOW,
            ),
        ),
        (
            ev.ESCALATED,
            ev.FeedbackEscalatedV1(
                feedback_id="f",
                reason="answer_overdue",
                from_level=0,
                level=1,
                level_name="supervisor",
                unit_id="u",
                deadline=NOW,
                fired_at=NOW,
                repeat=0,
                fencing_token=3,
            ),
        ),
        (ev.CLOSED, ev.FeedbackClosedV1(feedback_id="f", closed_at=NOW, resolution="withdrawn")),
    ],
)
def test_events_the_code_emits_validate_against_the_published_schema(spec: ev.EventSpec[Any], data: Any) -> None:
    event = ev.new_event(spec, data, source="urn:heard:test", subject="f")
    jsonschema.validate(json.loads(ev.encode(event)), schema_for(spec))


def test_a_city_system_using_the_cncf_sdk_needs_no_adapter() -> None:
    """What the CloudEvents SDK writes in structured mode validates against our schema and decodes."""
    sdk_event = SdkCloudEvent(
        {"type": ev.INBOUND.event_type, "source": "urn:city:311", "subject": "ticket-9"},
        {"kind": "concern", "text": "Streetlights out on Elm", "language": "en"},
    )
    message = to_structured(sdk_event)
    value = message.value if isinstance(message.value, bytes) else message.value.encode()
    jsonschema.validate(json.loads(value), schema_for(ev.INBOUND))
    decoded = ev.decode(value, dict(message.headers), expected=(ev.INBOUND,))
    assert decoded.source == "urn:city:311"
    assert decoded.data.text == "Streetlights out on Elm"


def test_a_schema_violation_is_refused_by_the_schema_too() -> None:
    bad = {
        "specversion": "1.0",
        "id": "1",
        "source": "s",
        "type": ev.INBOUND.event_type,
        "data": {"kind": "rant", "text": "x"},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema_for(ev.INBOUND))
