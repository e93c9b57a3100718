"""The other services' HTTP APIs, as the pages use them. Web owns no feedback: every read and every change goes
through here, with the signed-in person's own bearer token, so intake decides what each person may see and do.

Errors keep the backend's stable code, so a page can say something a person understands; a backend that is
down, slow or overloaded becomes `BackendUnavailable` (the page says "try again in a moment", nothing is lost).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
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


class Backend:
    """One service's API over the shared pooled client."""

    def __init__(self, name: str, base_url: str, client: httpx.AsyncClient, latency: Histogram) -> None:
        self.name = name
        self.base_url = base_url
        self.client = client
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
    ) -> Json:
        headers: dict[str, str] = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if client_ip:
            # The resident's address, so intake's per-client rate limits apply to them and not to this service
            # (intake's server trusts the header only from its configured proxies: FORWARDED_ALLOW_IPS).
            headers["x-forwarded-for"] = client_ip
        if content_type:
            headers["content-type"] = content_type
        query = {key: value for key, value in (params or {}).items() if value not in (None, "")}
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self.client.request(
                method, f"{self.base_url}{path}", headers=headers, json=json, params=query, content=content
            )
            outcome = str(response.status_code)
        except httpx.HTTPError as error:
            raise BackendUnavailable(self.name, 503, "unreachable", f"{type(error).__name__}: {error}") from None
        finally:
            self.latency.labels(self.name, outcome).observe(time.perf_counter() - started)
        if response.status_code < 400:
            body = response.json() if response.content else {}
            return body if isinstance(body, dict) else {"items": body}
        raise _error(self.name, response)


def _error(service: str, response: httpx.Response) -> BackendError:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = str(error.get("code") or f"http_{response.status_code}")
    message = str(error.get("message") or response.reason_phrase)
    retry_after = response.headers.get("retry-after")
    kind = BackendUnavailable if response.status_code >= 500 else BackendError
    return kind(
        service,
        response.status_code,
        code,
        message,
        details=error.get("details"),
        retry_after=int(retry_after) if retry_after and retry_after.isdigit() else None,
    )


# Below the keep-alive of the services' HTTP servers (heard_shared.runtime.KEEP_ALIVE_SECONDS), so a pooled
# connection is never reused just as the server closes it.
KEEPALIVE_SECONDS = 4.0


def pooled_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """httpx's API over aiohttp's connection pool.

    httpcore's own pool scans every pooled connection twice per request, asking each idle one's socket whether
    it is readable (encode/httpcore#924, #1035, not in 1.0.9): in a py-spy profile of the form post that was a
    fifth of web's CPU with 16 connections to intake. aiohttp keeps its idle connections in a queue per host and
    parses HTTP in C. No cookie jar: web calls the APIs on behalf of many people, and nothing may carry over.
    """

    def session() -> aiohttp.ClientSession:  # made on the first call, inside the running event loop
        connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=KEEPALIVE_SECONDS)
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return AiohttpTransport(client=session)


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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Web calls the APIs on behalf of many people: a cookie one answer sets must never ride along on another call.
        no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        self.client = httpx.AsyncClient(
            timeout=timeout, transport=transport or pooled_transport(max_connections), cookies=no_cookies
        )
        latency = Histogram(
            "heard_web_backend_request_duration_seconds",
            "Calls from the pages to the other services' APIs, by service and HTTP status ('error' if none).",
            ["service", "status"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.intake = Backend("intake", intake_url, self.client, latency)
        self.notify = Backend("notify", notify_url, self.client, latency)
        self.routing = Backend("routing", routing_url, self.client, latency)
        self._unit_names: dict[str, str] = {}
        self._unit_names_fetched = 0.0

    async def close(self) -> None:
        await self.client.aclose()

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
