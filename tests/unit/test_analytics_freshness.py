"""Freshness: an event counts as visible only once a copy of the figures read after it was applied is served."""

from __future__ import annotations

from datetime import UTC, datetime

from heard_analytics.projection import Freshness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_applied_event_is_late_until_a_copy_read_after_it_is_served() -> None:
    clock = Clock()
    freshness = Freshness(clock)
    freshness.started("a", datetime.fromtimestamp(999.5, tz=UTC))
    clock.now = 1000.2
    freshness.applied("a")
    clock.now = 1000.5
    assert freshness.published(read_started_at=1000.1) == [], "that read began before the event was applied"
    assert freshness.lag_seconds() == 1.0, "the gauge shows the age of the event still waiting"
    clock.now = 1001.0
    assert freshness.published(read_started_at=1000.6) == [1.5]
    assert freshness.lag_seconds() == 1.5, "then the last lag, for a while"
    clock.now += Freshness.HOLD_SECONDS + 1
    assert freshness.lag_seconds() == 0.0, "an idle platform is not a late one"


def test_a_stuck_consumer_shows_a_growing_lag() -> None:
    clock = Clock()
    freshness = Freshness(clock)
    freshness.started("a", datetime.fromtimestamp(1000.0, tz=UTC))
    clock.now = 1030.0
    assert freshness.lag_seconds() == 30.0
    freshness.abandoned("a")  # a failed attempt; the redelivery starts it again
    assert freshness.published(read_started_at=clock.now) == []
