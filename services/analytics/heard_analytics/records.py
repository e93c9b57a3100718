"""The item-level open data: every item of a year as one row, generalised so that it tells nothing the tables withhold.

privacy.py decides (see its section on item-level records); this module lays the year's published cells out as the
tree it generalises along, and writes the rows. The tree follows the monthly table: a row names its month, precinct,
neighbourhood and kind when that cell is published, else its precinct, else only the city, within its month; then
only the year; then not even its kind. The category table cannot sit in the same tree (months are never crossed
with categories in the tables), so categories are added in blocks: an area and kind whose every month is published
names the categories whose yearly count is published and that hold 0 or ≥ k items in every month, so that each
month's and each category's rows add up to published counts and nothing else.

Every other attribute a row carries is a count the tables also publish (severity → negative items, outcome → open,
withdrawn and closed items, each stage reached → the items that reached it); it is shown for a class only when that
count is published for every cell the class is made from, so no withheld count can be recounted from the rows.
Severity and outcome are also quasi-identifiers: every combination of them within a class holds 0 or ≥ k rows.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from heard_analytics import facts as domain
from heard_analytics import privacy
from heard_analytics.areas import UNKNOWN_PRECINCT, UNSPECIFIED
from heard_analytics.cube import ALL, YEAR, PublicYear, place_key

SUPPRESSED = "(suppressed)"
DAY_MS = 86_400_000
OUTCOMES: tuple[str, ...] = ("open", "answered", "withdrawn")
SEVERITIES: tuple[str, ...] = ("not_negative", "negative")
STAGES: tuple[str, ...] = domain.TIMED_STAGES  # acknowledged … board, closed
# The counts of the tables each attribute of a row lets one recount: the attribute is shown for a class only when
# all of them are published for it. Times to acknowledge and to answer also tell, beside the published deadlines,
# how many were in time.
ATTRIBUTE_MEASURES: dict[str, tuple[str, ...]] = {
    "severity": ("negative",),
    "outcome": ("open", "withdrawn", "closed"),  # closed: the time to closing is shown with the outcome
    "acknowledged": ("acknowledged", "acknowledge_due", "acknowledged_in_time"),
    "answered": ("answered", "answer_due", "answered_in_time"),
    **{f"escalated_{level}": (f"escalated_{level}",) for level in domain.ESCALATION_LEVELS},
    "board": ("board",),
}
ATTRIBUTES: tuple[str, ...] = tuple(ATTRIBUTE_MEASURES)
QUASI_IDENTIFIERS = 2  # the first two attributes, severity and outcome, must also keep classes k-anonymous
MONTHS = 12
GROUP = len(domain.CATEGORIES)  # the block's "suppressed" category column


@dataclass
class YearItems:
    """One year's items as compact columns (nothing but what a row may show)."""

    year: int
    ids: list[str] = field(default_factory=list)
    month: list[int] = field(default_factory=list)
    precinct: list[str] = field(default_factory=list)
    neighbourhood: list[str] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    category: list[int] = field(default_factory=list)
    negative: list[int] = field(default_factory=list)
    outcome: list[int] = field(default_factory=list)
    days: list[list[float]] = field(default_factory=list)  # per stage, NaN when not reached

    def add(self, item: dict[str, Any]) -> None:
        submitted: int = item["submitted_at"]
        kind = str(item.get("kind", ""))
        if kind not in domain.KINDS:
            return
        self.ids.append(str(item["_id"]))
        self.month.append(int(str(item["month"])[5:7]) - 1)
        self.precinct.append(str(item.get("precinct", UNKNOWN_PRECINCT)))
        self.neighbourhood.append(str(item.get("neighbourhood", UNSPECIFIED)))
        self.kind.append(domain.KINDS.index(kind))
        self.category.append(domain.CATEGORIES.index(domain.public_category(item.get("category"))))
        self.negative.append(1 if item.get("negative") else 0)
        outcome = domain.outcome(item)
        self.outcome.append(OUTCOMES.index(outcome) if outcome in OUTCOMES else 0)
        self.days.append(
            [
                math.nan if moment is None else max(0, moment - submitted) / DAY_MS
                for moment in domain.stage_moments(item).values()
            ]
        )


@dataclass(frozen=True)
class Release:
    """The rows of one year's item file, and how many items were left out (too few even at the top of the tree)."""

    rows: list[list[str]]
    withheld: int


