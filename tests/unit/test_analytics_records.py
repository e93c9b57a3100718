"""The item-level file: counting its rows, alone or together with the published tables, recovers no suppressed count.

The attacker reads every row, works out for each cell of both tables how many rows certainly count in it and how many
may, and feeds those bounds into interval propagation through every equation of the linked tables. The same attacker
recovers suppressed counts from a file that shows every item as it is, so the attack is not a straw man.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from heard_analytics import cube, facts, privacy, records
from heard_analytics.areas import Areas
from heard_analytics.records import SUPPRESSED
from heard_shared.mongo import Document

ROOT = Path(__file__).resolve().parents[2]
YEAR = 2025
NOW = datetime(YEAR + 1, 1, 15, tzinfo=UTC)
KEY = b"a-test-key-of-16-bytes"
DAY_MS = 86_400_000
Mask = npt.NDArray[np.bool_]
# Measures a row tells something about, and how: (column, value meaning 1, values meaning 0; anything else unknown).
ROW_MEASURES: dict[str, tuple[str, set[str], set[str]]] = {
    "submitted": ("", set(), set()),
    "negative": ("severity", {"negative"}, {"not_negative"}),
    "open": ("outcome", {"open"}, {"answered", "withdrawn"}),
    "withdrawn": ("outcome", {"withdrawn"}, {"open", "answered"}),
    "closed": ("outcome", {"answered"}, {"withdrawn"}),  # an open item may have been closed, then contested
    **{stage: (f"days_to_{stage}", set(), {""}) for stage in records.STAGES if stage != "closed"},
}


def areas() -> Areas:
    return Areas.load(ROOT / "config" / "population.yaml", ROOT / "config" / "precincts.geojson")


def city_items(seed: int, count: int) -> list[dict[str, Any]]:
    """Item facts as the read model keeps them, with many small cells: uneven areas, kinds and categories."""
    rng = random.Random(seed)
    places = [(p, n) for p in areas().precinct_ids() for n in areas().neighbourhoods_of(p)]
    place_weights = [rng.choice((1, 2, 8, 20)) for _ in places]
    items = []
    for i in range(count):
        month = rng.randint(1, 12)
        submitted = datetime(YEAR, month, rng.randint(1, 28), rng.randint(0, 23), tzinfo=UTC)
        at = int(submitted.timestamp() * 1000)
        precinct, neighbourhood = rng.choices(places, weights=place_weights)[0]
        kind = rng.choices(facts.KINDS, weights=(6, 3, 1, 1, 3))[0]
        negative = kind in ("complaint", "concern") or rng.random() < 0.05
        item: dict[str, Any] = {
            "_id": f"item-{seed}-{i:05d}",
            "submitted_at": at,
            "month": f"{YEAR}-{month:02d}",
            "precinct": precinct,
            "neighbourhood": neighbourhood,
            "kind": kind,
            "category": rng.choices(facts.CATEGORIES, weights=(5, 4, 2, 2, 1, 1, 3))[0],
            "severity": "negative" if negative else "neutral",
            "negative": 1 if negative else 0,
            "channel": "web",
        }
        if negative:
            item |= {"deadlines_routed_at": at, "acknowledge_by": at + DAY_MS, "answer_by": at + 5 * DAY_MS}
        if rng.random() < 0.85:
            item["acknowledged_at"] = item["last_acknowledged_at"] = at + int(rng.expovariate(1 / DAY_MS))
        if rng.random() < 0.75:
            item["answered_at"] = item["last_answered_at"] = at + int(rng.expovariate(1 / (4 * DAY_MS)))
        if negative and rng.random() < 0.3:
            levels = rng.choices((1, 2, 3, 4), weights=(8, 4, 2, 1))[0]
            item["reached"] = {str(level): at + level * 2 * DAY_MS for level in range(1, levels + 1)}
            item["level"] = levels
            if "acknowledged_at" not in item:
                item["acknowledge_missed"] = item["acknowledge_by"]
        if "answered_at" in item and rng.random() < 0.8:
            item |= {"closed_at": item["answered_at"] + DAY_MS, "resolution": "answered"}
            if rng.random() < 0.06:
                item["contested_at"] = item["last_reopened_at"] = item["closed_at"] + DAY_MS
        elif rng.random() < 0.08:
            item |= {"closed_at": at + 2 * DAY_MS, "resolution": "withdrawn"}
        items.append(item)
    return items


def publish(items: list[dict[str, Any]], threshold: int = 10) -> cube.PublicYear:
    rules = privacy.PrivacyRules(threshold, max(20, threshold))
    index = cube.CellIndex(areas(), rules)
    cells: dict[str, Document] = {}
    for item in items:
        for cell_id, counters in facts.contribution(item).items():
            cell = cells.setdefault(cell_id, {"_id": cell_id, **facts.cell_of(item).fields()})  # type: ignore[union-attr]
            for name, value in counters.items():
                cell[name] = int(cell.get(name, 0)) + value
    index.update(cells.values())
    return index.published(YEAR)


def release(items: list[dict[str, Any]], year: cube.PublicYear) -> list[dict[str, str]]:
    collected = records.YearItems(YEAR)
    for item in items:
        collected.add(item)
    out = records.release(collected, year, now=NOW, key=KEY)
    names = [column.name for column in records_columns()]
    return [dict(zip(names, row, strict=True)) for row in out.rows]


def records_columns() -> tuple[Any, ...]:
    from heard_analytics.opendata import ITEM_COLUMNS

    return ITEM_COLUMNS


def naive_rows(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every item as it is, month and all: what the file must not be."""
    rows = []
    for item in items:
        moments = facts.stage_moments(item)
        rows.append(
            {
                "submitted_month": str(item["month"]),
                "precinct": str(item["precinct"]),
                "neighbourhood": str(item["neighbourhood"]),
                "kind": str(item["kind"]),
                "category": str(item["category"]),
                "severity": records.SEVERITIES[int(item["negative"])],
                "outcome": facts.outcome(item),
                **{
                    f"days_to_{stage}": "" if moment is None else "1.0"
                    for stage, moment in moments.items()
                    if stage != "closed"
                },
            }
        )
    return rows


