"""Severity at intake: kind and rating rules, sentiment, sarcasm, negation, misconduct, both languages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from heard_intake import severity
from heard_intake.severity import SeverityAssessment, assess_severity

LABELLED = Path(__file__).resolve().parents[2] / "bench" / "severity" / "labelled.jsonl"


def assess(text: str, *, kind: str = "question", rating: int | None = None, language: str = "en") -> SeverityAssessment:
    return assess_severity(kind=kind, text=text, rating=rating, language=language)


# -- kind and rating ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["complaint", "concern"])
def test_complaint_and_concern_are_negative_whatever_the_text(kind: str) -> None:
    result = assess("The officer was polite and explained the ticket.", kind=kind)
    assert result.severity == "negative"
    assert result.negative
    assert f"kind:{kind}" in result.reasons


@pytest.mark.parametrize(("rating", "severity_"), [(1, "negative"), (2, "negative"), (3, "neutral"), (4, "positive")])
def test_rating_two_or_less_is_negative(rating: int, severity_: str) -> None:
    result = assess("Attended the community meeting on Tuesday.", kind="suggestion", rating=rating)
    assert result.severity == severity_
    assert ("rating:" + str(rating) in result.reasons) == (rating <= 2 or rating >= 4)


def test_neutral_suggestion_and_question_stay_neutral() -> None:
    suggestion = assess("Suggest adding a crossing guard at Hillside Elementary at drop-off time.", kind="suggestion")
    assert suggestion.severity == "neutral"
    assert assess("What are the hours for the records office on Saturdays?").severity == "neutral"


def test_praise_kind_does_not_hide_negative_text() -> None:
    result = assess("The officer at the desk was rude and refused to take my report.", kind="praise", rating=5)
    assert result.severity == "negative"
    assert any(reason.startswith("sentiment:") for reason in result.reasons)
    assert "cue:refused" in result.reasons


def test_negative_flag_matches_severity_and_reasons_are_machine_readable() -> None:
    result = assess("Nobody came and I waited two hours.", kind="complaint", rating=1)
    assert result.negative is (result.severity in {"negative", "critical"})
    for reason in result.reasons:
        assert re.fullmatch(r"[a-z-]+:[^\s]+(?: [^\s]+)*|cue:[a-z-]+", reason), reason
    sentiment = [r for r in result.reasons if r.startswith("sentiment:")]
    assert all(re.fullmatch(r"sentiment:-?\d\.\d\d", r) for r in sentiment)


# -- English: sarcasm, polite complaints, angry praise, mixed ----------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Great job ignoring my call for 3 hours.",
        "Thanks so much for wasting my whole afternoon at the station.",
        "Thanks for nothing.",
        "Love how the patrol car parks in the bike lane every single morning. Very safe, very cool.",
    ],
)
def test_english_sarcasm_is_negative_even_as_praise(text: str) -> None:
    result = assess(text, kind="praise")
    assert result.severity == "negative", result.reasons


def test_sarcasm_is_named() -> None:
    assert "cue:sarcasm" in assess("Great job ignoring my call for 3 hours.", kind="praise").reasons


def test_polite_complaint_is_negative() -> None:
    text = "I would kindly ask that officers stop parking on the sidewalk outside the bakery on Oak Avenue."
    result = assess(text, kind="suggestion")
    assert result.severity == "negative"
    assert {"cue:stop-request", "cue:obstruction"} & set(result.reasons)


def test_angry_praise_is_positive() -> None:
    result = assess("I was furious at the driver but the officer was fantastic.", kind="praise", rating=5)
    assert result.severity == "positive", result.reasons
    blind = assess("I was furious at the driver but the officer was fantastic and sorted it all out.")
    assert blind.severity == "positive", blind.reasons


def test_complaint_inside_praise_is_not_lost() -> None:
    result = assess("The wait was terrible but the officer was great once he got there.", kind="praise", rating=4)
    assert result.severity == "negative"
    assert any(reason.startswith("clause-sentiment:") for reason in result.reasons)


@pytest.mark.parametrize(
    "text",
    [
        "Called 911 about a break-in in progress and no one came for over an hour.",
        "Still no response to the records request I submitted in January.",
        "The non-emergency number rang for 20 minutes and then hung up on me.",
        "I've called three times about the abandoned car and it's still there.",
        "Why was my report closed without anyone contacting me?",
        "Cars are speeding down Maple Drive every night and someone is going to get hurt.",
    ],
)
def test_english_complaints_without_kind_are_negative(text: str) -> None:
    assert assess(text).negative, assess(text).reasons


def test_english_negation_of_sentiment() -> None:
    assert assess("The officer was not helpful at all.").negative
    assert not assess("Not bad at all, the officers were quick and polite.").negative


# -- misconduct ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "term"),
    [
        ("The officer slammed my son to the ground. This was excessive force.", "en", "excessive force"),
        ("I was pulled over for no reason and I believe it was racial profiling.", "en", "racial profiling"),
        ("An officer threatened to arrest me if I kept filming.", "en", "threats"),
        ("It feels like retaliation for my complaint.", "en", "retaliation"),
        ("An officer asked for cash to make the ticket go away.", "en", "bribery"),
        ("The deputy made sexual comments to my daughter.", "en", "sexual misconduct"),
        ("I have been harassed by the same two officers every time I walk to work.", "en", "harassment"),
        ("They discriminated against me because of my accent.", "en", "discrimination"),
        ("Great job, officer, beating a teenager who was already in cuffs.", "en", "physical force"),
        ("Fue uso excesivo de la fuerza.", "es", "uso de la fuerza"),
        ("Me pararon sin motivo y creo que fue por perfil racial.", "es", "perfil racial"),
        ("Un oficial me amenazó con arrestarme si seguía grabando.", "es", "amenazas"),
        ("Un oficial me pidió dinero para no ponerme la multa.", "es", "soborno"),
        ("Los mismos dos oficiales me acosan cada vez que camino al trabajo.", "es", "acoso"),
        ("Me golpearon en la patrulla.", "es", "agresion fisica"),
        ("Se siente como represalia.", "es", "represalia"),
    ],
)
def test_misconduct_allegation_is_critical(text: str, language: str, term: str) -> None:
    result = assess(text, kind="praise", rating=5, language=language)
    assert result.severity == "critical", result.reasons
    assert result.negative
    assert f"misconduct:{term}" in result.reasons


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("He did not use excessive force, he was kind and explained everything.", "en"),
        ("To be clear, nobody harassed me. The officer was polite about it.", "en"),
        ("No use of force was needed, the officers talked him down calmly.", "en"),
        ("He wasn't aggressive or threatening at all. He was calm and professional.", "en"),
        ("I was not racially profiled. The officer was courteous.", "en"),
        ("No usó fuerza excesiva, fue amable y me explicó todo.", "es"),
        ("Para que quede claro, nadie me acosó. El oficial fue respetuoso.", "es"),
        ("No fue agresivo ni amenazante. Fue tranquilo y profesional.", "es"),
        ("No me discriminaron y el oficial fue cortés.", "es"),
    ],
)
def test_negated_misconduct_is_not_critical(text: str, language: str) -> None:
    result = assess(text, kind="praise", language=language)
    assert result.severity == "positive", result.reasons
    assert any(reason.startswith("misconduct-negated:") for reason in result.reasons)


def test_negation_only_downgrades_critical() -> None:
    result = assess("The officer never threatened me, but he did ignore my questions and walked off.", rating=2)
    assert result.severity == "negative"
    assert "misconduct-negated:threats" in result.reasons
    spanish = assess("El oficial nunca me amenazó, pero ignoró mis preguntas y se fue.", language="es")
    assert spanish.severity == "negative", spanish.reasons


def test_negated_process_keeps_the_allegation() -> None:
    assert assess("They never investigated my harassment complaint.").severity == "critical"
    assert assess("I'm not saying it was racial profiling, but it sure felt like it.").severity == "critical"
    assert assess("He didn't just threaten me, he shoved me against the car.").severity == "critical"


def test_fear_of_misconduct_is_not_an_allegation() -> None:
    result = assess("I was worried about racial profiling, but the officer was respectful and fair.", kind="praise")
    assert result.severity == "positive"
    assert "misconduct-hypothetical:racial profiling" in result.reasons


def test_policy_question_is_not_an_allegation() -> None:
    for text, language in [
        ("Where can I read the department's use of force policy?", "en"),
        ("¿Dónde puedo leer la política del departamento sobre el uso de la fuerza?", "es"),
    ]:
        result = assess(text, language=language)
        assert result.severity == "neutral", result.reasons
        assert any(reason.startswith("misconduct-topic:") for reason in result.reasons)


def test_act_by_someone_else_is_not_a_police_allegation() -> None:
    result = assess("Officer was dismissive when I reported the harassment from my neighbor.")
    assert result.severity == "negative"
    assert "misconduct-third-party:harassment" in result.reasons
    text = "Un tipo me amenazó con un cuchillo y los policías llegaron en minutos. ¡Mil gracias!"
    spanish = assess(text, language="es")
    assert spanish.severity != "critical"


# -- Spanish ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "El oficial fue muy amable y me explicó todo con paciencia. Muchas gracias.",
        "Llegaron muy rápido cuando llamé y fueron muy profesionales.",
        "Nada mal, los oficiales fueron rápidos y educados.",
        "No tengo quejas, el oficial fue eficiente.",
        "Estaba furiosa con el conductor que chocó mi carro, pero el oficial fue fantástico y me ayudó con todo.",
    ],
)
def test_spanish_praise_is_positive_from_text_alone(text: str) -> None:
    result = assess(text, language="es")
    assert result.severity == "positive", result.reasons


@pytest.mark.parametrize(
    "text",
    [
        "Excelente trabajo ignorando mi llamada durante tres horas.",
        "Gracias por nada. Sigo esperando que alguien venga a ver los daños.",
        "Muchas gracias por hacerme perder toda la tarde en la estación.",
        "Les pido amablemente que dejen de estacionar las patrullas en la banqueta frente a la panadería.",
        "El oficial de la recepción fue grosero y se negó a tomar mi denuncia.",
        "El oficial no fue nada amable y parecía molesto de que yo estuviera ahí.",
        "Llamé al 911 por un robo en curso y nadie llegó en más de una hora.",
        "El agente fue muy amable, pero la espera fue ridícula.",
        "No me siento segura caminando a casa desde la estación del tren.",
    ],
)
def test_spanish_negative_from_text_alone(text: str) -> None:
    result = assess(text, kind="praise", language="es")
    assert result.severity == "negative", result.reasons


def test_spanish_negators_and_boosters_reach_vader() -> None:
    positive = severity.analyse_text("El oficial fue muy amable.", "es").compound
    negated = severity.analyse_text("El oficial no fue amable.", "es").compound
    boosted = severity.analyse_text("El oficial fue amable.", "es").compound
    assert negated < 0 < boosted < positive


def test_spanish_inflections_fold_to_one_entry() -> None:
    for text in ("fue grosero", "fue grosera", "fueron groseros", "fueron groseras"):
        assert severity.analyse_text(text, "es").compound < 0, text


def test_spanish_sent_with_the_default_language_is_still_read_as_spanish() -> None:
    result = assess("El oficial fue grosero y nadie me ayudó.", language="en")
    assert result.severity == "negative"
    assert "language:es-detected" in result.reasons


def test_every_glossary_headword_has_a_valence() -> None:
    severity.warm_up()
    engine = severity._engine()
    missing = [headword for headword in severity.SPANISH_GLOSSARY if headword not in engine.vader.lexicon]
    assert missing == []


def test_assessment_is_deterministic() -> None:
    text = "Officer was great, but the wait was ridiculous."
    assert assess(text, kind="praise", rating=3) == assess(text, kind="praise", rating=3)


# -- regression guard on the labelled set -----------------------------------------------------------------

# Measured with bench/severity/evaluate.py on labelled.jsonl (920 items, 548 negative/critical, 192 critical), on
# which the learned model was trained: no false negative and every critical found, with the kind and from text
# alone; 56 false positives of 372 (15%). In-sample figures; bench/severity/README.md has the held-out and the
# cross-validated ones. The bounds leave room for a few items, no more.
MAX_FALSE_NEGATIVE_RATE = 0.015
MAX_TEXT_ONLY_FALSE_NEGATIVE_RATE = 0.06
MIN_CRITICAL_RECALL = 0.95
MAX_FALSE_POSITIVE_RATE = 0.18  # guards against "everything is negative"


def _labelled() -> list[dict[str, object]]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]


def _rates(rows: list[dict[str, object]], *, kind_blind: bool) -> tuple[float, float, float]:
    false_negatives = false_positives = criticals_found = 0
    negatives = others = criticals = 0
    for row in rows:
        rating = row["rating"]
        result = assess_severity(
            kind="question" if kind_blind else str(row["kind"]),
            text=str(row["text"]),
            rating=None if kind_blind or rating is None else int(str(rating)),
            language=str(row["language"]),
        )
        if row["expected"] in {"negative", "critical"}:
            negatives += 1
            false_negatives += not result.negative
        else:
            others += 1
            false_positives += result.negative
        if row["expected"] == "critical":
            criticals += 1
            criticals_found += result.severity == "critical"
    return false_negatives / negatives, false_positives / others, criticals_found / criticals


def test_labelled_set_is_large_and_bilingual() -> None:
    rows = _labelled()
    assert len(rows) >= 200
    assert sum(row["language"] == "es" for row in rows) >= 80


def test_false_negative_rate_on_labelled_set_stays_low() -> None:
    rows = _labelled()
    fn_rate, fp_rate, critical_recall = _rates(rows, kind_blind=False)
    assert fn_rate <= MAX_FALSE_NEGATIVE_RATE
    assert critical_recall >= MIN_CRITICAL_RECALL
    assert fp_rate <= MAX_FALSE_POSITIVE_RATE
    text_fn_rate, _, _ = _rates(rows, kind_blind=True)
    assert text_fn_rate <= MAX_TEXT_ONLY_FALSE_NEGATIVE_RATE
