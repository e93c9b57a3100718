"""Nothing unseen, end to end with a triage window of seconds: every item has a clock, a person confirms severity,
declared misconduct goes straight to professional standards and the oversight board is told."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cloudevents.v1.http import CloudEvent as SdkEvent
from cloudevents.v1.kafka import to_structured

from heard_devstack import Stack
from heard_shared import topics
from heard_shared.events import deterministic_event_id
from tests.e2e.conftest import issue_token, running_platform, staff, submit
from tests.e2e.test_platform import metric
from tests.helpers import TopicReader, eventually, produce, unique

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(stack: Stack) -> Iterator[Stack]:
    """Critical windows of seconds would let the item climb past its start level before the lowering arrives, and
    a lowering never moves an item below where escalation took it (`domain.after_triage`)."""
    yield from running_platform(stack, Path(__file__).with_name("sla-policy.triage.yaml"))


LOWERING_REASON = "The resident wrote back: the officer was curt, but there was no threat or retaliation."


def mine(reader: TopicReader, feedback_id: str) -> list[dict[str, Any]]:
    return [event["data"] for event in reader.events(feedback_id)]


async def board_message(http: httpx.AsyncClient, platform: Stack, feedback_id: str, template: str) -> dict[str, Any]:
    """Notify's delivery of `template` about the item to the oversight board's e-mail contact, once it is sent."""

    async def sent() -> dict[str, Any] | None:
        response = await http.get(
            f"{platform.service_url('notify')}/v1/deliveries",
            params={"feedback_id": feedback_id, "limit": 1000},
            headers=staff(),
        )
        return next(
            (
                d
                for d in response.json()["items"]
                if (d["template"], d["recipient"], d["status"]) == (template, "unit:oversight-board/clerk", "sent")
            ),
            None,
        )

    return await eventually(sent, timeout=90, what=f"notify to send the board {template!r} about {feedback_id}")


async def answer(http: httpx.AsyncClient, intake: str, feedback_id: str) -> None:
    """Stops the item's clock, so it does not keep the platform busy with reminders for the rest of the run."""
    answered = await http.post(
        f"{intake}/v1/staff/feedback/{feedback_id}/answer", headers=staff(), json={"answer": "We are on it."}
    )
    assert answered.status_code == 200, answered.text


async def test_a_neutral_question_nobody_triages_escalates_until_a_person_triages_it(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake, routing = platform.service_url("intake"), platform.service_url("routing")
    async with TopicReader(platform.kafka_bootstrap, topics.SUBMITTED, topics.ROUTED, topics.ESCALATED) as reader:
        created = await submit(
            http,
            platform,
            kind="question",
            text=f"What time does the front desk open on Saturdays? {unique('q')}",
            location={"neighbourhood": "Northgate"},
        )
        feedback_id = created["feedback_id"]

        async def escalated() -> list[dict[str, Any]] | None:
            await reader.poll()
            found = [e for e in reader.events(feedback_id) if e["type"] == "org.heard.feedback.escalated.v1"]
            return found or None

        [first, *_] = await eventually(escalated, timeout=60, what="the untriaged question to escalate (10 s)")
    [submitted] = [e["data"] for e in reader.events(feedback_id) if e["type"] == "org.heard.feedback.submitted.v1"]
    assert submitted["negative"] is False, f"the assessor read the question as {submitted['severity']}"
    [routed] = [e["data"] for e in reader.events(feedback_id) if e["type"] == "org.heard.feedback.routed.v1"]
    assert routed["unit_id"] == "north-patrol" and routed["triage_by"] and "acknowledge_by" not in routed
    assert (first["data"]["reason"], first["data"]["level"], first["data"]["unit_id"]) == (
        "triage_overdue",
        1,
        "north-sergeants",
    )

    async def recorded() -> dict[str, Any] | None:
        item = (await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())).json()
        return dict(item) if item["status"] == "escalated" else None

    item = await eventually(recorded, what="intake to record the escalation")
    assert (item["needs_triage"], item["triage_state"]) == (True, "awaiting") and item["level"] >= 1
    needed = (await http.get(f"{intake}/v1/staff/feedback", headers=staff(), params={"triage": "needed"})).json()
    assert feedback_id in {i["feedback_id"] for i in needed["items"]}
    refused = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/close", headers=staff())
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "triage_required")

    confirmed = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/triage", headers=staff(), json={})
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["triage_state"], confirmed.json()["needs_triage"]) == ("done", False)

    async def stopped() -> dict[str, Any] | None:
        case = (await http.get(f"{routing}/v1/cases/{feedback_id}")).json()
        return dict(case) if case["clock"] == "stopped" else None

    case = await eventually(stopped, what="routing to stop the triage clock")
    assert "due_ms" not in case and "deadline_ms" not in case, "a stopped clock has no deadline left to fire"
    assert await metric(http, routing, "heard_escalations_total", reason="triage_overdue") >= 1
    closed = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/close", headers=staff())
    assert closed.status_code == 200, closed.text


