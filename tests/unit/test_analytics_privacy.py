"""Suppression: no count below the threshold can be recovered by subtraction, in one table or across the linked
tables every view is drawn from."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from heard_analytics import cube, facts, privacy
from heard_analytics.areas import Areas
from heard_shared.mongo import Document

ROOT = Path(__file__).resolve().parents[2]
RULES = privacy.PrivacyRules()


def areas() -> Areas:
    return Areas.load(ROOT / "config" / "population.yaml", ROOT / "config" / "precincts.geojson")


def city_cells(seed: int, items: int) -> dict[str, Document]:
    """A year of a city's cells, items spread at random over months, areas, kinds and categories."""
    rng = random.Random(seed)
    places = [(p, n) for p in areas().precinct_ids() for n in areas().neighbourhoods_of(p)]
    cells: dict[str, Document] = {}
    for _ in range(items):
        month = rng.randint(1, 12)
        precinct, neighbourhood = rng.choice(places)
        kind = rng.choices(facts.KINDS, weights=(4, 3, 1, 1, 2))[0]
        category = rng.choice(facts.CATEGORIES)
        key = f"2025-{month:02d}|{precinct}|{neighbourhood}|{kind}|{category}"
        cell = cells.setdefault(
            key,
            {"_id": key, **facts.Cell(f"2025-{month:02d}", precinct, neighbourhood, kind, category).fields()},
        )
        measures = ["submitted"]
        if rng.random() < 0.8:
            measures.append("answered")
        if rng.random() < 0.05:  # a contest has exactly one outcome: the table's equations must hold
            measures += ["contested", rng.choice(("contest_answered_again", "contest_withdrawn", "contest_pending"))]
        for measure in measures:
            cell[measure] = int(cell.get(measure, 0)) + 1
    return cells


def city_year(seed: int, items: int) -> cube.PublicYear:
    index = cube.CellIndex(areas(), RULES)
    index.update(city_cells(seed, items).values())
    return index.published(2025)


def test_a_lone_small_cell_gets_a_companion() -> None:
    table = np.array([40, 25, 12, 3], dtype=np.int64)  # total, then three parts
    status = privacy.suppress(table, [[(0, (1, 2, 3))]], threshold=10)
    assert status[3] == privacy.PRIMARY
    assert (status[1:] != privacy.SHOWN).sum() == 2, "a second part is withheld"
    assert status[2] == privacy.COMPLEMENTARY, "the smallest visible part is the one withheld"


def test_subtracting_the_visible_parts_from_the_total_recovers_nothing() -> None:
    table = np.array([40, 25, 12, 3], dtype=np.int64)
    status = privacy.suppress(table, [[(0, (1, 2, 3))]], threshold=10)
    shown = {i: int(v) for i, v in enumerate(table) if status[i] == privacy.SHOWN}
    remainder = shown[0] - sum(v for i, v in shown.items() if i)
    hidden = [i for i in range(1, 4) if status[i] != privacy.SHOWN]
    assert len(hidden) >= 2 and remainder == table[hidden].sum()  # the attacker learns only their sum


@pytest.mark.parametrize("zeros", [True, False])
def test_zeros_and_nines_cannot_be_pinned_either(zeros: bool) -> None:
    # 30 = 30 + 0 + 0: the remainder 0 would pin both small cells at 0; 48 = 30 + 9 + 9 would pin them at 9.
    table = np.array([30, 30, 0, 0] if zeros else [48, 30, 9, 9], dtype=np.int64)
    status = privacy.suppress(table, [[(0, (1, 2, 3))]], threshold=10)
    lo, hi = privacy.attack(table, status, [[(0, (1, 2, 3))]], 10)
    assert all(hi[i] - lo[i] >= 1 for i in (2, 3))


@pytest.mark.parametrize("seed", [1, 2])
def test_no_suppressed_count_in_any_view_can_be_recovered(seed: int) -> None:
    """The attack combines every equation of both linked tables (months, areas, kinds, categories, contests)."""
    year = city_year(seed, items=3000)
    (a_lo, a_hi), (b_lo, b_hi) = year.linked.attack(year.monthly_status, year.category_status, RULES.threshold)
    primary_a = year.monthly_status == privacy.PRIMARY
    primary_b = year.category_status == privacy.PRIMARY
    assert primary_a.any() and primary_b.any(), "the data has small cells to protect"
    assert not (primary_a & (a_hi - a_lo < 0.5)).any()
    assert not (primary_b & (b_hi - b_lo < 0.5)).any()
    # And the displayed figures never carry a number below the threshold.
    for table in (year.monthly, year.by_category):
        status = year.monthly_status if table is year.monthly else year.category_status
        assert not ((status == privacy.SHOWN) & (table < RULES.threshold)).any()


def test_a_filter_reads_the_same_suppressed_cell_as_the_breakdown() -> None:
    year = city_year(4, items=3000)
    for place in ("north", "north/Northgate", "central/Old Town"):
        for kind in ("all", "complaint", "praise"):
            by_filter = year.count("submitted", place=place, kind=kind)
            assert by_filter == privacy.count(*year.raw("submitted", place=place, kind=kind), RULES)
            assert by_filter.status != "shown" or (by_filter.value or 0) >= RULES.threshold


def test_shares_rates_and_statistics_need_enough_items() -> None:
    assert privacy.share(15, privacy.SHOWN, 19, privacy.SHOWN, RULES).status == "too_few"
    assert privacy.share(3, privacy.PRIMARY, 250, privacy.SHOWN, RULES) == privacy.Published("shown", 0.04, "below")
    bound = privacy.share(245, privacy.SHOWN, 250, privacy.SHOWN, RULES)
    assert bound.bound == "at_least" and bound.number() is None
    assert privacy.statistic(3600.0, 19, RULES).status == "too_few"
    assert privacy.rate_per(privacy.Published("shown", 12.0), 10000, RULES).status == "too_few"
    assert privacy.rate_per(privacy.WITHHELD, 10000, RULES).status == "withheld"


@pytest.mark.parametrize("seed", [5, 6])
def test_suppressing_again_only_what_changed_decides_what_starting_over_would(seed: int) -> None:
    """A new copy keeps the suppression of every measure whose counts did not change and decides the changed ones
    again together: the result is the decision made from scratch."""
    rng = random.Random(seed)
    index = cube.CellIndex(areas(), RULES)
    cells = city_cells(seed, items=3000)
    index.update(cells.values())
    earlier = index.published(2025)
    for _ in range(4):
        changed = [dict(cell) for cell in rng.sample(sorted(cells.values(), key=lambda c: c["_id"]), 20)]
        for cell in changed:
            for measure in ("submitted", "answered"):  # the other measures keep their counts
                cell[measure] = max(0, int(cell.get(measure, 0)) + rng.randint(-2, 6))
            cells[cell["_id"]] = cell
        index.update(changed)
        again, afresh = index.published(2025, earlier), index.published(2025)
        assert np.array_equal(again.monthly_status, afresh.monthly_status)
        assert np.array_equal(again.category_status, afresh.category_status)
        earlier = again
