"""How city systems and public meetings reach Heard, end to end: Open311 (read with the `georeport`
client), CloudEvents from the CNCF SDK in both Kafka modes, and public feedback sessions."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cloudevents.v1.http import CloudEvent as SdkEvent
from cloudevents.v1.kafka import KafkaMessage, to_binary, to_structured
from georeport import GeoReport

from heard_devstack import Stack
from heard_shared import topics
from heard_shared.events import deterministic_event_id
from tests.e2e.conftest import intake_cli, issue_token, staff
from tests.helpers import TopicReader, eventually, produce, unique

pytestmark = pytest.mark.e2e

INBOUND_TYPE = "org.heard.feedback.inbound.v1"


def w3c(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_city_system_submits_over_open311_and_the_georeport_client_reads_it_back(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake = platform.service_url("intake")
    root = f"{intake}/open311/v2"
    token = issue_token(platform, unique("riverton-311"), "city_system")
    client = GeoReport(root, api_key=token)

    services = await asyncio.to_thread(client.get_service_list)
    assert {"officer-conduct", "officer-praise", "suggestion"} <= {s["service_code"] for s in services}
    assert all(s["type"] == "realtime" for s in services)
    metadata = {s["service_code"]: s["metadata"] for s in services}
    assert metadata["officer-conduct"] is True and metadata["officer-praise"] is False
    # Allegation categories are a GeoReport v2 service attribute (metadata=true), read with the georeport client.
    definition = await asyncio.to_thread(client.get_service_definition, "officer-conduct")
    [attribute] = definition["attributes"]
    assert (definition["service_code"], attribute["code"], attribute["datatype"]) == (
        "officer-conduct",
        "allegations",
        "multivaluelist",
    )
    assert {"force", "retaliation", "discourtesy"} <= {value["key"] for value in attribute["values"]}
    praise_definition = await asyncio.to_thread(client.get_service_definition, "officer-praise")
    assert praise_definition["attributes"] == []

    # POST is form-encoded with the api_key, as the spec says (georeport only reads).
    text = f"Officer shouted at my son near the park; reach me at ana@example.org {unique('case')}"
    created = await http.post(
        f"{root}/requests.json",
        data={
            "api_key": token,
            "service_code": "officer-conduct",
            "description": text,
            "lat": "45.523064",
            "long": "-122.676483",
            "address_string": "12 Elm St",
            "first_name": "Ana",
            "email": "ana@example.org",
            "attribute[allegations][]": ["discourtesy", "abuse_of_authority"],
        },
    )
    assert created.status_code == 200, created.text
    [receipt] = created.json()
    request_id = receipt["service_request_id"]
    assert receipt["account_id"] is None
    assert "Tracking code" in receipt["service_notice"] and "911" in receipt["service_notice"]

    # Public reads (georeport sends no api_key): status, service, place rounded, no words, no address.
    one = await asyncio.to_thread(client.get_service_request, request_id)
    assert (one["service_request_id"], one["status"], one["service_code"]) == (request_id, "open", "officer-conduct")
    assert one["description"] is None and one["address"] is None
    assert (one["lat"], one["long"]) == (45.523, -122.676)
    assert datetime.fromisoformat(one["requested_datetime"]) <= datetime.now(UTC)

    now = datetime.now(UTC)
    window = {"start_date": w3c(now - timedelta(hours=1)), "end_date": w3c(now + timedelta(minutes=5))}
    open_conduct = await asyncio.to_thread(
        client.get_service_requests, service_code="officer-conduct", status="open", **window
    )
    assert request_id in {r["service_request_id"] for r in open_conduct}
    closed = await asyncio.to_thread(client.get_service_requests, status="closed", **window)
    assert request_id not in {r["service_request_id"] for r in closed}
    praise = await asyncio.to_thread(client.get_service_requests, service_code="officer-praise", **window)
    assert request_id not in {r["service_request_id"] for r in praise}

    # Routing's decision shows up as the agency responsible and the SLA deadline as expected_datetime.
    async def routed() -> dict[str, Any] | None:
        [item] = await asyncio.to_thread(client.get_service_requests, service_request_id=request_id)
        return dict(item) if item["expected_datetime"] and ":" in item["agency_responsible"] else None

    item = await eventually(routed, what="the Open311 view to show the responsible unit")
    assert item["agency_responsible"] == "Riverton Police Department: Professional Standards Bureau"
    staff_item = (await http.get(f"{intake}/v1/staff/feedback/{request_id}", headers=staff())).json()
    assert (staff_item["severity"], staff_item["allegations"]) == ("critical", ["abuse_of_authority", "discourtesy"])
    praise_with_allegation = await http.post(
        f"{root}/requests.json",
        data={
            "api_key": token,
            "service_code": "officer-praise",
            "description": "x",
            "attribute[allegations][]": "force",
        },
    )
    assert (
        praise_with_allegation.status_code == 400 and "no attribute" in praise_with_allegation.json()[0]["description"]
    )

    # A city system's api_key also sees the words (redacted) and, once answered, the answer.
    answer = "We reviewed the body-camera footage and spoke with the officer."
    answered = await http.post(
        f"{intake}/v1/staff/feedback/{request_id}/answer", headers=staff(), json={"answer": answer}
    )
    assert answered.status_code == 200, answered.text
    assert (await http.post(f"{intake}/v1/staff/feedback/{request_id}/close", headers=staff())).status_code == 200
    detailed = (await http.get(f"{root}/requests/{request_id}.json", params={"api_key": token})).json()[0]
    assert detailed["status"] == "closed"
    assert detailed["status_notes"] == answer
    assert "[email]" in detailed["description"] and "ana@example.org" not in detailed["description"]
    assert detailed["address"] == "12 Elm St"
    closed = await asyncio.to_thread(client.get_service_requests, status="closed", **window)
    assert request_id in {r["service_request_id"] for r in closed}


async def test_open311_errors_follow_the_spec(platform: Stack, http: httpx.AsyncClient) -> None:
    root = f"{platform.service_url('intake')}/open311/v2"
    token = issue_token(platform, unique("records"), "city_system")
    staff_token_refused = await http.post(
        f"{root}/requests.json", data={"api_key": "heard_e2e_admin_token", "service_code": "x", "description": "y"}
    )
    assert staff_token_refused.status_code == 403
    cases = [
        (await http.post(f"{root}/requests.json", data={"service_code": "suggestion", "description": "y"}), 403),
        (
            await http.post(
                f"{root}/requests.json", data={"api_key": token, "service_code": "nope", "description": "y"}
            ),
            400,
        ),
        (
            await http.post(
                f"{root}/requests.json",
                data={"api_key": token, "service_code": "suggestion", "description": "y", "attribute[x]": "1"},
            ),
            400,
        ),
        (await http.get(f"{root}/requests.json", params={"status": "pending"}), 400),
        (await http.get(f"{root}/requests.json", params={"start_date": "2020-01-01T00:00:00Z"}), 200),
        (
            await http.get(
                f"{root}/requests.json",
                params={"start_date": "2020-01-01T00:00:00Z", "end_date": "2021-01-01T00:00:00Z"},
            ),
            400,
        ),
        (await http.get(f"{root}/requests/does-not-exist.json"), 404),
        (await http.get(f"{root}/services/nope.json"), 404),
        (await http.get(f"{root}/services.xml"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        if status != 200:
            [error] = response.json()
            assert error["code"] == status and error["description"]
    # georeport raises requests.HTTPError, an OSError, for the spec's 404.
    with pytest.raises(OSError, match="404"):
        await asyncio.to_thread(GeoReport(root).get_service_request, "does-not-exist")


def sdk_event(source: str, data: dict[str, Any], ticket: str) -> SdkEvent:
    return SdkEvent(
        {"type": INBOUND_TYPE, "source": source, "datacontenttype": "application/json", "partitionkey": ticket}, data
    )


async def publish(platform: Stack, message: KafkaMessage) -> None:
    key = message.key.encode() if isinstance(message.key, str) else message.key
    value = message.value.encode() if isinstance(message.value, str) else message.value
    await produce(platform.kafka_bootstrap, topics.INBOUND, value, key=key, headers=list(message.headers.items()))


async def test_cloudevents_sdk_publishes_in_both_kafka_modes_and_unknown_sources_are_dead_lettered(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake = platform.service_url("intake")
    texts = {mode: f"Thanks to the officers at the {mode} street fair {unique('fair')}" for mode in ("s", "b")}
    structured = sdk_event("urn:city:311", {"kind": "praise", "text": texts["s"]}, unique("ticket"))
    binary = sdk_event("urn:city:records", {"kind": "praise", "text": texts["b"], "language": "en"}, unique("ticket"))
    await publish(platform, to_structured(structured))
    await publish(platform, to_binary(binary))

    for event, text in ((structured, texts["s"]), (binary, texts["b"])):
        # source + id is the idempotency key: the feedback id is derived from it.
        feedback_id = deterministic_event_id("inbound", event["source"], event["id"])

        async def stored(feedback_id: str = feedback_id) -> dict[str, Any] | None:
            response = await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())
            return dict(response.json()) if response.status_code == 200 else None

        item = await eventually(stored, what=f"intake to store the SDK's {event['source']} event")
        assert (item["text"], item["channel"]) == (text, "kafka")

    # The same event again changes nothing.
    await publish(platform, to_binary(binary))

    rogue = sdk_event("urn:unknown:system", {"kind": "complaint", "text": "Sneaky"}, unique("rogue"))
    invalid = sdk_event("urn:city:311", {"kind": "rant", "text": ""}, unique("invalid"))
    await publish(platform, to_binary(rogue))
    await publish(platform, to_structured(invalid))
    async with TopicReader(platform.kafka_bootstrap, topics.INBOUND_DEAD_LETTER) as dead_letters:
        rogue_record = await dead_letters.wait_for(
            lambda r: dict(r.headers).get("ce_id") == rogue["id"].encode(), what="the unregistered source's event"
        )
        invalid_record = await dead_letters.wait_for(
            lambda r: invalid["id"].encode() in (r.value or b""), what="the SDK event with invalid data"
        )
    rogue_headers = dict(rogue_record.headers)
    assert rogue_headers["dlq.reason.code"] == b"unregistered_source"
    assert rogue_headers["ce_source"] == b"urn:unknown:system", "binary-mode attributes are kept byte for byte"
    assert json.loads(rogue_record.value or b"{}") == {"kind": "complaint", "text": "Sneaky"}
    assert dict(invalid_record.headers)["dlq.reason.code"] == b"schema_violation"

    rogue_id = deterministic_event_id("inbound", rogue["source"], rogue["id"])
    assert (await http.get(f"{intake}/v1/staff/feedback/{rogue_id}", headers=staff())).status_code == 404
    listing = await http.get(f"{intake}/v1/staff/feedback", headers=staff(), params={"limit": 500})
    assert [i["text"] for i in listing.json()["items"]].count(texts["b"]) == 1, "re-sent event stored once"


async def test_an_operator_registers_and_revokes_a_city_system_without_a_restart(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    source = f"urn:city:{unique('parks')}"
    refused = intake_cli(platform, "register-city-system", "--source", "not a uri", "--name", "Parks")
    assert refused.returncode == 2 and "URI reference" in refused.stderr
    registered = intake_cli(platform, "register-city-system", "--source", source, "--name", "Parks and Recreation")
    assert registered.returncode == 0, registered.stderr
    listed = intake_cli(platform, "list-city-systems")
    assert json.loads(listed.stdout)[source] == "Parks and Recreation"
    assert "urn:city:311" in json.loads(listed.stdout), "configured systems are listed too"

    event = sdk_event(source, {"kind": "praise", "text": f"The park patrol was kind {unique('park')}"}, unique("p"))
    await publish(platform, to_structured(event))
    feedback_id = deterministic_event_id("inbound", source, event["id"])

    async def stored() -> bool:
        response = await http.get(f"{platform.service_url('intake')}/v1/staff/feedback/{feedback_id}", headers=staff())
        return response.status_code == 200

    await eventually(stored, what="intake to accept the newly registered system's event")

    assert intake_cli(platform, "revoke-city-system", "--source", source).returncode == 0
    again = intake_cli(platform, "revoke-city-system", "--source", source)
    assert again.returncode == 1 and "no active registration" in again.stderr
    assert source not in json.loads(intake_cli(platform, "list-city-systems").stdout)


async def test_a_public_session_is_entered_in_bulk_and_fills_in_you_said_we_did(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake = platform.service_url("intake")
    anonymous = await http.post(f"{intake}/v1/staff/sessions", json={})
    assert anonymous.status_code == 401
    created = await http.post(
        f"{intake}/v1/staff/sessions",
        headers=staff(),
        json={
            "title": "Northgate community meeting",
            "date": "2026-03-12",
            "place": "Northgate library",
            "facilitator": "Community Liaison Office",
            "neighbourhood": "Northgate",
        },
    )
    assert created.status_code == 201, created.text
    session_id = created.json()["session_id"]
    items_url = f"{intake}/v1/staff/sessions/{session_id}/items"

    sheet = (
        "kind,text,category,rating,ref\n"
        "complaint,Cars speed past the school every morning,speeding,,card-1\n"
        "praise,,,5,card-2\n"
        "suggestion,Foot patrols on market day,,,card-3\n"
        "rant,Something,,,card-4\n"
    )
    csv_report = await http.post(items_url, headers={**staff(), "content-type": "text/csv"}, content=sheet)
    assert csv_report.status_code == 200, csv_report.text
    report = csv_report.json()
    assert [a["row"] for a in report["accepted"]] == [1, 3]
    assert [(r["row"], r["line"], r["errors"][0]["field"]) for r in report["rejected"]] == [
        (2, 3, "text"),
        (4, 5, "kind"),
    ]

    json_report = (
        await http.post(
            items_url,
            headers=staff(),
            json=[{"kind": "concern", "text": "Street lights out on 5th", "ref": "card-5"}, {"kind": "praise"}],
        )
    ).json()
    assert len(json_report["accepted"]) == 1 and json_report["rejected"][0]["row"] == 2
    again = (
        await http.post(items_url, headers=staff(), json=[{"kind": "concern", "text": "x", "ref": "card-5"}])
    ).json()
    assert again["accepted"][0]["duplicate"] is True, "a re-upload with the same ref adds nothing"
    upload = await http.post(
        items_url,
        headers=staff(),
        files={"file": ("cards.csv", b"kind,text\nquestion,When is the next meeting?\n", "text/csv")},
    )
    assert upload.status_code == 200 and len(upload.json()["accepted"]) == 1, upload.text

    summary_url = f"{intake}/v1/sessions/{session_id}/summary"
    summary = (await http.get(summary_url)).json()
    assert summary["session"]["place"] == "Northgate library"
    assert "created_by" not in summary["session"] or summary["session"]["created_by"] is None
    assert summary["counts"] == {"total": 4, "answered": 0, "pending": 4, "withdrawn": 0}

    # Each item is ordinary feedback: routed like any other, answered by staff.
    speeding_id = report["accepted"][0]["feedback_id"]

    async def routed() -> dict[str, Any] | None:
        item = (await http.get(f"{intake}/v1/staff/feedback/{speeding_id}", headers=staff())).json()
        return dict(item) if item.get("unit_id") else None

    item = await eventually(routed, what="the session item to be routed")
    assert (item["channel"], item["unit_id"]) == ("session", "traffic-unit")
    answer = "Traffic Unit will run speed checks outside the school for four weeks."
    answered = await http.post(
        f"{intake}/v1/staff/feedback/{speeding_id}/answer", headers=staff(), json={"answer": answer}
    )
    assert answered.status_code == 200, answered.text

    summary = (await http.get(summary_url)).json()
    assert summary["counts"] == {"total": 4, "answered": 1, "pending": 3, "withdrawn": 0}
    [done] = [i for i in summary["items"] if i["feedback_id"] == speeding_id]
    assert done["you_said"] == "Cars speed past the school every morning"
    assert done["we_did"]["text"] == answer


async def test_oversized_bodies_are_refused_before_they_are_read(platform: Stack, http: httpx.AsyncClient) -> None:
    intake = platform.service_url("intake")
    huge = {"kind": "praise", "text": "x" * 200_000}
    refused = await http.post(f"{intake}/v1/feedback", json=huge)
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    open311_refused = await http.post(f"{intake}/open311/v2/requests.json", data={"description": "x" * 200_000})
    assert open311_refused.status_code == 413
    assert open311_refused.json()[0]["code"] == 413
