"""Per-client token buckets for intake's public endpoints.

Anyone can submit feedback or look up a tracking code without an account, so those endpoints are
limited per client address: a burst is allowed at once, then a steady rate. Staff endpoints are
authenticated and exempt, as is Open311 POST (it needs a city system's api_key, and one 311
system submits for many residents from a single address).

Buckets live in this process: with several replicas a client gets each replica's allowance,
which is fine for abuse protection; an ingress limit in front covers the rest.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from heard_shared.asgi import ErrorRenderer, json_error, send_error

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """`burst` requests at once, refilled at `per_second`; at most `max_clients` buckets are kept."""

    def __init__(
        self,
        *,
        burst: int,
        per_second: float,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = float(burst)
        self.per_second = per_second
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str) -> float:
        """Takes one token; returns 0.0 if allowed, otherwise the seconds until a token is available."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=self.burst, updated=now)
            self._buckets[key] = bucket
            # Memory stays bounded under a flood of addresses. The least recently seen client is
            # forgotten, which only ever gives it a fresh allowance, never a wrong refusal.
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.per_second

    def __len__(self) -> int:
        return len(self._buckets)


def client_key(scope: Scope) -> str:
    """The client's address; IPv6 clients are grouped by /64, since one host can use a whole /64."""
    client = scope.get("client")
    host = client[0] if client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# (method, path) -> the limiter to charge, or None when the request is not limited.
LimitPolicy = Callable[[str, str], TokenBucketLimiter | None]


class RateLimitMiddleware:
    """Answers 429 with `Retry-After` when a client's bucket is empty; nothing reaches the app."""

    def __init__(self, app: ASGIApp, *, policy: LimitPolicy, render: ErrorRenderer = json_error) -> None:
        self.app = app
        self.policy = policy
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limiter = self.policy(scope["method"], path)
        wait = limiter.take(client_key(scope)) if limiter is not None else 0.0
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            await send_error(
                send,
                self.render,
                path=path,
                status=429,
                code="rate_limited",
                message=f"Too many requests from your address; try again in {retry_after} s.",
                headers=[("Retry-After", str(retry_after))],
            )
            return
        await self.app(scope, receive, send)


# /internal/ is service-to-service behind a scoped token (notify asking for a contact at send time).
EXEMPT_PREFIXES = ("/v1/staff/", "/internal/", "/healthz", "/readyz", "/metrics")
# Authenticated by a city system's api_key; limiting per address would throttle a whole 311 system.
EXEMPT_EXACT = frozenset({("POST", "/open311/v2/requests.json")})


def public_endpoint_policy(*, reads: TokenBucketLimiter, writes: TokenBucketLimiter) -> LimitPolicy:
    def policy(method: str, path: str) -> TokenBucketLimiter | None:
        if path.startswith(EXEMPT_PREFIXES) or (method, path) in EXEMPT_EXACT:
            return None
        return writes if method in WRITE_METHODS else reads

    return policy
