"""Scores intake's severity assessment on the tuning set and the held-out set, and times it.

    .venv/bin/python bench/severity/evaluate.py              # both sets, both modes, cost per item
    .venv/bin/python bench/severity/evaluate.py --misses     # also list every miss, by the item's tag
    .venv/bin/python bench/severity/evaluate.py --data other.jsonl

Two modes: "with kind" passes the kind and rating the resident chose; "text alone" passes kind "question" and no
rating, as a city system might send an item. Figures, each with a 95% Wilson interval, overall and per language:

* negative recall: items labelled negative or critical that came out negative or critical (a miss is ignored
  feedback, the expensive error);
* precision on negative: of the items that came out negative or critical, the share labelled so;
* critical recall: items labelled critical that came out critical;
* uncertain: items flagged for a person to confirm.

labelled.jsonl is the tuning set: the learned model was trained on it, so its figures are in-sample and
optimistic (bench/severity/README.md gives cross-validated ones). heldout.jsonl was written before any tuning
and is never trained or tuned on: its figures are the honest ones. Cost: CPU time (this thread's, so other
processes on a shared machine do not count) of `assess_severity` per item over all items of both sets, after one
warm-up pass, p50 and p99.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from heard_intake.severity import SeverityAssessment, analyse_text, assess_severity, decide, warm_up

HERE = Path(__file__).parent
SETS = {"tuning set (labelled.jsonl)": HERE / "labelled.jsonl", "held-out set (heldout.jsonl)": HERE / "heldout.jsonl"}
NEGATIVE = frozenset({"negative", "critical"})


@dataclass(frozen=True)
class Example:
    text: str
    kind: str
    rating: int | None
    language: str
    expected: str
    tag: str


@dataclass(frozen=True)
class Outcome:
    example: Example
    assessment: SeverityAssessment


def load(path: Path) -> list[Example]:
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row["expected"] not in {"positive", "neutral", "negative", "critical"}:
            raise ValueError(f"{path}:{number}: unknown label {row['expected']!r}")
        examples.append(
            Example(row["text"], row["kind"], row["rating"], row["language"], row["expected"], row.get("tag", "-"))
        )
    return examples


def assess_all(examples: Sequence[Example], *, text_alone: bool) -> list[Outcome]:
    outcomes = []
    for example in examples:
        signals = analyse_text(example.text, example.language)
        assessment = decide(
            kind="question" if text_alone else example.kind,
            rating=None if text_alone else example.rating,
            signals=signals,
        )
        outcomes.append(Outcome(example, assessment))
    return outcomes


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float, float]:
    """The share and its 95% Wilson score interval (sensible at 0 and 1 and for small counts, unlike p ± 2σ)."""
    if total == 0:
        return math.nan, math.nan, math.nan
    share = hits / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return share, max(0.0, centre - half), min(1.0, centre + half)


def _figure(hits: int, total: int) -> str:
    share, low, high = wilson(hits, total)
    return f"{share:6.3f} [{low:.3f}-{high:.3f}] ({hits:>3}/{total:<3})" if total else f"{'-':>6}{'':>26}"


def print_table(outcomes: Sequence[Outcome]) -> None:
    print(f"  {'':6} {'negative recall':>32} {'precision on negative':>32} {'critical recall':>32} {'uncertain':>9}")
    for language in (None, "en", "es"):
        pool = [o for o in outcomes if language is None or o.example.language == language]
        negatives = [o for o in pool if o.example.expected in NEGATIVE]
        flagged = [o for o in pool if o.assessment.negative]
        criticals = [o for o in pool if o.example.expected == "critical"]
        print(
            f"  {language or 'all':6} "
            f"{_figure(sum(o.assessment.negative for o in negatives), len(negatives)):>32} "
            f"{_figure(sum(o.example.expected in NEGATIVE for o in flagged), len(flagged)):>32} "
            f"{_figure(sum(o.assessment.severity == 'critical' for o in criticals), len(criticals)):>32} "
            f"{sum(o.assessment.uncertain for o in pool):>9}"
        )


def print_misses(outcomes: Sequence[Outcome]) -> None:
    sections: list[tuple[str, Callable[[Outcome], bool]]] = [
        (
            "missed negative (came out positive/neutral)",
            lambda o: o.example.expected in NEGATIVE and not o.assessment.negative,
        ),
        (
            "critical that came out negative",
            lambda o: o.example.expected == "critical" and o.assessment.severity == "negative",
        ),
        (
            "false negative (labelled positive/neutral)",
            lambda o: o.example.expected not in NEGATIVE and o.assessment.negative,
        ),
        ("false critical", lambda o: o.example.expected != "critical" and o.assessment.severity == "critical"),
    ]
    for heading, wrong in sections:
        items = sorted((o for o in outcomes if wrong(o)), key=lambda o: o.example.tag)
        print(f"  -- {heading}: {len(items)}")
        for o in items:
            e = o.example
            print(f"     [{e.language} {e.tag}] {e.kind}/{e.rating} {e.expected}->{o.assessment.severity}: {e.text}")
            print(f"        reasons: {', '.join(o.assessment.reasons) or '-'}")


def cost(examples: Sequence[Example]) -> tuple[float, float]:
    for example in examples:  # warm-up: builds the analyzers and fills the stem caches as a running intake would
        assess_severity(kind=example.kind, text=example.text, rating=example.rating, language=example.language)
    timings = []
    for example in examples:
        started = time.thread_time()
        assess_severity(kind=example.kind, text=example.text, rating=example.rating, language=example.language)
        timings.append(time.thread_time() - started)
    timings.sort()
    return statistics.median(timings), timings[min(len(timings) - 1, int(0.99 * len(timings)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", help="labelled JSONL file(s) instead of both sets")
    parser.add_argument("--misses", action="store_true", help="list every miss and false alarm, by tag")
    args = parser.parse_args(argv)

    sets = {str(path): path for path in args.data} if args.data else SETS
    warm_up()
    everything: list[Example] = []
    for title, path in sets.items():
        examples = load(path)
        everything.extend(examples)
        labels = {
            label: sum(e.expected == label for e in examples)
            for label in ("critical", "negative", "neutral", "positive")
        }
        languages = {language: sum(e.language == language for e in examples) for language in ("en", "es")}
        print(f"== {title}: {len(examples)} items {languages}, labels {labels}")
        for mode, text_alone in (("with kind", False), ("text alone", True)):
            outcomes = assess_all(examples, text_alone=text_alone)
            print(f" {mode}:")
            print_table(outcomes)
            if args.misses:
                print_misses(outcomes)
        print()
    p50, p99 = cost(everything)
    print(f"CPU per assess_severity ({len(everything)} items): p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
