"""Resident and staff lifecycle on the running platform: contest, withdraw, refer, notes, erasure, scoping, audit."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from heard_devstack import Stack
from heard_shared import topics
from tests.e2e.conftest import intake_cli, issue_token, staff, submit
from tests.helpers import TopicReader, eventually, unique

pytestmark = pytest.mark.e2e


async def routed(http: httpx.AsyncClient, platform: Stack, feedback_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        response = await http.get(f"{platform.service_url('intake')}/v1/staff/feedback/{feedback_id}", headers=staff())
        item = dict(response.json())
        return item if item.get("unit_id") else None

    return await eventually(check, what="intake to record the routing decision")


async def audit(http: httpx.AsyncClient, platform: Stack, feedback_id: str, token: str | None = None) -> httpx.Response:
    url = f"{platform.service_url('intake')}/v1/oversight/feedback/{feedback_id}/audit"
    return await http.get(url, headers=staff(token) if token else staff())


async def test_a_contested_answer_reopens_the_item_until_a_new_answer(platform: Stack, http: httpx.AsyncClient) -> None:
    intake = platform.service_url("intake")
    created = await submit(http, platform, kind="complaint", text="Officers searched my car without a reason")
    feedback_id, code = created["feedback_id"], created["tracking_code"]
    await routed(http, platform, feedback_id)
    too_early = await http.post(f"{intake}/v1/feedback/{code}/contest", json={"reason": "No answer yet"})
    assert too_early.status_code == 409 and too_early.json()["error"]["code"] == "no_answer_to_contest"

    answer = await http.post(
        f"{intake}/v1/staff/feedback/{feedback_id}/answer", headers=staff(), json={"answer": "The search was lawful."}
    )
    assert answer.status_code == 200, answer.text
    routing = platform.service_url("routing")

    async def clock_stopped() -> dict[str, Any] | None:
        case = dict((await http.get(f"{routing}/v1/cases/{feedback_id}")).json())
        return case if case["clock"] == "stopped" else None

    highest = (await eventually(clock_stopped, what="routing to stop the clock"))["max_level"]
    async with TopicReader(platform.kafka_bootstrap, topics.REOPENED, topics.ROUTED) as reader:
        contest = await http.post(f"{intake}/v1/feedback/{code}/contest", json={"reason": "Nobody told me why."})
        assert contest.status_code == 200, contest.text
        record = await reader.wait_for(
            lambda r: r.key == feedback_id.encode() and r.topic == topics.REOPENED, what="feedback.reopened"
        )
        rerouted = await reader.wait_for(
            lambda r: r.key == feedback_id.encode() and b'"rule":"contest"' in (r.value or b""),
            what="routing to reopen the case one level up",
        )
    assert json.loads(rerouted.value)["data"]["level"] == min(highest + 1, 4), "a contest restarts one level higher"
    event = json.loads(record.value)
    assert event["type"] == "org.heard.feedback.reopened.v1"
    assert event["data"]["reason"] == "contested"
    assert "Nobody told me why" not in record.value.decode(), "the resident's words stay in intake"
    case = (await http.get(f"{routing}/v1/cases/{feedback_id}")).json()
    assert case["clock"] == "open" and case["rule"] == "contest", "the SLA clock runs again"

    resident = contest.json()
    assert resident["status"] == "reopened"
    assert resident["answer"]["contested"] is True
    assert {"status": "reopened", "action": "contested", "text": "Nobody told me why."}.items() <= resident["history"][
        -1
    ].items()
    listing = await http.get(f"{intake}/v1/staff/feedback", headers=staff(), params={"status": "open", "limit": 500})
    assert feedback_id in {i["feedback_id"] for i in listing.json()["items"]}, "intake shows it as open again"

    refused = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/close", headers=staff())
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "answer_required"
    twice = await http.post(f"{intake}/v1/feedback/{code}/contest", json={"reason": "Again"})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_reopened"
    again = await http.post(
        f"{intake}/v1/staff/feedback/{feedback_id}/answer",
        headers=staff(),
        json={"answer": "The officer had reported a matching vehicle; we apologise for not explaining."},
    )
    assert again.status_code == 200
    closed = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/close", headers=staff())
    assert closed.status_code == 200, closed.text


async def test_withdrawal_is_the_residents_exit_for_negative_feedback(platform: Stack, http: httpx.AsyncClient) -> None:
    intake = platform.service_url("intake")
    created = await submit(http, platform, kind="complaint", text="The desk officer was rude to me")
    feedback_id, code = created["feedback_id"], created["tracking_code"]
    async with TopicReader(platform.kafka_bootstrap, topics.CLOSED) as closed:
        withdrawn = await http.post(f"{intake}/v1/feedback/{code}/withdraw", json={"reason": "We talked it out"})
        assert withdrawn.status_code == 200, withdrawn.text
        record = await closed.wait_for(lambda r: r.key == feedback_id.encode(), what="feedback.closed")
    assert json.loads(record.value)["data"]["resolution"] == "withdrawn"
    assert withdrawn.json()["status"] == "withdrawn"

    close = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/close", headers=staff())
    assert close.status_code == 409 and close.json()["error"]["code"] == "already_closed"
    reply = await http.post(f"{intake}/v1/feedback/{code}/reply", json={"text": "One more thing"})
    assert reply.status_code == 409 and reply.json()["error"]["code"] == "feedback_withdrawn"
    again = await http.post(f"{intake}/v1/feedback/{code}/withdraw")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_closed"
    unknown = await http.post(f"{intake}/v1/feedback/{'0' * 20}/withdraw")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "tracking_code_not_found"


async def test_referral_is_published_with_its_reason_and_notes_stay_internal(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake = platform.service_url("intake")
    created = await submit(
        http, platform, kind="suggestion", text="Please paint the curb near the school", category="parking"
    )
    feedback_id, code = created["feedback_id"], created["tracking_code"]
    item = await routed(http, platform, feedback_id)
    assert item["unit_id"] == "traffic-unit"

    note = await http.post(
        f"{intake}/v1/staff/feedback/{feedback_id}/notes",
        headers=staff(),
        json={"text": "Public works owns curb paint, not us."},
    )
    assert note.status_code == 201, note.text
    assert note.json()["notes"][-1]["text"] == "Public works owns curb paint, not us."
    async with TopicReader(platform.kafka_bootstrap, topics.REFERRED) as referred:
        refer = await http.post(
            f"{intake}/v1/staff/feedback/{feedback_id}/refer",
            headers=staff(),
            json={"reason": "City works handles curbs; call 612-555-0123", "suggested_unit_id": "community-liaison"},
        )
        assert refer.status_code == 200, refer.text
        record = await referred.wait_for(lambda r: r.key == feedback_id.encode(), what="feedback.referred")
    data = json.loads(record.value)["data"]
    assert data["from_unit_id"] == "traffic-unit"
    assert data["suggested_unit_id"] == "community-liaison"
    assert data["reason"] == "City works handles curbs; call [phone]"
    assert refer.json()["status"] == "referred"

    # Routing re-routes the item; intake records its new unit and the ledger both steps.
    async def rerouted() -> dict[str, Any] | None:
        item = (await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())).json()
        return dict(item) if item["status"] == "routed" and item["unit_id"] != "traffic-unit" else None

    item = await eventually(rerouted, what="intake to record the new unit after the referral")
    assert item["unit_id"] == "community-liaison"
    trail = (await audit(http, platform, feedback_id)).json()
    assert [e["action"] for e in trail["entries"]][-3:] == ["note_added", "referred", "routed"]
    assert trail["verified"] is True

    reply = await http.post(f"{intake}/v1/feedback/{code}/reply", json={"text": "Thanks for passing it on!"})
    assert reply.status_code == 200, reply.text
    resident = (await http.get(f"{intake}/v1/feedback/{code}")).json()
    assert resident["history"][-1]["text"] == "Thanks for passing it on!"
    assert "Public works" not in json.dumps(resident) and "City works" not in json.dumps(resident)


async def test_erasure_removes_personal_data_and_keeps_the_record(platform: Stack, http: httpx.AsyncClient) -> None:
    intake = platform.service_url("intake")
    created = await submit(
        http,
        platform,
        kind="concern",
        text="My name is Pat Example and I was stopped twice this week",
        location={"address": "9 Birch Lane", "neighbourhood": "Southport"},
        contact={"email": "pat@example.org", "consent_to_contact": True},
    )
    feedback_id, code = created["feedback_id"], created["tracking_code"]
    before = (await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())).json()
    assert before["has_contact"] is True and "contact" not in before and "contact_encrypted" not in before

    erased = await http.post(f"{intake}/v1/feedback/{code}/erasure")
    assert erased.status_code == 200, erased.text
    assert erased.json()["erased"] is True
    after = (await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())).json()
    assert after["has_contact"] is False
    assert "Pat Example" not in json.dumps(after) and "Birch" not in json.dumps(after)
    assert after["location"] == {"neighbourhood": "Southport"}
    assert (after["kind"], after["severity"]) == (before["kind"], before["severity"])
    # Routing may move it on meanwhile; erasure itself never closes or withdraws it.
    assert after["status"] in {"submitted", "routed", "escalated"}
    trail = (await audit(http, platform, feedback_id)).json()
    assert trail["verified"] is True
    # Routing and the scheduler keep appending (routed, escalated) concurrently, so erasure need not be last.
    actions = [entry["action"] for entry in trail["entries"]]
    assert actions[0] == "submitted" and "erased" in actions


async def test_a_resent_submission_with_its_idempotency_key_returns_the_first_item(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    intake = platform.service_url("intake")
    body = {"kind": "complaint", "text": unique("Sent twice by a double click"), "language": "en"}
    key = {"idempotency-key": str(uuid.uuid4())}
    # A double click, a retry after a time-out and a reloaded page all at once: one item, one code for all.
    answers = await asyncio.gather(*(http.post(f"{intake}/v1/feedback", json=body, headers=key) for _ in range(4)))
    assert {answer.status_code for answer in answers} == {202}, [answer.text for answer in answers]
    created = {(answer.json()["feedback_id"], answer.json()["tracking_code"]) for answer in answers}
    assert len(created) == 1
    assert sorted(answer.headers.get("idempotent-replayed", "") for answer in answers) == ["", "true", "true", "true"]
    ((feedback_id, code),) = created
    tracked = await http.get(f"{intake}/v1/feedback/{code}")
    assert tracked.status_code == 200 and tracked.json()["feedback_id"] == feedback_id
    stored = (await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())).json()
    assert "idempotency" not in stored, "the sealed code stays inside intake"

    other = await http.post(f"{intake}/v1/feedback", json={**body, "text": "Something else"}, headers=key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    for bad in ("short", "x" * 129, "has spaces in it and is long enough"):
        refused = await http.post(f"{intake}/v1/feedback", json=body, headers={"idempotency-key": bad})
        assert refused.status_code == 422, bad

    # After erasure the key leads nowhere: the request's fingerprint and the sealed code went with the words.
    assert (await http.post(f"{intake}/v1/feedback/{code}/erasure")).status_code == 200
    replay = await http.post(f"{intake}/v1/feedback", json=body, headers=key)
    assert replay.status_code == 422 and replay.json()["error"]["code"] == "idempotency_key_reused"


async def test_staff_see_and_act_only_within_their_scope(platform: Stack, http: httpx.AsyncClient) -> None:
    intake = platform.service_url("intake")
    traffic = issue_token(platform, unique("traffic-officer"), "unit_member", "traffic-unit")
    north = issue_token(platform, unique("north-officer"), "unit_member", "north-patrol")
    board_name = unique("board-member")
    board = issue_token(platform, board_name, "oversight")
    sergeant = issue_token(platform, unique("sergeant"), "supervisor")
    created = await submit(
        http, platform, kind="suggestion", text="A crossing guard at Elm and 3rd would help", category="traffic"
    )
    feedback_id = created["feedback_id"]
    await routed(http, platform, feedback_id)
    url = f"{intake}/v1/staff/feedback/{feedback_id}"
    # A person confirms it is a suggestion: its triage clock stops, so it stays with the traffic unit.
    confirmed = await http.post(f"{url}/triage", headers=staff(sergeant), json={})
    assert confirmed.status_code == 200, confirmed.text

    assert (await http.get(url, headers=staff(traffic))).status_code == 200
    mine = (await http.get(f"{intake}/v1/staff/feedback", headers=staff(traffic), params={"limit": 500})).json()
    assert feedback_id in {i["feedback_id"] for i in mine["items"]}
    assert {i["unit_id"] for i in mine["items"]} == {"traffic-unit"}

    other = await http.get(url, headers=staff(north))
    assert other.status_code == 403 and other.json()["error"]["code"] == "not_your_unit"
    other_act = await http.post(f"{url}/acknowledge", headers=staff(north))
    assert other_act.status_code == 403
    theirs = await http.get(f"{intake}/v1/staff/feedback", headers=staff(north), params={"unit_id": "traffic-unit"})
    assert theirs.status_code == 403

    assert (await http.get(url, headers=staff(board))).status_code == 200
    read_only = await http.post(f"{url}/notes", headers=staff(board), json={"text": "noted"})
    assert read_only.status_code == 403 and read_only.json()["error"]["code"] == "read_only"
    assert (await audit(http, platform, feedback_id, sergeant)).status_code == 403
    trail = await audit(http, platform, feedback_id, board)
    assert trail.status_code == 200 and trail.json()["verified"] is True

    acknowledged = await http.post(f"{url}/acknowledge", headers=staff(traffic))
    assert acknowledged.status_code == 200, acknowledged.text

    revoked = intake_cli(platform, "revoke-token", "--name", board_name)
    assert revoked.returncode == 0 and "revoked 1" in revoked.stdout
    gone = await http.get(url, headers=staff(board))
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "invalid_token"


async def test_nothing_can_be_deleted(platform: Stack, http: httpx.AsyncClient) -> None:
    intake = platform.service_url("intake")
    created = await submit(http, platform, kind="complaint", text="The patrol car ran a red light")
    for url in (
        f"{intake}/v1/staff/feedback/{created['feedback_id']}",
        f"{intake}/v1/feedback/{created['tracking_code']}",
        f"{intake}/v1/oversight/feedback/{created['feedback_id']}/audit",
    ):
        response = await http.delete(url, headers=staff())
        assert response.status_code == 405, url
        assert response.json()["error"]["code"] == "method_not_allowed"
    still = await http.get(f"{intake}/v1/staff/feedback/{created['feedback_id']}", headers=staff())
    assert still.status_code == 200


async def test_overdue_items_lead_the_staff_list(platform: Stack, http: httpx.AsyncClient) -> None:
    intake = platform.service_url("intake")
    older = await submit(http, platform, kind="praise", text="Thank you for the quick help yesterday!")
    # Praise has a clock too (triage): a person confirming it leaves it with no deadline, so it is on time.
    confirmed = await http.post(f"{intake}/v1/staff/feedback/{older['feedback_id']}/triage", headers=staff(), json={})
    assert confirmed.status_code == 200, confirmed.text
    late = await submit(http, platform, kind="complaint", text="Nobody answered my call about the break-in")
    await routed(http, platform, late["feedback_id"])

    async def ordered() -> list[dict[str, Any]] | None:
        response = await http.get(f"{intake}/v1/staff/feedback", headers=staff(), params={"limit": 500})
        items = list(response.json()["items"])
        ids = [i["feedback_id"] for i in items]
        overdue = [i for i in items if i["feedback_id"] == late["feedback_id"] and i["overdue"]]
        return items if overdue and older["feedback_id"] in ids else None

    items = await eventually(ordered, timeout=30, what="the complaint's acknowledge deadline (3 s) to pass")
    flags = [i["overdue"] for i in items]
    assert flags == sorted(flags, reverse=True), "every overdue item comes before every item on time"
    ids = [i["feedback_id"] for i in items]
    assert ids.index(late["feedback_id"]) < ids.index(older["feedback_id"])


async def test_the_audit_trail_records_routings_decisions_and_verifies(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    created = await submit(http, platform, kind="complaint", text="I reported a stolen bike and heard nothing")
    feedback_id = created["feedback_id"]

    async def escalated() -> dict[str, Any] | None:
        trail = dict((await audit(http, platform, feedback_id)).json())
        return trail if "escalated" in [e["action"] for e in trail["entries"]] else None

    trail = await eventually(escalated, timeout=30, what="an escalation to reach the audit trail")
    actions = [e["action"] for e in trail["entries"]]
    assert actions[:2] == ["submitted", "routed"]
    assert trail["verified"] is True and trail["broken_at"] is None
    assert [e["seq"] for e in trail["entries"]] == list(range(1, len(actions) + 1))
    assert all(e["prev_hash"] == p["hash"] for p, e in zip(trail["entries"], trail["entries"][1:], strict=False))
    missing = await audit(http, platform, "no-such-feedback")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "feedback_not_found"
    anonymous = await http.get(f"{platform.service_url('intake')}/v1/oversight/feedback/{feedback_id}/audit")
    assert anonymous.status_code == 401
