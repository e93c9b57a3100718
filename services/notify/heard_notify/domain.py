"""Who hears about what. Pure: an event in, the deliveries it calls for out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from heard_shared import events as ev
from heard_shared.events import CloudEvent


@dataclass(frozen=True)
class Delivery:
    recipient: str
    channel: str
    template: str


def deliveries_for(event: CloudEvent[Any]) -> list[Delivery]:
    data = event.data
    resident = f"resident:{event.subject}"
    if isinstance(data, ev.FeedbackRoutedV1):
        return [Delivery(f"unit:{data.unit_id}", "staff-inbox", "assigned")]
    if isinstance(data, ev.FeedbackEscalatedV1):
        template = "reminder" if data.reason == "reminder" else "escalated"
        return [Delivery(f"unit:{data.unit_id}", "staff-inbox", template)]
    if isinstance(data, ev.FeedbackAcknowledgedV1):
        return [Delivery(resident, "tracking-page", "acknowledged")]
    if isinstance(data, ev.FeedbackAnsweredV1):
        recipients = [Delivery(resident, "tracking-page", "answered")]
        if data.unit_id:
            recipients.append(Delivery(f"unit:{data.unit_id}", "staff-inbox", "answer-published"))
        return recipients
    if isinstance(data, ev.FeedbackClosedV1):
        return [Delivery(resident, "tracking-page", "closed")]
    return []
