"""Wires notify together: the only place that knows which concrete pieces are used."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from heard_notify import domain
from heard_notify.channels import CaptureSms, DisabledSms, SmsProvider, SmtpSender, TwilioCompatibleSms, WebhookSender
from heard_notify.config import NotifySettings
from heard_notify.contacts import load_directory
from heard_notify.i18n import LANGUAGES, translations
from heard_notify.intake import IntakeContacts, StaffGate
from heard_notify.keys import notify_keys
from heard_notify.ledger import DeliveryLedger
from heard_notify.metrics import NotifyMetrics
from heard_notify.service import Dispatcher, ItemProjection, Links, NotifyService, Timing
from heard_notify.subscriptions import SubscriptionRegistry
from heard_notify.suppression import SuppressionList
from heard_notify.views import build_router
from heard_shared import events as ev
from heard_shared.asgi import RequestMetrics
from heard_shared.http import install_error_handlers, ops_router
from heard_shared.logs import configure_logging
from heard_shared.runtime import build_platform

# Every feedback event: each may call for messages, and subscribed city systems may want any of them.
CONSUMED = tuple(spec for spec in ev.EVENT_SPECS.values() if spec is not ev.INBOUND)


def sms_provider(settings: NotifySettings) -> SmsProvider:
    if settings.sms_provider == "twilio":
        return TwilioCompatibleSms(
            base_url=settings.sms_api_base_url,
            account_sid=settings.sms_account_sid,
            auth_token=settings.sms_auth_token.get_secret_value(),
            sender=settings.sms_from,
            timeout=settings.sms_timeout_seconds,
        )
    return CaptureSms() if settings.sms_provider == "capture" else DisabledSms()


def create_app(settings: NotifySettings) -> FastAPI:
    configure_logging(service="notify", level=settings.log_level, json=settings.log_json)
    # httpx logs every request at INFO: one line per webhook and per address lookup is noise, not news.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Everything the department or the operator can get wrong stops start-up here, with a clear message.
    keys = notify_keys(settings.secret_key.get_secret_value(), settings.environment)
    directory = load_directory(
        Path(settings.contacts_file), Path(settings.organisation_file) if settings.organisation_file else None
    )
    for language in LANGUAGES:
        translations(language)
    platform = build_platform("notify", settings)
    db = platform.mongo.db
    metrics = NotifyMetrics(platform.metrics)
    ledger = DeliveryLedger(db["deliveries"])
    items = ItemProjection(db["items"])
    suppression = SuppressionList(db["suppression"])
    subscriptions = SubscriptionRegistry(
        db["subscriptions"], keys, allow_private=settings.webhook_allow_private_addresses
    )
    timing = Timing(
        lease=timedelta(seconds=settings.dispatch_lease_seconds),
        retry_base=settings.retry_base_seconds,
        retry_cap=settings.retry_cap_seconds,
        give_up_after=timedelta(seconds=settings.retry_give_up_after_seconds),
        max_attempts=settings.retry_max_attempts,
    )
    wake = asyncio.Event()
    service = NotifyService(
        ledger=ledger,
        items=items,
        directory=directory,
        subscriptions=subscriptions,
        policy=domain.Policy(
            follow_up_after=timedelta(seconds=settings.follow_up_after_seconds),
            reminder_lead_fraction=settings.reminder_lead_fraction,
        ),
        timing=timing,
        metrics=metrics,
        wake=wake,
    )
    sms = sms_provider(settings)
    email = SmtpSender(
        host=settings.smtp_host,
        port=settings.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value(),
        timeout=settings.smtp_timeout_seconds,
        sender=settings.mail_from,
        pool_size=settings.dispatch_concurrency,
    )
    webhooks = WebhookSender(
        timeout=settings.webhook_timeout_seconds, allow_private=settings.webhook_allow_private_addresses
    )
    intake = IntakeContacts(
        base_url=settings.intake_url,
        token=settings.intake_token.get_secret_value(),
        timeout=settings.intake_timeout_seconds,
    )
    staff = StaffGate(base_url=settings.intake_url, timeout=settings.intake_timeout_seconds)
    dispatcher = Dispatcher(
        ledger=ledger,
        items=items,
        directory=directory,
        subscriptions=subscriptions,
        intake=intake,
        suppression=suppression,
        keys=keys,
        email=email,
        webhooks=webhooks,
        sms=sms,
        links=Links(
            public_base_url=settings.public_base_url,
            staff_url_template=settings.staff_url_template,
            message_id_domain=settings.message_id_domain,
        ),
        timing=timing,
        metrics=metrics,
        dead_letters=platform.dead_letters,
        owner=platform.instance_id,
        concurrency=settings.dispatch_concurrency,
        poll_seconds=settings.dispatch_poll_seconds,
        wake=wake,
    )

    async def prepare() -> None:
        await ledger.ensure_indexes()
        await items.ensure_indexes()

    platform.startup_hooks.append(prepare)
    for spec in CONSUMED:
        platform.consumer.subscribe(spec.topic, (spec,), service.on_event)

    async def dispatch() -> None:
        try:
            await dispatcher.run()
        finally:
            await email.close()
            await webhooks.close()
            await sms.close()
            await intake.close()
            await staff.close()

    async def digests() -> None:
        await service.run_digest_planner(interval_seconds=settings.digest_check_seconds)

    async def queue_gauges() -> None:
        await metrics.watch_queue(ledger)

    platform.background.extend([dispatch, digests, queue_gauges])

    app = FastAPI(title="Heard notify", version="1.0.0", lifespan=platform.lifespan)
    install_error_handlers(app)
    app.include_router(
        build_router(
            ledger=ledger,
            staff=staff,
            suppression=suppression,
            keys=keys,
            metrics=metrics,
            sms=sms,
            sms_auth_token=settings.sms_auth_token.get_secret_value() if settings.sms_provider == "twilio" else "",
            public_base_url=settings.public_base_url,
        )
    )
    app.include_router(ops_router(platform.readiness_checks(), platform.metrics.registry))
    app.add_middleware(RequestMetrics, registry=platform.metrics.registry)
    app.state.platform = platform
    app.state.dispatcher = dispatcher
    return app
