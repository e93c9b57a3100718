"""Builds routing schedulers against the real MongoDB for the integration tests (and the benchmark)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from heard_routing.config import CONFIG_DIR
from heard_routing.metrics import EscalationMetrics
from heard_routing.policy import SchedulerPolicy, load_all
from heard_routing.service import RoutingService
from heard_shared.kafka import EventPublisher
from heard_shared.metrics import ServiceMetrics
from heard_shared.mongo import MongoResource, epoch_ms
from heard_shared.outbox import OutboxRelay


class RecordingPublisher(EventPublisher):
    """Stands in for Kafka where a test is about MongoDB claims: remembers what would be published."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self.published: list[tuple[str, str, bytes]] = []

    async def publish_raw(self, *, topic: str, key: str, value: bytes) -> None:
        self.published.append((topic, key, value))


def build_scheduler(
    mongo: MongoResource, *, instance_id: str, lease: timedelta = timedelta(seconds=30), batch: int = 500
) -> tuple[RoutingService, RecordingPublisher]:
    policy, org, rules, areas = load_all(
        sla=CONFIG_DIR / "sla-policy.yaml",
        organisation=CONFIG_DIR / "organisation.yaml",
        rules=CONFIG_DIR / "routing-rules.yaml",
    )
    policy = policy.model_copy(update={"scheduler": SchedulerPolicy(lease=lease, batch=batch)})
    metrics = ServiceMetrics("routing")
    publisher = RecordingPublisher(metrics)
    service = RoutingService(
        cases=mongo.db["cases"],
        outbox=OutboxRelay(publisher, metrics),
        policy=policy,
        org=org,
        rules=rules,
        areas=areas,
        metrics=EscalationMetrics(metrics.registry),
        source="urn:heard:routing",
        instance_id=instance_id,
    )
    return service, publisher


def open_case(feedback_id: str, *, due_at: datetime, submitted_at: datetime) -> dict[str, Any]:
    """A negative item whose acknowledge deadline is `due_at`, as routing stores it."""
    return {
        "_id": feedback_id,
        "unit_id": "north-patrol",
        "level": 0,
        "chain": ["north-patrol", "north-sergeants", "patrol-command", "professional-standards", "oversight-board"],
        "rule": "north-precinct",
        "severity": "negative",
        "negative": True,
        "kind": "complaint",
        "submitted_at": submitted_at,
        "routed_at": submitted_at,
        "clock": "open",
        "stage": "acknowledge",
        "due_at": due_at,
        "due_ms": epoch_ms(due_at),
        "deadline_ms": epoch_ms(due_at),
        "open_since_ms": epoch_ms(submitted_at),
        "submitted_ms": epoch_ms(submitted_at),
        "acknowledge_by": due_at,
        "sla_answer_by": due_at + timedelta(days=10),
        "repeat": 0,
        "fencing": 0,
        "lease_owner": None,
    }
