"""The observability contract: alert rules and the Grafana dashboard use only the metrics the services export,
every alert is actionable (severity, summary, a runbook section that exists) and tested both ways, and
`promtool` accepts the rules and passes their unit tests. No network, no running services."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "heard.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "heard_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "heard.json"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
PROMTOOL = shutil.which("promtool")

# The contract: metric name -> its labels, each with the values it may take (None: any value).
# Every series also carries the scrape labels `job` and `instance`.
CONTRACT: dict[str, dict[str, frozenset[str] | None]] = {
    "heard_deadletter_messages_total": {"service": None, "topic": None, "reason": None},
    "heard_events_consumed_total": {
        "service": None,
        "topic": None,
        "outcome": frozenset({"processed", "duplicate", "dead_lettered", "retried"}),
    },
    "heard_events_published_total": {"service": None, "topic": None},
    "heard_negative_open": {
        "level": frozenset({"0", "1", "2", "3", "4"}),
        "age_band": frozenset({"lt_1h", "1h_24h", "1d_7d", "gt_7d"}),
    },
    "heard_escalation_overdue_unescalated": {},
    "heard_escalations_total": {
        "level": frozenset({"0", "1", "2", "3", "4"}),
        "reason": frozenset({"acknowledge_overdue", "answer_overdue", "reminder", "referral_limit", "triage_overdue"}),
    },
    "heard_awaiting_triage": {"level": frozenset({"0", "1", "2", "3", "4"})},
    "heard_oldest_untriaged_age_seconds": {},
    "heard_severity_changes_total": {
        "direction": frozenset({"raised", "lowered"}),
        "from_severity": frozenset({"positive", "neutral", "negative", "critical"}),
        "to_severity": frozenset({"positive", "neutral", "negative", "critical"}),
    },
    "heard_triage_decisions_total": {"decision": frozenset({"confirmed", "raised", "lowered", "reclassified"})},
    "heard_oldest_unanswered_negative_age_seconds": {},
    "heard_scheduler_heartbeat_timestamp_seconds": {},
    "heard_answers_total": {"severity": None, "within_sla": frozenset({"true", "false"})},
    "heard_analytics_events_total": {"type": None},
    "heard_consumer_lag_messages": {"service": None, "group": None, "topic": None},
    "heard_notify_deliveries_total": {
        "channel": frozenset({"email", "webhook", "sms"}),
        "outcome": frozenset({"sent", "retried", "failed", "bounced", "suppressed", "maybe_sent"}),
    },
    "heard_notify_oldest_queued_age_seconds": {},
    "heard_notify_follow_up_answers_total": {"answer": frozenset({"yes", "no"})},
    "heard_notify_unsubscribes_total": {"channel": frozenset({"email", "sms"})},
    "heard_analytics_freshness_lag_seconds": {},
}
HISTOGRAMS: dict[str, dict[str, frozenset[str] | None]] = {
    "heard_escalation_delay_seconds": {},
    "heard_notify_attempt_duration_seconds": {"channel": frozenset({"email", "webhook", "sms"})},
    "heard_analytics_event_visible_seconds": {},
    "heard_analytics_publish_seconds": {},
}
for _name, _labels in HISTOGRAMS.items():
    CONTRACT[f"{_name}_bucket"] = {**_labels, "le": None}
    CONTRACT[f"{_name}_sum"] = dict(_labels)
    CONTRACT[f"{_name}_count"] = dict(_labels)
SCRAPE_LABELS = frozenset({"job", "instance"})

# What DESIGN.md ("The accountability guarantee", item 7) requires to page.
REQUIRED_ALERTS = {
    "HeardNegativeFeedbackOverdue": {"page"},
    "HeardSchedulerHeartbeatStale": {"page"},
    "HeardSchedulerHeartbeatAbsent": {"page"},
    "HeardDeadLetterReceived": {"page", "ticket"},
    # Issue 11: the public figures follow the events within 2 s; an alert fires when they lag.
    "HeardAnalyticsFiguresStale": {"ticket"},
    "HeardAnalyticsFreshnessAbsent": {"ticket"},
}
# Multi-window burn rates (Google SRE workbook): alert -> (severity, long window, short window, burn rate).
BURN_RATE_ALERTS = {
    "HeardAnswerSLOBurnRateCritical": ("page", "1h", "5m", "14.4"),
    "HeardAnswerSLOBurnRateHigh": ("page", "6h", "30m", "6"),
    "HeardAnswerSLOBudgetBurn": ("ticket", "3d", "6h", "1"),
}
ERROR_BUDGET = "0.05"
SEVERITIES = frozenset({"page", "ticket"})
# Grafana's interval variables, replaced by a duration so promtool can parse dashboard expressions.
GRAFANA_INTERVALS = re.compile(r"\$\{?(?:__rate_interval|__interval|__range)\}?")

# --- a small PromQL reader: enough to find metric names and label matchers -------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*")
_SELECTOR = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING_LABELS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
)
_NUMBERS = frozenset({"inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """Metric (and recording rule) names an expression selects; functions, keywords and labels are not names."""
    names = {
        value
        for _, matchers in _SELECTOR.findall(expr)
        for label, op, value in _MATCHER.findall(matchers)
        if label == "__name__" and op == "="
    }
    text = _STRING.sub('""', expr)
    text = _BRACES.sub(" ", text)
    text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word in _KEYWORDS or word.lower() in _NUMBERS:
            continue
        if text[match.end() :].lstrip().startswith("("):  # a function or an aggregation
            continue
        names.add(word)
    return names


def label_matchers(expr: str) -> Iterator[tuple[str, str, str, str]]:
    """(metric, label, operator, value) for every matcher written on a named selector."""
    for name, matchers in _SELECTOR.findall(expr):
        if name:
            for label, op, value in _MATCHER.findall(matchers):
                yield name, label, op, value


def grouping_labels(expr: str) -> set[str]:
    return {label.strip() for group in _GROUPING_LABELS.findall(expr) for label in group.split(",") if label.strip()}


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# --- loading ---------------------------------------------------------------------------------------------------


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def alert_rules() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in load_rules() if "alert" in rule}


def recording_rules() -> dict[str, dict[str, Any]]:
    return {rule["record"]: rule for rule in load_rules() if "record" in rule}


def dashboard_panels() -> list[dict[str, Any]]:
    def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    return list(walk(json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]))


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) for every query target."""
    return [(panel["title"], target["expr"]) for panel in dashboard_panels() for target in panel.get("targets", [])]


