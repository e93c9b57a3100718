"""Wires intake together: the only place that knows which concrete pieces are used."""

from __future__ import annotations

from fastapi import FastAPI

from heard_intake.auth import TokenStore
from heard_intake.config import IntakeSettings
from heard_intake.service import IntakeService
from heard_intake.views import build_router
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.http import install_error_handlers, ops_router
from heard_shared.logs import configure_logging
from heard_shared.runtime import build_platform


def create_app(settings: IntakeSettings) -> FastAPI:
    configure_logging(service="intake", level=settings.log_level, json=settings.log_json)
    platform = build_platform("intake", settings)
    db = platform.mongo.db
    service = IntakeService(feedback=db["feedback"], outbox=platform.outbox, source=settings.event_source)
    tokens = TokenStore(db["tokens"])

    async def prepare() -> None:
        await service.ensure_indexes()
        if settings.bootstrap_admin_token:
            await tokens.issue(name="bootstrap-admin", roles=["admin"], token=settings.bootstrap_admin_token)

    platform.startup_hooks.append(prepare)
    platform.consumer.subscribe(topics.INBOUND, (ev.INBOUND,), service.record_inbound)
    platform.consumer.subscribe(topics.ROUTED, (ev.ROUTED,), service.record_routing)
    platform.consumer.subscribe(topics.ESCALATED, (ev.ESCALATED,), service.record_escalation)

    async def relay() -> None:
        await platform.outbox.run([db["feedback"]])

    platform.background.append(relay)

    app = FastAPI(title="Heard intake", version="1.0.0", lifespan=platform.lifespan)
    install_error_handlers(app)
    app.include_router(build_router(service, tokens, public_base_url=settings.public_base_url))
    app.include_router(ops_router(platform.readiness_checks(), platform.metrics.registry))
    app.state.platform = platform
    return app
