"""Realistic read-model content for the analytics benchmark, made at speed with the projection's own code.

Each synthetic item is a plausible life (submitted, routed with the SLA policy's deadlines, acknowledged, answered,
escalated when a deadline passes, contested, withdrawn, closed), cut at `now`, so recent items are still open.
Its events go through `facts.merge`, and `facts.contribution` / `facts.overdue_entry` turn the facts into exactly
the cell counters, item document and open-item entry the live projection would store; the cells of a batch are
summed in memory and written with bulk inserts (or `$inc` upserts when a cell already exists). Only what the
projection would keep is written: no free text, no contact, no coordinates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from heard_analytics import facts as domain
from heard_analytics.areas import Areas
from heard_shared import events as ev
from heard_shared.events import CloudEvent
from heard_shared.mongo import Document

KIND_WEIGHTS = {"complaint": 0.30, "concern": 0.20, "question": 0.15, "suggestion": 0.10, "praise": 0.25}
CATEGORY_WEIGHTS = {
    "conduct": 0.18,
    "response_time": 0.2,
    "traffic": 0.14,
    "parking": 0.12,
    "speeding": 0.1,
    "a category a resident typed": 0.06,
    None: 0.2,
}
CHANNEL_WEIGHTS = {"web": 0.55, "api": 0.1, "open311": 0.15, "kafka": 0.1, "session": 0.1}
DAY = 86400.0
HOUR = 3600.0
# The default SLA policy (config/sla-policy.yaml): acknowledge and answer windows by severity.
WINDOWS = {"critical": (4 * HOUR, 3 * DAY), "negative": (DAY, 10 * DAY)}
CHUNK = 5000


def _pick(rng: random.Random, weights: dict[Any, float]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _later(rng: random.Random, median_seconds: float, spread: float = 1.0) -> float:
    """A delay drawn from a log-normal distribution: most actions are quick, a few take very long."""
    return median_seconds * math.exp(rng.gauss(0.0, spread))


def _event(data: Any) -> CloudEvent[Any]:
    # The data is validated; `merge` reads nothing else, so the envelope is a stand-in (building one costs more
    # than the whole merge).
    return cast(CloudEvent[Any], SimpleNamespace(data=data))


def item_events(
    rng: random.Random, feedback_id: str, submitted_at: datetime, now: datetime, areas: Areas
) -> list[CloudEvent[Any]]:
    """One item's life as the events other services would publish, keeping only those that happened by `now`."""
    kind = _pick(rng, KIND_WEIGHTS)
    negative = kind in ("complaint", "concern") or rng.random() < 0.05
    severity = "neutral"
    if negative:
        severity = "critical" if rng.random() < 0.1 else "negative"
    elif kind == "praise":
        severity = "positive"
    roll = rng.random()
    location = None
    if roll < 0.85:
        precinct = rng.choice(list(areas.precincts.values()))
        location = ev.PublicLocation(neighbourhood=rng.choice(precinct.neighbourhoods))
    elif roll < 0.95:
        location = ev.PublicLocation(neighbourhood="near the park")  # not a listed neighbourhood: "unspecified"
    t0 = submitted_at

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    ids = {"feedback_id": feedback_id}
    unit = {**ids, "unit_id": "unit-a"}
    happened: list[tuple[float, Any]] = [
        (
            0.0,
            ev.FeedbackSubmittedV1(
                **ids,
                channel=_pick(rng, CHANNEL_WEIGHTS),
                kind=kind,
                category=_pick(rng, CATEGORY_WEIGHTS),
                language="es" if rng.random() < 0.2 else "en",
                text="[bench]",
                location=location,
                severity=severity,
                negative=negative,
                submitted_at=t0,
            ),
        )
    ]
    routed = 0.5 + rng.random()
    acknowledge_window, answer_window = WINDOWS.get(severity, (None, None))
    happened.append(
        (
            routed,
            ev.FeedbackRoutedV1(
                **unit,
                unit_name="Unit A",
                level=0,
                rule="category",
                negative=negative,
                severity=severity,
                acknowledge_by=None if acknowledge_window is None else at(routed + acknowledge_window),
                answer_by=None if answer_window is None else at(routed + answer_window),
                routed_at=at(routed),
            ),
        )
    )
    acknowledged = _later(rng, 8 * HOUR) if negative or rng.random() < 0.5 else None
    answered = (acknowledged or HOUR) + _later(rng, 3 * DAY, 1.2) if negative or rng.random() < 0.7 else None
    if acknowledged is not None:
        happened.append((acknowledged, ev.FeedbackAcknowledgedV1(**unit, acknowledged_at=at(acknowledged))))
    level = 0
    if acknowledge_window is not None and (acknowledged is None or acknowledged > routed + acknowledge_window):
        level = 1
        happened.append(_escalated(ids, "acknowledge_overdue", level, at, routed + acknowledge_window))
    if answer_window is not None:
        # Each level gets a fresh window for the answer still missing, up to the oversight board.
        deadline = routed + answer_window
        while level < domain.OVERSIGHT_BOARD_LEVEL and (answered is None or answered > deadline):
            level += 1
            happened.append(_escalated(ids, "answer_overdue", level, at, deadline))
            deadline += answer_window
    if rng.random() < 0.03:
        gone = _later(rng, 2 * DAY)
        happened.append((gone, ev.FeedbackClosedV1(**ids, closed_at=at(gone), resolution="withdrawn")))
    elif answered is not None:
        happened.append((answered, ev.FeedbackAnsweredV1(**unit, answer="[bench]", answered_at=at(answered))))
        closed = answered + _later(rng, HOUR)
        happened.append((closed, ev.FeedbackClosedV1(**ids, closed_at=at(closed), resolution="answered")))
        if rng.random() < 0.04:
            contested = closed + _later(rng, 2 * DAY)
            happened.append((contested, ev.FeedbackReopenedV1(**ids, reason="contested", reopened_at=at(contested))))
            if rng.random() < 0.7:
                again = contested + _later(rng, 4 * DAY)
                happened.append((again, ev.FeedbackAnsweredV1(**unit, answer="[bench]", answered_at=at(again))))
                happened.append(
                    (again + 60, ev.FeedbackClosedV1(**ids, closed_at=at(again + 60), resolution="answered"))
                )
    cut = (now - t0).total_seconds()
    return [_event(data) for offset, data in sorted(happened, key=lambda pair: pair[0]) if offset <= cut]


