"""Routing's clocks for every item and its re-derivation after a person's triage, on the real MongoDB-wire server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from heard_devstack import Stack
from heard_routing.service import RoutingService
from heard_shared import events as ev
from heard_shared import topics
from heard_shared.events import PublicLocation, utc_now
from heard_shared.mongo import MongoResource, epoch_ms
from tests.helpers import unique
from tests.integration.scheduler_support import RecordingPublisher, build_scheduler

pytestmark = pytest.mark.integration


@pytest.fixture
async def routing(stack: Stack) -> AsyncIterator[tuple[RoutingService, RecordingPublisher]]:
    mongo = MongoResource(stack.mongodb_uri, unique("triage").replace("-", "_"), app_name="triage")
    service, publisher = build_scheduler(mongo, instance_id="triage")
    await service.ensure_indexes()
    yield service, publisher
    await mongo.close()


def submitted(feedback_id: str, **changes: Any) -> ev.CloudEvent[Any]:
    data = ev.FeedbackSubmittedV1.model_validate(
        {
            "feedback_id": feedback_id,
            "channel": "api",
            "kind": "question",
            "language": "en",
            "text": "When is the next community meeting?",
            "location": PublicLocation(neighbourhood="Northgate"),
            "severity": "neutral",
            "negative": False,
            "submitted_at": utc_now(),
        }
        | changes
    )
    return ev.new_event(ev.SUBMITTED, data, source="urn:heard:intake", subject=feedback_id)


def triaged(feedback_id: str, *, severity: str, previous: str, decision: str, kind: str = "question") -> Any:
    data = ev.FeedbackTriagedV1.model_validate(
        {
            "feedback_id": feedback_id,
            "decision": decision,
            "kind": kind,
            "severity": severity,
            "negative": severity in ("negative", "critical"),
            "previous_kind": kind,
            "previous_severity": previous,
            "by_role": "professional_standards",
            "triaged_at": utc_now(),
        }
    )
    return ev.new_event(ev.TRIAGED, data, source="urn:heard:intake", subject=feedback_id)


def published(publisher: RecordingPublisher, topic: str, feedback_id: str) -> list[dict[str, Any]]:
    return [json.loads(value)["data"] for t, key, value in publisher.published if t == topic and key == feedback_id]


def sample(service: RoutingService, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(name, labels)
    assert value is not None, f"{name}{labels} is not exported"
    return value


async def make_due(service: RoutingService, feedback_id: str, *, ago: timedelta = timedelta(seconds=1)) -> None:
    past = utc_now() - ago
    await service.cases.update_one(
        {"_id": feedback_id}, {"$set": {"due_at": past, "due_ms": epoch_ms(past), "deadline_ms": epoch_ms(past)}}
    )


async def test_an_untriaged_question_has_a_clock_escalates_and_stops_once_triaged(
    routing: tuple[RoutingService, RecordingPublisher],
) -> None:
    service, publisher = routing
    feedback_id = unique("question")
    await service.on_submitted(submitted(feedback_id))
    [decision] = published(publisher, topics.ROUTED, feedback_id)
    assert decision["unit_id"] == "north-patrol" and "triage_by" in decision and "acknowledge_by" not in decision

    await service.refresh_gauges()
    assert sample(service, "heard_awaiting_triage", level="0") == 1
    assert sample(service, "heard_oldest_untriaged_age_seconds") >= 0

    # "Overdue and not escalated" covers triage deadlines too: one passed longer ago than the grace counts.
    await make_due(service, feedback_id, ago=service.policy.scheduler.overdue_grace + timedelta(seconds=1))
    await service.refresh_gauges()
    assert sample(service, "heard_escalation_overdue_unescalated") == 1
    assert await service.tick() == 1
    [escalation] = published(publisher, topics.ESCALATED, feedback_id)
    assert (escalation["reason"], escalation["level"], escalation["unit_id"]) == (
        "triage_overdue",
        1,
        "north-sergeants",
    )

    await service.on_triaged(triaged(feedback_id, severity="neutral", previous="neutral", decision="confirmed"))
    case = await service.cases.find_one({"_id": feedback_id})
    assert case is not None and case["clock"] == "stopped" and "deadline_ms" not in case
    await service.refresh_gauges()
    assert sample(service, "heard_awaiting_triage", level="1") == 0
    assert sample(service, "heard_escalation_overdue_unescalated") == 0


async def test_a_critical_item_starts_at_professional_standards_and_a_lowering_hands_it_back(
    routing: tuple[RoutingService, RecordingPublisher],
) -> None:
    service, publisher = routing
    feedback_id = unique("critical")
    await service.on_submitted(
        submitted(feedback_id, kind="complaint", severity="critical", negative=True, allegations=["retaliation"])
    )
    [arrival] = published(publisher, topics.ROUTED, feedback_id)
    assert (arrival["unit_id"], arrival["level"], arrival["rule"]) == (
        "professional-standards",
        3,
        "critical:north-precinct",
    )
    assert (arrival["critical_on_arrival"], arrival["oversight_board_id"]) == (True, "oversight-board")

    lowering = triaged(feedback_id, severity="negative", previous="critical", decision="lowered", kind="complaint")
    await service.on_triaged(lowering)
    await service.on_triaged(lowering)  # a redelivery changes nothing
    rerouted = published(publisher, topics.ROUTED, feedback_id)[1:]
    assert len(rerouted) == 1
    assert (rerouted[0]["unit_id"], rerouted[0]["level"], rerouted[0]["rule"]) == ("north-patrol", 0, "triage")
    assert rerouted[0]["severity"] == "negative" and "critical_on_arrival" not in rerouted[0]
    case = await service.cases.find_one({"_id": feedback_id})
    assert case is not None and (case["stage"], case["start_level"], case["clock"]) == ("acknowledge", 0, "open")
    assert "open_since_ms" in case and "triage_since_ms" not in case


async def test_raising_an_untriaged_item_to_critical_tells_the_board_and_starts_negative_deadlines(
    routing: tuple[RoutingService, RecordingPublisher],
) -> None:
    service, publisher = routing
    feedback_id = unique("raised")
    await service.on_submitted(submitted(feedback_id))
    await service.on_triaged(
        triaged(feedback_id, severity="critical", previous="neutral", decision="raised", kind="complaint")
    )
    rerouted = published(publisher, topics.ROUTED, feedback_id)[-1]
    assert (rerouted["unit_id"], rerouted["critical_on_arrival"], rerouted["oversight_board_id"]) == (
        "professional-standards",
        True,
        "oversight-board",
    )
    assert rerouted["acknowledge_by"] and rerouted["answer_by"] and "triage_by" not in rerouted
    case = await service.cases.find_one({"_id": feedback_id})
    assert case is not None and "triage_since_ms" not in case and "open_since_ms" in case


async def test_a_triage_that_overtakes_the_submission_is_applied_when_it_is_routed(
    routing: tuple[RoutingService, RecordingPublisher],
) -> None:
    service, publisher = routing
    feedback_id = unique("early")
    await service.on_triaged(triaged(feedback_id, severity="neutral", previous="neutral", decision="confirmed"))
    await service.on_submitted(submitted(feedback_id))
    [decision] = published(publisher, topics.ROUTED, feedback_id)
    assert "triage_by" not in decision, "a person already triaged it: no triage deadline"
    case = await service.cases.find_one({"_id": feedback_id})
    assert case is not None and case["clock"] == "stopped"
