"""Privacy by construction: the one place that decides what may be published. Every output — JSON, CSV, the page
and its charts — is made from `Published` values that only this module creates.

Rules (the methodology page states them; the threshold and minimum are settings):
- A count below the threshold (default 10), zero included, is shown as "<10" (primary suppression).
- Complementary suppression: a table is a set of equations, total = sum of parts, along every dimension (months
  of the year, neighbourhoods of a precinct and precincts of the city, categories of a kind and kinds of all, the
  outcomes of a contest). More cells are withheld ("—") until an attacker who knows every published figure, every
  equation and that "<10" means 0–9 cannot pin any suppressed count to one value. `suppress` checks that by
  running the attacker's own method — interval propagation through every equation to a fixed point — and keeps
  withholding the smallest visible count of each equation that still exposes a cell.
- A share, rate, ratio, median or percentile is shown only when it rests on at least `min_items` items and on
  counts that are themselves published; a share whose numerator or remainder is below the threshold is shown
  only as the bound that "<10" already implies.
- No free text and nothing finer than a neighbourhood ever reaches these tables (see areas.py and facts.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

SHOWN, PRIMARY, COMPLEMENTARY = 0, 1, 2
MAX_ROUNDS = 200

Status = Literal["shown", "below_threshold", "withheld", "too_few"]
# (parent index, child indices) along one axis: parent = sum of children.
Group = tuple[int, tuple[int, ...]]
Bounds = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
# Where a linked table's shared counts sit: a numpy index of slices and index lists.
Index = tuple[slice | list[int] | int, ...]


@dataclass(frozen=True)
class PrivacyRules:
    threshold: int = 10
    min_items: int = 20

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.min_items < self.threshold:
            raise ValueError("the minimum for statistics must be at least the suppression threshold (≥ 1)")

    @property
    def below_label(self) -> str:
        return f"<{self.threshold}"


@dataclass(frozen=True)
class Published:
    """A figure as it may be shown: its value when `status` is "shown", else only the reason it is not."""

    status: Status
    value: float | None = None
    # For a share that may only be given as a bound: "at_least" or "below" `value`.
    bound: Literal["at_least", "below"] | None = None

    @property
    def shown(self) -> bool:
        return self.status == "shown"

    def number(self) -> float | None:
        return self.value if self.status == "shown" and self.bound is None else None


WITHHELD = Published("withheld")
TOO_FEW = Published("too_few")


def _moved(array: npt.NDArray[np.float64], axis: int) -> npt.NDArray[np.float64]:
    return np.moveaxis(array, axis, 0)


def _bounds(
    values: npt.NDArray[np.int64], status: npt.NDArray[np.int8], threshold: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """What an attacker knows of each cell before combining equations."""
    lo = np.where(status == SHOWN, values, np.where(status == PRIMARY, 0, threshold)).astype(np.float64)
    hi = np.where(status == SHOWN, values, np.where(status == PRIMARY, threshold - 1, np.inf)).astype(np.float64)
    return lo, hi


def attack(
    values: npt.NDArray[np.int64],
    status: npt.NDArray[np.int8],
    groups: Sequence[Sequence[Group]],
    threshold: int,
    known: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The tightest bounds interval propagation through every equation gives for every cell.

    This is the subtraction attack generalised: a total minus its visible parts bounds the hidden parts, a bound
    found in one equation feeds the others, until nothing moves. `known` adds bounds learnt elsewhere (another
    table sharing cells). Returns (lower, upper).
    """
    lo, hi = _bounds(values, status, threshold)
    if known is not None:
        lo, hi = np.maximum(lo, known[0]), np.minimum(hi, known[1])
    for _ in range(MAX_ROUNDS):
        changed = False
        for axis, axis_groups in enumerate(groups):
            lo_view, hi_view = _moved(lo, axis), _moved(hi, axis)
            for parent, children in axis_groups:
                kids = list(children)
                c_lo, c_hi = lo_view[kids], hi_view[kids]
                lo_sum = c_lo.sum(axis=0)
                hi_inf = np.isinf(c_hi)
                hi_finite_sum = np.where(hi_inf, 0.0, c_hi).sum(axis=0)
                inf_count = hi_inf.sum(axis=0)
                # Parent between the sums of its children's bounds.
                p_lo = np.maximum(lo_view[parent], lo_sum)
                p_hi = np.minimum(hi_view[parent], np.where(inf_count > 0, np.inf, hi_finite_sum))
                # Each child: parent minus the other children.
                others_hi = np.where((inf_count - hi_inf) > 0, np.inf, hi_finite_sum - np.where(hi_inf, 0.0, c_hi))
                k_lo = np.maximum(c_lo, p_lo - others_hi)
                k_hi = np.minimum(c_hi, p_hi - (lo_sum - c_lo))
                # Integers: round inwards.
                p_lo, p_hi = np.ceil(p_lo - 1e-9), np.floor(p_hi + 1e-9)
                k_lo, k_hi = np.ceil(k_lo - 1e-9), np.floor(k_hi + 1e-9)
                if (
                    not np.array_equal(p_lo, lo_view[parent])
                    or not np.array_equal(p_hi, hi_view[parent])
                    or not np.array_equal(k_lo, c_lo)
                    or not np.array_equal(k_hi, c_hi)
                ):
                    changed = True
                    lo_view[parent], hi_view[parent] = p_lo, p_hi
                    lo_view[kids], hi_view[kids] = k_lo, k_hi
        if not changed:
            break
        if (lo > hi).any():
            # Only a table whose totals are not the sums of their parts gets here; propagation would diverge.
            raise ValueError("a total of the table is not the sum of its parts")
    return lo, hi


