"""The guards in front of intake's public API: body size, per-client rate and in-flight limits, and 503s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from fastapi import FastAPI, Request
from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError
from starlette.types import Message, Scope

from heard_intake import open311
from heard_intake.ratelimit import (
    RateLimitMiddleware,
    TokenBucketLimiter,
    client_key,
    public_endpoint_policy,
)
from heard_shared.asgi import BodySizeLimit, InFlightLimit
from heard_shared.http import install_error_handlers


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_steady_rate() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(burst=3, per_second=0.5, clock=clock)
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(2.0)  # one token every 2 s
    assert limiter.take("b") == 0.0, "another client has its own bucket"
    clock.now += 2.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0


def test_bucket_memory_is_bounded_by_forgetting_the_least_recent_client() -> None:
    limiter = TokenBucketLimiter(burst=1, per_second=0.001, max_clients=100, clock=FakeClock())
    for n in range(250):
        limiter.take(f"10.0.0.{n}")
    assert len(limiter) == 100
    assert limiter.take("10.0.0.249") > 0, "recent clients are still limited"


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("testclient", "testclient"),
    ],
)
def test_client_key_groups_ipv6_by_64(host: str, key: str) -> None:
    assert client_key({"type": "http", "client": (host, 1234)}) == key


def test_policy_exempts_staff_ops_and_city_system_posts() -> None:
    reads = TokenBucketLimiter(burst=1, per_second=1)
    writes = TokenBucketLimiter(burst=1, per_second=1)
    policy = public_endpoint_policy(reads=reads, writes=writes)
    assert policy("POST", "/v1/feedback") is writes
    assert policy("GET", "/v1/feedback/ABCDE") is reads
    assert policy("GET", "/open311/v2/requests.json") is reads
    assert policy("GET", "/v1/sessions/x/summary") is reads
    for method, path in [
        ("POST", "/v1/staff/feedback/x/answer"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
        ("POST", "/open311/v2/requests.json"),
    ]:
        assert policy(method, path) is None, path


def guarded_app(*, max_bytes: int = 100, burst: int = 2) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/feedback")
    async def submit(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.post("/v1/staff/sessions/s/items")
    async def upload(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.get("/open311/v2/services.json")
    async def services() -> list[str]:
        return []

    app.add_middleware(
        BodySizeLimit, max_bytes=max_bytes, overrides=[("/v1/staff/sessions", 1000)], render=open311.render_error
    )
    limiter = TokenBucketLimiter(burst=burst, per_second=0.01)
    app.add_middleware(
        RateLimitMiddleware,
        policy=public_endpoint_policy(reads=limiter, writes=limiter),
        render=open311.render_error,
    )
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.1", 5000)), base_url="http://t")


async def test_declared_oversize_body_is_refused_with_413_json() -> None:
    async with client(guarded_app()) as http:
        response = await http.post("/v1/feedback", content=b"x" * 101)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_streamed_oversize_body_without_length_is_refused_with_413_json() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 30

    async with client(guarded_app()) as http:
        response = await http.post("/v1/feedback", content=chunks())
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
        fine = await http.post("/v1/feedback", content=b"z" * 100)
    assert fine.status_code == 200
    assert fine.json() == {"received": 100}


async def test_session_uploads_have_their_own_larger_limit() -> None:
    async with client(guarded_app()) as http:
        accepted = await http.post("/v1/staff/sessions/s/items", content=b"a" * 900)
        refused = await http.post("/v1/staff/sessions/s/items", content=b"a" * 1001)
    assert accepted.status_code == 200
    assert refused.status_code == 413


async def test_rate_limit_answers_429_with_retry_after_in_each_surface_format() -> None:
    async with client(guarded_app(burst=2)) as http:
        statuses = [(await http.post("/v1/feedback", content=b"{}")).status_code for _ in range(3)]
        limited = await http.post("/v1/feedback", content=b"{}")
        open311_limited = await http.get("/open311/v2/services.json")
        staff = await http.post("/v1/staff/sessions/s/items", content=b"ok")
    assert statuses == [200, 200, 429]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    assert open311_limited.status_code == 429
    assert open311_limited.json() == [{"code": 429, "description": open311_limited.json()[0]["description"]}]
    assert staff.status_code == 200, "staff endpoints are not limited per address"


async def test_invalid_content_length_is_a_400_not_a_crash() -> None:
    app = guarded_app()
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/feedback",
        "headers": [(b"content-length", b"abc")],
        "client": ("198.51.100.2", 1),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("t", 80),
        "http_version": "1.1",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400


async def test_requests_past_the_in_flight_limit_get_503_with_retry_after_and_probes_still_pass() -> None:
    release = asyncio.Event()
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/feedback")
    async def slow() -> dict[str, str]:
        await release.wait()
        return {"status": "stored"}

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    app.add_middleware(InFlightLimit, max_in_flight=2, render=open311.render_error)
    async with client(app) as http:
        held = [asyncio.create_task(http.post("/v1/feedback")) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await http.post("/v1/feedback")
        probe = await http.get("/readyz")
        release.set()
        admitted = await asyncio.gather(*held)
        after = await http.post("/v1/feedback")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "overloaded"
    assert probe.status_code == 200
    assert [r.status_code for r in admitted] == [200, 200]
    assert after.status_code == 200, "capacity comes back as requests finish"


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (AutoReconnect("connection reset"), 503),
        (ServerSelectionTimeoutError("no server"), 503),
        (OperationFailure("database busy", code=None), 503),
        (KafkaConnectionError("broker down"), 503),
        (OperationFailure("unknown operator: $nope", code=2), 500),
    ],
)
async def test_a_busy_or_unreachable_dependency_is_a_503_with_retry_after(failure: Exception, status: int) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/feedback")
    async def failing() -> None:
        raise failure

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as http:
        response = await http.post("/v1/feedback")
    assert response.status_code == status
    if status == 503:
        assert response.json()["error"]["code"] == "temporarily_unavailable"
        assert response.headers["retry-after"] == "1"
    else:
        assert response.json()["error"]["code"] == "internal_error"
    assert "Traceback" not in response.text