def runbook_anchors() -> set[str]:
    anchors: set[str] = set()
    in_code = False
    for line in RUNBOOKS.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and (heading := re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)):
            anchors.add(github_anchor(heading.group(1)))
        anchors.update(re.findall(r'<a\s+(?:id|name)="([^"]+)"', line))
    return anchors


def all_expressions() -> list[tuple[str, str]]:
    rules = [(rule.get("alert") or rule["record"], str(rule["expr"])) for rule in load_rules()]
    return rules + dashboard_expressions()


# --- the PromQL reader itself ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'sum by (service, topic) (rate(heard_events_published_total{topic=~"feedback\\\\..+"}[5m])) / 0.05',
            {"heard_events_published_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(heard_escalation_delay_seconds_bucket[$__rate_interval])))",
            {"heard_escalation_delay_seconds_bucket"},
        ),
        ("a_total unless a_total offset 5m", {"a_total"}),
        ("time() - max(x_seconds) > 1e3 or vector(NaN)", {"x_seconds"}),
        (
            "level:metric:rate1h / 0.05 > 14.4 and on () level:metric:rate5m > Inf",
            {"level:metric:rate1h", "level:metric:rate5m"},
        ),
        ('absent({__name__="y_total", job="heard"})', {"y_total"}),
    ],
)
def test_promql_reader_finds_metric_names(expr: str, expected: set[str]) -> None:
    assert metric_names(expr) == expected


# --- metric names and labels -----------------------------------------------------------------------------------


def test_rules_and_dashboard_reference_only_contract_metrics_and_recording_rules() -> None:
    known = set(CONTRACT) | set(recording_rules())
    unknown = {(where, name) for where, expr in all_expressions() for name in metric_names(expr) if name not in known}
    assert not unknown, f"metrics outside the contract: {sorted(unknown)}"


def test_every_expression_selects_a_metric() -> None:
    empty = [where for where, expr in all_expressions() if not metric_names(expr)]
    assert not empty


def test_label_matchers_use_contract_labels_and_values() -> None:
    problems = []
    for where, expr in all_expressions():
        for metric, label, op, value in label_matchers(expr):
            labels = CONTRACT.get(metric)
            if labels is None or label in SCRAPE_LABELS:
                continue  # recording rules are checked through their own expressions
            if label not in labels:
                problems.append(f"{where}: {metric} has no label {label!r}")
            elif op == "=" and (allowed := labels[label]) is not None and value not in allowed:
                problems.append(f"{where}: {metric}{{{label}={value!r}}} is not one of {sorted(allowed)}")
    assert not problems


def test_grouping_labels_exist_on_the_metrics_used() -> None:
    problems = []
    for where, expr in all_expressions():
        available = set(SCRAPE_LABELS)
        for name in metric_names(expr):
            available |= set(CONTRACT.get(name, {}))
        if missing := grouping_labels(expr) - available:
            problems.append(f"{where}: grouping by {sorted(missing)}, not labels of {sorted(metric_names(expr))}")
    assert not problems


