"""A year of cells as two linked tables, with every total the public can ask for, suppressed once for all views.

What can be published for a year is fixed, whatever the filters: the monthly table (month or the whole year ×
area × kind) and the category table (the whole year × area × category of each kind). Every view — a filter of
area and kind, a breakdown, a trend — reads cells of these two tables, so one suppression decision covers all
views, and asking for another filter can never uncover a cell by difference. Months are never crossed with
categories, so those small cells are never published at all.

The tables are kept up to date from changed cell documents (add the new counters to every node above the cell,
subtract the old), so a request never reads the whole history, and a year's tables are suppressed again only when
its counters changed, and then only for the measures whose counts changed (privacy.LinkedTables.suppressed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
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
    """One year's counters summed into every node the public can ask for, kept in step with its cell documents:
    a changed cell adds its change to each node above it, so nothing is summed again from the leaves."""

    year: int
    areas: Areas
    months: Axis = field(init=False)
    places: Axis = field(init=False)
    kinds: Axis = field(init=False)
    categories: Axis = field(init=False)
    monthly: npt.NDArray[np.int64] = field(init=False)  # measure × (months, year) × place node × kind node
    by_category: npt.NDArray[np.int64] = field(init=False)  # measure × place node × category node, whole year
    monthly_times: npt.NDArray[np.int64] = field(init=False)  # stage × month node × place node × kind node × bin
    category_times: npt.NDArray[np.int64] = field(init=False)  # stage × place node × category node × bin
    version: int = 0

    def __post_init__(self) -> None:
        self.months = month_axis(self.year)
        self.places = place_axis(self.areas)
        self.kinds = kind_axis()
        self.categories = category_axis()
        self._place_leaf = self.places.index
        self._category_leaf = self.categories.index
        # The nodes above (and including) each leaf, one row per leaf.
        self._month_nodes = _ancestors(self.months)
        self._place_nodes = _ancestors(self.places)
        self._category_nodes = _ancestors(self.categories)
        kind_nodes = _ancestors(self.kinds)
        self._kind_nodes = kind_nodes[np.arange(self.categories.leaves) // len(domain.CATEGORIES)]  # by category
        months, places, kinds, categories = (
            len(a.nodes) for a in (self.months, self.places, self.kinds, self.categories)
        )
        self.monthly = np.zeros((len(MEASURES), months, places, kinds), dtype=np.int64)
        self.by_category = np.zeros((len(MEASURES), places, categories), dtype=np.int64)
        self.monthly_times = np.zeros((len(STAGES), months, places, kinds, BINS), dtype=np.int64)
        self.category_times = np.zeros((len(STAGES), places, categories, BINS), dtype=np.int64)

    def total(self, measure: str) -> int:
        """The year's count of a measure, citywide and for every kind (unsuppressed: internal)."""
        where = (MEASURE_INDEX[measure], self.months.index[YEAR], self.places.index[ALL], self.kinds.index[ALL])
        return int(self.monthly[where])

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
                if not isinstance(value, int) or isinstance(value, bool) or (field := _field(name)) is None:
                    continue
                if len(field) == 1:
                    entry: tuple[int, ...] = (field[0], month, place, category, sign * value)
                    for column, item in zip(counts, entry, strict=True):
                        column.append(item)
                else:
                    entry = (field[0], month, place, category, field[1], sign * value)
                    for column, item in zip(times, entry, strict=True):
                        column.append(item)
        self._add_at(self.monthly, self.by_category, *counts)
        self._add_at(self.monthly_times, self.category_times, *times)
        self.version += 1

    def _add_at(self, monthly: npt.NDArray[np.int64], by_category: npt.NDArray[np.int64], *columns: list[int]) -> None:
        """Adds each entry (measure or stage, month, place leaf, category leaf, [bin,] value) to every node above
        its leaves."""
        if not columns[-1]:
            return
        first, month, place, category, *bins = (np.asarray(c, dtype=np.intp) for c in columns[:-1])
        amount = np.asarray(columns[-1], dtype=np.int64)
        m, t, p = first[:, None, None, None], self._month_nodes[month], self._place_nodes[place]
        k, c = self._kind_nodes[category], self._category_nodes[category]
        index = (
            m,
            t[:, :, None, None],
            p[:, None, :, None],
            k[:, None, None, :],
            *(b[:, None, None, None] for b in bins),
        )
        _add_flat(monthly, index, amount[:, None, None, None])
        index = (m[..., 0], p[:, :, None], c[:, None, :], *(b[:, None, None] for b in bins))
        _add_flat(by_category, index, amount[:, None, None])


def _add_flat(
    table: npt.NDArray[np.int64], index: tuple[npt.NDArray[np.intp], ...], values: npt.NDArray[np.int64]
) -> None:
    """np.add.at through flat indices: several times faster than with one index array per axis."""
    flat, values = np.broadcast_arrays(np.ravel_multi_index(index, table.shape), values)
    np.add.at(table.reshape(-1), flat.reshape(-1), values.reshape(-1))


@cache
def _field(name: str) -> tuple[int] | tuple[int, int] | None:
    """What a cell field counts: (measure,), (stage, bin) for a duration histogram's bin, or None."""
    if (measure := MEASURE_INDEX.get(name)) is not None:
        return (measure,)
    if (timed := domain.parse_histogram_field(name)) is not None:
        stage, index = timed
        return STAGE_INDEX[stage], min(index, BINS - 1)
    return None


def _ancestors(axis: Axis) -> npt.NDArray[np.intp]:
    """leaf × depth: the nodes that include each leaf, the leaf itself first (every leaf of an axis is equally deep)."""
    matrix = axis.matrix()
    return np.stack([np.flatnonzero(matrix[:, leaf]) for leaf in range(axis.leaves)])


class PublicYear:
    """Everything publishable about one year, suppressed: counts, shares and duration statistics by node."""

    def __init__(
        self,
        tables: YearTables,
        rules: privacy.PrivacyRules,
        earlier: PublicYear | None = None,
        decide: privacy.Decide | None = None,
    ) -> None:
        """A copy of the tables as they are now. `earlier`: the copy this one replaces; measures whose counts it
        shares keep its suppression. `decide`: where suppression runs (privacy.LinkedTables.suppressed)."""
        self.year = tables.year
        self.version = tables.version
        self.rules = rules
        self.months, self.places, self.kinds, self.categories = (
            tables.months,
            tables.places,
            tables.kinds,
            tables.categories,
        )
        self.monthly, self.by_category = tables.monthly.copy(), tables.by_category.copy()
        self.monthly_times, self.category_times = tables.monthly_times.copy(), tables.category_times.copy()
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
        self.suppressed: privacy.Suppressed = linked.suppressed(
            rules.threshold, earlier.suppressed if earlier is not None else None, decide=decide
        )
        self.monthly_status, self.category_status = self.suppressed.a_status, self.suppressed.b_status

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
        return {int(i): int(row[i]) for i in np.flatnonzero(row)}

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
            if previous is not None and (previous == cell or _counters(previous) == _counters(cell)):
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

    def published(
        self, year: int, earlier: PublicYear | None = None, decide: privacy.Decide | None = None
    ) -> PublicYear:
        """The year suppressed; `earlier`, a copy of it made before, saves deciding again what has not changed."""
        return PublicYear(self.years.get(year) or YearTables(year, self.areas), self.rules, earlier, decide)

    def known_years(self) -> list[int]:
        return sorted(self.years)


def _counters(cell: Document) -> dict[str, Any]:
    return {k: v for k, v in cell.items() if k not in ("updated_at", "updated_ms", "applied_tokens", "writer")}