# --- the attacker -------------------------------------------------------------------------------------------------


class Attacker:
    """Bounds on every count of both tables from counting rows, then the tables' own equations on top."""

    def __init__(self, year: cube.PublicYear) -> None:
        self.year = year
        self.place_leaves = year.places.matrix().astype(bool)  # node × leaf
        self.category_leaves = year.categories.matrix().astype(bool)
        self.measures = {name: i for i, name in enumerate(cube.MEASURES)}

    def _place_masks(self, precinct: str, neighbourhood: str) -> tuple[Mask, Mask]:
        if neighbourhood != SUPPRESSED:
            label = self.year.places.index[cube.place_key(precinct, neighbourhood)]
        elif precinct != SUPPRESSED:
            label = self.year.places.index[precinct]
        else:
            label = self.year.places.index[cube.ALL]
        return _within(self.place_leaves, self.place_leaves[label])

    def _time_masks(self, month: str) -> tuple[Mask, Mask]:
        certain = np.zeros(13, dtype=bool)
        certain[12] = True
        if len(month) == 7:
            certain[int(month[5:7]) - 1] = True
            return certain, certain
        return certain, np.ones(13, dtype=bool)

    def _kind_masks(self, kind: str, category: str) -> tuple[Mask, Mask, Mask, Mask]:
        kinds = self.year.kinds.index
        k_certain = np.zeros(len(kinds), dtype=bool)
        k_certain[kinds[cube.ALL]] = True
        if kind != SUPPRESSED:
            k_certain[kinds[kind]] = True
            k_possible = k_certain
        else:
            k_possible = np.ones(len(kinds), dtype=bool)
        categories = self.year.categories.index
        if category != SUPPRESSED:
            leaf = self.category_leaves[categories[f"{kind}/{category}"]]
        elif kind != SUPPRESSED:
            leaf = self.category_leaves[categories[kind]]
        else:
            leaf = self.category_leaves[categories[cube.ALL]]
        return (k_certain, k_possible, *_within(self.category_leaves, leaf))

    def count_rows(self, rows: list[dict[str, str]]) -> tuple[privacy.Bounds, privacy.Bounds]:
        """What counting rows alone says of every count of the monthly and the category table."""
        year = self.year
        a_lo, a_hi = np.zeros(year.monthly.shape), np.full(year.monthly.shape, np.inf)
        b_lo, b_hi = np.zeros(year.by_category.shape), np.full(year.by_category.shape, np.inf)
        told = [self.measures[name] for name in ROW_MEASURES]
        a_hi[told], b_hi[told] = 0.0, 0.0
        columns = ["submitted_month", "precinct", "neighbourhood", "kind", "category"]
        signatures = Counter(
            (tuple(row[c] for c in columns), tuple(self._value(row, name) for name in ROW_MEASURES)) for row in rows
        )
        for (labels, values), n in signatures.items():
            month, precinct, neighbourhood, kind, category = labels
            t_c, t_p = self._time_masks(month)
            p_c, p_p = self._place_masks(precinct, neighbourhood)
            k_c, k_p, c_c, c_p = self._kind_masks(kind, category)
            for m, value in zip(told, values, strict=True):
                if value == 1:
                    a_lo[m] += n * np.einsum("t,p,k->tpk", t_c, p_c, k_c)
                    b_lo[m] += n * np.einsum("p,c->pc", p_c, c_c)
                if value != 0:
                    a_hi[m] += n * np.einsum("t,p,k->tpk", t_p, p_p, k_p)
                    b_hi[m] += n * np.einsum("p,c->pc", p_p, c_p)
        return (a_lo, a_hi), (b_lo, b_hi)

    @staticmethod
    def _value(row: dict[str, str], measure: str) -> int | None:
        column, ones, zeros = ROW_MEASURES[measure]
        if not column:
            return 1
        value = row[column]
        if value in ones or (not ones and value not in zeros and value != SUPPRESSED):
            return 1
        return 0 if value in zeros else None

    def with_tables(self, known: tuple[privacy.Bounds, privacy.Bounds]) -> tuple[privacy.Bounds, privacy.Bounds]:
        """Interval propagation through every equation of both tables, starting from what the rows told."""
        year, linked, k = self.year, self.year.linked, self.year.rules.threshold
        (a_known, b_known) = known
        a = privacy.attack(year.monthly, year.monthly_status, linked.a_groups, k, a_known)
        for _ in range(privacy.MAX_ROUNDS):
            b_lo, b_hi = b_known[0].copy(), b_known[1].copy()
            b_lo[linked.b_index] = np.maximum(b_lo[linked.b_index], a[0][linked.a_index])
            b_hi[linked.b_index] = np.minimum(b_hi[linked.b_index], a[1][linked.a_index])
            b = privacy.attack(year.by_category, year.category_status, linked.b_groups, k, (b_lo, b_hi))
            a_lo, a_hi = a[0].copy(), a[1].copy()
            a_lo[linked.a_index] = np.maximum(a_lo[linked.a_index], b[0][linked.b_index])
            a_hi[linked.a_index] = np.minimum(a_hi[linked.a_index], b[1][linked.b_index])
            if np.array_equal(a_lo, a[0]) and np.array_equal(a_hi, a[1]):
                return a, b
            a = privacy.attack(year.monthly, year.monthly_status, linked.a_groups, k, (a_lo, a_hi))
        raise AssertionError("the attack did not settle")

    def recovered(self, bounds: tuple[privacy.Bounds, privacy.Bounds]) -> Iterator[str]:
        """Every suppressed count the bounds pin to one value."""
        for name, values, status, (lo, hi) in (
            ("monthly", self.year.monthly, self.year.monthly_status, bounds[0]),
            ("category", self.year.by_category, self.year.category_status, bounds[1]),
        ):
            assert (lo <= values + 1e-9).all() and (values <= hi + 1e-9).all(), "the bounds must hold"
            for where in zip(*np.nonzero((status == privacy.PRIMARY) & (hi - lo < 0.5)), strict=True):
                yield f"{name}{tuple(int(i) for i in where)} = {int(values[where])}"


