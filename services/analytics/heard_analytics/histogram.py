"""Durations as counts in fixed, log-spaced bins, so medians and percentiles come from counters.

Bin 0 holds durations under one second; bin b ≥ 1 holds [2^((b-1)/4), 2^(b/4)) seconds: four bins per doubling,
each 19% wider than the last, from one second to beyond ten years in 130 bins. Adding two histograms is adding
their counts, so an area's, a month's or the city's histogram is the sum of its cells' — nothing is rescanned.
A percentile is read from the bin that holds its rank and reported as that bin's geometric middle, so the figure
is within ±9% of the exact value (2^(1/8) − 1); the methodology page says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

BINS_PER_DOUBLING = 4
MAX_BIN = 130  # 2^(130/4) s ≈ 190 years; anything longer lands here
RELATIVE_ERROR = 2 ** (1 / (2 * BINS_PER_DOUBLING)) - 1


def bin_of(seconds: float) -> int:
    if seconds < 1:
        return 0
    return min(MAX_BIN, math.floor(BINS_PER_DOUBLING * math.log2(seconds)) + 1)


def bin_middle(index: int) -> float:
    """Representative duration of a bin: the geometric middle of its bounds (0.5 s for the sub-second bin)."""
    if index <= 0:
        return 0.5
    return float(2 ** ((index - 0.5) / BINS_PER_DOUBLING))


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The q-quantile (0 < q < 1) of the durations counted in `counts` (bin -> count); None when empty.

    Uses the nearest-rank definition: the smallest bin whose cumulative count reaches ceil(q * n).
    """
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return bin_middle(index)
    return bin_middle(max(counts))


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            merged[index] = merged.get(index, 0) + count
    return merged
