"""The learned part of the severity assessment: two logistic regressions over `severity_features`.

One scores how likely a text is negative (a complaint or concern, whatever its kind), the other how likely it
alleges police misconduct. `bench/severity/train.py` fits both with scikit-learn on bench/severity/labelled.jsonl
and writes their weights and decision thresholds into `severity_weights.py`; here they are only read, in pure
Python, so intake needs neither scikit-learn nor any download at run time.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from heard_intake import severity_weights


@dataclass(frozen=True)
class LinearModel:
    bias: float
    weights: Mapping[str, float]

    def probability(self, features: Mapping[str, float]) -> float:
        """P(class | features) of a logistic regression; `features` as `severity_features.normalised` gives them."""
        logit = self.bias + sum(self.weights.get(name, 0.0) * value for name, value in features.items())
        if logit < -30.0:  # exp() would overflow; the probability is 0 at this precision anyway
            return 0.0
        return 1.0 / (1.0 + math.exp(-logit))


@dataclass(frozen=True)
class ModelThresholds:
    """Probabilities chosen by train.py from out-of-fold predictions on the tuning set (see its docstring)."""

    negative: float  # at or above: negative; below `negative_sure` it is flagged uncertain
    negative_sure: float
    critical: float  # at or above: critical; below `critical_sure` it is flagged uncertain
    critical_sure: float


@dataclass(frozen=True)
class SeverityModel:
    negative: LinearModel
    critical: LinearModel
    thresholds: ModelThresholds


@functools.cache
def severity_model() -> SeverityModel:
    """Parses the generated weights once (a few milliseconds), on first use."""
    negative: dict[str, float] = {}
    critical: dict[str, float] = {}
    for line in severity_weights.WEIGHTS.strip("\n").split("\n"):
        name, negative_weight, critical_weight = line.split("\t")
        if negative_weight != "0":
            negative[name] = float(negative_weight)
        if critical_weight != "0":
            critical[name] = float(critical_weight)
    return SeverityModel(
        negative=LinearModel(severity_weights.NEGATIVE_BIAS, negative),
        critical=LinearModel(severity_weights.CRITICAL_BIAS, critical),
        thresholds=ModelThresholds(**severity_weights.THRESHOLDS),
    )
