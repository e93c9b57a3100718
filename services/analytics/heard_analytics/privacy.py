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

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

SHOWN, PRIMARY, COMPLEMENTARY = 0, 1, 2
T = TypeVar("T", bound=np.generic)
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


def _bounds(
    values: npt.NDArray[np.int64], status: npt.NDArray[np.int8], threshold: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """What an attacker knows of each cell before combining equations."""
    lo = np.where(status == SHOWN, values, np.where(status == PRIMARY, 0, threshold)).astype(np.float64)
    hi = np.where(status == SHOWN, values, np.where(status == PRIMARY, threshold - 1, np.inf)).astype(np.float64)
    return lo, hi


@dataclass(frozen=True)
class _Run:
    """Equations of a table that share no cell, with every instance of them (one per position on the other axes),
    as flat cell indices: numpy then works all of them in one step, and working them at once gives exactly what
    working them one after the other would, since none reads a cell another writes."""

    members: npt.NDArray[np.intp]  # (instances, parent + children): flat indices; short equations padded (see blank)
    blank: npt.NDArray[np.bool_]  # (instances, parent + children): True where `members` is padding
    row_of_cell: npt.NDArray[np.intp]  # (cells + 1,): the instance each cell is a member of, else the last entry

    @classmethod
    def of(cls, members: npt.NDArray[np.intp], blank: npt.NDArray[np.bool_], size: int) -> _Run:
        row_of_cell = np.full(size + 1, len(members), dtype=np.intp)
        rows = np.broadcast_to(np.arange(len(members))[:, np.newaxis], members.shape)
        row_of_cell[members[~blank]] = rows[~blank]
        return cls(members, blank, row_of_cell)


# A few shapes: a pass over the changed measures of a year, the whole year, the overdue table (a few MB each).
@functools.lru_cache(maxsize=8)
def _runs(shape: tuple[int, ...], groups: tuple[tuple[Group, ...], ...]) -> tuple[_Run, ...]:
    """Every equation of a table, axis by axis and in their order, cut into runs that share no cell (e.g. every
    precinct's neighbourhoods, then the city's precincts)."""
    cells = np.arange(math.prod(shape), dtype=np.intp).reshape(shape)
    runs: list[_Run] = []
    for axis, axis_groups in enumerate(groups):
        along = np.moveaxis(cells, axis, -1).reshape(-1, shape[axis])  # (positions on the other axes, axis)
        batches: list[list[Group]] = []
        used: set[int] = set()
        for parent, children in axis_groups:
            if not batches or used & {parent, *children}:
                batches.append([])
                used = set()
            batches[-1].append((parent, children))
            used |= {parent, *children}
        for batch in batches:
            width = 1 + max(len(children) for _, children in batch)
            nodes = np.full((len(batch), width), -1, dtype=np.intp)
            for row, (parent, children) in enumerate(batch):
                nodes[row, : 1 + len(children)] = (parent, *children)
            members = along[:, np.maximum(nodes, 0)].transpose(1, 0, 2).reshape(-1, width)
            blank = np.broadcast_to(nodes[:, np.newaxis, :] < 0, (len(batch), along.shape[0], width))
            runs.append(_Run.of(members, blank.reshape(-1, width), cells.size))
    return tuple(runs)


def _flat(array: npt.NDArray[T]) -> npt.NDArray[T]:
    """A flat view of a table (never a copy: changes to it are changes to the table)."""
    if not array.flags.c_contiguous:
        raise ValueError("tables are worked in C order")
    return array.reshape(-1)


def _table_runs(shape: tuple[int, ...], groups: Sequence[Sequence[Group]]) -> tuple[_Run, ...]:
    return _runs(shape, tuple(tuple((parent, tuple(children)) for parent, children in axis) for axis in groups))


def attack(
    values: npt.NDArray[np.int64],
    status: npt.NDArray[np.int8],
    groups: Sequence[Sequence[Group]],
    threshold: int,
    known: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None,
    *,
    since: Bounds | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The tightest bounds interval propagation through every equation gives for every cell.

    This is the subtraction attack generalised: a total minus its visible parts bounds the hidden parts, a bound
    found in one equation feeds the others, until nothing moves. `known` adds bounds learnt elsewhere (another
    table sharing cells). Returns (lower, upper). `since`: what this attack already found for the same table and
    status, with `known` only narrower than before; the work then starts from there (same result, less work).

    Every step only narrows bounds, so the fixed point is the same whatever order the equations are worked in.
    An equation is worked only when it can tell something: at first, when it mixes exact counts with hidden ones
    (all exact, or all hidden below the threshold, it says nothing), then when one of its cells moved since it was
    last worked.
    """
    start = _bounds(values, status, threshold) if since is None else since
    lo, hi = start if known is None else (np.maximum(start[0], known[0]), np.minimum(start[1], known[1]))
    lo, hi = np.array(lo, dtype=np.float64).reshape(-1), np.array(hi, dtype=np.float64).reshape(-1)  # own copies
    runs = _table_runs(values.shape, groups)
    if since is None:
        exact, default = lo == hi, (lo == 0) & (hi == threshold - 1)
        due = [
            np.append(~(exact[run.members] | run.blank).all(1) & ~(default[run.members] | run.blank).all(1), False)
            for run in runs
        ]
    else:
        fresh = np.flatnonzero((lo != start[0].reshape(-1)) | (hi != start[1].reshape(-1)))
        due = [_rows_of(run, fresh) for run in runs]
    for _ in range(MAX_ROUNDS):
        changed = False
        for number, run in enumerate(runs):
            rows = np.flatnonzero(due[number][:-1])  # the last entry collects cells of no equation of the run
            due[number] = np.zeros(len(run.members) + 1, dtype=bool)
            if rows.size == 0:
                continue
            members, blank = run.members[rows], run.blank[rows]
            m_lo, m_hi = np.where(blank, 0.0, lo[members]), np.where(blank, 0.0, hi[members])
            new_lo, new_hi = _narrow(m_lo, m_hi)
            moved = ((new_lo != m_lo) | (new_hi != m_hi)) & ~blank
            if moved.any():
                cells = members[moved]
                lo[cells], hi[cells] = new_lo[moved], new_hi[moved]
                for other, other_run in enumerate(runs):  # every equation these cells are in is worked again
                    due[other][other_run.row_of_cell[cells]] = True
                changed = True
        if not changed:
            break
        if (lo > hi).any():
            # Only a table whose totals are not the sums of their parts gets here; propagation would diverge.
            raise ValueError("a total of the table is not the sum of its parts")
    return lo.reshape(values.shape), hi.reshape(values.shape)


def _rows_of(run: _Run, cells: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    rows = np.zeros(len(run.members) + 1, dtype=bool)
    rows[run.row_of_cell[cells]] = True
    return rows


def _narrow(
    m_lo: npt.NDArray[np.float64], m_hi: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One step of the attack through equations (rows: parent, then children; a blank is an exact 0)."""
    c_lo, c_hi = m_lo[:, 1:], m_hi[:, 1:]
    hi_inf = np.isinf(c_hi)
    c_hi_finite = np.where(hi_inf, 0.0, c_hi)
    lo_sum = c_lo.sum(axis=1, keepdims=True)
    hi_finite_sum = c_hi_finite.sum(axis=1, keepdims=True)
    inf_count = hi_inf.sum(axis=1, keepdims=True)
    # Parent between the sums of its children's bounds.
    p_lo = np.maximum(m_lo[:, :1], lo_sum)
    p_hi = np.minimum(m_hi[:, :1], np.where(inf_count > 0, np.inf, hi_finite_sum))
    # Each child: parent minus the other children.
    others_hi = np.where((inf_count - hi_inf) > 0, np.inf, hi_finite_sum - c_hi_finite)
    k_lo = np.maximum(c_lo, p_lo - others_hi)
    k_hi = np.minimum(c_hi, p_hi - (lo_sum - c_lo))
    # Integers: round inwards.
    new_lo = np.ceil(np.concatenate([p_lo, k_lo], axis=1) - 1e-9)
    new_hi = np.floor(np.concatenate([p_hi, k_hi], axis=1) + 1e-9)
    return new_lo, new_hi


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
    values = np.ascontiguousarray(values)
    status = np.ascontiguousarray(np.where(values < threshold, PRIMARY, SHOWN), dtype=np.int8)
    if threshold <= 1:
        return status  # "<1" already says 0: nothing is hidden, so nothing needs company
    if withheld is not None:
        status[withheld & (status == SHOWN)] = COMPLEMENTARY
    lone_cells = _LoneCells(values, groups, threshold)
    for _ in range(MAX_ROUNDS):
        added = lone_cells(status)
        if added:
            continue
        lo, hi = attack(values, status, groups, threshold, known)
        exposed = (status == PRIMARY) & (hi - lo < 0.5)
        if not exposed.any():
            return status
        _protect_widely(values, status, groups, exposed)
    raise RuntimeError("complementary suppression did not settle")


def _withhold(
    values: npt.NDArray[np.int64], status: npt.NDArray[np.int8], run: _Run, rows: npt.NDArray[np.intp]
) -> npt.NDArray[np.intp]:
    """Withholds in each of the run's equations `rows` its cheapest visible member: the smallest visible child,
    else the parent (totals are what people read). `values` and `status` are flat; returns the cells withheld."""
    members, blank = run.members[rows], run.blank[rows]
    visible = (status[members] == SHOWN) & ~blank
    cost = np.where(visible, values[members].astype(np.float64), np.inf)
    cost[:, 0] += 1e12
    choice = np.argmin(cost, axis=1)
    picked = np.arange(rows.size)
    cells: npt.NDArray[np.intp] = members[picked, choice][visible[picked, choice]]
    status[cells] = COMPLEMENTARY
    return cells


class _LoneCells:
    """The cheap, local part of the attack, equation by equation, before the full propagation runs.

    An equation exposes a suppressed count when it has a single hidden member, or when its visible total leaves its
    hidden children a sum that only one assignment fits (all of them 0, all of them threshold − 1, or the withheld
    ones at exactly the threshold and the rest 0).

    Each call is one pass over a table's equations in their order, as if every equation were looked at; only those
    with a cell whose status changed since they were last looked at are (the others would decide as before).
    """

    def __init__(self, values: npt.NDArray[np.int64], groups: Sequence[Sequence[Group]], threshold: int) -> None:
        self.values = _flat(values)
        self.threshold = threshold
        self.runs = _table_runs(values.shape, groups)
        self.due = [np.ones(len(run.members) + 1, dtype=bool) for run in self.runs]  # the last entry: no equation
        self.seen: npt.NDArray[np.int8] | None = None

    def __call__(self, status: npt.NDArray[np.int8]) -> int:
        """Withholds what the rule asks for in one pass; returns how many cells it withheld."""
        flat_status = _flat(status)
        if self.seen is not None:
            self._changed(np.flatnonzero(flat_status != self.seen))
        threshold, added = self.threshold, 0
        for number, run in enumerate(self.runs):
            rows = np.flatnonzero(self.due[number][:-1])
            self.due[number][:] = False
            if rows.size == 0:
                continue
            members, blank = run.members[rows], run.blank[rows]
            # A blank is a visible 0: it adds nothing to any sum or count.
            member_status = np.where(blank, SHOWN, flat_status[members])
            member_values = np.where(blank, 0, self.values[members])
            hidden = (member_status != SHOWN).sum(axis=1)
            kids_status, kids_values = member_status[:, 1:], member_values[:, 1:]
            hidden_sum = member_values[:, 0] - np.where(kids_status == SHOWN, kids_values, 0).sum(axis=1)
            primaries = (kids_status == PRIMARY).sum(axis=1)
            withheld = (kids_status == COMPLEMENTARY).sum(axis=1)
            pinned = (
                (member_status[:, 0] == SHOWN)
                & (primaries >= 1)
                & np.where(
                    withheld == 0,
                    (hidden_sum <= 0) | (hidden_sum >= (threshold - 1) * primaries),
                    hidden_sum - threshold * withheld <= 0,
                )
            )
            need = rows[(hidden == 1) | pinned]
            if need.size:
                cells = _withhold(self.values, flat_status, run, need)
                self._changed(cells)
                added += cells.size
        self.seen = flat_status.copy()
        return added

    def _changed(self, cells: npt.NDArray[np.intp]) -> None:
        for number, run in enumerate(self.runs):
            self.due[number][run.row_of_cell[cells]] = True


def _protect_widely(
    values: npt.NDArray[np.int64],
    status: npt.NDArray[np.int8],
    groups: Sequence[Sequence[Group]],
    exposed: npt.NDArray[np.bool_],
) -> None:
    """Withholds next to exposed cells; where their equations have nothing visible left, one equation further."""
    frontier = _flat(np.ascontiguousarray(exposed))
    for _ in range(MAX_ROUNDS):
        if _protect(values, status, groups, frontier):
            return
        wider = frontier.copy()
        hidden = _flat(status) != SHOWN
        for run in _table_runs(values.shape, groups):
            touched = (frontier[run.members] & ~run.blank).any(axis=1)
            members, blank = run.members[touched], run.blank[touched]
            wider[members[hidden[members] & ~blank]] = True
        if np.array_equal(wider, frontier):
            raise RuntimeError("an exposed count has no visible neighbour left to withhold")
        frontier = wider


def _protect(
    values: npt.NDArray[np.int64],
    status: npt.NDArray[np.int8],
    groups: Sequence[Sequence[Group]],
    exposed: npt.NDArray[np.bool_],
) -> int:
    """Withholds one more visible member of every equation that contains an exposed (flat) cell."""
    flat_values, flat_status = _flat(values), _flat(status)
    added = 0
    for run in _table_runs(values.shape, groups):
        touched = np.flatnonzero((exposed[run.members] & ~run.blank).any(axis=1))
        if touched.size:
            added += _withhold(flat_values, flat_status, run, touched).size
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

    def __post_init__(self) -> None:
        # Worked flat (see `_flat`); aggregation leaves them in whatever order einsum chose.
        object.__setattr__(self, "a", np.ascontiguousarray(self.a))
        object.__setattr__(self, "b", np.ascontiguousarray(self.b))

    def attack(
        self, a_status: npt.NDArray[np.int8], b_status: npt.NDArray[np.int8], threshold: int
    ) -> tuple[Bounds, Bounds]:
        a_bounds = attack(self.a, a_status, self.a_groups, threshold)
        b_bounds: Bounds | None = None
        for _ in range(MAX_ROUNDS):
            b_known = _bounds(self.b, b_status, threshold) if b_bounds is None else b_bounds
            b_known = (b_known[0].copy(), b_known[1].copy())
            b_known[0][self.b_index] = np.maximum(b_known[0][self.b_index], a_bounds[0][self.a_index])
            b_known[1][self.b_index] = np.minimum(b_known[1][self.b_index], a_bounds[1][self.a_index])
            b_bounds = attack(self.b, b_status, self.b_groups, threshold, b_known, since=b_bounds)
            a_known = (a_bounds[0].copy(), a_bounds[1].copy())
            a_known[0][self.a_index] = np.maximum(a_known[0][self.a_index], b_bounds[0][self.b_index])
            a_known[1][self.a_index] = np.minimum(a_known[1][self.a_index], b_bounds[1][self.b_index])
            if np.array_equal(a_known[0], a_bounds[0]) and np.array_equal(a_known[1], a_bounds[1]):
                return a_bounds, b_bounds
            a_bounds = attack(self.a, a_status, self.a_groups, threshold, a_known, since=a_bounds)
        raise RuntimeError("the joint attack did not settle")

    def suppressed(
        self, threshold: int, earlier: Suppressed | None = None, *, decide: Decide | None = None
    ) -> Suppressed:
        """Suppresses both tables, deciding again only what changed since `earlier` (when given). `decide` runs
        `LinkedTables.suppress` on the tables to decide (e.g. in another process); by default, here.

        Every equation along the other axes, and the link between the tables, stays within one slice of the first
        axis (one measure), and the first axis's own equations tie only a few slices together (a contest and its
        outcomes). So a slice's suppression depends on its own counts alone: slices whose counts are those of
        `earlier` keep its decision, the others are decided together, and the result is exactly what deciding
        everything again would give, in the time the changed slices take.
        """
        decide = decide or LinkedTables.suppress
        whole = slice(None)
        if (
            earlier is None
            or earlier.threshold != threshold
            or self._layout() != earlier.tables._layout()
            or self.a_index[0] != whole  # the link ties slices together: all at once
            or self.b_index[0] != whole
        ):
            return Suppressed(self, threshold, *decide(self, threshold))
        rows = [
            row
            for part in self._independent_slices()
            if not np.array_equal(self.a[part], earlier.tables.a[part])
            or not np.array_equal(self.b[part], earlier.tables.b[part])
            for row in part
        ]
        if len(rows) == self.a.shape[0]:
            return Suppressed(self, threshold, *decide(self, threshold))
        a_status, b_status = earlier.a_status.copy(), earlier.b_status.copy()
        if rows:
            a_status[rows], b_status[rows] = decide(self._slices(rows), threshold)
        return Suppressed(self, threshold, a_status, b_status)

    def _layout(self) -> tuple[object, ...]:
        return (self.a.shape, self.b.shape, self.a_groups, self.b_groups, self.a_index, self.b_index)

    def _independent_slices(self) -> list[list[int]]:
        """Slices of the first axis that no equation ties to another, as groups of slices that equations tie."""
        part_of = list(range(self.a.shape[0]))

        def root(row: int) -> int:
            while part_of[row] != row:
                row = part_of[row]
            return row

        for parent, children in [*self.a_groups[0], *self.b_groups[0]]:
            for child in children:
                part_of[root(child)] = root(parent)
        parts: dict[int, list[int]] = {}
        for row in range(self.a.shape[0]):
            parts.setdefault(root(row), []).append(row)
        return list(parts.values())

    def _slices(self, rows: list[int]) -> LinkedTables:
        """The tables cut to some slices of the first axis (closed under its equations), equations renumbered."""
        position = {row: i for i, row in enumerate(rows)}

        def first_axis(groups: Sequence[Group]) -> list[Group]:
            return [
                (position[parent], tuple(position[child] for child in children))
                for parent, children in groups
                if parent in position
            ]

        return LinkedTables(
            a=self.a[rows],
            a_groups=[first_axis(self.a_groups[0]), *self.a_groups[1:]],
            a_index=self.a_index,
            b=self.b[rows],
            b_groups=[first_axis(self.b_groups[0]), *self.b_groups[1:]],
            b_index=self.b_index,
        )

    def suppress(self, threshold: int) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
        a_status = np.where(self.a < threshold, PRIMARY, SHOWN).astype(np.int8)
        b_status = np.where(self.b < threshold, PRIMARY, SHOWN).astype(np.int8)
        if threshold <= 1:
            return a_status, b_status  # "<1" already says 0: nothing is hidden
        a_lone_cells, b_lone_cells = (
            _LoneCells(self.a, self.a_groups, threshold),
            _LoneCells(self.b, self.b_groups, threshold),
        )
        for _ in range(MAX_ROUNDS):
            # The cheap local rules in both tables, the shared cells kept alike, until nothing moves...
            while a_lone_cells(a_status) + b_lone_cells(b_status) + self._align(a_status, b_status):
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


Decide = Callable[["LinkedTables", int], tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]]


@dataclass(frozen=True)
class Suppressed:
    """Linked tables and their suppression, kept so that the next one decides again only what changed."""

    tables: LinkedTables
    threshold: int
    a_status: npt.NDArray[np.int8]
    b_status: npt.NDArray[np.int8]


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
