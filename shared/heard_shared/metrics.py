"""Metrics every service exposes. Names follow Prometheus conventions; no ids as labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

# `_created` series double every counter's cardinality and no dashboard or alert reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class ServiceMetrics:
    """A registry per service instance (tests build several in one process)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self.events_consumed = Counter(
            "heard_events_consumed_total",
            "Events consumed and processed, by topic and outcome.",
            ["service", "topic", "outcome"],
            registry=self.registry,
        )
        self.events_published = Counter(
            "heard_events_published_total",
            "Events published, by topic.",
            ["service", "topic"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "heard_deadletter_messages_total",
            "Messages sent to the dead-letter topic, by source topic and reason code.",
            ["service", "topic", "reason"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "heard_event_handler_duration_seconds",
            "Time to process one consumed event.",
            ["service", "topic"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.outbox_relayed = Counter(
            "heard_outbox_relayed_total",
            "Events the outbox relay published after the fast path did not.",
            ["service"],
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "heard_consumer_lag_messages",
            "Messages in the partitions this replica owns that its consumer group has not committed yet.",
            ["service", "group", "topic"],
            registry=self.registry,
        )
