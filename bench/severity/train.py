"""Trains the learned part of intake's severity assessment and writes its weights.

    .venv/bin/pip install -r bench/severity/requirements.txt   # scikit-learn: training only
    .venv/bin/python bench/severity/train.py                    # rewrites heard_intake/severity_weights.py

Reads bench/severity/labelled.jsonl (the tuning set) and nothing else: heldout.jsonl is never used for training
or for choosing thresholds.

Two L2-regularised logistic regressions (scikit-learn, lbfgs, balanced class weights, C below) over
`heard_intake.severity.model_features`: negative-or-critical against the rest, and critical against the rest.

Thresholds come from 5-fold out-of-fold probabilities, each item combined with the rules the way
`assess_severity` combines them, from the text alone (kind "question", no rating), since that is the harder case:

* negative: the highest probability at which negative recall reaches NEGATIVE_RECALL;
* critical: the highest probability at which critical recall reaches CRITICAL_RECALL;
* negative_sure / critical_sure: the lowest probability above which the model's own decisions (items no rule
  flagged) were right at least SURE_PRECISION of the time; between a threshold and its sure level an item is
  flagged uncertain.

Training is deterministic (fixed folds, deterministic solver); weights are rounded to four decimals and those
under PRUNE_BELOW dropped, so retraining on the same data gives the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np  # type: ignore[import-untyped, import-not-found, unused-ignore]
from sklearn.feature_extraction import DictVectorizer  # type: ignore[import-untyped, import-not-found, unused-ignore]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped, import-not-found, unused-ignore]
from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped, import-not-found, unused-ignore]

from heard_intake.severity import TextSignals, decide, model_features, rule_signals
from heard_intake.severity_model import ModelThresholds

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).with_name("labelled.jsonl")
OUTPUT = ROOT / "services" / "intake" / "heard_intake" / "severity_weights.py"
C = 30.0
FOLDS = 5
NEGATIVE_RECALL = 0.965
CRITICAL_RECALL = 0.92
SURE_PRECISION = 0.9
PRUNE_BELOW = 0.0005


def fit(features: Sequence[dict[str, float]], labels: np.ndarray) -> tuple[float, dict[str, float]]:
    vectorizer = DictVectorizer()
    matrix = vectorizer.fit_transform(features)
    model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000).fit(matrix, labels)
    names = vectorizer.get_feature_names_out()
    return float(model.intercept_[0]), {
        str(name): float(weight) for name, weight in zip(names, model.coef_[0], strict=True)
    }


def out_of_fold(features: Sequence[dict[str, float]], labels: np.ndarray) -> np.ndarray:
    probabilities = np.zeros(len(labels))
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(np.zeros(len(labels)), labels):
        vectorizer = DictVectorizer()
        matrix = vectorizer.fit_transform([features[i] for i in train])
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000).fit(matrix, labels[train])
        probabilities[test] = model.predict_proba(vectorizer.transform([features[i] for i in test]))[:, 1]
    return probabilities


def highest_threshold_for_recall(
    probabilities: np.ndarray, labels: np.ndarray, flagged: np.ndarray, recall: float
) -> float:
    """The highest probability p such that (rules OR probability >= p) finds `recall` of the positives."""
    positives = labels.sum()
    for candidate in sorted(set(np.round(probabilities, 3)), reverse=True):
        found = (labels & (flagged | (probabilities >= candidate))).sum()
        if found >= recall * positives:
            return float(candidate)
    return 0.0


def lowest_sure_threshold(probabilities: np.ndarray, labels: np.ndarray, flagged: np.ndarray, floor: float) -> float:
    """The lowest probability >= floor above which the model's own decisions are right SURE_PRECISION of the time."""
    own = ~flagged
    for candidate in sorted(c for c in set(np.round(probabilities, 3)) if c >= floor):
        decided = own & (probabilities >= candidate)
        if decided.sum() == 0 or (labels & decided).sum() / decided.sum() >= SURE_PRECISION:
            return float(max(candidate, floor))
    return 1.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    raw = DATA.read_bytes()
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    signals: list[TextSignals] = [rule_signals(row["text"], row["language"]) for row in rows]
    features = [model_features(row["text"], signal) for row, signal in zip(rows, signals, strict=True)]
    negative = np.array([row["expected"] in {"negative", "critical"} for row in rows])
    critical = np.array([row["expected"] == "critical" for row in rows])

    # What the rules alone decide from the text (kind "question", no rating), with the model switched off.
    off = ModelThresholds(negative=2.0, negative_sure=2.0, critical=2.0, critical_sure=2.0)
    by_rules = [decide(kind="question", rating=None, signals=s, model_thresholds=off) for s in signals]
    rules_negative = np.array([a.negative for a in by_rules])
    rules_critical = np.array([a.severity == "critical" for a in by_rules])

    negative_oof = out_of_fold(features, negative)
    critical_oof = out_of_fold(features, critical)
    negative_threshold = highest_threshold_for_recall(negative_oof, negative, rules_negative, NEGATIVE_RECALL)
    critical_threshold = highest_threshold_for_recall(critical_oof, critical, rules_critical, CRITICAL_RECALL)
    thresholds = {
        "negative": negative_threshold,
        "negative_sure": lowest_sure_threshold(negative_oof, negative, rules_negative, negative_threshold),
        "critical": critical_threshold,
        "critical_sure": lowest_sure_threshold(critical_oof, critical, rules_critical, critical_threshold),
    }

    negative_bias, negative_weights = fit(features, negative)
    critical_bias, critical_weights = fit(features, critical)
    lines = []
    for name in sorted(set(negative_weights) | set(critical_weights)):
        weights = [round(table.get(name, 0.0), 4) for table in (negative_weights, critical_weights)]
        if all(abs(weight) < PRUNE_BELOW for weight in weights):
            continue
        lines.append(name + "".join(f"\t{_number(weight)}" for weight in weights))

    args.output.write_text(
        '"""Weights of the learned severity model. Generated by bench/severity/train.py; do not edit."""\n\n'
        f'TRAINING_DATA_SHA256 = "{hashlib.sha256(raw).hexdigest()}"\n'
        f"NEGATIVE_BIAS = {round(negative_bias, 4)}\n"
        f"CRITICAL_BIAS = {round(critical_bias, 4)}\n"
        f"THRESHOLDS = {json.dumps(thresholds)}\n"
        "# feature<TAB>negative weight<TAB>critical weight\n"
        f'WEIGHTS = """\n' + "\n".join(lines) + '\n"""\n',
        encoding="utf-8",
    )
    print(f"{len(rows)} items; {len(lines)} features; thresholds {thresholds}; wrote {args.output}")
    return 0


def _number(weight: float) -> str:
    return "0" if weight == 0 else f"{weight:.4f}"


if __name__ == "__main__":
    sys.exit(main())
