"""The ways a message leaves: e-mail over SMTP, Standard Webhooks, SMS through a provider.

Each sender turns one message into an `Outcome` the dispatcher can act on: sent, retry later (with an
optional Retry-After), failed for good, bounced, endpoint gone, or maybe sent (an SMS whose request timed
out after it left: resending could text a person twice, so it is not resent blindly).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime as email_date
from email.utils import parseaddr
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiosmtplib
import httpx
from standardwebhooks.webhooks import Webhook

OutcomeKind = Literal["sent", "retry", "failed", "bounced", "gone", "maybe_sent", "suppressed"]


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    code: str
    detail: str = ""
    retry_after: float | None = None
    provider_id: str | None = None


# -- e-mail ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    message_id: str
    thread_root: str
    language: str
    unsubscribe_url: str | None = None


# Long header values (References, List-Unsubscribe) stay whole on one line rather than being folded into
# RFC 2047 encoded words, which some clients then fail to read as message ids or URLs (RFC 5322 allows 998).
_POLICY = SMTP_POLICY.clone(max_line_length=998)


def build_email(mail: Email, *, sender: str, sent_at: datetime) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = email_date(sent_at)
    message["Message-ID"] = mail.message_id
    # Every message about one item, to one recipient, threads under the same root.
    message["In-Reply-To"] = mail.thread_root
    message["References"] = mail.thread_root
    message["Content-Language"] = mail.language
    message["Auto-Submitted"] = "auto-generated"
    if mail.unsubscribe_url:
        # RFC 8058 one-click: the mail client POSTs "List-Unsubscribe=One-Click" to this HTTPS (or dev HTTP) URL.
        message["List-Unsubscribe"] = f"<{mail.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message


def message_id_for(delivery: str, domain: str) -> str:
    return f"<{delivery}@{domain}>"


def thread_root_for(feedback_id: str, recipient: str, domain: str) -> str:
    """The same for every message about one item to one recipient, across restarts (unlike `hash()`)."""
    return f"<thread.{feedback_id}.{hashlib.sha256(recipient.encode()).hexdigest()[:12]}@{domain}>"


class SmtpSender:
    """A small pool of open SMTP connections: one TCP and greeting exchange per connection, not per message."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        username: str,
        password: str,
        timeout: float,
        sender: str,
        pool_size: int,
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password = username, password
        self.timeout = timeout
        self.sender = sender
        self.envelope_from = parseaddr(sender)[1]
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(pool_size)

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
        )
        await client.connect()
        if self.username:
            await client.login(self.username, self.password)
        return client

    async def send(self, mail: Email, *, sent_at: datetime) -> Outcome:
        # Flattened here with our policy: aiosmtplib's own would fold long headers into encoded words.
        raw = build_email(mail, sender=self.sender, sent_at=sent_at).as_bytes(policy=_POLICY)
        async with self._slots:
            pooled = self._idle.pop() if self._idle else None
            if pooled is not None and pooled.is_connected:
                try:
                    return await self._transaction(pooled, mail.to, raw)
                except aiosmtplib.SMTPServerDisconnected:
                    pass  # the relay closed an idle connection before our transaction began: a fresh one is safe
            try:
                return await self._transaction(await self._connect(), mail.to, raw)
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as error:
                return Outcome("retry", "smtp_unavailable", f"{type(error).__name__}: {error}"[:300])

    async def _transaction(self, client: aiosmtplib.SMTP, to: str, raw: bytes) -> Outcome:
        """One message on one connection; the connection goes back to the pool unless something went wrong."""
        try:
            _errors, response = await client.sendmail(self.envelope_from, [to], raw)
        except aiosmtplib.SMTPServerDisconnected:
            _discard(client)
            raise
        except aiosmtplib.SMTPRecipientsRefused as refused:
            _discard(client)
            codes = [r.code for r in refused.recipients]
            if codes and all(500 <= c < 600 for c in codes):
                return Outcome("bounced", f"smtp_{codes[0]}", str(refused.recipients[0].message)[:300])
            return Outcome("retry", f"smtp_{codes[0] if codes else 'refused'}", "recipient deferred")
        except aiosmtplib.SMTPResponseException as error:
            _discard(client)
            if 500 <= error.code < 600:
                return Outcome("failed", f"smtp_{error.code}", error.message[:300])
            return Outcome("retry", f"smtp_{error.code}", error.message[:300])
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as error:
            _discard(client)
            return Outcome("retry", "smtp_unavailable", f"{type(error).__name__}: {error}"[:300])
        self._idle.append(client)
        return Outcome("sent", "smtp_250", str(response)[:200])

    async def close(self) -> None:
        while self._idle:
            _discard(self._idle.pop())


def _discard(client: aiosmtplib.SMTP | None) -> None:
    """Drops a connection after an error: its state is unknown, so the next message gets a fresh one."""
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