def test_recording_rules_follow_the_level_metric_operations_convention() -> None:
    for name in recording_rules():
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), name


def test_scheduler_gauges_are_never_summed_across_replicas() -> None:
    """Every routing replica exports the same scheduler gauges: summing them multiplies the truth."""
    gauges = (
        "heard_negative_open",
        "heard_escalation_overdue_unescalated",
        "heard_oldest_unanswered_negative_age_seconds",
        "heard_scheduler_heartbeat_timestamp_seconds",
        "heard_awaiting_triage",
        "heard_oldest_untriaged_age_seconds",
    )
    for where, expr in all_expressions():
        for gauge in gauges:
            if gauge in metric_names(expr):
                assert re.search(rf"\b(?:max|absent)(?:\s+by\s*\([^()]*\))?\s*\(\s*{gauge}\b", expr), (where, expr)


# --- alerts ----------------------------------------------------------------------------------------------------


def test_required_alerts_exist_with_their_severity() -> None:
    alerts = alert_rules()
    for name, severities in REQUIRED_ALERTS.items():
        assert name in alerts, f"missing alert {name}"
        assert alerts[name]["labels"]["severity"] in severities, name


def test_required_alert_expressions() -> None:
    alerts = alert_rules()
    flat = {name: " ".join(str(rule["expr"]).split()) for name, rule in alerts.items()}
    assert flat["HeardNegativeFeedbackOverdue"] == "max(heard_escalation_overdue_unescalated) > 0"
    assert alerts["HeardNegativeFeedbackOverdue"]["for"] == "2m"
    assert flat["HeardSchedulerHeartbeatStale"] == "time() - max(heard_scheduler_heartbeat_timestamp_seconds) > 60"
    assert alerts["HeardSchedulerHeartbeatStale"]["for"] == "2m"
    assert flat["HeardSchedulerHeartbeatAbsent"] == "absent(heard_scheduler_heartbeat_timestamp_seconds)"
    assert alerts["HeardSchedulerHeartbeatAbsent"]["for"] == "5m"
    dead_letters = flat["HeardDeadLetterReceived"]
    assert "increase(heard_deadletter_messages_total[5m])" in dead_letters
    assert "sum by (service, topic, reason)" in dead_letters
    assert "for" not in alerts["HeardDeadLetterReceived"], "a dead letter must alert at once"


@pytest.mark.parametrize("alert", sorted(BURN_RATE_ALERTS))
def test_burn_rate_alerts_use_two_windows_at_the_workbook_thresholds(alert: str) -> None:
    severity, long_window, short_window, burn_rate = BURN_RATE_ALERTS[alert]
    rule = alert_rules()[alert]
    assert rule["labels"]["severity"] == severity
    expr = " ".join(str(rule["expr"]).split())
    assert expr == (
        f"heard:answer_sla_error_ratio:rate{long_window} / {ERROR_BUDGET} > {burn_rate} and "
        f"heard:answer_sla_error_ratio:rate{short_window} / {ERROR_BUDGET} > {burn_rate}"
    )
    for window in (long_window, short_window):
        source = " ".join(str(recording_rules()[f"heard:answer_sla_error_ratio:rate{window}"]["expr"]).split())
        assert f'heard_answers_total{{within_sla="false"}}[{window}]' in source
        assert f"heard_answers_total[{window}]" in source


def test_every_alert_is_actionable() -> None:
    anchors = runbook_anchors()
    for name, rule in alert_rules().items():
        assert name.startswith("Heard"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations.get("summary"), name
        assert annotations.get("description"), name
        url = annotations.get("runbook_url", "")
        assert url.startswith("docs/runbooks.md#"), (name, url)
        assert url.split("#", 1)[1] in anchors, f"{name}: no section {url} in docs/runbooks.md"


def test_runbook_has_one_section_per_alert_and_its_links_resolve() -> None:
    anchors = runbook_anchors()
    for name in alert_rules():
        assert github_anchor(name) in anchors, name
    links = re.findall(r"\]\(#([^)]+)\)", RUNBOOKS.read_text(encoding="utf-8"))
    assert all(link in anchors for link in links), [link for link in links if link not in anchors]


def test_every_alert_has_unit_tests_where_it_fires_and_where_it_must_not() -> None:
    document = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    assert [(RULE_TESTS.parent / path).resolve() for path in document["rule_files"]] == [RULES.resolve()]
    fires: set[str] = set()
    stays_quiet: set[str] = set()
    for test in document["tests"]:
        for case in test.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else stays_quiet).add(case["alertname"])
    alerts = set(alert_rules())
    assert alerts - fires == set(), "alerts never tested firing"
    assert alerts - stays_quiet == set(), "alerts never tested staying quiet"


