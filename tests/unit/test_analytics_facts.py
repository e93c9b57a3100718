"""The read model's pure core: an item's facts do not depend on how often or in which order its events arrive, and
what it adds to the statistics follows the published definitions. Also: the area files agree with each other."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from heard_analytics import facts, histogram
from heard_analytics.areas import UNKNOWN_PRECINCT, UNSPECIFIED, Areas, Place
from heard_shared import events as ev
from heard_shared.events import CloudEvent, PublicLocation
from tests.analytics_events import lifecycle

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2025, 3, 2, 9, tzinfo=UTC)
DAY = 86_400_000


def areas() -> Areas:
    return Areas.load(ROOT / "config" / "population.yaml", ROOT / "config" / "precincts.geojson")


def fold(events: list[CloudEvent[Any]]) -> facts.Facts:
    state: facts.Facts = {}
    for event in events:
        state = facts.merge(state, event, areas())
    return state


# --- order and repetition ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(variant=st.integers(0, 19), data=st.data())
def test_facts_and_contribution_do_not_depend_on_order_or_repetition(variant: int, data: st.DataObject) -> None:
    events = lifecycle("item-1", "Northgate", START, variant)
    shuffled = data.draw(st.permutations(events))
    repeated = data.draw(st.lists(st.sampled_from(events), max_size=6))
    assert fold(list(shuffled) + repeated) == fold(events)
    assert facts.contribution(fold(list(shuffled))) == facts.contribution(fold(events))
    assert facts.overdue_entry(fold(list(shuffled))) == facts.overdue_entry(fold(events))


def test_an_event_already_known_changes_nothing() -> None:
    events = lifecycle("item-2", "Old Town", START, 1)
    state = fold(events)
    for event in events:
        assert facts.merge(state, event, areas()) == state


def test_contribution_differences_move_counters_exactly_once() -> None:
    events = lifecycle("item-3", "Southport", START, 3)
    applied: dict[str, facts.Counters] = {}
    totals: dict[str, dict[str, int]] = {}
    state: facts.Facts = {}
    for event in events + events[::-1]:
        state = facts.merge(state, event, areas())
        desired = facts.contribution(state)
        for cell, change in facts.difference(desired, applied).items():
            for name, value in change.items():
                totals.setdefault(cell, {})[name] = totals.get(cell, {}).get(name, 0) + value
        applied = desired
    assert {cell: {k: v for k, v in counters.items() if v} for cell, counters in totals.items()} == applied


# --- what an item counts as ----------------------------------------------------------------------------------


def test_an_answered_contested_item_counts_each_stage_once_with_its_time() -> None:
    state = fold(lifecycle("item-4", "Northgate", START, 1))  # variant 1: answered, closed, then contested
    ((cell, counters),) = facts.contribution(state).items()
    assert cell == "2025-03|north|Northgate|complaint|response_time"
    assert counters["submitted"] == counters["negative"] == counters["acknowledged"] == 1
    assert counters["answered"] == counters["closed"] == counters["contested"] == counters["contest_pending"] == 1
    assert counters["open"] == 1, "a contest reopens the item"
    assert counters["escalated_1"] == 1, "reopened one level up"
    answered_after = (state["answered_at"] - state["submitted_at"]) / 1000
    assert counters[facts.histogram_field("answered", histogram.bin_of(answered_after))] == 1
    assert counters["answer_due"] == counters["answered_in_time"] == 1


def test_allegations_are_counted_each_and_once_per_item() -> None:
    counters = facts.contribution(fold(lifecycle("item-a", "Northgate", START, 1)))  # force and discourtesy
    ((counters_of_cell),) = counters.values()
    assert counters_of_cell["with_allegation"] == 1
    assert counters_of_cell["allegation_force"] == counters_of_cell["allegation_discourtesy"] == 1
    assert not any(
        name.startswith("allegation_") and name not in ("allegation_force", "allegation_discourtesy")
        for name in counters_of_cell
    )
    plain = facts.contribution(fold(lifecycle("item-b", "Northgate", START, 3)))
    assert not any("allegation" in name for counters in plain.values() for name in counters)


@pytest.mark.parametrize(
    ("variant", "triaged", "lowered"), [(0, True, True), (1, True, False), (3, False, False), (4, True, True)]
)
def test_triage_counts_the_items_a_person_triaged_and_those_it_lowered(
    variant: int, triaged: bool, lowered: bool
) -> None:
    ((counters),) = facts.contribution(fold(lifecycle("item-t", "Northgate", START, variant))).values()
    assert counters.get("triaged", 0) == int(triaged)
    assert counters.get("lowered_at_triage", 0) == int(lowered)


def test_the_latest_triage_decides_and_neutral_to_positive_lowers_nothing() -> None:
    events = lifecycle("item-l", "Northgate", START, 0)  # lowered from negative to neutral at hour 1
    first = next(e for e in events if e.type == ev.TRIAGED.event_type)
    raised_back = first.model_copy(
        update={
            "id": "item-l-triaged-again",
            "data": first.data.model_copy(
                update={"decision": "raised", "severity": "negative", "triaged_at": START + timedelta(hours=2)}
            ),
        }
    )
    ((counters),) = facts.contribution(fold([*events, raised_back])).values()
    assert counters["triaged"] == 1 and "lowered_at_triage" not in counters
    assert fold([raised_back, *events]) == fold([*events, raised_back])
    to_positive = first.model_copy(update={"data": first.data.model_copy(update={"severity": "positive"})})
    neutral_item = [
        e.model_copy(update={"data": e.data.model_copy(update={"severity": "neutral", "negative": False})})
        if e.type == ev.SUBMITTED.event_type
        else e
        for e in events
        if e.type != ev.TRIAGED.event_type
    ]
    ((counters),) = facts.contribution(fold([*neutral_item, to_positive])).values()
    assert counters["triaged"] == 1 and "lowered_at_triage" not in counters


def test_a_withdrawal_is_counted_as_such_and_never_as_a_closing_time() -> None:
    state = fold(lifecycle("item-5", "Northgate", START, 4))  # variant 4: withdrawn
    counters = facts.contribution(state)[facts.cell_of(state).id]  # type: ignore[union-attr]
    assert counters["withdrawn"] == 1
    assert "closed" not in counters and not any(name.startswith("t_closed_") for name in counters)
    assert "open" not in counters
    assert "answer_due" not in counters, "withdrawn before the answer deadline: the deadline is not decided"
    assert facts.outcome(state) == "withdrawn"


def test_deadlines_count_once_decided_in_time_late_or_missed() -> None:
    base: facts.Facts = {"submitted_at": 0, "month": "2025-01", "precinct": "north", "neighbourhood": "Northgate"}
    base |= {"kind": "complaint", "category": "none", "acknowledge_by": 10 * DAY, "answer_by": 20 * DAY}

    def counted(**more: Any) -> dict[str, int]:
        ((_, counters),) = facts.contribution(base | more).items()
        return {k: v for k, v in counters.items() if k.endswith(("_due", "_in_time"))}

    assert counted() == {}, "nothing decided yet"
    assert counted(acknowledged_at=DAY) == {"acknowledge_due": 1, "acknowledged_in_time": 1}
    assert counted(acknowledged_at=11 * DAY) == {"acknowledge_due": 1}
    assert counted(acknowledge_missed=10 * DAY, answer_missed=20 * DAY) == {"acknowledge_due": 1, "answer_due": 1}


def test_overdue_right_now_follows_the_current_round() -> None:
    state = fold(lifecycle("item-6", "Northgate", START, 0)[:3])  # submitted, routed, acknowledged
    entry = facts.overdue_entry(state)
    assert entry is not None and entry["due"] == state["answer_by"] and entry["level"] == 0
    answered = ev.new_event(
        ev.ANSWERED,
        ev.FeedbackAnsweredV1(feedback_id="item-6", answer="done", answered_at=START + timedelta(days=1)),
        source="urn:test",
        subject="item-6",
    )
    assert facts.overdue_entry(facts.merge(state, answered, areas())) is None
    contested = fold(lifecycle("item-7", "Northgate", START, 1))
    entry = facts.overdue_entry(contested)
    assert entry is not None and entry["due"] == contested["round_acknowledge_by"], "the contest's own deadlines"


@pytest.mark.parametrize(
    ("written", "public"),
    [(None, "none"), ("", "none"), ("Response time", "response_time"), ("TRAFFIC", "traffic"), ("my car", "other")],
)
def test_a_category_is_published_only_from_the_vocabulary(written: str | None, public: str) -> None:
    assert facts.public_category(written) == public


# --- areas ---------------------------------------------------------------------------------------------------


def test_a_place_is_a_precinct_and_a_listed_neighbourhood_or_unspecified() -> None:
    city = areas()
    assert city.locate(PublicLocation(neighbourhood="  northgate ")) == Place("north", "Northgate")
    assert city.locate(PublicLocation(neighbourhood="Elm Street 12")) == Place(UNKNOWN_PRECINCT, UNSPECIFIED)
    assert city.locate(None) == Place(UNKNOWN_PRECINCT, UNSPECIFIED)
    north = city.precincts["north"].geometry
    assert north is not None
    inside = north.representative_point()
    # Coordinates decide the precinct; a neighbourhood of another precinct is then not kept.
    located = city.locate(PublicLocation(latitude=inside.y, longitude=inside.x, neighbourhood="Old Town"))
    assert located == Place("north", UNSPECIFIED)


def test_the_population_file_covers_exactly_the_mapped_precincts_and_the_neighbourhoods_routing_knows() -> None:
    population = yaml.safe_load((ROOT / "config" / "population.yaml").read_text())
    shapes = {
        feature["properties"]["area"]
        for feature in yaml.safe_load((ROOT / "config" / "precincts.geojson").read_text())["features"]
    }
    assert set(population["precincts"]) == shapes
    rules = yaml.safe_load((ROOT / "config" / "routing-rules.yaml").read_text())["rules"]
    routed = {
        area: set(rule["match"]["neighbourhoods"])
        for rule in rules
        for area in rule["match"].get("areas", [])
        if rule["match"].get("neighbourhoods")
    }
    listed = {precinct: set(p["neighbourhoods"]) for precinct, p in population["precincts"].items()}
    assert routed == listed
