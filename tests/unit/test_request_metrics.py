"""Every service times its requests by route template, so a tracking code never becomes a label."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from heard_shared.asgi import InFlightLimit, RequestMetrics


def served(registry: CollectorRegistry, route: str, status: str) -> float:
    labels = {"route": route, "method": "GET", "status": status}
    return registry.get_sample_value("heard_http_request_duration_seconds_count", labels) or 0.0


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_requests_are_timed_by_route_template_and_refusals_as_unmatched() -> None:
    app = FastAPI()

    @app.get("/v1/feedback/{tracking_code}")
    async def track(tracking_code: str) -> dict[str, str]:
        return {"code": tracking_code}

    registry = CollectorRegistry()
    async with client(RequestMetrics(app, registry=registry)) as http:
        for code in ("7K3QD-ABCDE", "9XQ2P-FGHIJ"):
            assert (await http.get(f"/v1/feedback/{code}")).status_code == 200
        assert (await http.get("/nowhere")).status_code == 404
    assert served(registry, "/v1/feedback/{tracking_code}", "200") == 2
    assert served(registry, "unmatched", "404") == 1
    exposed = [sample.labels for metric in registry.collect() for sample in metric.samples]
    assert not any("7K3QD" in str(labels) for labels in exposed), "no tracking code in any label"

    flooded = CollectorRegistry()  # outermost, it also times what an inner middleware refuses itself
    async with client(RequestMetrics(InFlightLimit(app, max_in_flight=0), registry=flooded)) as http:
        assert (await http.get("/v1/feedback/7K3QD-ABCDE")).status_code == 503
    assert served(flooded, "unmatched", "503") == 1
