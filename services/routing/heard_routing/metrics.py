"""The accountability guarantee made visible: the metrics ops watch and alert on."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

AGE_BANDS: tuple[tuple[str, float], ...] = (
    ("lt_1h", 3600),
    ("1h_24h", 86400),
    ("1d_7d", 7 * 86400),
    ("gt_7d", float("inf")),
)


class EscalationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.negative_open = Gauge(
            "heard_negative_open",
            "Open (unanswered) negative feedback by escalation level and age band.",
            ["level", "age_band"],
            registry=registry,
        )
        self.overdue_unescalated = Gauge(
            "heard_escalation_overdue_unescalated",
            "Deadlines of any item (triage, acknowledge, answer) passed longer than the grace period ago that have "
            "not fired; must stay 0.",
            registry=registry,
        )
        self.escalations = Counter(
            "heard_escalations_total",
            "Escalations fired, by the level reached and reason.",
            ["level", "reason"],
            registry=registry,
        )
        self.delay = Histogram(
            "heard_escalation_delay_seconds",
            "Delay between a deadline and its escalation firing.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=registry,
        )
        self.oldest_unanswered = Gauge(
            "heard_oldest_unanswered_negative_age_seconds",
            "Age of the oldest unanswered negative feedback.",
            registry=registry,
        )
        self.heartbeat = Gauge(
            "heard_scheduler_heartbeat_timestamp_seconds",
            "Unix time of the scheduler's last completed tick.",
            registry=registry,
        )
        self.answers = Counter(
            "heard_answers_total",
            "Answers to negative feedback, by severity and whether within the SLA.",
            ["severity", "within_sla"],
            registry=registry,
        )
        self.routed = Counter(
            "heard_routed_total",
            "Routing decisions, by rule kind (rule, fallback, recusal, commendation, critical = started higher "
            "by severity, referral, triage = re-derived after a person's triage).",
            ["rule_kind"],
            registry=registry,
        )
        self.awaiting_triage = Gauge(
            "heard_awaiting_triage",
            "Open items not assessed negative that no person has triaged yet, by escalation level.",
            ["level"],
            registry=registry,
        )
        self.oldest_untriaged = Gauge(
            "heard_oldest_untriaged_age_seconds",
            "Age of the oldest item still waiting for a person's triage (0 when none).",
            registry=registry,
        )
        for level in range(5):
            self.awaiting_triage.labels(str(level)).set(0)
            for band, _ in AGE_BANDS:
                self.negative_open.labels(str(level), band).set(0)