def _escalated(
    ids: dict[str, str], reason: str, level: int, at: Callable[[float], datetime], deadline: float
) -> tuple[float, ev.FeedbackEscalatedV1]:
    fired = deadline + 1.0
    return fired, ev.FeedbackEscalatedV1(
        **ids,
        reason=reason,
        from_level=level - 1,
        level=level,
        level_name=f"level {level}",
        unit_id=f"unit-{level}",
        deadline=at(deadline),
        fired_at=at(fired),
        repeat=0,
        fencing_token=1,
    )


@dataclass
class Batch:
    """What a chunk of items adds to the read model."""

    items: list[Document]
    open_items: list[Document]
    cells: dict[str, domain.Counters]


def histories(
    year: int, count: int, *, now: datetime, areas: Areas, seed: int, first: int = 0
) -> Iterator[tuple[str, list[CloudEvent[Any]]]]:
    """`count` items submitted evenly over `year` (up to `now`): each one's id and events."""
    rng = random.Random(f"{seed}-{year}")
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = min(datetime(year + 1, 1, 1, tzinfo=UTC), now)
    span = (end - start).total_seconds()
    for i in range(count):
        feedback_id = f"bench-{year}-{first + i:07d}"
        submitted_at = start + timedelta(seconds=span * (i + rng.random()) / count)
        yield feedback_id, item_events(rng, feedback_id, submitted_at, now, areas)


def items_of_year(year: int, count: int, *, now: datetime, areas: Areas, seed: int, first: int = 0) -> Iterator[Batch]:
    """The read-model documents of `histories`, in chunks, each chunk's cells summed."""
    batch = Batch([], [], {})
    for feedback_id, events in histories(year, count, now=now, areas=areas, seed=seed, first=first):
        item: domain.Facts = {}
        for event in events:
            item = domain.merge(item, event, areas)
        contribution = domain.contribution(item)
        batch.items.append({"_id": feedback_id, **item, "v": 1, "applied": contribution})
        if (entry := domain.overdue_entry(item)) is not None:
            batch.open_items.append({"_id": feedback_id, **entry})
        for cell_id, counters in contribution.items():
            cell = batch.cells.setdefault(cell_id, {})
            for name, value in counters.items():
                cell[name] = cell.get(name, 0) + value
        if len(batch.items) == CHUNK:
            yield batch
            batch = Batch([], [], {})
    if batch.items:
        yield batch


def as_cloud_event(stand_in: CloudEvent[Any], feedback_id: str) -> CloudEvent[Any]:
    """A full CloudEvent for a stand-in of `item_events` (to check the seeder against the live projection)."""
    data = stand_in.data
    spec = next(spec for spec in ev.EVENT_SPECS.values() if isinstance(data, spec.data_model))
    return ev.new_event(spec, data, source="urn:heard:bench", subject=feedback_id)


async def write(database: AsyncDatabase[Document], batch: Batch, *, now: datetime) -> None:
    """Stores a chunk as the projection would have: items, open items, and the cells' counters added."""
    stamp = int(now.timestamp() * 1000)
    await database["items"].insert_many(batch.items, ordered=False)
    if batch.open_items:
        await database["open_items"].insert_many(batch.open_items, ordered=False)
    existing = {cell["_id"] async for cell in database["cells"].find({"_id": {"$in": list(batch.cells)}}, {"_id": 1})}
    fresh = [
        {"_id": cell_id, **domain.Cell(*cell_id.split("|")).fields(), **counters, "updated_ms": stamp}
        for cell_id, counters in batch.cells.items()
        if cell_id not in existing
    ]
    if fresh:
        await database["cells"].insert_many(fresh, ordered=False)
    updates = [
        UpdateOne({"_id": cell_id}, {"$inc": counters, "$set": {"updated_ms": stamp}})
        for cell_id, counters in batch.cells.items()
        if cell_id in existing
    ]
    if updates:
        await database["cells"].bulk_write(updates, ordered=False)