async def test_a_declared_allegation_starts_at_professional_standards_and_the_board_is_told(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake = platform.service_url("intake")
    categories = (await http.get(f"{intake}/v1/allegation-categories")).json()["categories"]
    assert len(categories) == 10
    by_code = {c["code"]: c for c in categories}
    assert by_code["retaliation"]["label"] == {"en": "Retaliation", "es": "Represalias"}

    text = f"He said my car would be towed every week if I kept calling. {unique('a')}"
    async with TopicReader(platform.kafka_bootstrap, topics.SUBMITTED, topics.ROUTED) as reader:
        created = await submit(
            http,
            platform,
            kind="question",
            text=text,
            allegations=["retaliation"],
            location={"neighbourhood": "Northgate"},
        )
        feedback_id = created["feedback_id"]
        # The same declaration from a city system on feedback.inbound (CNCF SDK, structured mode).
        sdk_event = SdkEvent(
            {"type": "org.heard.feedback.inbound.v1", "source": "urn:city:311"},
            {"kind": "concern", "text": f"The officer asked for cash {unique('c')}", "allegations": ["corruption"]},
        )
        message = to_structured(sdk_event)
        value = message.value if isinstance(message.value, bytes) else message.value.encode()
        await produce(platform.kafka_bootstrap, topics.INBOUND, value, headers=list(message.headers.items()))
        inbound_id = deterministic_event_id("inbound", sdk_event["source"], sdk_event["id"])

        async def both_routed() -> bool:
            # Both topics: one consumer reading two topics may hand out a later topic's record first.
            await reader.poll()
            return all(
                {"org.heard.feedback.submitted.v1", "org.heard.feedback.routed.v1"}
                <= {e["type"] for e in reader.events(i)}
                for i in (feedback_id, inbound_id)
            )

        await eventually(both_routed, what="both critical items to be submitted and routed")
    for item_id, allegation in ((feedback_id, "retaliation"), (inbound_id, "corruption")):
        events = {e["type"].split(".")[-2]: e["data"] for e in reader.events(item_id)}
        assert (events["submitted"]["severity"], events["submitted"]["allegations"]) == ("critical", [allegation])
        routed = events["routed"]
        assert (routed["unit_id"], routed["level"], routed["severity"]) == ("professional-standards", 3, "critical")
        assert (routed["critical_on_arrival"], routed["oversight_board_id"]) == (True, "oversight-board")

    listed = await http.get(f"{intake}/v1/staff/feedback", headers=staff(), params={"allegation": "retaliation"})
    assert feedback_id in {i["feedback_id"] for i in listed.json()["items"]}
    # Every consumer read the routed event with its new fields: nothing was dead-lettered.
    for service in ("intake", "notify", "analytics"):
        assert await metric(http, platform.service_url(service), "heard_deadletter_messages_total") == 0, service
    # The board hears of each critical item when it arrives, not only when it escalates that far.
    for item_id in (feedback_id, inbound_id):
        assert (await board_message(http, platform, item_id, "critical"))["urgent"] is True
    for item_id in (feedback_id, inbound_id):
        await answer(http, intake, item_id)


async def test_lowering_a_critical_item_needs_the_role_and_is_recorded_in_the_ledger(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake, routing = platform.service_url("intake"), platform.service_url("routing")
    supervisor = issue_token(platform, unique("sgt"), "supervisor")
    standards_name = unique("ps-investigator")
    standards = issue_token(platform, standards_name, "professional_standards")
    board = issue_token(platform, unique("board"), "oversight")
    officer = issue_token(platform, unique("officer"), "unit_member", "north-patrol")
    created = await submit(
        http,
        platform,
        kind="complaint",
        text=f"The officer was rude to me at the checkpoint {unique('l')}",
        allegations=["discourtesy", "abuse_of_authority"],
        location={"neighbourhood": "Northgate"},
    )
    feedback_id = created["feedback_id"]
    triage_url = f"{intake}/v1/staff/feedback/{feedback_id}/triage"
    lower = {"severity": "negative", "reason": LOWERING_REASON}

    without_role = await http.post(triage_url, headers=staff(supervisor), json=lower)
    assert (without_role.status_code, without_role.json()["error"]["code"]) == (403, "lowering_critical_needs_role")
    without_reason = await http.post(triage_url, headers=staff(standards), json={"severity": "negative"})
    assert (without_reason.status_code, without_reason.json()["error"]["code"]) == (422, "reason_required")

    async with TopicReader(platform.kafka_bootstrap, topics.TRIAGED, topics.ROUTED) as reader:
        lowered = await http.post(triage_url, headers=staff(standards), json=lower)
        assert lowered.status_code == 200, lowered.text
        assert (lowered.json()["severity"], lowered.json()["negative"]) == ("negative", True)

        async def rerouted() -> list[dict[str, Any]] | None:
            await reader.poll()
            decisions = [e for e in mine(reader, feedback_id) if e.get("rule") == "triage"]
            return decisions or None

        [back] = await eventually(rerouted, what="routing to re-derive the chain after the lowering")
    [decision] = [e for e in reader.events(feedback_id) if e["type"] == "org.heard.feedback.triaged.v1"]
    assert (decision["data"]["decision"], decision["data"]["previous_severity"], decision["data"]["by_role"]) == (
        "lowered",
        "critical",
        "professional_standards",
    )
    assert LOWERING_REASON not in json.dumps(decision), "the written reason never travels on Kafka"
    assert (back["unit_id"], back["level"], back["severity"]) == ("north-patrol", 0, "negative")
    # The board, told of the item as critical on arrival, is told at once that it no longer is.
    told = await board_message(http, platform, feedback_id, "critical_lowered")
    assert told["urgent"] is True and told["event_id"] == decision["id"]
    case = (await http.get(f"{routing}/v1/cases/{feedback_id}")).json()
    assert (case["severity"], case["unit_id"], case["stage"]) == ("negative", "north-patrol", "acknowledge")

    audit = (await http.get(f"{intake}/v1/oversight/feedback/{feedback_id}/audit", headers=staff(board))).json()
    assert audit["verified"] is True
    [entry] = [e for e in audit["entries"] if e["action"] == "triaged"]
    assert entry["actor"] == standards_name
    assert (entry["details"]["decision"], entry["details"]["from_severity"], entry["details"]["to_severity"]) == (
        "lowered",
        "critical",
        "negative",
    )

    changes = await http.get(f"{intake}/v1/oversight/severity-changes", headers=staff(board))
    [change] = [c for c in changes.json()["items"] if c["feedback_id"] == feedback_id]
    assert (change["reason"], change["reason_matches_ledger"], change["role"]) == (
        LOWERING_REASON,
        True,
        "professional_standards",
    )
    forbidden = await http.get(f"{intake}/v1/oversight/severity-changes", headers=staff(officer))
    assert forbidden.status_code == 403
    assert (
        await metric(
            http,
            intake,
            "heard_severity_changes_total",
            direction="lowered",
            from_severity="critical",
            to_severity="negative",
        )
        >= 1
    )
    await answer(http, intake, feedback_id)