def suppress(
    values: npt.NDArray[np.int64],
    groups: Sequence[Sequence[Group]],
    threshold: int,
    *,
    withheld: npt.NDArray[np.bool_] | None = None,
    known: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
) -> npt.NDArray[np.int8]:
    """Status of every cell of an N-dimensional table whose axes carry `groups` (one list per axis).

    Primary suppression for counts below the threshold, then complementary suppression until every equation holds
    no lone hidden cell and the attack above pins no suppressed count. `withheld` marks cells another table
    already withholds; `known` passes what the attack learnt from it.
    """
    status = np.where(values < threshold, PRIMARY, SHOWN).astype(np.int8)
    if threshold <= 1:
        return status  # "<1" already says 0: nothing is hidden, so nothing needs company
    if withheld is not None:
        status[withheld & (status == SHOWN)] = COMPLEMENTARY
    for _ in range(MAX_ROUNDS):
        added = _complete_lone_cells(values, status, groups, threshold)
        if added:
            continue
        lo, hi = attack(values, status, groups, threshold, known)
        exposed = (status == PRIMARY) & (hi - lo < 0.5)
        if not exposed.any():
            return status
        _protect_widely(values, status, groups, exposed)
    raise RuntimeError("complementary suppression did not settle")


def _cheapest_visible(
    values: npt.NDArray[np.int64], status: npt.NDArray[np.int8], members: list[int], axis: int
) -> npt.NDArray[np.intp]:
    """Per position, the member to withhold next: the smallest visible child, else the parent."""
    member_values = np.moveaxis(values, axis, 0)[members].astype(np.float64)
    member_status = np.moveaxis(status, axis, 0)[members]
    cost = np.where(member_status == SHOWN, member_values, np.inf)
    cost[0] = cost[0] + 1e12  # the parent (index 0) only when no child is left: totals are what people read
    return np.asarray(np.argmin(cost, axis=0))


def _withhold(
    status: npt.NDArray[np.int8],
    members: list[int],
    axis: int,
    where: npt.NDArray[np.bool_],
    choice: npt.NDArray[np.intp],
) -> int:
    view = np.moveaxis(status, axis, 0)
    member_status = view[members]
    chosen = np.zeros_like(member_status, dtype=bool)
    np.put_along_axis(chosen, choice[np.newaxis, ...], True, axis=0)
    chosen &= where[np.newaxis, ...] & (member_status == SHOWN)
    if not chosen.any():
        return 0
    member_status[chosen] = COMPLEMENTARY
    view[members] = member_status
    return int(chosen.sum())


def _complete_lone_cells(
    values: npt.NDArray[np.int64], status: npt.NDArray[np.int8], groups: Sequence[Sequence[Group]], threshold: int
) -> int:
    """The cheap, local part of the attack, equation by equation, before the full propagation runs.

    An equation exposes a suppressed count when it has a single hidden member, or when its visible total leaves its
    hidden children a sum that only one assignment fits (all of them 0, all of them threshold − 1, or the withheld
    ones at exactly the threshold and the rest 0).
    """
    added = 0
    for axis, axis_groups in enumerate(groups):
        for parent, children in axis_groups:
            members = [parent, *children]
            member_status = np.moveaxis(status, axis, 0)[members]
            member_values = np.moveaxis(values, axis, 0)[members]
            hidden = (member_status != SHOWN).sum(axis=0)
            kids_status, kids_values = member_status[1:], member_values[1:]
            hidden_sum = member_values[0] - np.where(kids_status == SHOWN, kids_values, 0).sum(axis=0)
            primaries = (kids_status == PRIMARY).sum(axis=0)
            withheld = (kids_status == COMPLEMENTARY).sum(axis=0)
            pinned = (
                (member_status[0] == SHOWN)
                & (primaries >= 1)
                & np.where(
                    withheld == 0,
                    (hidden_sum <= 0) | (hidden_sum >= (threshold - 1) * primaries),
                    hidden_sum - threshold * withheld <= 0,
                )
            )
            need = (hidden == 1) | pinned
            if need.any():
                added += _withhold(status, members, axis, need, _cheapest_visible(values, status, members, axis))
    return added


