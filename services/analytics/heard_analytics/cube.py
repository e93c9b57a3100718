"""A year of cells as two linked tables, with every total the public can ask for, suppressed once for all views.

What can be published for a year is fixed, whatever the filters: the monthly table (month or the whole year ×
area × kind) and the category table (the whole year × area × category of each kind). Every view — a filter of
area and kind, a breakdown, a trend — reads cells of these two tables, so one suppression decision covers all
views, and asking for another filter can never uncover a cell by difference. Months are never crossed with
categories, so those small cells are never published at all.

The arrays are kept up to date from changed cell documents (add the new counters, subtract the old), so a request
never reads the whole history, and a year's tables are suppressed again only when its counters changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from heard_analytics import facts as domain
from heard_analytics import histogram, privacy
from heard_analytics.areas import CITY, UNKNOWN_PRECINCT, UNSPECIFIED, Areas
from heard_shared.mongo import Document

ALL = "all"
YEAR = "year"
MEASURES: tuple[str, ...] = domain.COUNTERS
MEASURE_INDEX = {name: i for i, name in enumerate(MEASURES)}
STAGES: tuple[str, ...] = domain.TIMED_STAGES
STAGE_INDEX = {name: i for i, name in enumerate(STAGES)}
BINS = histogram.MAX_BIN + 1
# The outcomes of a contest add up to the contests: an equation like any total.
MEASURE_GROUPS: list[privacy.Group] = [
    (
        MEASURE_INDEX["contested"],
        tuple(MEASURE_INDEX[m] for m in ("contest_answered_again", "contest_withdrawn", "contest_pending")),
    )
]


@dataclass(frozen=True)
class Axis:
    """Nodes of one dimension: the leaves cells are counted in, then the totals built from them."""

    nodes: tuple[str, ...]
    leaves: int
    groups: tuple[privacy.Group, ...]

    @cached_property
    def index(self) -> dict[str, int]:
        """Node → position; made once per axis (every figure a request reads looks its nodes up here)."""
        return {node: i for i, node in enumerate(self.nodes)}

    def matrix(self) -> npt.NDArray[np.int64]:
        """nodes × leaves: 1 where the node includes the leaf."""
        result = np.zeros((len(self.nodes), self.leaves), dtype=np.int64)
        for i in range(self.leaves):
            result[i, i] = 1
        for parent, children in sorted(self.groups):  # parents come after their children
            for child in children:
                result[parent] |= result[child]
        return result


def _hierarchy(leaf_groups: Sequence[tuple[str, Sequence[str]]]) -> Axis:
    """Leaves grouped under parents, and every parent under ALL."""
    leaves = [leaf for _, group in leaf_groups for leaf in group]
    nodes = [*leaves, *(parent for parent, _ in leaf_groups), ALL]
    index = {node: i for i, node in enumerate(nodes)}
    groups = [(index[parent], tuple(index[leaf] for leaf in group)) for parent, group in leaf_groups]
    groups.append((index[ALL], tuple(index[parent] for parent, _ in leaf_groups)))
    return Axis(tuple(nodes), len(leaves), tuple(groups))


def month_axis(year: int) -> Axis:
    months = tuple(f"{year:04d}-{m:02d}" for m in range(1, 13))
    return Axis((*months, YEAR), 12, ((12, tuple(range(12))),))


def place_axis(areas: Areas) -> Axis:
    """Neighbourhoods ("precinct/neighbourhood") under precincts under the city."""
    return _hierarchy([(p, [place_key(p, n) for n in areas.neighbourhoods_of(p)]) for p in areas.precinct_ids()])


def kind_axis() -> Axis:
    return Axis((*domain.KINDS, ALL), len(domain.KINDS), ((len(domain.KINDS), tuple(range(len(domain.KINDS)))),))


def category_axis() -> Axis:
    return _hierarchy([(k, [f"{k}/{c}" for c in domain.CATEGORIES]) for k in domain.KINDS])


def place_key(precinct: str, neighbourhood: str | None = None) -> str:
    if precinct == CITY:
        return ALL
    return precinct if neighbourhood is None else f"{precinct}/{neighbourhood}"


@dataclass
class YearTables:
    """Leaf counters of one year, kept in step with its cell documents."""

    year: int
    areas: Areas
    months: Axis = field(init=False)
    places: Axis = field(init=False)
    kinds: Axis = field(init=False)
    categories: Axis = field(init=False)
    counts: npt.NDArray[np.int64] = field(init=False)  # measure × month × place leaf × category leaf
    # stage × month × place leaf × category leaf × bin; floats so that aggregation runs in BLAS (counts stay exact
    # up to 2^53, far beyond any city's volume)
    times: npt.NDArray[np.float64] = field(init=False)
    version: int = 0

    def __post_init__(self) -> None:
        self.months = month_axis(self.year)
        self.places = place_axis(self.areas)
        self.kinds = kind_axis()
        self.categories = category_axis()
        self._place_leaf = self.places.index
        self._category_leaf = self.categories.index
        shape = (12, self.places.leaves, self.categories.leaves)
        self.counts = np.zeros((len(MEASURES), *shape), dtype=np.int64)
        self.times = np.zeros((len(STAGES), *shape, BINS), dtype=np.float64)

    def position(self, cell: Document) -> tuple[int, int, int] | None:
        month = int(str(cell["month"])[5:7]) - 1
        precinct, neighbourhood = str(cell["precinct"]), str(cell["neighbourhood"])
        place = self._place_leaf.get(place_key(precinct, neighbourhood))
        if place is None:  # the area file changed since: count it where it now belongs
            fallback = precinct if precinct in self.areas.precincts else UNKNOWN_PRECINCT
            place = self._place_leaf[place_key(fallback, UNSPECIFIED)]
        category = self._category_leaf.get(f"{cell['kind']}/{domain.public_category(str(cell['category']))}")
        if category is None:
            return None
        return month, place, category

    def add(self, cells: Iterable[tuple[Document, int]]) -> None:
        """Adds (sign +1) or takes away (sign -1) each cell's counters, in one pass over numpy."""
        counts: list[list[int]] = [[], [], [], [], []]
        times: list[list[int]] = [[], [], [], [], [], []]
        for cell, sign in cells:
            where = self.position(cell)
            if where is None:
                continue
            month, place, category = where
            for name, value in cell.items():
                if not isinstance(value, int) or isinstance(value, bool):
                    continue
                if (measure := MEASURE_INDEX.get(name)) is not None:
                    for column, item in zip(counts, (measure, month, place, category, sign * value), strict=True):
                        column.append(item)
                elif (timed := domain.parse_histogram_field(name)) is not None:
                    stage, index = timed
                    entry = (STAGE_INDEX[stage], month, place, category, min(index, BINS - 1), sign * value)
                    for column, item in zip(times, entry, strict=True):
                        column.append(item)
        np.add.at(
            self.counts, tuple(np.asarray(c, dtype=np.intp) for c in counts[:4]), np.asarray(counts[4], dtype=np.int64)
        )
        np.add.at(
            self.times, tuple(np.asarray(c, dtype=np.intp) for c in times[:5]), np.asarray(times[5], dtype=np.int64)
        )
        self.version += 1


