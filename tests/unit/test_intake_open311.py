"""Open311 translation rules, without I/O: service catalogue, status mapping, privacy of public reads, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from heard_intake import open311
from heard_intake.open311 import (
    DEFAULT_SERVICES,
    Open311Gateway,
    ServiceAttributeOut,
    ServiceCatalog,
    ServiceRequestForm,
    load_catalog,
)
from heard_shared.allegations import ALLEGATION_CODES
from heard_shared.http import ApiError


def gateway(**overrides: Any) -> Open311Gateway:
    collaborators: dict[str, Any] = {"service": None, "feedback": None, "tokens": None}
    return Open311Gateway(
        **collaborators,
        catalog=ServiceCatalog(DEFAULT_SERVICES),
        agency_name="Riverton PD",
        public_base_url="http://heard.test/",
        **overrides,
    )


def record(**fields: Any) -> dict[str, Any]:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    return {
        "_id": "f-1",
        "status": "routed",
        "kind": "complaint",
        "category": "conduct",
        "text": "Officer was rude; call me on 555-123-4567",
        "location": {"latitude": 45.123456, "longitude": -122.654321, "address": "12 Elm St", "neighbourhood": "Oak"},
        "submitted_at": now,
        "updated_at": now,
        "answer_by": now + timedelta(days=5),
        "unit_id": "north-patrol",
        "routed_unit": {"id": "north-patrol", "name": "North Precinct Patrol"},
        **fields,
    }


def test_every_kind_has_a_service_and_codes_file_back_to_the_same_service() -> None:
    catalog = ServiceCatalog(DEFAULT_SERVICES)
    for kind in ("praise", "concern", "complaint", "suggestion", "question"):
        assert catalog.service_for(kind, None) is not None, kind
    for service in DEFAULT_SERVICES:
        assert catalog.service_for(service.kind, service.category) == service
    # An unknown category falls back to its kind's catch-all service.
    assert catalog.service_for("complaint", "parking").service_code == "police-service-complaint"  # type: ignore[union-attr]


def test_catch_all_filter_excludes_the_categories_other_services_claim() -> None:
    catalog = ServiceCatalog(DEFAULT_SERVICES)
    assert catalog.query_for("officer-conduct") == {"kind": "complaint", "category": "conduct"}
    assert catalog.query_for("police-service-complaint") == {"kind": "complaint", "category": {"$nin": ["conduct"]}}


def test_service_list_entries_follow_the_spec() -> None:
    entry = DEFAULT_SERVICES[0].as_open311()
    assert set(entry) == {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
    assert entry["metadata"] is True, "complaints offer the allegations attribute"
    assert entry["type"] == "realtime"
    assert isinstance(entry["keywords"], str)
    praise = next(s for s in DEFAULT_SERVICES if s.kind == "praise")
    assert praise.as_open311()["metadata"] is False and praise.attributes() == []


def test_the_allegations_attribute_is_a_georeport_multivaluelist_of_every_category() -> None:
    [attribute] = DEFAULT_SERVICES[0].attributes()
    ServiceAttributeOut.model_validate(attribute)
    assert (attribute["code"], attribute["datatype"], attribute["required"]) == (
        "allegations",
        "multivaluelist",
        False,
    )
    assert [value["key"] for value in attribute["values"]] == list(ALLEGATION_CODES)


def test_declared_allegations_are_read_from_the_spec_encoding_and_unknown_ones_refused() -> None:
    form = ServiceRequestForm.model_validate(
        {
            "service_code": "officer-conduct",
            "description": "x",
            "attribute[allegations][]": ["retaliation", "force"],
            "attribute[allegations]": ["corruption"],
        }
    )
    assert form.declared_allegations() == ["retaliation", "force", "corruption"]
    with pytest.raises(ValidationError):
        ServiceRequestForm.model_validate(
            {"service_code": "officer-conduct", "description": "x", "attribute[allegations][]": ["rudeness"]}
        )
    with pytest.raises(ValidationError):
        ServiceRequestForm.model_validate({"service_code": "x", "description": "x", "attribute[colour]": "red"})


def test_catalog_loads_from_a_file_and_refuses_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "services.yaml"
    path.write_text("services:\n  - {service_code: noise, service_name: Noise, kind: concern, category: noise}\n")
    assert [s.service_code for s in load_catalog(str(path)).services] == ["noise"]
    path.write_text(
        "- {service_code: a, service_name: A, kind: praise}\n- {service_code: a, service_name: B, kind: praise}\n"
    )
    with pytest.raises(ValueError, match="unique"):
        load_catalog(str(path))
    assert load_catalog("").services == DEFAULT_SERVICES


def test_anonymous_reads_show_status_but_not_words_address_or_exact_place() -> None:
    public = gateway().to_open311(record(), detailed=False)
    assert public.status == "open"
    assert public.service_code == "officer-conduct"
    assert public.description is None
    assert public.address == "Oak"
    assert (public.lat, public.long) == (45.123, -122.654)
    assert public.agency_responsible == "Riverton PD: North Precinct Patrol"
    assert public.expected_datetime is not None


def test_city_systems_read_the_redacted_text_and_the_answer() -> None:
    answered = record(status="answered", answer={"text": "Mail us at a@b.org", "answered_at": datetime.now(UTC)})
    detailed = gateway().to_open311(answered, detailed=True)
    assert detailed.description is not None and "[phone]" in detailed.description
    assert "555" not in detailed.description
    assert detailed.status_notes == "Mail us at [email]"
    assert detailed.address == "12 Elm St"
    assert detailed.lat == 45.123456


@pytest.mark.parametrize(
    ("status", "open311_status"),
    [("submitted", "open"), ("escalated", "open"), ("answered", "open"), ("reopened", "open"), ("closed", "closed")],
)
def test_heard_statuses_map_to_open_or_closed(status: str, open311_status: str) -> None:
    assert gateway().to_open311(record(status=status), detailed=False).status == open311_status


def test_withdrawn_is_closed_without_an_expected_date() -> None:
    item = gateway().to_open311(record(status="withdrawn"), detailed=False)
    assert item.status == "closed"
    assert item.expected_datetime is None
    assert item.status_notes == "Withdrawn by the resident."


def test_escalated_unit_without_a_recorded_name_is_named_by_its_id() -> None:
    item = gateway().to_open311(record(status="escalated", unit_id="north-sergeants"), detailed=False)
    assert item.agency_responsible == "Riverton PD: north-sergeants"


def test_date_range_defaults_to_90_days_and_refuses_longer_or_reversed_spans() -> None:
    query = gateway()._range_query(None, None)
    span = query["submitted_at"]["$lte"] - query["submitted_at"]["$gte"]
    assert span == timedelta(days=90)
    only_start = gateway()._range_query("2026-01-01T00:00:00Z", None)["submitted_at"]
    assert only_start["$lte"] == datetime(2026, 4, 1, tzinfo=UTC)
    naive = gateway()._range_query("2026-01-01T00:00:00", "2026-01-02T00:00:00")["submitted_at"]
    assert naive["$gte"].tzinfo is not None, "a date without zone is read as UTC"
    for start, end in [
        ("2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"),
        ("2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"),
        ("yesterday", None),
    ]:
        with pytest.raises(ApiError) as refused:
            gateway()._range_query(start, end)
        assert refused.value.status == 400


def test_jurisdiction_is_checked_only_when_configured() -> None:
    gateway().check_jurisdiction("anything")
    with pytest.raises(ApiError) as refused:
        gateway(jurisdiction_id="riverton.gov").check_jurisdiction("elsewhere.gov")
    assert refused.value.status == 404
    gateway(jurisdiction_id="riverton.gov").check_jurisdiction("riverton.gov")


def test_form_becomes_feedback_with_contact_consent_and_detected_language() -> None:
    form = ServiceRequestForm(
        service_code="officer-conduct",
        description="El agente fue muy grosero conmigo y no me dejó hablar",
        lat=45.5,
        long=-122.6,
        first_name="Ana",
        last_name="Ruiz",
        email="ana@example.org",
        device_id="device-123",
    )
    data = gateway()._inbound(form, DEFAULT_SERVICES[0])
    assert (data.kind, data.category) == ("complaint", "conduct")
    assert data.language == "es"
    assert data.contact is not None and data.contact.name == "Ana Ruiz" and data.contact.consent_to_contact
    assert data.location is not None and data.location.latitude == 45.5
    assert "device-123" not in data.model_dump_json(), "device ids are not kept"


def test_errors_leave_in_the_open311_shape() -> None:
    body, content_type = open311.render_error("/open311/v2/requests.json", 413, "payload_too_large", "too big")
    assert content_type == "application/json"
    assert body == b'[{"code": 413, "description": "too big"}]'
    heard_body, _ = open311.render_error("/v1/feedback", 413, "payload_too_large", "too big")
    assert b'"error"' in heard_body


@settings(max_examples=400, deadline=None)
@given(
    start=st.none() | st.text(max_size=40) | st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
    end=st.none() | st.text(max_size=40) | st.datetimes(timezones=st.timezones()).map(datetime.isoformat),
)
def test_any_date_filter_is_a_query_or_a_400_never_a_crash(start: str | None, end: str | None) -> None:
    try:
        query = gateway()._range_query(start, end)["submitted_at"]
    except ApiError as refused:
        assert refused.status == 400
        return
    assert query["$gte"] <= query["$lte"]
