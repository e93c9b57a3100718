"""Notify on the real parts: the platform as `make up` starts it, e-mail read back through Mailpit's API, a real
HTTP receiver verifying Standard Webhooks signatures with the `standardwebhooks` library, Mailpit stopped and
restarted, and notify killed with SIGKILL in the middle of a burst."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from heard_devstack import Stack
from heard_shared import events as ev
from tests.e2e.conftest import issue_token, notify_cli, staff, submit
from tests.helpers import eventually
from tests.mailpit import Mailpit

pytestmark = pytest.mark.e2e


@pytest.fixture
async def mailpit(platform: Stack, http: httpx.AsyncClient) -> AsyncIterator[Mailpit]:
    yield Mailpit(http, platform.mailpit_url)


def address(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:10]}@residents.example"


async def deliveries(http: httpx.AsyncClient, platform: Stack, **params: str) -> list[dict[str, Any]]:
    response = await http.get(
        f"{platform.service_url('notify')}/v1/deliveries", params={**params, "limit": 1000}, headers=staff()
    )
    response.raise_for_status()
    return list(response.json()["items"])


async def delivery(
    http: httpx.AsyncClient, platform: Stack, feedback_id: str, template: str, channel: str = "email"
) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        for item in await deliveries(http, platform, feedback_id=feedback_id):
            if item["template"] == template and item["channel"] == channel and item["recipient"] == "resident":
                return item if item["status"] != "queued" else None
        return None

    return await eventually(find, timeout=90, what=f"the {template} {channel} delivery of {feedback_id} to finish")


async def mail_to(mailpit: Mailpit, to: str, subject: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        return next((m for m in await mailpit.to(to) if m["Subject"] == subject), None)

    return await eventually(find, timeout=90, what=f"an e-mail {subject!r} to {to} in Mailpit")


async def test_an_answer_reaches_the_resident_in_spanish_and_unsubscribe_works(
    platform: Stack, http: httpx.AsyncClient, mailpit: Mailpit
) -> None:
    intake = platform.service_url("intake")
    resident = address("ana")
    created = await submit(
        http,
        platform,
        kind="complaint",
        language="es",
        text="Nadie vino después de que denuncié el robo",
        contact={"email": resident, "consent_to_contact": True},
    )
    feedback_id, code = created["feedback_id"], created["tracking_code"]
    received = await mail_to(mailpit, resident, "Recibimos su comentario")
    received_body = await mailpit.message(received["ID"])
    assert f"{intake}/v1/feedback/{code}" in received_body["Text"], "the tracking link"

    answer_text = "Revisamos el caso: un agente le visitará mañana."
    answered = await http.post(
        f"{intake}/v1/staff/feedback/{feedback_id}/answer", headers=staff(), json={"answer": answer_text}
    )
    assert answered.status_code == 200, answered.text
    message = await mail_to(mailpit, resident, "Su comentario tiene una respuesta")
    body = await mailpit.message(message["ID"])
    assert answer_text in body["Text"] and answer_text in body["HTML"]
    assert "llame al 911" in body["Text"] and '<html lang="es">' in body["HTML"]

    # Message-ID from the delivery id; messages about one item thread under one root.
    record = await delivery(http, platform, feedback_id, "answered")
    assert record["status"] == "sent" and record["language"] == "es" and record["attempts"] == 1
    assert message["MessageID"] == record["message_id"].strip("<>")
    headers, first_headers = await mailpit.headers(message["ID"]), await mailpit.headers(received["ID"])
    assert headers["References"] == headers["In-Reply-To"] == first_headers["References"]

    # RFC 8058 one-click unsubscribe, the way a mail client does it.
    [link] = headers["List-Unsubscribe"]
    assert headers["List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
    unsubscribe_url = link.strip("<>")
    page = await http.get(unsubscribe_url)
    assert page.status_code == 200 and "Dejar de recibir" in page.text, "GET only asks; it never unsubscribes"
    clicked = await http.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
    assert clicked.status_code == 200, clicked.text

    mailbox = len(await mailpit.to(resident))
    closed = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/close", headers=staff())
    assert closed.status_code == 200, closed.text
    after = await delivery(http, platform, feedback_id, "closed")
    assert (after["status"], after["reason"]) == ("suppressed", "unsubscribed")
    follow_up = await delivery(http, platform, feedback_id, "follow_up")
    assert (follow_up["status"], follow_up["reason"]) == ("suppressed", "unsubscribed")
    assert len(await mailpit.to(resident)) == mailbox, "nothing more after unsubscribing"

    # Every address intake gave notify is in the item's audit ledger.
    audit = (await http.get(f"{intake}/v1/oversight/feedback/{feedback_id}/audit", headers=staff())).json()
    disclosed = {e["details"]["delivery_id"] for e in audit["entries"] if e["action"] == "contact_disclosed"}
    assert record["delivery_id"] in disclosed and after["delivery_id"] in disclosed and audit["verified"]


async def test_deliveries_are_shown_only_to_staff_intake_lets_see_the_item(
    platform: Stack, http: httpx.AsyncClient
) -> None:
    """Notify keeps no tokens: it asks intake with the caller's own token, so scope and revocation hold there too."""
    intake, notify = platform.service_url("intake"), platform.service_url("notify")
    feedback_id = (await submit(http, platform, kind="complaint", text="Nobody came after I reported the theft"))[
        "feedback_id"
    ]

    async def routed_unit() -> str | None:
        item = (await http.get(f"{intake}/v1/staff/feedback/{feedback_id}", headers=staff())).json()
        return item.get("unit_id") if item.get("status") == "routed" else None

    unit = await eventually(routed_unit, what="the item to be routed")
    # A unit outside the item's chain (the seconds policy may already have moved it up from `unit`).
    other = "community-liaison" if unit != "community-liaison" else "traffic-unit"
    other_member = issue_token(platform, f"Member of {other}", "unit_member", other)
    board_member = issue_token(platform, "Board member", "oversight")

    by_item = f"{notify}/v1/deliveries?feedback_id={feedback_id}"
    assert (await http.get(by_item)).status_code == 401
    assert (await http.get(by_item, headers=staff("heard_not_a_token"))).status_code == 401
    refused = await http.get(by_item, headers=staff(other_member))
    assert refused.status_code == 404 and "items" not in refused.json(), "another unit's item: no data"
    listed = await eventually(
        lambda: deliveries(http, platform, feedback_id=feedback_id), what="notify to plan the item's deliveries"
    )
    assert (await http.get(by_item, headers=staff(board_member))).status_code == 200

    across_items = f"{notify}/v1/deliveries?status=sent"
    assert (await http.get(across_items, headers=staff(other_member))).status_code == 403, "listings: audit roles"
    assert (await http.get(across_items, headers=staff(board_member))).status_code == 200
    one = f"{notify}/v1/deliveries/{listed[0]['delivery_id']}"
    assert (await http.get(one, headers=staff(other_member))).status_code == 404
    assert (await http.get(one, headers=staff(board_member))).json()["feedback_id"] == feedback_id