def _within(nodes: Mask, leaves: Mask) -> tuple[Mask, Mask]:
    """Nodes (rows of `nodes`, node × leaf) that certainly, and that possibly, hold an item under `leaves`."""
    return np.asarray(nodes[:, leaves].all(axis=1), dtype=bool), np.asarray(nodes[:, leaves].any(axis=1), dtype=bool)


@pytest.fixture(scope="module")
def city() -> tuple[list[dict[str, Any]], cube.PublicYear, list[dict[str, str]]]:
    items = city_items(seed=7, count=4000)
    year = publish(items)
    return items, year, release(items, year)


def test_the_attack_recovers_suppressed_counts_from_a_file_of_raw_items(
    city: tuple[list[dict[str, Any]], cube.PublicYear, list[dict[str, str]]],
) -> None:
    items, year, _ = city
    attacker = Attacker(year)
    alone = attacker.count_rows(naive_rows(items))
    assert len(list(attacker.recovered(alone))) > 100


def test_counting_rows_recovers_no_suppressed_count_alone_or_with_the_tables(
    city: tuple[list[dict[str, Any]], cube.PublicYear, list[dict[str, str]]],
) -> None:
    items, year, rows = city
    attacker = Attacker(year)
    assert (year.monthly_status == privacy.PRIMARY).any() and (year.category_status == privacy.PRIMARY).any()
    alone = attacker.count_rows(rows)
    assert list(attacker.recovered(alone)) == []
    assert list(attacker.recovered(attacker.with_tables(alone))) == []
    # ...and the file still says something: most rows keep their month and kind, many their place and category.
    assert len(rows) >= 0.95 * len(items)
    assert sum(len(r["submitted_month"]) == 7 for r in rows) >= 0.8 * len(rows)
    assert sum(r["neighbourhood"] != SUPPRESSED for r in rows) >= 0.3 * len(rows)
    assert sum(r["category"] != SUPPRESSED for r in rows) >= 0.02 * len(rows)


