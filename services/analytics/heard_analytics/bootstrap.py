from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from prometheus_client import CollectorRegistry
from pymongo.asynchronous.database import AsyncDatabase

from heard_analytics.areas import Areas
from heard_analytics.config import AnalyticsSettings
from heard_analytics.privacy import PrivacyRules
from heard_analytics.service import AnalyticsService
from heard_analytics.views import build_router
from heard_shared import events as ev
from heard_shared.asgi import RequestMetrics
from heard_shared.http import install_error_handlers, ops_router
from heard_shared.kafka import EventConsumer
from heard_shared.logs import configure_logging
from heard_shared.mongo import Document
from heard_shared.runtime import build_platform

CONSUMED = (
    ev.SUBMITTED,
    ev.ROUTED,
    ev.ACKNOWLEDGED,
    ev.ANSWERED,
    ev.ESCALATED,
    ev.CLOSED,
    ev.REOPENED,
    ev.REFERRED,
    ev.TRIAGED,
)


def build_service(
    settings: AnalyticsSettings, database: AsyncDatabase[Document], registry: CollectorRegistry
) -> AnalyticsService:
    """The service on a database (the live one, or a fresh one for `rebuild`)."""
    return AnalyticsService(
        items=database["items"],
        cells=database["cells"],
        open_items=database["open_items"],
        rounds=database["rounds"],
        areas=Areas.load(settings.population_file, settings.areas_file),
        rules=PrivacyRules(settings.suppression_threshold, settings.min_items_for_statistics),
        registry=registry,
    )


def subscribe(consumer: EventConsumer, service: AnalyticsService) -> None:
    """Every topic analytics reads, into its read model.

    Self-deduplicating: the read model folds an event it already holds into the same facts and changes nothing
    (facts.py), so the inbox's lookup and its write per event, most of what remembering costs, are left out.
    """
    for spec in CONSUMED:
        consumer.subscribe(spec.topic, (spec,), service.on_event, self_deduplicating=True)


def create_app(settings: AnalyticsSettings) -> FastAPI:
    configure_logging(service="analytics", level=settings.log_level, json=settings.log_json)
    platform = build_platform("analytics", settings)
    service = build_service(settings, platform.mongo.db, platform.metrics.registry)
    platform.startup_hooks.append(service.start)
    platform.background.append(service.run_publisher)
    subscribe(platform.consumer, service)

    app = FastAPI(title="Heard analytics", version="2.0.0", lifespan=platform.lifespan)
    install_error_handlers(app)
    app.include_router(build_router(service, public_id_key=settings.public_id_key.encode()))

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/transparency")

    app.include_router(ops_router(platform.readiness_checks(), platform.metrics.registry))
    app.add_middleware(RequestMetrics, registry=platform.metrics.registry)
    app.state.platform = platform
    app.state.service = service
    return app