class PublicYear:
    """Everything publishable about one year, suppressed: counts, shares and duration statistics by node."""

    def __init__(self, tables: YearTables, rules: privacy.PrivacyRules) -> None:
        self.year = tables.year
        self.version = tables.version
        self.rules = rules
        self.months, self.places, self.kinds, self.categories = (
            tables.months,
            tables.places,
            tables.kinds,
            tables.categories,
        )
        t, p, c = tables.months.matrix(), tables.places.matrix(), tables.categories.matrix()
        kind_of_category = np.zeros((len(domain.KINDS), tables.categories.leaves), dtype=np.int64)
        for k in range(len(domain.KINDS)):
            kind_of_category[k, k * len(domain.CATEGORIES) : (k + 1) * len(domain.CATEGORIES)] = 1
        kinds = tables.kinds.matrix() @ kind_of_category  # kind node × category leaf
        # The monthly table: measure × (months, year) × place node × kind node.
        self.monthly = np.einsum("mtpc,Tt,Pp,Kc->mTPK", tables.counts, t, p, kinds, optimize=True)
        # The category table: measure × place node × category node, for the whole year.
        self.by_category = np.einsum("mtpc,Pp,Cc->mPC", tables.counts, p, c, optimize=True)
        # Durations: only the bins in use (a few dozen of the 131), then categories folded into kinds first (the
        # big axis), then places, then months.
        used = np.flatnonzero(tables.times.any(axis=(0, 1, 2, 3)))
        self.first_bin = int(used[0]) if used.size else 0
        times = tables.times[..., self.first_bin : (int(used[-1]) + 1 if used.size else 0)]
        p, c = p.astype(np.float64), c.astype(np.float64)
        by_kind = times.reshape(*times.shape[:3], len(domain.KINDS), len(domain.CATEGORIES), times.shape[-1])
        by_kind = by_kind.sum(axis=4)  # stage × month × place leaf × kind × bin
        by_kind = np.concatenate([by_kind, by_kind.sum(axis=3, keepdims=True)], axis=3)  # + all kinds
        by_kind = np.tensordot(p, by_kind, axes=([1], [2])).transpose(1, 2, 0, 3, 4)  # place nodes
        self.monthly_times = np.concatenate([by_kind, by_kind.sum(axis=1, keepdims=True)], axis=1)  # + the year
        year_times = times.sum(axis=1)  # stage × place leaf × category leaf × bin
        year_times = np.tensordot(p, year_times, axes=([1], [1])).transpose(1, 0, 2, 3)
        self.category_times = np.tensordot(c, year_times, axes=([1], [2])).transpose(1, 2, 0, 3)
        year = tables.months.index[YEAR]
        kind_nodes = [self.categories.index[node] for node in self.kinds.nodes]
        linked = privacy.LinkedTables(
            a=self.monthly,
            a_groups=[MEASURE_GROUPS, self.months.groups, self.places.groups, self.kinds.groups],
            a_index=(slice(None), year, slice(None), slice(None)),
            b=self.by_category,
            b_groups=[MEASURE_GROUPS, self.places.groups, self.categories.groups],
            b_index=(slice(None), slice(None), kind_nodes),
        )
        self.linked = linked
        self.monthly_status, self.category_status = linked.suppress(rules.threshold)

    # -- lookups -----------------------------------------------------------------------------------

    def _where(self, month: str, place: str, kind: str) -> tuple[int, int, int, bool]:
        """Index into the monthly table, or (for a category) into the category table."""
        p = self.places.index[place]
        if "/" in kind:
            if month != YEAR:
                raise KeyError("categories are published for the whole year only")
            return 0, p, self.categories.index[kind], True
        return self.months.index[month], p, self.kinds.index[kind], False

    def raw(self, measure: str, *, month: str = YEAR, place: str = ALL, kind: str = ALL) -> tuple[int, int]:
        """(value, suppression status) of one count. Internal: publish through `count`."""
        t, p, k, category = self._where(month, place, kind)
        m = MEASURE_INDEX[measure]
        if category:
            return int(self.by_category[m, p, k]), int(self.category_status[m, p, k])
        return int(self.monthly[m, t, p, k]), int(self.monthly_status[m, t, p, k])

    def count(self, measure: str, **where: str) -> privacy.Published:
        value, status = self.raw(measure, **where)
        return privacy.count(value, status, self.rules)

    def share(self, numerator: str, denominator: str, **where: str) -> privacy.Published:
        return privacy.share(*self.raw(numerator, **where), *self.raw(denominator, **where), self.rules)

    def durations(self, stage: str, *, month: str = YEAR, place: str = ALL, kind: str = ALL) -> dict[int, int]:
        t, p, k, category = self._where(month, place, kind)
        s = STAGE_INDEX[stage]
        row = self.category_times[s, p, k] if category else self.monthly_times[s, t, p, k]
        return {self.first_bin + i: int(n) for i, n in enumerate(row) if n}

    def quantile(self, stage: str, q: float, **where: str) -> privacy.Published:
        counts = self.durations(stage, **where)
        return privacy.statistic(histogram.quantile(counts, q), sum(counts.values()), self.rules)