def _protect_widely(
    values: npt.NDArray[np.int64],
    status: npt.NDArray[np.int8],
    groups: Sequence[Sequence[Group]],
    exposed: npt.NDArray[np.bool_],
) -> None:
    """Withholds next to exposed cells; where their equations have nothing visible left, one equation further."""
    frontier = exposed
    for _ in range(MAX_ROUNDS):
        if _protect(values, status, groups, frontier):
            return
        wider = frontier.copy()
        for axis, axis_groups in enumerate(groups):
            frontier_view, wider_view = np.moveaxis(frontier, axis, 0), np.moveaxis(wider, axis, 0)
            hidden_view = np.moveaxis(status != SHOWN, axis, 0)
            for parent, children in axis_groups:
                members = [parent, *children]
                touched = np.asarray(frontier_view[members].any(axis=0))
                wider_view[members] |= touched[np.newaxis, ...] & hidden_view[members]
        if np.array_equal(wider, frontier):
            raise RuntimeError("an exposed count has no visible neighbour left to withhold")
        frontier = wider


def _protect(
    values: npt.NDArray[np.int64],
    status: npt.NDArray[np.int8],
    groups: Sequence[Sequence[Group]],
    exposed: npt.NDArray[np.bool_],
) -> int:
    """Withholds one more visible member of every equation that contains an exposed cell."""
    added = 0
    for axis, axis_groups in enumerate(groups):
        for parent, children in axis_groups:
            members = [parent, *children]
            touched = np.asarray(np.moveaxis(exposed, axis, 0)[members].any(axis=0))
            if touched.any():
                added += _withhold(status, members, axis, touched, _cheapest_visible(values, status, members, axis))
    return added


# --- single figures ---------------------------------------------------------------------------------------------


def count(value: int, status: int, rules: PrivacyRules) -> Published:
    if status == SHOWN and value >= rules.threshold:
        return Published("shown", float(value))
    return Published("below_threshold") if status == PRIMARY else WITHHELD


def share(
    numerator: int,
    numerator_status: int,
    denominator: int,
    denominator_status: int,
    rules: PrivacyRules,
) -> Published:
    """numerator / denominator, if it rests on enough items and reveals no count below the threshold."""
    if denominator_status == COMPLEMENTARY:
        return WITHHELD
    if denominator_status == PRIMARY or denominator < rules.min_items:
        return TOO_FEW
    if numerator_status == COMPLEMENTARY:
        return WITHHELD
    if numerator_status == PRIMARY:
        # "<10 of 250" says no more than "below 4%".
        return Published("shown", math.ceil(100 * rules.threshold / denominator) / 100, bound="below")
    if denominator - numerator < rules.threshold:
        return Published("shown", math.floor(100 * (denominator - rules.threshold + 1) / denominator) / 100, "at_least")
    return Published("shown", numerator / denominator)


def statistic(value: float | None, items: int, rules: PrivacyRules) -> Published:
    """A median, percentile or other statistic of `items` items."""
    if value is None or items < rules.min_items:
        return TOO_FEW
    return Published("shown", value)


def ratio(numerator: Published, denominator: Published) -> Published:
    """A ratio of two published figures (e.g. an area's rate over the city's): only when both are exact."""
    top, bottom = numerator.number(), denominator.number()
    if top is None or bottom is None:
        return TOO_FEW if "too_few" in (numerator.status, denominator.status) else WITHHELD
    if bottom == 0:
        return TOO_FEW
    return Published("shown", top / bottom)


def rate_per(count_figure: Published, population: int | None, rules: PrivacyRules, per: int = 1000) -> Published:
    """A per-capita rate: only for a published count (the population is public, so a rate would reveal it)."""
    value = count_figure.number()
    if count_figure.status == "withheld":
        return WITHHELD
    if value is None or value < rules.min_items or not population:
        return TOO_FEW
    return Published("shown", value * per / population)


