"""Wires routing together: files → policy, MongoDB → cases, Kafka → handlers, scheduler."""

from __future__ import annotations

from fastapi import FastAPI

from heard_routing.config import RoutingSettings
from heard_routing.metrics import EscalationMetrics
from heard_routing.policy import load_all
from heard_routing.service import RoutingService
from heard_routing.views import build_router
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.asgi import RequestMetrics
from heard_shared.http import install_error_handlers, ops_router
from heard_shared.logs import configure_logging
from heard_shared.runtime import build_platform


def create_app(settings: RoutingSettings) -> FastAPI:
    configure_logging(service="routing", level=settings.log_level, json=settings.log_json)
    policy, org, rules, areas = load_all(
        sla=settings.sla_policy_file, organisation=settings.organisation_file, rules=settings.rules_file
    )
    platform = build_platform("routing", settings)
    cases = platform.mongo.db["cases"]
    service = RoutingService(
        cases=cases,
        outbox=platform.outbox,
        policy=policy,
        org=org,
        rules=rules,
        areas=areas,
        metrics=EscalationMetrics(platform.metrics.registry),
        source=settings.event_source,
        instance_id=platform.instance_id,
    )
    platform.startup_hooks.append(service.ensure_indexes)
    # Every lane of a fetched batch at once: the handlers' reads and writes are grouped into shared round trips
    # (see RoutingService), so a backlog costs a few round trips per batch instead of a few per 64 items.
    platform.consumer.concurrency = platform.consumer.max_batch
    # A submission is routed once: its case's `routed_at`, written with the routed event, says it was.
    platform.consumer.subscribe(topics.SUBMITTED, (ev.SUBMITTED,), service.on_submitted, self_deduplicating=True)
    platform.consumer.subscribe(topics.ACKNOWLEDGED, (ev.ACKNOWLEDGED,), service.on_acknowledged)
    platform.consumer.subscribe(topics.ANSWERED, (ev.ANSWERED,), service.on_answered)
    platform.consumer.subscribe(topics.CLOSED, (ev.CLOSED,), service.on_closed)
    platform.consumer.subscribe(topics.REOPENED, (ev.REOPENED,), service.on_reopened)
    platform.consumer.subscribe(topics.REFERRED, (ev.REFERRED,), service.on_referred)
    platform.consumer.subscribe(topics.TRIAGED, (ev.TRIAGED,), service.on_triaged)

    async def relay() -> None:
        await platform.outbox.run([cases])

    platform.background += [relay, service.run_gauges]
    if settings.scheduler_enabled:
        platform.background.append(service.run_scheduler)

    app = FastAPI(title="Heard routing", version="1.0.0", lifespan=platform.lifespan)
    install_error_handlers(app)
    app.include_router(build_router(service))
    app.include_router(ops_router(platform.readiness_checks(), platform.metrics.registry))
    app.add_middleware(RequestMetrics, registry=platform.metrics.registry)
    app.state.platform = platform
    return app
