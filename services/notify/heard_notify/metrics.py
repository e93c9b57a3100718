"""Notify's Prometheus metrics. No ids as labels: channel and outcome only."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram
from pymongo.errors import PyMongoError

from heard_notify.ledger import DeliveryLedger
from heard_shared.events import utc_now
from heard_shared.logs import get_logger
from heard_shared.metrics import ServiceMetrics

log = get_logger(__name__)

OUTCOMES = ("sent", "retried", "failed", "bounced", "suppressed", "maybe_sent")


class NotifyMetrics:
    def __init__(self, service: ServiceMetrics) -> None:
        self.service = service
        registry = service.registry
        self.deliveries = Counter(
            "heard_notify_deliveries_total",
            "Delivery attempts by channel and outcome (retried: the attempt failed and another is scheduled).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "heard_notify_attempt_duration_seconds",
            "Time one send took (SMTP transaction, webhook request, SMS API call).",
            ["channel"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.oldest_queued_age = Gauge(
            "heard_notify_oldest_queued_age_seconds",
            "How long the oldest delivery that is due has been waiting to be sent (0 when none is due).",
            registry=registry,
        )
        self.follow_up_answers = Counter(
            "heard_notify_follow_up_answers_total",
            "Residents' answers to 'did our answer address your concern?'.",
            ["answer"],
            registry=registry,
        )
        self.unsubscribes = Counter(
            "heard_notify_unsubscribes_total", "Unsubscribe requests and SMS opt-outs.", ["channel"], registry=registry
        )
        for channel in ("email", "webhook", "sms"):
            for outcome in OUTCOMES:
                self.deliveries.labels(channel, outcome)

    async def watch_queue(self, ledger: DeliveryLedger, *, interval_seconds: float = 5.0) -> None:
        while True:
            try:
                now = utc_now()
                oldest = await ledger.oldest_due_queued(now)
                self.oldest_queued_age.set((now - oldest).total_seconds() if oldest else 0.0)
            except PyMongoError as error:
                log.warning("queue gauges waiting for MongoDB", error=repr(error))
            await asyncio.sleep(interval_seconds)
