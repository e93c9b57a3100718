"""Evaluates intake's severity assessment on the labelled set.

    .venv/bin/python bench/severity/evaluate.py               # kind and rating as submitted
    .venv/bin/python bench/severity/evaluate.py --kind-blind  # kind forced to "question", rating None: text alone
    .venv/bin/python bench/severity/evaluate.py --sweep       # both modes over a grid of sentiment thresholds

A false negative is an item labelled negative or critical that came out positive or neutral: the expensive error
(ignored feedback). A false positive is an item labelled positive or neutral that came out negative or critical.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from heard_intake.severity import (
    DEFAULT_THRESHOLDS,
    SeverityAssessment,
    TextSignals,
    Thresholds,
    analyse_text,
    decide,
)

DEFAULT_DATA = Path(__file__).with_name("labelled.jsonl")
NEGATIVE = frozenset({"negative", "critical"})


@dataclass(frozen=True)
class Example:
    text: str
    kind: str
    rating: int | None
    language: str
    expected: str


@dataclass(frozen=True)
class Outcome:
    example: Example
    assessment: SeverityAssessment

    @property
    def predicted(self) -> str:
        return self.assessment.severity

    @property
    def false_negative(self) -> bool:
        return self.example.expected in NEGATIVE and not self.assessment.negative

    @property
    def false_positive(self) -> bool:
        return self.example.expected not in NEGATIVE and self.assessment.negative


@dataclass(frozen=True)
class Report:
    outcomes: list[Outcome]

    def _rate(self, hits: int, total: int) -> float:
        return hits / total if total else 0.0

    def fn_rate(self, language: str | None = None) -> float:
        pool = [o for o in self.outcomes if o.example.expected in NEGATIVE]
        if language:
            pool = [o for o in pool if o.example.language == language]
        return self._rate(sum(o.false_negative for o in pool), len(pool))

    def fp_rate(self, language: str | None = None) -> float:
        pool = [o for o in self.outcomes if o.example.expected not in NEGATIVE]
        if language:
            pool = [o for o in pool if o.example.language == language]
        return self._rate(sum(o.false_positive for o in pool), len(pool))

    def critical_recall(self) -> float:
        pool = [o for o in self.outcomes if o.example.expected == "critical"]
        return self._rate(sum(o.predicted == "critical" for o in pool), len(pool))

    def false_criticals(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.predicted == "critical" and o.example.expected != "critical"]

    def accuracy(self) -> float:
        return self._rate(sum(o.predicted == o.example.expected for o in self.outcomes), len(self.outcomes))


def load(path: Path) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["expected"] not in {"positive", "neutral", "negative", "critical"}:
            raise ValueError(f"{path}:{number}: unknown label {row['expected']!r}")
        examples.append(Example(row["text"], row["kind"], row["rating"], row["language"], row["expected"]))
    return examples


def signals_for(examples: Sequence[Example]) -> list[TextSignals]:
    return [analyse_text(example.text, example.language) for example in examples]


def evaluate(
    examples: Sequence[Example],
    signals: Sequence[TextSignals],
    *,
    kind_blind: bool,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Report:
    outcomes = []
    for example, text_signals in zip(examples, signals, strict=True):
        kind = "question" if kind_blind else example.kind
        rating = None if kind_blind else example.rating
        outcomes.append(Outcome(example, decide(kind=kind, rating=rating, signals=text_signals, thresholds=thresholds)))
    return Report(outcomes)


def _pct(value: float) -> str:
    return f"{100 * value:5.1f}%"


def print_report(report: Report, *, title: str, show_misses: bool = True) -> None:
    outcomes = report.outcomes
    by_label: dict[str, int] = {}
    for o in outcomes:
        by_label[o.example.expected] = by_label.get(o.example.expected, 0) + 1
    languages = sorted({o.example.language for o in outcomes})
    print(f"== {title}")
    print(
        f"examples: {len(outcomes)} ("
        + ", ".join(f"{lang}: {sum(o.example.language == lang for o in outcomes)}" for lang in languages)
        + "); expected: "
        + ", ".join(f"{label} {count}" for label, count in sorted(by_label.items()))
    )
    negatives = sum(o.example.expected in NEGATIVE for o in outcomes)
    fns = [o for o in outcomes if o.false_negative]
    fps = [o for o in outcomes if o.false_positive]
    print(f"false-negative rate: {_pct(report.fn_rate())}  ({len(fns)} of {negatives} negative/critical missed)")
    for lang in languages:
        pool = [o for o in outcomes if o.example.language == lang and o.example.expected in NEGATIVE]
        print(f"  {lang}: {_pct(report.fn_rate(lang))}  ({sum(o.false_negative for o in pool)} of {len(pool)})")
    criticals = [o for o in outcomes if o.example.expected == "critical"]
    print(
        f"critical recall:     {_pct(report.critical_recall())}  "
        f"({sum(o.predicted == 'critical' for o in criticals)} of {len(criticals)})"
    )
    others = len(outcomes) - negatives
    print(f"false-positive rate: {_pct(report.fp_rate())}  ({len(fps)} of {others} positive/neutral flagged negative)")
    for lang in languages:
        pool = [o for o in outcomes if o.example.language == lang and o.example.expected not in NEGATIVE]
        print(f"  {lang}: {_pct(report.fp_rate(lang))}  ({sum(o.false_positive for o in pool)} of {len(pool)})")
    print(f"false criticals:     {len(report.false_criticals())}")
    print(f"4-class accuracy:    {_pct(report.accuracy())}")
    if not show_misses:
        return
    sections = [
        ("FALSE NEGATIVES (expected negative/critical, predicted positive/neutral)", fns),
        (
            "CRITICAL MISSED (expected critical, predicted negative)",
            [o for o in criticals if o.predicted == "negative"],
        ),
        ("FALSE POSITIVES (expected positive/neutral, predicted negative/critical)", fps),
        ("FALSE CRITICALS (predicted critical, expected otherwise)", report.false_criticals()),
    ]
    for heading, items in sections:
        print(f"-- {heading}: {len(items)}")
        for o in items:
            e = o.example
            print(f"  [{e.language}] {e.kind}/{e.rating} expected={e.expected} predicted={o.predicted}: {e.text}")
            print(f"        reasons: {', '.join(o.assessment.reasons) or '-'}")


def sweep(examples: Sequence[Example], signals: Sequence[TextSignals]) -> None:
    print("negative-threshold  | kind+rating: FN%   FP%  | text only: FN%   FP%")
    for step in range(-10, 11):
        threshold = round(step * 0.05, 2)
        thresholds = replace(DEFAULT_THRESHOLDS, negative=threshold)
        full = evaluate(examples, signals, kind_blind=False, thresholds=thresholds)
        blind = evaluate(examples, signals, kind_blind=True, thresholds=thresholds)
        marker = "  <- in use" if threshold == DEFAULT_THRESHOLDS.negative else ""
        print(
            f"compound < {threshold:+.2f}     |  {_pct(full.fn_rate())} {_pct(full.fp_rate())}  |"
            f"  {_pct(blind.fn_rate())} {_pct(blind.fp_rate())}{marker}"
        )
    print()
    print("clause-threshold    | kind+rating: FN%   FP%  | text only: FN%   FP%")
    for threshold in (-0.7, -0.6, -0.5, -0.4, -0.3, -0.2, -0.1, -0.01):
        thresholds = replace(DEFAULT_THRESHOLDS, clause=threshold)
        full = evaluate(examples, signals, kind_blind=False, thresholds=thresholds)
        blind = evaluate(examples, signals, kind_blind=True, thresholds=thresholds)
        marker = "  <- in use" if threshold == DEFAULT_THRESHOLDS.clause else ""
        print(
            f"clause <= {threshold:+.2f}     |  {_pct(full.fn_rate())} {_pct(full.fp_rate())}  |"
            f"  {_pct(blind.fn_rate())} {_pct(blind.fp_rate())}{marker}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind-blind", action="store_true", help='kind forced to "question", rating None')
    parser.add_argument("--sweep", action="store_true", help="both modes over a grid of sentiment thresholds")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled JSONL file")
    parser.add_argument("--quiet", action="store_true", help="figures only, no list of misses")
    args = parser.parse_args(argv)

    examples = load(args.data)
    signals = signals_for(examples)
    if args.sweep:
        sweep(examples, signals)
        return 0
    title = (
        "text only (--kind-blind: kind=question, rating=None)" if args.kind_blind else "kind + rating + text"
    ) + f"; thresholds: negative < {DEFAULT_THRESHOLDS.negative:+.2f}, positive >= {DEFAULT_THRESHOLDS.positive:+.2f}"
    print_report(evaluate(examples, signals, kind_blind=args.kind_blind), title=title, show_misses=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
