"""Web's client for the other services' APIs on real sockets (aiohttp's pool, as web runs it): answers and
refusals arrive with their codes, nothing carries over between calls, and a closed port, a silent server or a
dropped keep-alive connection become `BackendUnavailable` or a fresh connection, never an unhandled error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from heard_web.backends import BackendError, Backends, BackendUnavailable

pytestmark = pytest.mark.integration
Answer = Callable[[dict[str, str], bytes], Awaitable[tuple[int, dict[str, str], bytes] | None]]
Start = Callable[[Answer], Awaitable["Server"]]


@dataclass
class Server:
    """A small HTTP/1.1 server on a free loopback port; `answer` decides each response (None: stay silent)."""

    answer: Answer
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    connections: int = 0
    close_after_each: bool = False
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append((headers, body))
                answered = await self.answer(headers, body)
                if answered is None:
                    await asyncio.sleep(3600)
                    return
                status, extra, payload = answered
                head_lines = [f"HTTP/1.1 {status} X", f"content-length: {len(payload)}"]
                head_lines += [f"{name}: {value}" for name, value in extra.items()]
                writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode() + payload)
                await writer.drain()
                if self.close_after_each:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[asyncio.Server] = []

    async def run(answer: Answer) -> Server:
        server = Server(answer)
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        servers.append(listening)
        server.port = listening.sockets[0].getsockname()[1]
        return server

    yield run
    for listening in servers:
        listening.close()


def backends(port: int, *, timeout: float = 5.0) -> Backends:
    url = f"http://127.0.0.1:{port}"
    return Backends(
        intake_url=url,
        notify_url=url,
        routing_url=url,
        timeout=timeout,
        max_connections=10,
        registry=CollectorRegistry(),
    )


def json_answer(status: int, document: object, **headers: str) -> Answer:
    async def answer(_: dict[str, str], __: bytes) -> tuple[int, dict[str, str], bytes]:
        return status, {"content-type": "application/json", **headers}, json.dumps(document).encode()

    return answer


async def test_an_answer_arrives_with_the_request_as_sent_and_no_cookie_carries_over(start: Start) -> None:
    server = await start(json_answer(202, {"tracking_code": "7K3QD-M2XPA-9RT4B-CHW8N"}, **{"set-cookie": "k=v"}))
    client = backends(server.port)
    try:
        first = await client.intake.call("POST", "/v1/feedback", json={"text": "é"}, client_ip="203.0.113.9")
        second = await client.intake.call("GET", "/v1/sessions", params={"page": 2, "empty": ""})
    finally:
        await client.close()
    assert first == {"tracking_code": "7K3QD-M2XPA-9RT4B-CHW8N"} and second == first
    (sent, body), (again, _) = server.requests
    assert json.loads(body) == {"text": "é"} and sent["x-forwarded-for"] == "203.0.113.9"
    assert "cookie" not in again, "one person's cookie must never reach a call made for another"
    assert server.connections == 1, "the connection is kept and reused"


async def test_a_refusal_keeps_its_status_code_and_retry_after(start: Start) -> None:
    refusal = {"error": {"code": "already_closed", "message": "closed"}}
    server = await start(json_answer(409, refusal, **{"retry-after": "7"}))
    client = backends(server.port)
    try:
        with pytest.raises(BackendError) as raised:
            await client.intake.call("POST", "/v1/feedback/x/withdraw")
    finally:
        await client.close()
    assert not isinstance(raised.value, BackendUnavailable)
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (409, "already_closed", 7)


async def test_a_closed_port_and_a_silent_server_are_unavailable(start: Start) -> None:
    async def silent(_: dict[str, str], __: bytes) -> None:
        return None

    server = await start(silent)
    probe = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    closed_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    for port, timeout in ((closed_port, 5.0), (server.port, 0.5)):
        client = backends(port, timeout=timeout)
        try:
            with pytest.raises(BackendUnavailable) as raised:
                await client.intake.call("GET", "/v1/sessions")
        finally:
            await client.close()
        assert raised.value.status == 503 and raised.value.code == "unreachable"


async def test_a_connection_the_server_closed_is_replaced(start: Start) -> None:
    server = await start(json_answer(200, {"ok": True}))
    server.close_after_each = True
    client = backends(server.port)
    try:
        for _ in range(3):
            assert await client.intake.call("GET", "/v1/sessions") == {"ok": True}
            await asyncio.sleep(0.05)
    finally:
        await client.close()
    assert server.connections == 3