async def test_the_follow_up_asks_a_week_later_and_records_the_answer(
    platform: Stack, http: httpx.AsyncClient, mailpit: Mailpit
) -> None:
    intake, resident = platform.service_url("intake"), address("sam")
    created = await submit(
        http, platform, kind="concern", text="Speeding on Elm", contact={"email": resident, "consent_to_contact": True}
    )
    feedback_id = created["feedback_id"]
    for action, body in (("answer", {"answer": "We added patrols on Elm."}), ("close", None)):
        response = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/{action}", headers=staff(), json=body)
        assert response.status_code == 200, response.text
    # The e2e platform waits 4 s instead of a week.
    message = await mail_to(mailpit, resident, "Did our answer address your concern?")
    text = (await mailpit.message(message["ID"]))["Text"]
    yes_link = next(word for word in text.split() if word.endswith("/yes"))
    page = await http.get(yes_link)
    assert page.status_code == 200 and "glad" in page.text
    metrics = (await http.get(f"{platform.service_url('notify')}/metrics")).text
    assert 'heard_notify_follow_up_answers_total{answer="yes"}' in metrics


async def test_erasure_stops_every_later_message_at_once(
    platform: Stack, http: httpx.AsyncClient, mailpit: Mailpit
) -> None:
    intake, resident = platform.service_url("intake"), address("eve")
    # A suggestion has no deadlines, so no escalation message races the erasure.
    created = await submit(
        http,
        platform,
        kind="suggestion",
        text="More bike patrols",
        contact={"email": resident, "consent_to_contact": True},
    )
    feedback_id, code = created["feedback_id"], created["tracking_code"]
    await mail_to(mailpit, resident, "We received your feedback")
    erased = await http.post(f"{intake}/v1/feedback/{code}/erasure")
    assert erased.status_code == 200, erased.text
    acknowledged = await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/acknowledge", headers=staff())
    assert acknowledged.status_code == 200, acknowledged.text
    record = await delivery(http, platform, feedback_id, "acknowledged")
    assert (record["status"], record["reason"]) == ("suppressed", "contact_erased")
    assert [m["Subject"] for m in await mailpit.to(resident)] == ["We received your feedback"]


