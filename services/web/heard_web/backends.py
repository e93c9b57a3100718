"""The other services' HTTP APIs, as the pages use them. Web owns no feedback: every read and every change goes
through here, with the signed-in person's own bearer token, so intake decides what each person may see and do.

Errors keep the backend's stable code, so a page can say something a person understands; a backend that is
down, slow or overloaded becomes `BackendUnavailable` (the page says "try again in a moment", nothing is lost).
"""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from prometheus_client import CollectorRegistry, Histogram

Json = dict[str, Any]


class BackendError(Exception):
    """A backend answered with an error: HTTP `status`, its stable `code` and message, and any details."""

    def __init__(
        self,
        service: str,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{service}: {status} {code}: {message}")
        self.service = service
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after


class BackendUnavailable(BackendError):
    """Unreachable, timed out or answering 5xx: the person may simply try again."""


@dataclass(frozen=True)
class Reply:
    """A backend's answer as it arrived. `headers` looks names up in any case."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes


class TransportError(Exception):
    """The call did not get an answer: refused, reset, timed out."""


# One HTTP exchange: (method, URL, headers, body) -> the reply, or TransportError. Unit tests pass one in.
Transport = Callable[[str, str, Mapping[str, str], bytes | None], Awaitable[Reply]]


class Backend:
    """One service's API over the shared transport."""

    def __init__(self, name: str, base_url: str, transport: Transport, latency: Histogram) -> None:
        self.name = name
        self.base_url = base_url
        self.transport = transport
        self.latency = latency

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        client_ip: str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        content_type: str | None = None,
        idempotency_key: str | None = None,
    ) -> Json:
        headers: dict[str, str] = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        if client_ip:
            # The resident's address, so intake's per-client rate limits apply to them and not to this service
            # (intake's server trusts the header only from its configured proxies: FORWARDED_ALLOW_IPS).
            headers["x-forwarded-for"] = client_ip
        body = content
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            headers["content-type"] = "application/json"
        if content_type:
            headers["content-type"] = content_type
        url = f"{self.base_url}{path}"
        query = {key: value for key, value in (params or {}).items() if value not in (None, "")}
        if query:
            url = f"{url}?{urlencode(query, doseq=True)}"
        started = time.perf_counter()
        outcome = "error"
        try:
            reply = await self.transport(method, url, headers, body)
            outcome = str(reply.status)
        except TransportError as error:
            raise BackendUnavailable(self.name, 503, "unreachable", str(error)) from None
        finally:
            self.latency.labels(self.name, outcome).observe(time.perf_counter() - started)
        if reply.status < 400:
            answer = jsonlib.loads(reply.body) if reply.body else {}
            return answer if isinstance(answer, dict) else {"items": answer}
        raise _error(self.name, reply)


def _error(service: str, reply: Reply) -> BackendError:
    try:
        answer = jsonlib.loads(reply.body)
        error = (answer.get("error") if isinstance(answer, dict) else None) or {}
    except ValueError:
        error = {}
    code = str(error.get("code") or f"http_{reply.status}")
    message = str(error.get("message") or reply.reason)
    retry_after = reply.headers.get("retry-after")
    kind = BackendUnavailable if reply.status >= 500 else BackendError
    return kind(
        service,
        reply.status,
        code,
        message,
        details=error.get("details"),
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
    )


# Below the keep-alive of the services' HTTP servers (heard_shared.runtime.KEEP_ALIVE_SECONDS), so a pooled
# connection is never reused just as the server closes it.
KEEPALIVE_SECONDS = 4.0


class PooledTransport:
    """aiohttp's connection pool, called directly.

    aiohttp keeps idle connections in a queue per host and parses HTTP in C. (httpx over it, as before, spent a
    fifth of web's CPU on a form post in its own layers: building the request, reading the body in chunks, running
    every answer through http.cookiejar; and httpcore's own pool scans every pooled connection on each request,
    encode/httpcore#924.) No cookie jar: web calls the APIs on behalf of many people, and nothing may carry over.
    """

    def __init__(self, *, timeout: float, max_connections: int) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:  # made on the first call, inside the running event loop
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), timeout=self.timeout
            )
        return self._session

    async def __call__(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Reply:
        try:
            async with self._open().request(method, url, headers=headers, data=body, allow_redirects=False) as answer:
                return Reply(answer.status, answer.reason or "", answer.headers, await answer.read())
        except (TimeoutError, aiohttp.ClientError) as error:
            raise TransportError(f"{type(error).__name__}: {error}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Backends:
    """Intake (feedback, sessions, sign-in, audit), notify (deliveries) and routing (unit names)."""

    def __init__(
        self,
        *,
        intake_url: str,
        notify_url: str,
        routing_url: str,
        timeout: float,
        max_connections: int,
        registry: CollectorRegistry,
        transport: Transport | None = None,
    ) -> None:
        self._pool = PooledTransport(timeout=timeout, max_connections=max_connections)  # opens on its first call
        sends = transport or self._pool
        latency = Histogram(
            "heard_web_backend_request_duration_seconds",
            "Calls from the pages to the other services' APIs, by service and HTTP status ('error' if none).",
            ["service", "status"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.intake = Backend("intake", intake_url, sends, latency)
        self.notify = Backend("notify", notify_url, sends, latency)
        self.routing = Backend("routing", routing_url, sends, latency)
        self._unit_names: dict[str, str] = {}
        self._unit_names_fetched = 0.0

    async def close(self) -> None:
        await self._pool.close()

    async def unit_names(self) -> dict[str, str]:
        """Unit id -> display name from routing's organisation, refreshed every five minutes.

        Only names for the pages; if routing cannot be asked, the ids are shown instead.
        """
        if time.monotonic() - self._unit_names_fetched > 300 or not self._unit_names:
            try:
                organisation = await self.routing.call("GET", "/v1/organisation")
            except BackendError:
                return self._unit_names
            names: dict[str, str] = {}
            for key in ("oversight_board", "professional_standards"):
                if isinstance(organisation.get(key), dict):
                    names[organisation[key]["id"]] = organisation[key]["name"]
            for key in ("commands", "supervisors", "units"):
                for unit in organisation.get(key) or []:
                    names[unit["id"]] = unit["name"]
            self._unit_names, self._unit_names_fetched = names, time.monotonic()
        return self._unit_names
