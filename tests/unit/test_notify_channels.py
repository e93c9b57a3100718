"""Message building and signing without a network: e-mail headers, Standard Webhooks signatures (verified with
the `standardwebhooks` library, including during a secret rotation), Retry-After, backoff, address checks, links."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from heard_notify.channels import (
    AddressRefused,
    Email,
    WebhookMessage,
    build_email,
    check_endpoint,
    parse_retry_after,
    signature_headers,
    thread_root_for,
)
from heard_notify.keys import NotifyKeys
from heard_notify.service import Dispatcher, _wait, backoff
from heard_notify.subscriptions import new_secret

AT = datetime.now(UTC)


def test_an_email_has_text_html_threading_and_one_click_unsubscribe() -> None:
    root = thread_root_for("f-1", "resident", "heard.example")
    mail = Email(
        to="ana@example.org",
        subject="¿Su comentario tiene una respuesta? Sí",
        text="Hola, mañana",
        html="<p>Hola</p>",
        message_id="<d-1@heard.example>",
        thread_root=root,
        language="es",
        unsubscribe_url="https://notify.example/v1/unsubscribe/" + "x" * 90,
    )
    sender = "Riverton Police Department — Heard <heard@riverton.example>"
    raw = build_email(mail, sender=sender, sent_at=AT).as_bytes()
    parsed = message_from_bytes(raw, policy=default)
    assert (parsed["Subject"], parsed["From"]) == (mail.subject, sender), "non-ASCII headers as encoded words"
    assert parsed.get_body(("plain",)).get_content().rstrip() == "Hola, mañana"  # type: ignore[union-attr]
    assert parsed["Message-ID"] == "<d-1@heard.example>"
    assert parsed["In-Reply-To"] == parsed["References"] == root
    assert parsed["List-Unsubscribe"] == f"<{mail.unsubscribe_url}>", "long values stay whole, not encoded words"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert {part.get_content_type() for part in parsed.walk()} >= {"text/plain", "text/html"}
    with pytest.raises(ValueError, match="line break"):
        build_email(
            Email(**{**mail.__dict__, "to": "ana@example.org\r\nBcc: x@example.org"}),
            sender=sender,
            sent_at=AT,
        )
    assert (
        thread_root_for("f-1", "resident", "heard.example")
        == root
        != thread_root_for("f-2", "resident", "heard.example")
    )


def test_webhook_signatures_verify_with_either_secret_during_a_rotation() -> None:
    old, new = new_secret(), new_secret()
    message = WebhookMessage("https://city.example/hook", "d-1", '{"type":"x","data":{}}', [old, new])
    headers = signature_headers(message, at=datetime.now(UTC))  # receivers refuse timestamps older than 5 minutes
    assert headers["webhook-id"] == "d-1" and len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(message.payload, headers) == {"type": "x", "data": {}}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(message.payload, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(message.payload.replace("x", "y"), headers)


def test_retry_after_as_seconds_or_a_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    waits = [backoff(attempt, base=10, cap=3600, rng=rng) for attempt in range(1, 12)]
    assert 5 <= waits[0] <= 10 and 40 <= waits[3] <= 80
    assert all(1800 <= wait <= 3600 for wait in waits[9:])
    # The default schedule (10 s base, 6 h cap, 30 attempts) spreads over about three days.
    total = sum(min(6 * 3600, 10 * 2 ** (n - 1)) for n in range(1, 30))
    assert 2 * 86400 < total * 0.75 < 4 * 86400


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://10.1.2.3/x", "http://[::1]/x", "ftp://a.example/"])
def test_private_and_loopback_endpoints_are_refused_unless_allowed(url: str) -> None:
    with pytest.raises(AddressRefused):
        check_endpoint(url, allow_private=False)
    if url.startswith("http"):
        check_endpoint(url, allow_private=True)


def test_link_tokens_and_address_hashes() -> None:
    keys = NotifyKeys("k" * 40)
    token = keys.link_token("unsubscribe", "d-1")
    assert keys.check_link("unsubscribe", token) == "d-1"
    assert keys.check_link("follow-up", token) is None, "a token is good for its purpose only"
    assert keys.check_link("unsubscribe", token[:-1] + "A") is None
    assert keys.address_hash("email", " Ana@Example.org") == keys.address_hash("email", "ana@example.org")
    assert keys.address_hash("sms", "+1 (612) 555-0100") == keys.address_hash("sms", "+16125550100")
    assert "ana" not in keys.address_hash("email", "ana@example.org")
    assert NotifyKeys("j" * 40).address_hash("email", "ana@example.org") != keys.address_hash(
        "email", "ana@example.org"
    )
    assert keys.open(keys.seal("whsec_abc")) == "whsec_abc"


def test_an_attempt_that_began_sending_without_an_outcome_is_recognised_later() -> None:
    from heard_notify.ledger import Claimed

    fresh = Claimed({"_id": "d", "sending_attempt": 0, "outcome_attempt": 0}, attempt=1)
    retry = Claimed({"_id": "d", "sending_attempt": 1, "outcome_attempt": 1}, attempt=2)
    crashed = Claimed({"_id": "d", "sending_attempt": 1, "outcome_attempt": 0}, attempt=2)
    # Attempt 2 was claimed after the crash but lost its lease before sending; attempt 3 must still know.
    crashed_then_lost = Claimed({"_id": "d", "sending_attempt": 1, "outcome_attempt": 0}, attempt=3)
    assert not fresh.interrupted and not retry.interrupted
    assert crashed.interrupted and crashed_then_lost.interrupted


def test_the_lease_must_outlast_an_attempt() -> None:
    from pydantic import ValidationError

    from heard_notify.config import NotifySettings

    with pytest.raises(ValidationError, match="dispatch_lease_seconds"):
        NotifySettings(dispatch_lease_seconds=10, intake_timeout_seconds=10, smtp_timeout_seconds=15)
    assert NotifySettings().dispatch_lease_seconds > 25


async def test_the_dispatchers_idle_wait_never_loses_a_stop() -> None:
    """A stop (cancellation) that arrives just as a finishing delivery wakes the dispatcher still stops it.

    asyncio.wait_for on Python 3.11 dropped it for some of these timings, and the dispatcher polled on forever.
    """

    async def dispatcher(wake: asyncio.Event) -> None:
        while True:
            wake.clear()
            await _wait(wake, 10)

    for steps in range(6):
        wake = asyncio.Event()
        task = asyncio.create_task(dispatcher(wake))
        await asyncio.sleep(0.01)
        wake.set()
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        stopped, _ = await asyncio.wait({task}, timeout=1)
        assert stopped, f"a stop {steps} loop steps after the wake-up was lost"


async def test_a_stop_swallowed_below_the_dispatcher_still_stops_it() -> None:
    dispatcher = Dispatcher.__new__(Dispatcher)  # only what the loop itself touches
    dispatcher.running, dispatcher.sending = {}, set()
    dispatcher.concurrency, dispatcher.poll_seconds, dispatcher.wake = 2, 0.01, asyncio.Event()
    swallowed = asyncio.Event()

    async def tick() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.set()  # what a library that turns a cancellation into a quiet return does
        return 0

    dispatcher.tick = tick  # type: ignore[method-assign]
    task = asyncio.create_task(dispatcher.run())
    await asyncio.sleep(0.05)
    task.cancel()
    stopped, _ = await asyncio.wait({task}, timeout=2)
    assert swallowed.is_set() and stopped and task.cancelled()