class _Tree:
    """The monthly table's cells as a generalisation tree; node = (time, place node, kind node) flattened."""

    def __init__(self, year: PublicYear) -> None:
        self.times, self.places, self.kinds = len(year.months.nodes), len(year.places.nodes), len(year.kinds.nodes)
        place_parent = np.full(self.places, -1, dtype=np.intp)
        for parent, children in year.places.groups:
            place_parent[list(children)] = parent
        city, all_kinds, whole_year = year.places.index[ALL], year.kinds.index[ALL], year.months.index[YEAR]
        self.parent = np.full(self.times * self.places * self.kinds, -1, dtype=np.intp)
        self.on_path = np.zeros(self.parent.size, dtype=bool)
        for t in range(self.times):
            for p in range(self.places):
                for k in range(self.kinds):
                    node = self.node(t, p, k)
                    if t != whole_year and k != all_kinds:
                        self.on_path[node] = True
                        above = place_parent[p]
                        self.parent[node] = self.node(t, above, k) if above >= 0 else self.node(whole_year, city, k)
                    elif t == whole_year and p == city:
                        self.on_path[node] = True
                        if k != all_kinds:
                            self.parent[node] = self.node(whole_year, city, all_kinds)

    def node(self, t: int, p: int, k: int) -> int:
        return (t * self.places + p) * self.kinds + k

    def split(self, node: int) -> tuple[int, int, int]:
        rest, k = divmod(node, self.kinds)
        t, p = divmod(rest, self.places)
        return t, p, k


def public_statuses(status: npt.NDArray[np.int8], threshold: int) -> npt.NDArray[np.bool_]:
    """Counts anyone can read: shown ones, and with a threshold of 1 the zeros ("<1" says 0)."""
    return np.asarray((status == privacy.SHOWN) | ((status == privacy.PRIMARY) & (threshold == 1)), dtype=bool)