def test_every_combination_of_place_time_kind_category_severity_and_outcome_is_shared_by_k_rows(
    city: tuple[list[dict[str, Any]], cube.PublicYear, list[dict[str, str]]],
) -> None:
    _, year, rows = city
    quasi = ("submitted_month", "precinct", "neighbourhood", "kind", "category", "severity", "outcome")
    sizes = Counter(tuple(row[c] for c in quasi) for row in rows)
    assert min(sizes.values()) >= year.rules.threshold


def test_a_row_names_no_area_month_kind_or_category_whose_count_is_suppressed(
    city: tuple[list[dict[str, Any]], cube.PublicYear, list[dict[str, str]]],
) -> None:
    _, year, rows = city
    submitted = cube.MEASURE_INDEX["submitted"]
    for row in rows:
        month = row["submitted_month"]
        t = year.months.index[month if len(month) == 7 else cube.YEAR]
        place = (
            cube.place_key(row["precinct"], row["neighbourhood"])
            if row["neighbourhood"] != SUPPRESSED
            else row["precinct"]
            if row["precinct"] != SUPPRESSED
            else cube.ALL
        )
        p = year.places.index[place]
        k = year.kinds.index[row["kind"] if row["kind"] != SUPPRESSED else cube.ALL]
        assert year.monthly_status[submitted, t, p, k] == privacy.SHOWN, row
        if row["category"] != SUPPRESSED:
            c = year.categories.index[f"{row['kind']}/{row['category']}"]
            assert year.category_status[submitted, p, c] == privacy.SHOWN, row


def test_with_a_threshold_of_one_every_item_is_shown_as_it_is() -> None:
    items = city_items(seed=3, count=300)
    rows = release(items, publish(items, threshold=1))
    assert len(rows) == len(items)
    assert not any(SUPPRESSED in row.values() for row in rows)
    assert sorted(Counter((r["submitted_month"], r["neighbourhood"], r["category"]) for r in rows).items()) == sorted(
        Counter((str(i["month"]), str(i["neighbourhood"]), str(i["category"])) for i in items).items()
    )


def test_row_ids_change_when_the_figures_do() -> None:
    items = city_items(seed=5, count=200)
    year = publish(items)
    first = {row["id"] for row in release(items, year)}
    assert first == {row["id"] for row in release(items, year)}, "stable while the figures are"
    later = publish(items + city_items(seed=6, count=1))
    assert not first & {row["id"] for row in release(items, later)}


def test_no_item_of_a_tiny_year_is_published() -> None:
    items = city_items(seed=9, count=6)
    assert release(items, publish(items)) == []


def test_a_category_is_named_only_where_its_rows_add_up_to_its_published_yearly_count(
    city: tuple[list[dict[str, Any]], cube.PublicYear, list[dict[str, str]]],
) -> None:
    """Otherwise the yearly count less the named rows would tell how many of that category hide in the other months."""
    _, year, rows = city
    submitted = cube.MEASURE_INDEX["submitted"]
    named = Counter(
        (r["precinct"], r["neighbourhood"], r["kind"], r["category"]) for r in rows if r["category"] != SUPPRESSED
    )
    assert named
    for (precinct, neighbourhood, kind, category), count in named.items():
        p = year.places.index[cube.place_key(precinct, neighbourhood)]
        assert count == year.by_category[submitted, p, year.categories.index[f"{kind}/{category}"]]
        same_area = [
            r for r in rows if (r["precinct"], r["neighbourhood"], r["kind"]) == (precinct, neighbourhood, kind)
        ]
        assert len(same_area) == year.by_category[submitted, p, year.categories.index[kind]], "no month left out"