# -- webhooks --------------------------------------------------------------------------------------------------


class AddressRefused(Exception):
    """The endpoint resolves to an address notify must not call (loopback, private, link-local, ...)."""


def check_endpoint(url: str, *, allow_private: bool) -> None:
    """Refuses URLs that are not http(s) or that resolve to a non-public address (unless allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise AddressRefused(f"{url!r} is not an http(s) URL")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as error:
        raise AddressRefused(f"{parts.hostname} does not resolve: {error}") from error
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise AddressRefused(f"{parts.hostname} resolves to {address}, which is not a public address")


@dataclass(frozen=True)
class WebhookMessage:
    url: str
    webhook_id: str
    payload: str
    secrets: list[str] = field(default_factory=list)


def signature_headers(message: WebhookMessage, *, at: datetime) -> dict[str, str]:
    """Standard Webhooks headers; during a rotation every valid secret signs, so either verifies."""
    signatures = " ".join(Webhook(secret).sign(message.webhook_id, at, message.payload) for secret in message.secrets)
    return {
        "webhook-id": message.webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "Heard-Webhooks/1.0",
    }


class WebhookSender:
    def __init__(self, *, timeout: float, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def send(self, message: WebhookMessage, *, at: datetime) -> Outcome:
        try:
            await asyncio.to_thread(check_endpoint, message.url, allow_private=self.allow_private)
        except AddressRefused as refused:
            return Outcome("failed", "address_refused", str(refused))
        try:
            response = await self.client.post(
                message.url, content=message.payload.encode(), headers=signature_headers(message, at=at)
            )
        except httpx.TimeoutException as error:
            return Outcome("retry", "timeout", type(error).__name__)
        except httpx.HTTPError as error:
            return Outcome("retry", "unreachable", f"{type(error).__name__}: {error}"[:300])
        status = response.status_code
        if 200 <= status < 300:
            return Outcome("sent", f"http_{status}")
        if status == 410:
            return Outcome("gone", "http_410", "the endpoint asked to be disabled")
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return Outcome("retry", f"http_{status}", response.text[:200], retry_after=retry_after)

    async def close(self) -> None:
        await self.client.aclose()


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (now if now is not None else time.time()))


# -- SMS -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sms:
    to: str
    body: str
    delivery_id: str


class SmsProvider(Protocol):
    async def send(self, sms: Sms) -> Outcome: ...

    async def close(self) -> None: ...


class CaptureSms:
    """Development and tests: keeps messages in memory (never in a log or a database), readable over the API."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.messages: list[dict[str, str]] = []

    async def send(self, sms: Sms) -> Outcome:
        self.messages.append({"to": sms.to, "body": sms.body, "delivery_id": sms.delivery_id})
        del self.messages[: -self.limit]
        return Outcome("sent", "captured", provider_id=f"capture-{len(self.messages)}")

    async def close(self) -> None:
        return None


class DisabledSms:
    async def send(self, sms: Sms) -> Outcome:
        return Outcome("failed", "sms_disabled", "no SMS provider is configured")

    async def close(self) -> None:
        return None


class TwilioCompatibleSms:
    """Twilio's Messages API (`POST /2010-04-01/Accounts/{sid}/Messages.json`), also spoken by compatible gateways."""

    # Twilio's "recipient unsubscribed" (the handset sent STOP to the carrier).
    OPTED_OUT = 21610

    def __init__(self, *, base_url: str, account_sid: str, auth_token: str, sender: str, timeout: float) -> None:
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.sender = sender
        self.client = httpx.AsyncClient(timeout=timeout, auth=(account_sid, auth_token), follow_redirects=False)

    async def send(self, sms: Sms) -> Outcome:
        try:
            response = await self.client.post(self.url, data={"To": sms.to, "From": self.sender, "Body": sms.body})
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            # Nothing left this machine: safe to try again.
            return Outcome("retry", "unreachable", type(error).__name__)
        except httpx.HTTPError as error:
            # The request may have reached the provider and been sent: do not text the person twice.
            return Outcome("maybe_sent", "ambiguous", f"{type(error).__name__}: {error}"[:300])
        status = response.status_code
        body = _json(response)
        if 200 <= status < 300:
            return Outcome("sent", f"http_{status}", provider_id=str(body.get("sid") or ""))
        if body.get("code") == self.OPTED_OUT:
            return Outcome("suppressed", "sms_opted_out", str(body.get("message", ""))[:200])
        if status == 429 or status >= 500:
            return Outcome(
                "retry", f"http_{status}", retry_after=parse_retry_after(response.headers.get("retry-after"))
            )
        return Outcome("failed", f"http_{status}", str(body.get("message", response.text))[:300])

    async def close(self) -> None:
        await self.client.aclose()


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        value = response.json()
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