@dataclass(frozen=True)
class LinkedTables:
    """Two tables that share cells: `a[a_index]` and `b[b_index]` are the same counts (e.g. the year's totals by
    kind, which the monthly table and the category table both hold). Suppressed jointly, attacked jointly."""

    a: npt.NDArray[np.int64]
    a_groups: Sequence[Sequence[Group]]
    a_index: Index
    b: npt.NDArray[np.int64]
    b_groups: Sequence[Sequence[Group]]
    b_index: Index

    def attack(
        self, a_status: npt.NDArray[np.int8], b_status: npt.NDArray[np.int8], threshold: int
    ) -> tuple[Bounds, Bounds]:
        a_bounds = attack(self.a, a_status, self.a_groups, threshold)
        b_known = _bounds(self.b, b_status, threshold)
        for _ in range(MAX_ROUNDS):
            b_known[0][self.b_index] = np.maximum(b_known[0][self.b_index], a_bounds[0][self.a_index])
            b_known[1][self.b_index] = np.minimum(b_known[1][self.b_index], a_bounds[1][self.a_index])
            b_bounds = attack(self.b, b_status, self.b_groups, threshold, b_known)
            a_known = (a_bounds[0].copy(), a_bounds[1].copy())
            a_known[0][self.a_index] = np.maximum(a_known[0][self.a_index], b_bounds[0][self.b_index])
            a_known[1][self.a_index] = np.minimum(a_known[1][self.a_index], b_bounds[1][self.b_index])
            if np.array_equal(a_known[0], a_bounds[0]) and np.array_equal(a_known[1], a_bounds[1]):
                return a_bounds, b_bounds
            a_bounds = attack(self.a, a_status, self.a_groups, threshold, a_known)
            b_known = b_bounds
        raise RuntimeError("the joint attack did not settle")

    def suppress(self, threshold: int) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
        a_status = np.where(self.a < threshold, PRIMARY, SHOWN).astype(np.int8)
        b_status = np.where(self.b < threshold, PRIMARY, SHOWN).astype(np.int8)
        if threshold <= 1:
            return a_status, b_status  # "<1" already says 0: nothing is hidden
        for _ in range(MAX_ROUNDS):
            # The cheap local rules in both tables, the shared cells kept alike, until nothing moves...
            while (
                _complete_lone_cells(self.a, a_status, self.a_groups, threshold)
                + _complete_lone_cells(self.b, b_status, self.b_groups, threshold)
                + self._align(a_status, b_status)
            ):
                pass
            # ...then the full joint attack; whatever it still pins gets more company.
            (a_lo, a_hi), (b_lo, b_hi) = self.attack(a_status, b_status, threshold)
            a_exposed = (a_status == PRIMARY) & (a_hi - a_lo < 0.5)
            b_exposed = (b_status == PRIMARY) & (b_hi - b_lo < 0.5)
            if not a_exposed.any() and not b_exposed.any():
                return a_status, b_status
            if a_exposed.any():
                _protect_widely(self.a, a_status, self.a_groups, a_exposed)
            if b_exposed.any():
                _protect_widely(self.b, b_status, self.b_groups, b_exposed)
        raise RuntimeError("joint suppression did not settle")

    def _align(self, a_status: npt.NDArray[np.int8], b_status: npt.NDArray[np.int8]) -> int:
        """A shared count withheld in one table is withheld in the other."""
        a_shared, b_shared = a_status[self.a_index], b_status[self.b_index]
        a_gets = (b_shared == COMPLEMENTARY) & (a_shared == SHOWN)
        b_gets = (a_shared == COMPLEMENTARY) & (b_shared == SHOWN)
        a_shared[a_gets] = COMPLEMENTARY
        b_shared[b_gets] = COMPLEMENTARY
        a_status[self.a_index], b_status[self.b_index] = a_shared, b_shared
        return int(a_gets.sum() + b_gets.sum())


# --- item-level records -----------------------------------------------------------------------------------------
#
# The bulk item file would undo every rule above if it gave each item's exact day, neighbourhood and category:
# counting its rows would recover every suppressed cell. So each row is generalised along a tree of published
# cells (e.g. neighbourhood → precinct → city within a month, then month → year) to the nearest cell that is
# published, and the rows that share a label form a class: that cell less the published cells below it. A class's
# size, and its count of any measure a row reveals, is then a difference of published counts — something anyone can
# already work out from the tables — and a measure whose difference involves a withheld count is not shown for that
# class at all. Classes, and the combinations of their quasi-identifiers (severity, outcome), hold at least k rows
# (k-anonymity, with k the suppression threshold); smaller ones are generalised further, and a remainder too small
# even at the top of the tree is left out.