def release(items: YearItems, year: PublicYear, *, now: datetime, key: bytes) -> Release:
    """The year's rows, generalised against the figures `year` publishes (see the module docstring)."""
    k = year.rules.threshold
    tree = _Tree(year)
    measures = {name: i for i, name in enumerate(domain.COUNTERS)}
    monthly_public = public_statuses(year.monthly_status, k)  # measure × time × place × kind
    category_public = public_statuses(year.category_status, k)  # measure × place × category
    node_public = monthly_public.reshape(len(measures), -1).T  # node × measure
    submitted = measures["submitted"]

    rows = len(items.ids)
    month = np.asarray(items.month, dtype=np.intp)
    kind = np.asarray(items.kind, dtype=np.intp)
    category = np.asarray(items.category, dtype=np.intp)
    place = np.asarray(_place_leaves(year, list(zip(items.precinct, items.neighbourhood, strict=True))), dtype=np.intp)
    leaf = (month * tree.places + place) * tree.kinds + kind
    labels, usable = privacy.k_anonymous_labels(leaf, tree.parent, node_public[:, submitted] & tree.on_path, k)

    # Category blocks: an area and kind whose rows all keep their month and place.
    block = np.full(rows, -1, dtype=np.intp)
    shown_category = np.zeros(rows, dtype=bool)
    blocks: list[tuple[int, int, npt.NDArray[np.bool_]]] = []
    elapsed = MONTHS if year.year < now.year else (now.month if year.year == now.year else 0)
    for p in range(year.places.leaves):
        for k_ in range(len(domain.KINDS)):
            members = (place == p) & (kind == k_)
            if not members.any():
                continue
            occupied = np.bincount(month[members], minlength=MONTHS) > 0
            if not all(usable[tree.node(m, p, k_)] or (m >= elapsed and not occupied[m]) for m in range(MONTHS)):
                continue
            category_nodes = _category_nodes(year, k_)
            counts = np.zeros((MONTHS, len(domain.CATEGORIES)), dtype=np.int64)
            np.add.at(counts, (month[members], category[members]), 1)
            shown = privacy.block_categories(counts, category_public[submitted, p, category_nodes], k)
            if shown.any():
                block[members] = len(blocks)
                shown_category[members] = shown[category[members]]
                blocks.append((p, k_, shown))

    # Decision units: a class of the tree, or a whole block. What each may show:
    in_block = block >= 0
    unit = np.where(in_block, tree.parent.size + block, labels)
    klass = np.where(
        in_block,
        tree.parent.size + (block * MONTHS + month) * (GROUP + 1) + np.where(shown_category, category, GROUP),
        labels,
    )
    measure_ok = privacy.class_measures(node_public, tree.parent, usable)  # node × measure
    allowed = np.zeros((tree.parent.size + len(blocks), len(ATTRIBUTES)), dtype=bool)
    for a, name in enumerate(ATTRIBUTES):
        needed = [measures[m] for m in ATTRIBUTE_MEASURES[name]]
        allowed[: tree.parent.size, a] = measure_ok[:, needed].all(axis=1)
        for b, (p, k_, shown) in enumerate(blocks):
            occupied_months = np.unique(month[block == b])
            shown_nodes = np.asarray(_category_nodes(year, k_))[shown]
            allowed[tree.parent.size + b, a] = bool(
                monthly_public[needed][:, occupied_months, p, k_].all()
                and category_public[needed][:, p][:, shown_nodes].all()
            )
    kept = labels >= 0
    codes = [np.asarray(items.negative, dtype=np.intp), np.asarray(items.outcome, dtype=np.intp)]
    quasi = privacy.k_anonymous_attributes(
        unit[kept], klass[kept], [c[kept] for c in codes], allowed[:, :QUASI_IDENTIFIERS], k
    )
    shows = allowed.copy()
    shows[:, :QUASI_IDENTIFIERS] = quasi

    salt = hashlib.sha256(year.monthly.tobytes() + year.by_category.tobytes()).digest()
    rows_kept = np.flatnonzero(kept)
    rest, kind_label = np.divmod(labels[rows_kept], tree.kinds)
    time_label, place_label = np.divmod(rest, tree.places)
    shown = shows[unit[rows_kept]]
    negative, outcome = codes[0][rows_kept], codes[1][rows_kept]
    days = np.asarray(items.days, dtype=np.float64).reshape(rows, len(STAGES))[rows_kept]
    # The time to closing goes with the outcome: given for items closed with an answer that stands.
    closed = STAGES.index("closed")
    days[:, closed] = np.where(outcome == OUTCOMES.index("answered"), days[:, closed], np.nan)
    tenths = np.rint(np.nan_to_num(days) * 10).astype(np.int64)
    day_text = np.where(
        np.isnan(days), "", np.strings.add(np.strings.add((tenths // 10).astype(str), "."), (tenths % 10).astype(str))
    )
    stage_shown = shown[:, [ATTRIBUTES.index("outcome" if s == "closed" else s) for s in STAGES]]
    places = [_place_text(year.places.nodes[node]) for node in range(tree.places)]
    columns: list[list[str]] = [
        [public_id(items.ids[i], key, salt) for i in rows_kept],
        *(
            column.tolist()
            for column in (
                np.asarray([f"{year.year:04d}-{m:02d}" for m in range(1, MONTHS + 1)] + [f"{year.year:04d}"])[
                    time_label
                ],
                np.asarray([precinct for precinct, _ in places])[place_label],
                np.asarray([neighbourhood for _, neighbourhood in places])[place_label],
                np.asarray([*domain.KINDS, SUPPRESSED])[kind_label],
                np.where(shown_category[rows_kept], np.asarray(domain.CATEGORIES)[category[rows_kept]], SUPPRESSED),
                np.where(shown[:, 0], np.asarray(SEVERITIES)[negative], SUPPRESSED),
                *np.where(stage_shown, day_text, SUPPRESSED).T,
                np.where(shown[:, 1], np.asarray(OUTCOMES)[outcome], SUPPRESSED),
            )
        ),
    ]
    out = [list(row) for row in zip(*columns, strict=True)]
    out.sort(key=lambda row: row[0])  # the order of the rows says nothing about when items arrived
    return Release(out, int((~kept).sum()))


def public_id(feedback_id: str, key: bytes, salt: bytes) -> str:
    """A keyed hash that changes with every update of the figures: rows of downloads made at different times cannot
    be joined by id (a row's generalisation may change between them)."""
    return hashlib.blake2b(salt + feedback_id.encode(), key=key[:64], digest_size=10).hexdigest()


def _place_leaves(year: PublicYear, places: list[tuple[str, str]]) -> list[int]:
    """Each (precinct, neighbourhood) as a leaf of the place axis, where the tables count it."""
    index = year.places.index
    found: dict[tuple[str, str], int] = {}
    for place in set(places):
        leaf = index.get(place_key(*place))
        if leaf is None or leaf >= year.places.leaves:  # the area file changed since: counted under its precinct
            known = place[0] if place_key(place[0], UNSPECIFIED) in index else UNKNOWN_PRECINCT
            leaf = index[place_key(known, UNSPECIFIED)]
        found[place] = leaf
    return [found[place] for place in places]


def _category_nodes(year: PublicYear, kind: int) -> list[int]:
    return [year.categories.index[f"{domain.KINDS[kind]}/{c}"] for c in domain.CATEGORIES]


def _place_text(key: str) -> tuple[str, str]:
    if key == ALL:
        return SUPPRESSED, SUPPRESSED
    precinct, _, neighbourhood = key.partition("/")
    return precinct, neighbourhood or SUPPRESSED