# --- dashboard -------------------------------------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard_on_the_prometheus_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["schemaVersion"] >= 36
    panels = dashboard_panels()
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        targets = panel.get("targets", [])
        if panel["type"] == "row":
            continue
        assert targets, f"panel without a query: {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, panel["title"]
        ref_ids = [target["refId"] for target in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert target["datasource"]["uid"] == "prometheus", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_dashboard_shows_what_the_accountability_guarantee_promises() -> None:
    shown = {name for _, expr in dashboard_expressions() for name in metric_names(expr)}
    promised = {
        "heard_negative_open",
        "heard_oldest_unanswered_negative_age_seconds",
        "heard_escalation_overdue_unescalated",
        "heard_escalations_total",
        "heard_escalation_delay_seconds_bucket",
        "heard_scheduler_heartbeat_timestamp_seconds",
        "heard_deadletter_messages_total",
        "heard_events_consumed_total",
        "heard_events_published_total",
        *(f"heard:answer_sla_error_ratio:rate{w}" for w in ("5m", "30m", "1h", "6h", "3d")),
    }
    assert promised - shown == set()
    expressions = [" ".join(expr.split()) for _, expr in dashboard_expressions()]
    for quantile in ("0.5", "0.99"):
        assert any(
            e.startswith(f"histogram_quantile({quantile},") and "heard_escalation_delay_seconds_bucket" in e
            for e in expressions
        ), quantile
    for counter in ("heard_events_consumed_total", "heard_events_published_total"):
        assert any(counter in e and re.search(r"by \([^)]*\bservice\b", e) for e in expressions), counter


def test_overdue_stat_turns_red_above_zero() -> None:
    stats = [
        panel
        for panel in dashboard_panels()
        if panel["type"] == "stat"
        and any("heard_escalation_overdue_unescalated" in target["expr"] for target in panel["targets"])
    ]
    assert stats, "no stat panel for overdue-not-escalated"
    for panel in stats:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps[0]["color"] == "green"
        red = [step["value"] for step in steps if step["color"] == "red"]
        assert red and 0 < red[0] <= 1, steps


def test_analytics_freshness_is_alerted_per_worst_replica_and_on_the_dashboard() -> None:
    alerts = alert_rules()
    assert " ".join(str(alerts["HeardAnalyticsFiguresStale"]["expr"]).split()) == (
        "max(heard_analytics_freshness_lag_seconds) > 30"
    )
    assert " ".join(str(alerts["HeardAnalyticsFreshnessAbsent"]["expr"]).split()) == (
        "absent(heard_analytics_freshness_lag_seconds)"
    )
    for where, expr in all_expressions():
        if "heard_analytics_freshness_lag_seconds" in metric_names(expr):  # one value per replica: never summed
            assert re.search(r"\b(?:max|absent)(?:\s+by\s*\([^()]*\))?\s*\(\s*heard_analytics_freshness", expr), where
    shown = {name for _, expr in dashboard_expressions() for name in metric_names(expr)}
    assert {
        "heard_analytics_freshness_lag_seconds",
        "heard_analytics_event_visible_seconds_bucket",
        "heard_analytics_publish_seconds_bucket",
    } <= shown


def test_the_freshness_histogram_has_a_bucket_at_the_two_second_promise() -> None:
    from prometheus_client import CollectorRegistry

    from heard_analytics import service
    from heard_analytics.areas import Areas
    from heard_analytics.privacy import PrivacyRules

    registry = CollectorRegistry()
    unused: Any = None  # no database: only the metrics it registers are read
    areas = Areas.load(ROOT / "config" / "population.yaml", ROOT / "config" / "precincts.geojson")
    service.AnalyticsService(
        items=unused,
        cells=unused,
        open_items=unused,
        rounds=unused,
        areas=areas,
        rules=PrivacyRules(),
        registry=registry,
    )
    bounds = {
        float(sample.labels["le"])
        for metric in registry.collect()
        if metric.name == "heard_analytics_event_visible_seconds"
        for sample in metric.samples
        if sample.name.endswith("_bucket")
    }
    assert service.FRESHNESS_OBJECTIVE_SECONDS == 2.0 and 2.0 in bounds


# --- promtool --------------------------------------------------------------------------------------------------


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")
def test_promtool_accepts_the_rules() -> None:
    result = run_promtool("check", "rules", str(RULES.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")
def test_promtool_rule_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")
def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    rules = [
        {"record": f"heard_dashboard:query:{index}", "expr": GRAFANA_INTERVALS.sub("5m", expr)}
        for index, (_, expr) in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
