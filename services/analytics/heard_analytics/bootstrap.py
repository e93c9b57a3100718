from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from heard_analytics.config import AnalyticsSettings
from heard_analytics.service import AnalyticsService
from heard_shared import events as ev
from heard_shared.http import install_error_handlers, ops_router
from heard_shared.logs import configure_logging
from heard_shared.runtime import build_platform

CONSUMED = (ev.SUBMITTED, ev.ROUTED, ev.ACKNOWLEDGED, ev.ANSWERED, ev.ESCALATED, ev.CLOSED)


def create_app(settings: AnalyticsSettings) -> FastAPI:
    configure_logging(service="analytics", level=settings.log_level, json=settings.log_json)
    platform = build_platform("analytics", settings)
    db = platform.mongo.db
    service = AnalyticsService(events=db["events"], items=db["items"], registry=platform.metrics.registry)
    platform.startup_hooks.append(service.ensure_indexes)
    for spec in CONSUMED:
        platform.consumer.subscribe(spec.topic, (spec,), service.on_event)

    app = FastAPI(title="Heard analytics", version="1.0.0", lifespan=platform.lifespan)
    install_error_handlers(app)

    @app.get("/v1/stats", tags=["analytics"], summary="Volumes, severity, answers and escalations")
    async def stats() -> dict[str, Any]:
        return await service.stats()

    app.include_router(ops_router(platform.readiness_checks(), platform.metrics.registry))
    app.state.platform = platform
    return app