def nearest_usable(parent: npt.NDArray[np.intp], usable: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    """For every node of a tree (`parent[i]`, -1 at a root), its nearest usable ancestor-or-self, or -1."""
    nearest = np.where(usable, np.arange(parent.size), -1)
    hop = parent.copy()
    missing = (nearest < 0) & (hop >= 0)
    while missing.any():
        found = usable[hop[missing]]
        nearest[missing] = np.where(found, hop[missing], -1)
        hop[missing] = np.where(found, -1, parent[hop[missing]])
        missing = (nearest < 0) & (hop >= 0)
    return nearest


def k_anonymous_labels(
    leaf_of_row: npt.NDArray[np.intp], parent: npt.NDArray[np.intp], usable: npt.NDArray[np.bool_], k: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Each row's label: the nearest usable node above its leaf, such that every label is shared by ≥ k rows.

    A class below k gives up its node (its rows join the class above), until every class is large enough; rows with
    no usable node left are labelled -1 (left out). Returns (labels, the nodes still usable).
    """
    usable = usable.copy()
    while True:
        labels = nearest_usable(parent, usable)[leaf_of_row]
        sizes = np.bincount(labels[labels >= 0], minlength=parent.size)
        small = (sizes > 0) & (sizes < k)
        if not small.any():
            return labels, usable
        usable &= ~small


def class_measures(
    public: npt.NDArray[np.bool_], parent: npt.NDArray[np.intp], usable: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    """node × measure: whether a class (a usable node) may show each measure of `public` (node × measure).

    A class is its node less the nearest usable nodes below it, so its count of a measure is a difference of their
    counts: it may be shown only when every one of those counts is published.
    """
    allowed = public & usable[:, np.newaxis]
    above = np.where(parent >= 0, nearest_usable(parent, usable)[np.maximum(parent, 0)], -1)
    below = np.flatnonzero(usable & (above >= 0))
    np.logical_and.at(allowed, above[below], public[below])
    return allowed


def block_categories(counts: npt.NDArray[np.int64], candidates: npt.NDArray[np.bool_], k: int) -> npt.NDArray[np.bool_]:
    """Which categories a block (months × categories of one area and kind) may show, month by month.

    A shown category must have 0 or ≥ k items in every month; the items of the other categories, shown together as
    "suppressed", too. `candidates` are the categories whose yearly count is published (so every shown column adds
    up to a published count); the smallest is dropped until the rest qualify.
    """
    shown = candidates & ~((counts > 0) & (counts < k)).any(axis=0)
    while shown.any():
        rest = counts[:, ~shown].sum(axis=1)
        if not ((rest > 0) & (rest < k)).any():
            return shown
        totals = np.where(shown, counts.sum(axis=0), np.iinfo(np.int64).max)
        shown[int(np.argmin(totals))] = False
    return shown


def k_anonymous_attributes(
    unit_of_row: npt.NDArray[np.intp],
    class_of_row: npt.NDArray[np.intp],
    codes: Sequence[npt.NDArray[np.intp]],
    allowed: npt.NDArray[np.bool_],
    k: int,
) -> npt.NDArray[np.bool_]:
    """unit × attribute: which quasi-identifiers each unit shows, so that every combination within a class holds
    0 or ≥ k rows.

    A unit decides for all its classes at once (a class, or a block of classes whose sums are published). Among the
    sets of attributes a unit is `allowed`, the largest that keeps every combination large enough wins (earlier
    attributes first on a tie). `codes` are small non-negative integers, one array per attribute.
    """
    units, attributes = allowed.shape
    options = sorted(
        (tuple(bool(mask >> a & 1) for a in range(attributes)) for mask in range(2**attributes)),
        key=lambda option: (-sum(option), [not chosen for chosen in option]),
    )
    chosen = np.zeros_like(allowed)
    decided = np.zeros(units, dtype=bool)
    _, class_index = np.unique(class_of_row, return_inverse=True)
    for option in options:
        wanted = np.asarray(option, dtype=bool)
        fits = ~decided & (allowed | ~wanted).all(axis=1)
        if not fits.any():
            continue
        key = class_index.astype(np.int64)
        for attribute in map(int, np.flatnonzero(wanted)):
            key = key * (int(codes[attribute].max(initial=0)) + 1) + codes[attribute]
        _, combination, sizes = np.unique(key, return_inverse=True, return_counts=True)
        too_small = np.zeros(units, dtype=bool)
        too_small[unit_of_row[sizes[combination] < k]] = True
        take = fits & ~too_small
        chosen[take] = wanted
        decided |= take
    return chosen
