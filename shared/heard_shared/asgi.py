"""Plain ASGI middleware that protects a service from oversized requests before any parsing happens.

Plain ASGI rather than Starlette's `BaseHTTPMiddleware`: it never buffers the body, it sees each
chunk as it arrives, and it can refuse a request from its `Content-Length` without reading a byte.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heard_shared.http import error_body

# (path, status, code, message) -> (body, content type). Lets a service answer in another error
# format on some paths (intake's Open311 surface answers in the GeoReport v2 error format).
ErrorRenderer = Callable[[str, int, str, str], tuple[bytes, str]]


def json_error(_: str, status: int, code: str, message: str) -> tuple[bytes, str]:
    return json.dumps(error_body(code, message)).encode(), "application/json"


async def send_error(
    send: Send,
    render: ErrorRenderer,
    *,
    path: str,
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[str, str]] = (),
) -> None:
    body, content_type = render(path, status, code, message)
    raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.lower().encode(), value.encode()) for name, value in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class RequestTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit.

    An `HTTPException` on purpose: FastAPI re-raises those from body parsing (any other error
    there becomes a generic 400), so the app's own error handlers answer with a 413.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is larger than {limit} bytes.")
        self.limit = limit


class BodySizeLimit:
    """Refuses request bodies over a limit with a 413 JSON error; `overrides` are (path prefix, limit)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        overrides: Sequence[tuple[str, int]] = (),
        render: ErrorRenderer = json_error,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Longest prefix first, so a specific override beats a general one.
        self.overrides = sorted(overrides, key=lambda item: len(item[0]), reverse=True)
        self.render = render

    def limit_for(self, path: str) -> int:
        return next((limit for prefix, limit in self.overrides if path.startswith(prefix)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.limit_for(path)
        declared = _content_length(scope)
        if declared == -1:
            await send_error(
                send, self.render, path=path, status=400, code="bad_request", message="Invalid Content-Length header."
            )
            return
        if declared is not None and declared > limit:
            await send_error(
                send,
                self.render,
                path=path,
                status=413,
                code="payload_too_large",
                message=f"The request body is larger than {limit} bytes.",
            )
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            # Chunked uploads have no Content-Length: count what actually arrives.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestTooLarge as too_large:
            # Reached here only if the app let the error escape its own handlers.
            if not response_started:
                await send_error(
                    send, self.render, path=path, status=413, code="payload_too_large", message=str(too_large.detail)
                )


def _content_length(scope: Scope) -> int | None:
    """The declared length, None when absent, -1 when unparseable."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return -1
            return length if length >= 0 else -1
    return None


class InFlightLimit:
    """Answers 503 with `Retry-After` once `max_in_flight` requests are already being served.

    An overloaded process that keeps accepting work only makes every caller wait longer (and gives up
    on them one by one); refusing the excess at once keeps the admitted requests fast and tells callers
    when to come back. The operations endpoints are never refused, so probes and scrapes still see the
    process. (uvicorn's own `limit_concurrency` answers in plain text and counts probes too.)
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        retry_after_seconds: int = 1,
        exempt: Sequence[str] = ("/healthz", "/readyz", "/metrics"),
        render: ErrorRenderer = json_error,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after = str(retry_after_seconds)
        self.exempt = frozenset(exempt)
        self.render = render
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await send_error(
                send,
                self.render,
                path=scope["path"],
                status=503,
                code="overloaded",
                message="Too many requests are being served right now; retry shortly.",
                headers=[("Retry-After", self.retry_after)],
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class RequestMetrics:
    """Time from a request's arrival to its response's end, by route template (never the address: it holds
    tracking codes), method and status: `heard_http_request_duration_seconds`. Added last, it is outermost and also
    times what other middleware answers itself (a 503 from `InFlightLimit`, a 429), under route "unmatched"."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry) -> None:
        self.app = app
        self.duration = Histogram(
            "heard_http_request_duration_seconds",
            "HTTP requests served, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = "500"

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.duration.labels(route, scope["method"], status).observe(time.perf_counter() - started)
