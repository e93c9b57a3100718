from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query

from heard_notify.config import NotifySettings
from heard_notify.service import NotifyService
from heard_shared import events as ev
from heard_shared.http import install_error_handlers, ops_router
from heard_shared.logs import configure_logging
from heard_shared.runtime import build_platform

CONSUMED = (ev.ROUTED, ev.ACKNOWLEDGED, ev.ANSWERED, ev.ESCALATED, ev.CLOSED)


def create_app(settings: NotifySettings) -> FastAPI:
    configure_logging(service="notify", level=settings.log_level, json=settings.log_json)
    platform = build_platform("notify", settings)
    service = NotifyService(deliveries=platform.mongo.db["deliveries"], registry=platform.metrics.registry)
    platform.startup_hooks.append(service.ensure_indexes)
    for spec in CONSUMED:
        platform.consumer.subscribe(spec.topic, (spec,), service.on_event)

    app = FastAPI(title="Heard notify", version="1.0.0", lifespan=platform.lifespan)
    install_error_handlers(app)

    @app.get("/v1/deliveries", tags=["notify"], summary="Deliveries recorded, oldest first")
    async def deliveries(
        feedback_id: str | None = None,
        recipient: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        return {"items": await service.list(feedback_id=feedback_id, recipient=recipient, limit=limit)}

    app.include_router(ops_router(platform.readiness_checks(), platform.metrics.registry))
    app.state.platform = platform
    return app