class CellIndex:
    """The process's copy of the cells, by year, refreshed from documents changed since the last look."""

    def __init__(self, areas: Areas, rules: privacy.PrivacyRules) -> None:
        self.areas = areas
        self.rules = rules
        self.documents: dict[str, Document] = {}
        self.years: dict[int, YearTables] = {}

    def update(self, cells: Iterable[Document]) -> int:
        """Takes in new or changed cell documents; returns how many changed anything."""
        changes: dict[int, list[tuple[Document, int]]] = {}
        for cell in cells:
            previous = self.documents.get(cell["_id"])
            if previous is not None and _counters(previous) == _counters(cell):
                continue
            year_changes = changes.setdefault(int(cell["year"]), [])
            if previous is not None:
                year_changes.append((previous, -1))
            year_changes.append((cell, +1))
            self.documents[cell["_id"]] = cell
        for year, year_changes in changes.items():
            tables = self.years.get(year)
            if tables is None:
                tables = self.years[year] = YearTables(year, self.areas)
            tables.add(year_changes)
        return sum(len(c) for c in changes.values())

    def published(self, year: int) -> PublicYear:
        return PublicYear(self.years.get(year) or YearTables(year, self.areas), self.rules)

    def known_years(self) -> list[int]:
        return sorted(self.years)


def _counters(cell: Document) -> dict[str, Any]:
    return {k: v for k, v in cell.items() if k not in ("updated_at", "updated_ms", "applied_tokens")}
