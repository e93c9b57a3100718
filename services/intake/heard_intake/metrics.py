"""What intake adds to the shared service metrics: people's triage decisions, lowerings above all."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class TriageMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry or CollectorRegistry()
        self.decisions = Counter(
            "heard_triage_decisions_total",
            "Triage decisions by staff: confirmed, raised, lowered or reclassified (kind changed).",
            ["decision"],
            registry=registry,
        )
        self.severity_changes = Counter(
            "heard_severity_changes_total",
            "Severity changed by a person's triage, by direction and from/to severity.",
            ["direction", "from_severity", "to_severity"],
            registry=registry,
        )
        # Every series exists from the start, at 0, so rates and alerts see the first change too.
        for decision in ("confirmed", "raised", "lowered", "reclassified"):
            self.decisions.labels(decision)
        for low, high in SEVERITY_STEPS:
            self.severity_changes.labels("raised", low, high)
            self.severity_changes.labels("lowered", high, low)


SEVERITY_STEPS = (
    ("positive", "negative"),
    ("positive", "critical"),
    ("neutral", "negative"),
    ("neutral", "critical"),
    ("negative", "critical"),
)
