"""The platform started the way `make up` starts it, driven only through HTTP, Kafka and /metrics."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from heard_devstack import SERVICES, Stack
from heard_shared import events, topics
from tests.e2e.conftest import public_count, staff, submit
from tests.helpers import TopicReader, eventually, produce, unique

pytestmark = pytest.mark.e2e


async def metric(http: httpx.AsyncClient, url: str, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    text = (await http.get(f"{url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            head, value = line.rsplit(" ", 1)
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total


async def test_feedback_is_routed_answered_counted_and_delivered(platform: Stack, http: httpx.AsyncClient) -> None:
    intake = platform.service_url("intake")
    created = await submit(
        http,
        platform,
        kind="complaint",
        text="Patrol car blocked my driveway for an hour",
        category="parking",
        language="en",
        contact={"email": "driveway@example.org", "consent_to_contact": True},
    )
    feedback_id = created["feedback_id"]
    assert len(created["tracking_code"].replace("-", "")) == 20

    async def routed() -> dict[str, Any] | None:
        item = (await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())).json()
        return dict(item) if item.get("unit_id") else None

    item = await eventually(routed, what="intake to learn the routing decision")
    assert item["unit_id"] == "traffic-unit"

    answer = await http.post(
        f"{intake}/v1/staff/feedback/{feedback_id}/answer",
        headers=staff(),
        json={"answer": "We spoke to the officers; it will not happen again."},
    )
    assert answer.status_code == 200, answer.text
    closed = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/close", headers=staff())
    assert closed.status_code == 200, closed.text

    resident = (await http.get(f"{intake}/v1/feedback/{created['tracking_code'].lower()}")).json()
    assert resident["status"] == "closed"
    assert resident["answer"]["text"].startswith("We spoke")

    async def closed_in_public_figures() -> int:
        return await public_count(http, platform, "funnel", "stage", "closed", "items", kind="complaint")

    assert await eventually(closed_in_public_figures, what="analytics to publish the closed complaint") >= 1

    async def delivered() -> list[dict[str, Any]] | None:
        response = await http.get(
            f"{platform.service_url('notify')}/v1/deliveries", params={"feedback_id": feedback_id}, headers=staff()
        )
        items = response.json()["items"]
        return list(items) if {"assigned", "answered", "closed"} <= {d["template"] for d in items} else None

    deliveries = await eventually(delivered, what="notify to record the deliveries")
    recipients = {(d["recipient"], d["template"]) for d in deliveries}
    # Staff are reached per contact of the unit (config/contacts.yaml); the resident through intake, only on the
    # channels they gave an address for (no SMS delivery is planned for an e-mail-only resident).
    assert ("unit:traffic-unit/duty-desk", "assigned") in recipients
    assert ("resident", "answered") in recipients
    assert {d["channel"] for d in deliveries if d["recipient"] == "resident"} == {"email"}
    keys = {(d["event_id"], d["recipient"], d["channel"], d["template"], d["variant"]) for d in deliveries}
    assert len(deliveries) == len(keys), "one delivery per (event, recipient, channel, template, variant)"

    # Analytics reads each topic on its own, so an event that arrives after a later one may change nothing and
    # go uncounted; the submission and the closing are what the public figure above needed.
    async def counted() -> bool:
        analytics = platform.service_url("analytics")
        return all(
            [
                await metric(http, analytics, "heard_analytics_events_total", type=event_type) >= 1
                for event_type in (events.SUBMITTED.event_type, events.CLOSED.event_type)
            ]
        )

    assert await eventually(counted, what="analytics to count the submission and the closing")


async def test_unanswered_negative_feedback_climbs_the_chain_in_seconds(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    created = await submit(
        http,
        platform,
        kind="complaint",
        text="Nobody came when I reported the break-in",
        location={"neighbourhood": "Northgate"},
    )
    feedback_id = created["feedback_id"]
    async with TopicReader(platform.kafka_bootstrap, topics.ESCALATED) as reader:

        async def reached_board() -> list[dict[str, Any]] | None:
            await reader.poll()
            mine = reader.events(feedback_id)
            return mine if any(e["data"]["reason"] == "reminder" for e in mine) else None

        escalations = await eventually(reached_board, timeout=60, what="escalation up to the oversight board")
    levels = [e["data"]["level"] for e in escalations if e["data"]["reason"] != "reminder"]
    assert levels == [1, 2, 3, 4]
    assert [e["data"]["unit_id"] for e in escalations][:4] == [
        "north-sergeants",
        "patrol-command",
        "professional-standards",
        "oversight-board",
    ]
    assert len({e["id"] for e in escalations}) == len(escalations), "no escalation is emitted twice"

    routing = platform.service_url("routing")
    assert await metric(http, routing, "heard_escalations_total", level="4", reason="reminder") >= 1
    assert await metric(http, routing, "heard_escalation_overdue_unescalated") == 0
    assert await metric(http, routing, "heard_scheduler_heartbeat_timestamp_seconds") > 0

    # The resident's tracking page shows the escalation; the public view never shows units' internals.
    resident = (await http.get(f"{platform.service_url('intake')}/v1/feedback/{created['tracking_code']}")).json()
    assert "escalated" in [h["status"] for h in resident["history"]]

    # An answer stops the clock: no reminder is fired after it.
    answered = await http.post(
        f"{platform.service_url('intake')}/v1/staff/feedback/{feedback_id}/answer",
        headers=staff(),
        json={"answer": "An officer will visit you today."},
    )
    assert answered.status_code == 200

    async def stopped() -> bool:
        case = (await http.get(f"{routing}/v1/cases/{feedback_id}")).json()
        return bool(case["clock"] == "stopped")

    await eventually(stopped, what="routing to stop the clock after the answer")


async def test_negative_feedback_cannot_be_closed_unanswered(platform: Stack, http: httpx.AsyncClient) -> None:
    created = await submit(http, platform, kind="concern", text="Officers were rude at the checkpoint")
    refused = await http.post(
        f"{platform.service_url('intake')}/v1/staff/feedback/{created['feedback_id']}/close", headers=staff()
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "answer_required"
    anonymous = await http.post(f"{platform.service_url('intake')}/v1/staff/feedback/{created['feedback_id']}/close")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "unauthenticated"


async def test_malformed_inbound_message_is_dead_lettered_and_the_consumer_keeps_going(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    garbage = b'{"this is": not json'
    marker = unique("bad").encode()
    await produce(platform.kafka_bootstrap, topics.INBOUND, garbage, key=marker, headers=[("x-test", marker)])
    event_id = unique("evt")
    good = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:city:311",
        "type": "org.heard.feedback.inbound.v1",
        "subject": "ticket-77",
        "datacontenttype": "application/json",
        "data": {"kind": "suggestion", "text": "More foot patrols near the park please", "language": "en"},
    }
    await produce(platform.kafka_bootstrap, topics.INBOUND, json.dumps(good).encode(), key=b"ticket-77")

    async with TopicReader(platform.kafka_bootstrap, topics.INBOUND_DEAD_LETTER) as dead_letters:
        record = await dead_letters.wait_for(lambda r: r.key == marker, what="the dead-lettered message")
    headers = dict(record.headers)
    assert record.value == garbage, "the original bytes are kept"
    assert headers["x-test"] == marker, "the original headers are kept"
    assert headers["dlq.reason.code"] == b"invalid_json"
    assert headers["dlq.source.topic"] == topics.INBOUND.encode()
    assert int(headers["dlq.source.offset"]) >= 0

    # The valid event behind it is processed: intake stored it and published feedback.submitted.
    async with TopicReader(platform.kafka_bootstrap, topics.SUBMITTED) as submitted:
        await submitted.wait_for(
            lambda r: b"More foot patrols" in (r.value or b""), what="the valid inbound event to be submitted"
        )
    assert (
        await metric(http, platform.service_url("intake"), "heard_deadletter_messages_total", reason="invalid_json")
        >= 1
    )

    # Publishing the same CloudEvent again (same source + id) does not create a second item.
    await produce(platform.kafka_bootstrap, topics.INBOUND, json.dumps(good).encode(), key=b"ticket-77")
    listing = await http.get(
        f"{platform.service_url('intake')}/v1/staff/feedback", headers=staff(), params={"limit": 500}
    )
    texts = [i["text"] for i in listing.json()["items"]]
    assert texts.count("More foot patrols near the park please") == 1


async def test_prometheus_scrapes_every_service(platform: Stack, http: httpx.AsyncClient) -> None:
    async def all_up() -> list[dict[str, Any]] | None:
        response = await http.get(f"{platform.prometheus_url}/api/v1/targets")
        targets = response.json()["data"]["activeTargets"]
        return list(targets) if len(targets) == len(SERVICES) and all(t["health"] == "up" for t in targets) else None

    targets = await eventually(all_up, timeout=40, what="Prometheus to scrape every service")
    assert {t["labels"]["instance"] for t in targets} == {
        f"127.0.0.1:{platform.profile.service_port(s)}" for s in SERVICES
    }


async def test_a_complaint_naming_an_officer_skips_that_officers_chain(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    created = await submit(
        http,
        platform,
        kind="complaint",
        text="The officer shoved me during the stop",
        officer_badge="4127",
        location={"neighbourhood": "Northgate"},
    )
    feedback_id = created["feedback_id"]
    own_chain = {"north-patrol", "north-sergeants", "patrol-command"}
    async with TopicReader(platform.kafka_bootstrap, topics.ROUTED, topics.ESCALATED) as reader:

        async def reached_board() -> list[dict[str, Any]] | None:
            await reader.poll()
            mine = reader.events(feedback_id)
            return mine if any(e["data"].get("unit_id") == "oversight-board" for e in mine) else None

        events = await eventually(reached_board, timeout=60, what="the recused complaint to reach the board")
    routed = next(e for e in events if e["type"] == "org.heard.feedback.routed.v1")
    assert routed["data"]["unit_id"] == "professional-standards"
    assert routed["data"]["rule"] == "recusal:named-officer"
    assert not {e["data"]["unit_id"] for e in events} & own_chain, "never the officer's unit, sergeants or command"
