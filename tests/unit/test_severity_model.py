"""The learned part of severity: features, the generated weights, the uncertain band, implicit misconduct."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from pathlib import Path

import pytest

from heard_intake import severity_weights
from heard_intake.severity import TextSignals, analyse_text, assess_severity, decide
from heard_intake.severity_features import normalised, text_features
from heard_intake.severity_model import LinearModel, ModelThresholds, severity_model

BENCH = Path(__file__).resolve().parents[2] / "bench" / "severity"


def test_weights_were_trained_on_the_committed_tuning_set() -> None:
    # Editing labelled.jsonl without re-running bench/severity/train.py would leave a model of other data.
    digest = hashlib.sha256((BENCH / "labelled.jsonl").read_bytes()).hexdigest()
    assert digest == severity_weights.TRAINING_DATA_SHA256


def test_training_never_reads_the_held_out_set() -> None:
    assert "heldout" not in (BENCH / "train.py").read_text(encoding="utf-8").split('"""', 2)[2]


def test_concepts_are_shared_across_languages_and_synonyms() -> None:
    english = text_features("The officer wanted cash to make the ticket go away.", "en")
    spanish = text_features("El agente quería una lana para quitarme la multa.", "es")
    for concept in ("k:police", "k:money", "k:citation", "kk:money+police"):
        assert concept in english
        assert concept in spanish


def test_concept_pairs_stay_within_a_sentence() -> None:
    features = text_features("The officer was kind. My wallet had cash in it.", "en")
    assert "k:police" in features
    assert "k:money" in features
    assert "kk:money+police" not in features


def test_phrases_and_prefixes_match_whole_words_only() -> None:
    assert "k:surveillance" in text_features("New license plate readers went up on Elm.", "en")
    assert "k:sexual" not in text_features("A stock market update.", "en")  # "toc*" must not catch "stock"
    assert "k:go-away" in text_features("He said he could make it go away.", "en")


def test_normalised_features_have_unit_length() -> None:
    features = normalised(text_features("Nobody came after I called twice about the break-in.", "en"))
    assert math.isclose(math.sqrt(sum(value * value for value in features.values())), 1.0)
    assert normalised({}) == {}


def test_linear_model_is_a_logistic_regression() -> None:
    model = LinearModel(bias=-1.0, weights={"a": 2.0})
    assert math.isclose(model.probability({"a": 0.5}), 0.5)
    assert model.probability({"b": 1.0}) == pytest.approx(1 / (1 + math.e))
    assert LinearModel(bias=-1000.0, weights={}).probability({}) == 0.0


def test_generated_thresholds_are_ordered() -> None:
    limits = severity_model().thresholds
    assert 0.0 < limits.negative <= limits.negative_sure <= 1.0
    assert 0.0 < limits.critical <= limits.critical_sure <= 1.0


LIMITS = ModelThresholds(negative=0.4, negative_sure=0.8, critical=0.3, critical_sure=0.7)
QUIET = TextSignals(language="en", compound=0.0, clause_compound=0.0, cues=(), misconduct=(), notes=())


@pytest.mark.parametrize(
    ("negative_score", "critical_score", "severity", "uncertain", "reason"),
    [
        (0.1, 0.0, "neutral", False, None),
        (0.5, 0.0, "negative", True, "uncertain:negative-0.50"),
        (0.9, 0.0, "negative", False, "model:negative-0.90"),
        (0.9, 0.5, "critical", True, "uncertain:misconduct-0.50"),
        (0.2, 0.8, "critical", False, "model:misconduct-0.80"),
    ],
)
def test_model_scores_and_the_uncertain_band(
    negative_score: float, critical_score: float, severity: str, uncertain: bool, reason: str | None
) -> None:
    signals = replace(QUIET, negative_score=negative_score, critical_score=critical_score)
    result = decide(kind="question", rating=None, signals=signals, model_thresholds=LIMITS)
    assert result.severity == severity
    assert result.uncertain is uncertain
    assert result.negative is (severity in {"negative", "critical"})
    assert (reason in result.reasons) if reason else result.reasons == []


def test_a_rule_makes_the_decision_certain() -> None:
    signals = replace(QUIET, cues=("cue:no-show",), negative_score=0.5)
    result = decide(kind="question", rating=None, signals=signals, model_thresholds=LIMITS)
    assert (result.severity, result.uncertain) == ("negative", False)
    assert result.reasons == ["cue:no-show"]
    complaint = decide(
        kind="complaint", rating=None, signals=replace(QUIET, negative_score=0.5), model_thresholds=LIMITS
    )
    assert (complaint.severity, complaint.uncertain, complaint.reasons) == ("negative", False, ["kind:complaint"])


# Phrasings that appear in neither labelled set: implicit, second-hand, suggestion-phrased misconduct.
@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("El de tránsito me dijo que si le daba para el refresco se olvidaba de la infracción.", "es"),
        ("The officer said he could lose the paperwork if I paid him two hundred dollars.", "en"),
        ("My cousin says a deputy put his hand up her skirt during the search.", "en"),
        ("Ever since I complained about the sergeant, I get a parking ticket every single morning.", "en"),
        ("Desde que puse la queja, la patrulla se estaciona frente a mi casa todas las noches.", "es"),
        ("Maybe officers should stop asking only the Black kids at the skate park for ID.", "en"),
    ],
)
def test_implicit_misconduct_is_critical_from_the_text_alone(text: str, language: str) -> None:
    result = assess_severity(kind="question", text=text, rating=None, language=language)
    assert result.severity == "critical", result.reasons
    assert any(reason.startswith(("model:misconduct-", "uncertain:misconduct-")) for reason in result.reasons)


@pytest.mark.parametrize(
    ("text", "language", "severity"),
    [
        ("¿Quién autorizó las cámaras lectoras de placas en mi calle? Nadie nos consultó.", "es", "negative"),
        ("What time does the records office open on Saturday?", "en", "neutral"),
        ("¿Dónde pago una multa de estacionamiento?", "es", "neutral"),
        ("Thanks to the officer who helped my grandmother cross the street.", "en", "positive"),
        ("Muchas gracias al agente que encontró a mi perro.", "es", "positive"),
    ],
)
def test_surveillance_worry_is_negative_and_plain_questions_and_thanks_are_not(
    text: str, language: str, severity: str
) -> None:
    assert assess_severity(kind="question", text=text, rating=None, language=language).severity == severity


def test_scores_are_probabilities_and_deterministic() -> None:
    text = "Since I testified, a cruiser parks outside my shop every afternoon."
    first, second = analyse_text(text), analyse_text(text)
    assert first == second
    assert 0.0 <= first.negative_score <= 1.0
    assert 0.0 <= first.critical_score <= 1.0