async def test_withdrawn_consent_and_sms_stop_are_honoured(platform: Stack, http: httpx.AsyncClient) -> None:
    intake, notify = platform.service_url("intake"), platform.service_url("notify")
    phone = f"+1612555{uuid.uuid4().int % 10000:04d}"
    created = await submit(
        http, platform, kind="suggestion", text="Text me updates", contact={"phone": phone, "consent_to_contact": True}
    )
    feedback_id, code = created["feedback_id"], created["tracking_code"]
    sms = await delivery(http, platform, feedback_id, "received", "sms")
    assert sms["status"] == "sent"
    captured = (await http.get(f"{notify}/v1/dev/sms", params={"to": phone})).json()["items"]
    assert len(captured) == 1 and code in captured[0]["body"]

    stop = await http.post(f"{notify}/v1/sms/inbound", data={"From": phone, "Body": "STOP"})
    assert stop.status_code == 200
    await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/acknowledge", headers=staff())
    assert (await delivery(http, platform, feedback_id, "acknowledged", "sms"))["reason"] == "sms_opted_out"
    await http.post(f"{notify}/v1/sms/inbound", data={"From": phone, "Body": "START"})

    withdrawn = await http.post(f"{intake}/v1/feedback/{code}/consent/withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    await http.post(f"{intake}/v1/staff/feedback/{feedback_id}/answer", headers=staff(), json={"answer": "Done."})
    record = await delivery(http, platform, feedback_id, "answered", "sms")
    assert (record["status"], record["reason"]) == ("suppressed", "consent_withdrawn")
    assert len((await http.get(f"{notify}/v1/dev/sms", params={"to": phone})).json()["items"]) == 1


class Receiver:
    """A real HTTP server: answers each request with the next scripted (status, headers), records everything."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status, headers = receiver.script.pop(0) if receiver.script else (204, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/heard"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_feedback(self, feedback_id: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in self.requests if json.loads(b)["data"]["feedback_id"] == feedback_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


async def test_city_systems_get_signed_webhooks_with_rotation_retry_after_and_410(
    platform: Stack, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    intake = platform.service_url("intake")
    subscription = f"city-{uuid.uuid4().hex[:6]}"
    registered = notify_cli(
        platform,
        "register-webhook",
        "--id",
        subscription,
        "--name",
        "City 311",
        "--url",
        receiver.url,
        "--event",
        ev.ROUTED.event_type,
        "--event",
        ev.ANSWERED.event_type,
    )
    assert registered.returncode == 0, registered.stderr
    secret = registered.stdout.strip()
    await asyncio.sleep(6)  # every replica sees a registration within 5 s

    # The first call is throttled with Retry-After: the same webhook-id comes back after it.
    receiver.script = [(429, {"Retry-After": "1"})]
    created = await submit(http, platform, kind="complaint", text="Potholes ignored", category="parking")
    feedback_id = created["feedback_id"]

    async def calls(count: int) -> list[tuple[dict[str, str], bytes]] | None:
        found = receiver.for_feedback(feedback_id)
        return found if len(found) >= count else None

    first, second = await eventually(lambda: calls(2), timeout=40, what="the routed webhook and its retry")
    assert first[0]["webhook-id"] == second[0]["webhook-id"]
    payload = Webhook(secret).verify(second[1], second[0])
    assert payload["type"] == ev.ROUTED.event_type and payload["data"]["feedback_id"] == feedback_id
    assert set(payload["data"]) <= {"feedback_id", "event_id", *ev.FeedbackRoutedV1.model_fields}
    assert "Potholes" not in second[1].decode(), "payloads are thin: no free text"

    # Rotation: both secrets sign until the old one is retired.
    rotated = notify_cli(platform, "rotate-webhook-secret", "--id", subscription)
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.strip()
    await asyncio.sleep(6)
    answered = await http.post(
        f"{intake}/v1/staff/feedback/{feedback_id}/answer", headers=staff(), json={"answer": "Fixed."}
    )
    assert answered.status_code == 200
    *_, third = await eventually(lambda: calls(3), timeout=40, what="the answered webhook")
    for key in (secret, new_secret):
        assert Webhook(key).verify(third[1], third[0])["type"] == ev.ANSWERED.event_type

    # 410 Gone disables the endpoint: it is never called again.
    receiver.script = [(410, {})]
    other = (await submit(http, platform, kind="complaint", text="Again", category="parking"))["feedback_id"]
    await eventually(lambda: _disabled(platform, subscription), timeout=40, what="the subscription to be disabled")
    await http.post(f"{intake}/v1/staff/feedback/{other}/answer", headers=staff(), json={"answer": "ok"})
    await asyncio.sleep(3)
    assert len(receiver.for_feedback(other)) == 1
    answered_delivery = [d for d in await deliveries(http, platform, feedback_id=other) if d["channel"] == "webhook"]
    assert {d["status"] for d in answered_delivery} <= {"failed", "suppressed"}


async def _disabled(platform: Stack, subscription: str) -> bool:
    listed = json.loads(notify_cli(platform, "list-webhooks").stdout)
    return any(s["id"] == subscription and not s["enabled"] for s in listed)


async def test_private_addresses_are_refused_when_not_allowed(platform: Stack) -> None:
    env_platform = Stack(platform.profile, extra_env={}, mongodb_server=platform.mongodb_server)
    refused = notify_cli(
        env_platform, "register-webhook", "--id", "x", "--name", "x", "--url", "http://127.0.0.1:9/x", "--event", "*"
    )
    assert refused.returncode == 2 and "not a public address" in refused.stderr


async def test_mailpit_down_for_a_while_then_every_message_arrives_once(
    platform: Stack, http: httpx.AsyncClient, mailpit: Mailpit
) -> None:
    residents = [address(f"outage{i}") for i in range(5)]
    platform.stop_process("mailpit")
    try:
        ids = [
            (
                await submit(
                    http, platform, kind="suggestion", text="Outage", contact={"email": r, "consent_to_contact": True}
                )
            )["feedback_id"]
            for r in residents
        ]

        async def retrying() -> bool:
            items = [d for fid in ids for d in await deliveries(http, platform, feedback_id=fid)]
            received = [d for d in items if d["template"] == "received" and d["channel"] == "email"]
            return len(received) == 5 and all(
                d["status"] == "queued" and d["attempts"] >= 2 and d["attempt_log"][-1]["code"] == "smtp_unavailable"
                for d in received
            )

        await eventually(retrying, timeout=40, what="deliveries to be retried while Mailpit is down")
    finally:
        platform.start_mailpit()
    for resident in residents:
        await mail_to(mailpit, resident, "We received your feedback")
    await asyncio.sleep(2)  # room for a second copy to arrive, were one sent
    # Only the residents' messages: staff reminders from earlier tests keep flowing, and one that Mailpit stored
    # while being stopped, before it acknowledged, is retried by notify as SMTP requires (same Message-ID).
    sent: Counter[str] = Counter()
    for resident in residents:
        sent.update(m["MessageID"] for m in await mailpit.to(resident) if m["Subject"] == "We received your feedback")
    assert len(sent) == len(residents) and set(sent.values()) == {1}, sent


async def test_kill_9_mid_burst_loses_nothing_and_sends_nothing_twice(
    platform: Stack, http: httpx.AsyncClient, mailpit: Mailpit
) -> None:
    before = await mailpit.total()
    residents = [address(f"burst{i}") for i in range(30)]
    ids = []
    for resident in residents:
        created = await submit(
            http, platform, kind="suggestion", text="Burst", contact={"email": resident, "consent_to_contact": True}
        )
        ids.append(created["feedback_id"])

    async def some_sent() -> bool:
        return await mailpit.total() >= before + 10

    await eventually(some_sent, timeout=120, interval=0.05, what="the burst to be under way")
    platform.kill_process("notify")
    killed_at = await mailpit.total() - before
    platform.start_service("notify")

    async def all_done() -> list[dict[str, Any]] | None:
        items = [d for fid in ids for d in await deliveries(http, platform, feedback_id=fid)]
        emails = [d for d in items if d["channel"] == "email" and d["template"] == "received"]
        return emails if len(emails) == 30 and all(d["status"] != "queued" for d in emails) else None

    # Generous: every resident e-mail needs intake's answer, and the machine may be shared with other test runs.
    emails = await eventually(all_done, timeout=300, interval=1, what="every delivery of the burst to finish")
    assert {d["status"] for d in emails} == {"sent"}, "nothing lost"
    counts = await mailpit.message_ids()
    expected = {d["message_id"].strip("<>") for d in emails}
    assert expected <= set(counts), "every message is in Mailpit"
    # A message whose SMTP transaction the kill interrupted may have been accepted before its outcome was
    # recorded; notify resends it under the same Message-ID and says so in the attempt log.
    interrupted = {
        d["message_id"].strip("<>")
        for d in emails
        if any(a.get("previous_attempt") == "interrupted while sending" for a in d["attempt_log"])
    }
    twice = {mid for mid in expected if counts[mid] > 1}
    assert twice <= interrupted, f"sent twice without an interrupted attempt: {twice - interrupted}"
    assert all(counts[mid] <= 2 for mid in expected)
    print(f"kill -9 after {killed_at} of 30 e-mails; interrupted mid-send: {len(interrupted)}; twice: {len(twice)}")
