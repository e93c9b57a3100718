"""Wires intake together: the only place that knows which concrete pieces are used."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from heard_intake import console, contact_disclosure, open311, ratelimit, sessions, signin
from heard_intake.auth import TokenStore
from heard_intake.city_systems import CitySystemRegistry, InboundFromCitySystems
from heard_intake.config import IntakeSettings
from heard_intake.ledger import AuditLedger
from heard_intake.metrics import TriageMetrics
from heard_intake.privacy import contact_cipher
from heard_intake.service import IntakeService
from heard_intake.views import build_router
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.asgi import BodySizeLimit, InFlightLimit, RequestMetrics
from heard_shared.http import install_error_handlers, ops_router
from heard_shared.logs import configure_logging
from heard_shared.runtime import Platform, build_platform


def create_app(settings: IntakeSettings) -> FastAPI:
    configure_logging(service="intake", level=settings.log_level, json=settings.log_json)
    platform = build_platform("intake", settings)
    db = platform.mongo.db
    service = IntakeService(
        feedback=db["feedback"],
        outbox=platform.outbox,
        source=settings.event_source,
        # Refuses to start without a contact key outside development, before anything is served.
        contact_cipher=contact_cipher(settings),
        audit=AuditLedger(db["audit"]),
        contact_retention=timedelta(days=settings.contact_retention_days),
        metrics=TriageMetrics(platform.metrics.registry),
    )
    tokens = TokenStore(db["tokens"])

    async def prepare() -> None:
        await service.ensure_indexes()
        if settings.bootstrap_admin_token:
            await tokens.issue(name="bootstrap-admin", roles=["admin"], token=settings.bootstrap_admin_token)

    platform.startup_hooks.append(prepare)
    # feedback.inbound is subscribed in _wire_city_interfaces: only registered city systems get through.
    platform.consumer.subscribe(topics.ROUTED, (ev.ROUTED,), service.record_routing)
    platform.consumer.subscribe(topics.ESCALATED, (ev.ESCALATED,), service.record_escalation)

    async def relays() -> None:
        await service.run_relays()

    async def contact_retention() -> None:
        await service.run_retention(interval_seconds=settings.retention_check_seconds)

    platform.background.extend([relays, contact_retention])

    app = FastAPI(title="Heard intake", version="1.0.0", lifespan=platform.lifespan)
    install_error_handlers(app)
    app.include_router(build_router(service, tokens, public_base_url=settings.public_base_url))
    _wire_staff_console(app, platform, tokens)
    platform.startup_hooks += contact_disclosure.install(app, service, tokens, public_base_url=settings.public_base_url)
    _wire_city_interfaces(app, platform, settings, service, tokens)
    app.include_router(ops_router(platform.readiness_checks(), platform.metrics.registry))
    app.state.platform = platform
    return app


def _wire_staff_console(app: FastAPI, platform: Platform, tokens: TokenStore) -> None:
    """What the web service's staff console and oversight view ask of intake besides the /v1 work API."""
    db = platform.mongo.db
    guard = signin.SignInGuard(tokens=tokens, failures=db["signin_failures"])
    app.include_router(signin.build_signin_router(guard))
    app.include_router(console.build_console_router(db["feedback"], tokens))

    async def prepare() -> None:
        await console.ensure_indexes(db["feedback"])

    platform.startup_hooks.append(prepare)


def _wire_city_interfaces(
    app: FastAPI, platform: Platform, settings: IntakeSettings, service: IntakeService, tokens: TokenStore
) -> None:
    """Open311, feedback sessions, inbound city-system events and the guards in front of the public API."""
    db = platform.mongo.db
    registry = CitySystemRegistry(db["city_systems"], settings.city_systems)
    platform.consumer.subscribe(topics.INBOUND, (ev.INBOUND,), InboundFromCitySystems(registry, service))
    session_service = sessions.SessionService(
        sessions=db["sessions"], feedback=db["feedback"], intake=service, max_items=settings.session_max_items
    )
    platform.startup_hooks.append(session_service.ensure_indexes)
    gateway = open311.Open311Gateway(
        service=service,
        feedback=db["feedback"],
        tokens=tokens,
        catalog=open311.load_catalog(settings.open311_services_file),
        agency_name=settings.open311_agency_name,
        public_base_url=settings.public_base_url,
        jurisdiction_id=settings.open311_jurisdiction_id,
        max_requests=settings.open311_max_requests,
        default_days=settings.open311_default_days,
    )
    app.include_router(sessions.build_sessions_router(session_service, tokens))
    app.include_router(open311.build_open311_router(gateway))
    app.state.city_systems = registry

    # Outermost first refusal: a flood is turned away before its body is even read.
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        overrides=[("/v1/staff/sessions", settings.max_upload_bytes)],
        render=open311.render_error,
    )
    if settings.rate_limit_enabled:
        policy = ratelimit.public_endpoint_policy(
            reads=ratelimit.TokenBucketLimiter(
                burst=settings.rate_limit_read_burst,
                per_second=settings.rate_limit_read_per_second,
                max_clients=settings.rate_limit_max_clients,
            ),
            writes=ratelimit.TokenBucketLimiter(
                burst=settings.rate_limit_write_burst,
                per_second=settings.rate_limit_write_per_second,
                max_clients=settings.rate_limit_max_clients,
            ),
        )
        app.add_middleware(ratelimit.RateLimitMiddleware, policy=policy, render=open311.render_error)
    # Outermost but for the timer: past this many requests in progress, more only queue, so turn them away at once.
    app.add_middleware(InFlightLimit, max_in_flight=settings.max_in_flight_requests, render=open311.render_error)
    # Around everything, refusals included: what a caller waited, by route.
    app.add_middleware(RequestMetrics, registry=platform.metrics.registry)
