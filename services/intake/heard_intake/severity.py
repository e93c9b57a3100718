"""Severity at intake, conservative by design (DESIGN.md, "Feedback lifecycle").

Any negative signal makes an item negative; a misconduct allegation that is not negated makes it critical.
The signals, each reported as a machine-readable reason:

* ``kind:complaint`` / ``kind:concern`` - what the resident chose;
* ``rating:N`` for a rating of 2 or less;
* ``sentiment:-0.62`` - VADER's compound score below a threshold tuned on ``bench/severity/labelled.jsonl``;
* ``cue:...`` - complaint events that carry no sentiment words ("nobody came", "waited three hours",
  "parked on the sidewalk", "se negó a tomar mi denuncia") and sarcasm ("great job ignoring my call");
* ``misconduct:...`` - allegations (use of force, discrimination, profiling, harassment, retaliation, threats,
  bribery, sexual misconduct, ...) in English and Spanish. A negated mention ("he did not use excessive force"),
  a fear of one ("I was worried about racial profiling"), a question about policy or statistics, or an act done
  by someone who is not police ("a man threatened me with a knife") is not an allegation: it is noted as
  ``misconduct-negated:``/``misconduct-hypothetical:``/``misconduct-topic:``/``misconduct-third-party:`` and
  can only keep an item from being *critical*; it never removes any other negative signal.

* ``model:negative-0.83`` / ``model:misconduct-0.91`` - the learned model (``severity_model.py``, trained by
  bench/severity/train.py over ``severity_features.py``), consulted after the rules; between its threshold and its
  "sure" level the reason reads ``uncertain:...`` and the assessment is flagged ``uncertain`` for a person to confirm.

Sentiment
---------
English is scored by VADER (``vaderSentiment``: lexicon and rules shipped inside the wheel, nothing downloaded).
Its lexicon is social-media English, so a small documented supplement (``DOMAIN_LEXICON``) adds words that
feedback to a police department uses and VADER lacks ("professional", "dismissive", "burglary", ...), each
valued by analogy with a VADER-rated near-synonym.

Spanish: no PyPI package that ships its model was both light and usable here (see bench/severity/README.md),
so Spanish goes through the *same* VADER analyzer: a glossary (``SPANISH_GLOSSARY``) maps Spanish words onto
VADER lexicon headwords - so Spanish words get VADER's crowd-rated valences - Spanish negators, boosters and
contrastive conjunctions are mapped onto the ones VADER's rules know ("no"→"not", "nadie"→"none", "muy"→"very",
"pero"→"but", ...), and Snowball's Spanish stemmer folds inflections (grosero/grosera/groseros, ignoró/ignoraron/
ignorando). VADER's negation window, boosters, "but" weighting, capitals and exclamation marks then apply as
they do in English.

No I/O happens at call time: the analyzer and the glossary index are built once, lazily, on first use.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal, Protocol

import snowballstemmer  # type: ignore[import-untyped]
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from heard_intake.severity_features import fold, normalised, text_features, unaccented
from heard_intake.severity_model import ModelThresholds, severity_model

Severity = Literal["positive", "neutral", "negative", "critical"]
Language = Literal["en", "es"]

NEGATIVE_KINDS: Final[frozenset[str]] = frozenset({"complaint", "concern"})
LOW_RATING: Final[int] = 2  # ratings are 1..5; 2 or less is a negative signal
HIGH_RATING: Final[int] = 4


@dataclass(frozen=True)
class SeverityAssessment:
    severity: Severity
    negative: bool  # True for negative and critical
    reasons: list[str]  # machine-readable, e.g. "kind:complaint", "rating:1", "sentiment:-0.62"
    # The assessor could not tell: the item is treated as negative and a person must confirm its severity.
    uncertain: bool = False


@dataclass(frozen=True)
class Thresholds:
    """Compound-score thresholds, swept on the first 391 items of bench/severity/labelled.jsonl (VADER's own -0.05)."""

    negative: float = -0.05  # compound of the whole text below this is a negative signal
    clause: float = -0.3  # compound of one clause about the service at or below this is a negative signal
    positive: float = 0.3  # compound at or above this (and no negative signal) reads as positive


DEFAULT_THRESHOLDS: Final[Thresholds] = Thresholds()


@dataclass(frozen=True)
class TextSignals:
    """What the text alone says; `decide` combines it with the kind and the rating."""

    language: Language
    compound: float  # VADER compound of the whole text
    clause_compound: float  # lowest compound of a clause about the police or the service (0.0 if none)
    cues: tuple[str, ...]
    misconduct: tuple[str, ...]
    notes: tuple[str, ...]
    negative_score: float = 0.0  # the learned model's P(negative | text); severity_model.py
    critical_score: float = 0.0  # the learned model's P(misconduct allegation | text)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# -- lexicon data --------------------------------------------------------------------------------------------

# Words VADER's lexicon lacks that feedback to a police department uses. Values on VADER's -4..+4 scale, each set
# by analogy with the VADER-rated near-synonym in the comment.
DOMAIN_LEXICON: Final[Mapping[str, float]] = {
    "polite": 1.8,  # nice 1.8, courteous 2.3
    "politely": 1.8,
    "professional": 1.8,  # helpful 1.8
    "professionally": 1.8,
    "professionalism": 1.8,
    "patience": 1.8,
    "patient": 1.5,
    "attentive": 1.7,
    "thorough": 1.5,
    "quick": 1.0,  # fine 0.8, efficient 1.8
    "quickly": 0.8,
    "prompt": 1.2,
    "promptly": 1.2,
    "organized": 1.2,
    "outstanding": 3.0,  # VADER has it; kept for "above and beyond"
    "dismissive": -1.8,  # disrespect -1.8
    "condescending": -2.0,  # arrogant -2.2
    "disrespectful": -2.0,  # rude -2.0
    "unhelpful": -1.8,  # helpful 1.8
    "unresponsive": -1.5,  # responsive 1.5
    "unsafe": -1.9,  # safe 1.9
    "slow": -1.0,
    "rushed": -1.0,
    "unanswered": -1.5,
    "unresolved": -1.2,
    "negligent": -2.1,  # incompetent -2.1
    "negligence": -2.3,  # incompetence -2.3
    "inefficient": -1.5,
    "forgot": -0.9,  # forgotten -0.9
    "yelling": -1.5,  # screamed -1.3, hostile -1.6
    "yelled": -1.5,
    "shouting": -1.5,
    "shouted": -1.5,
    "discrimination": -2.5,  # harassment -2.5
    "theft": -2.2,  # stolen -2.2
    "thefts": -2.2,
    "robbery": -2.2,
    "robberies": -2.2,
    "robbed": -2.2,
    "mugged": -2.2,
    "mugging": -2.2,
    "burglary": -2.2,
    "burglaries": -2.2,
    "burglarized": -2.2,
    "break-in": -2.0,
    "break-ins": -2.0,
    "vandalism": -2.0,
    "vandalized": -2.0,
    "gunshots": -2.5,  # crime -2.5
    "gunfire": -2.5,
    "shooting": -2.5,
    "shootings": -2.5,
    "speeding": -1.2,
    "streetracing": -1.2,  # "street racing" (joined by the idiom pass)
    "drugdealing": -1.5,  # "drug dealing", "dealing drugs"
    "hitandrun": -1.5,  # "hit and run"
    # Procedural words of policing that VADER rates from general use: damped, not zeroed, so that "he arrested
    # me for filming" still reads negative while "officers arrested him, thank you" reads as the praise it is.
    "arrest": -0.5,  # VADER -1.4
    "arrested": -0.5,  # VADER -2.1
    "arrests": -0.5,  # VADER -1.9
    "suspect": -0.5,  # VADER -1.2
    "suspects": -0.5,  # VADER -1.4
    "stop": 0.0,  # VADER -1.2 ("traffic stop"; "stop parking on the sidewalk" is a cue)
    "stopped": 0.0,  # VADER -0.9
    "warning": -0.3,  # VADER -1.4 ("got a warning")
    "warned": -0.3,  # VADER -1.1
    "charges": -0.3,  # VADER -1.1
    "charged": -0.3,  # VADER -0.8
    "emergency": -0.3,  # VADER -1.6 ("the non-emergency line")
    "emergencies": -0.3,
    "alarm": -0.3,  # VADER -1.4 ("alarm permit")
}

# What happened to the resident rather than how they were served: left out when a single clause is scored for
# negativity about the service ("the detective kept me updated on my stolen car case" is not a complaint).
INCIDENT_WORDS: Final[frozenset[str]] = _words(
    "stolen theft thefts robbery robberies robbed mugged mugging burglary burglaries burglarized break-in "
    "break-ins vandalism vandalized gunshots gunfire shooting shootings crime crimes criminal criminals accident "
    "accidents crash killed injured hurt drugdealing streetracing hitandrun speeding violence violent attacked "
    "lost"
)

# Spanish forms → VADER headword (or DOMAIN_LEXICON word). Spanish words take the headword's valence.
# Forms are matched exactly, then by Snowball stem when the stem has at least 4 letters; "=form" only exactly
# (its stem would catch unrelated words: "cortés" and "cortaron", "atento" and "atentado").
SPANISH_GLOSSARY: Final[Mapping[str, str]] = {
    # positive
    "kind": "amable amables gentil gentiles bondadoso bondadosa",
    "kindness": "amabilidad gentileza bondad",
    "kindly": "amablemente gentilmente",
    "polite": "educado educada educados educadas =cortes =corteses",
    "courteous": "cortesia",
    "respectful": "respetuoso respetuosa respetuosos respetuosas",
    "respect": "respeto respetar respetaron",
    "professional": "profesional profesionales",
    "professionally": "profesionalmente",
    "professionalism": "profesionalismo",
    "patience": "paciencia",
    "patient": "paciente pacientes",
    "quick": "rapido rapida rapidos rapidas rapidez",
    "quickly": "rapidamente",
    "excellent": "excelente excelentes",
    "good": "bueno buena buenos buenas buen",
    "great": "genial geniales estupendo estupenda buenisimo buenisima =gran grandioso",
    "fantastic": "fantastico fantastica fantasticos",
    "wonderful": "maravilloso maravillosa maravillosos",
    "amazing": "increible increibles asombroso",
    "perfect": "perfecto perfecta",
    "thanks": "gracias",
    "thank": "agradecer",
    "appreciate": "agradezco agradecemos agradeceria agradeceriamos aprecio apreciamos",
    "grateful": "agradecido agradecida agradecidos agradecidas",
    "thankful": "agradecimiento",
    "useful": "util utiles",
    "helpful": "servicial serviciales",
    "help": "ayuda ayudar ayudo ayudaron ayudaria ayudando",
    "attentive": "=atento =atenta =atentos =atentas",
    "safe": "seguro segura seguros seguras seguridad",
    "calm": "tranquilo tranquila tranquilos tranquilas calmado calmada calmaron calmo tranquilizo tranquilizaron "
    "tranquilizar",
    "compassionate": "humano humana humanos",
    "happy": "feliz felices contento contenta contentos",
    "satisfied": "satisfecho satisfecha satisfechos",
    "hero": "heroe",
    "heroes": "heroes",
    "brave": "valiente valientes",
    "fair": "=justo =justa",
    "clear": "=claro =clara",
    "efficient": "eficiente eficientes",
    "effective": "eficaz eficaces efectivo",
    "love": "encanto encanta encantan encantaron =amor",
    "support": "apoyo apoyar",
    "congratulations": "felicidades felicitaciones felicito",
    "recommend": "recomiendo recomendamos",
    "organized": "organizado organizada",
    "nice": "bonito bonita lindo linda agradable",
    "fine": "=bien",
    "outstanding": "excepcional sobresaliente",
    "better": "mejor mejores",
    # negative
    "rude": "grosero grosera groseros groseras maleducado maleducada descortes",
    "arrogant": "arrogante arrogantes prepotente prepotentes prepotencia",
    "dismissive": "despectivo despectiva despectivos",
    "condescending": "condescendiente condescendientes",
    "disrespectful": "irrespetuoso irrespetuosa irrespetuosos",
    "unprofessional": "antiprofesional",
    "aggressive": "agresivo agresiva agresivos",
    "violent": "violento violenta violentos",
    "violence": "violencia",
    "fear": "miedo temor",
    "scared": "asustado asustada asustados",
    "terrified": "aterrado aterrada aterrorizado aterrorizada",
    "unsafe": "inseguro insegura inseguros inseguridad",
    "dangerous": "peligroso peligrosa peligrosos",
    "danger": "peligro",
    "bad": "malo mala malos malas mal",
    "awful": "pesimo pesima pesimos fatal",
    "terrible": "terrible terribles",
    "horrible": "horrible horribles",
    "unacceptable": "inaceptable inaceptables",
    "shame": "verguenza",
    "shameful": "vergonzoso vergonzosa",
    "ridiculous": "ridiculo ridicula ridiculos",
    "slow": "lento lenta lentos lentitud",
    "ignored": "ignoro ignoraron ignorado ignorada ignorar",
    "ignoring": "ignorando",
    "disappointed": "decepcionado decepcionada decepciono decepcionaron",
    "disappointment": "decepcion",
    "frustrated": "frustrado frustrada",
    "frustration": "frustracion",
    "angry": "enojado enojada enojados enoje",
    "anger": "enojo coraje",
    "furious": "furioso furiosa",
    "annoyed": "molesto molesta molestos",
    "sad": "triste tristes",
    "sadness": "tristeza",
    "worried": "preocupado preocupada preocupados preocupa preocupante",
    "worry": "preocupacion",
    "useless": "inutil inutiles",
    "incompetent": "incompetente incompetentes",
    "negligent": "negligente",
    "negligence": "negligencia",
    "unfair": "injusto injusta",
    "injustice": "injusticia",
    "abuse": "abuso abusos",
    "abused": "maltrato maltrataron maltratado",
    "stolen": "robado robada robados robaron robando",
    "theft": "robo robos hurto",
    "mugged": "asalto asaltos asaltando asaltaron asaltado",
    "crime": "crimen crimenes delito delitos delincuencia",
    "gunshots": "balazos disparos balacera tiroteo",
    "noisy": "ruidoso ruidosa ruido",
    "yelling": "gritar grito gritos gritando grito",
    "insulted": "insulto insultaron insultado",
    "mocked": "burlo burlaron burla",
    "threatened": "amenazo amenazaron amenazado amenazando",
    "threat": "amenaza amenazas",
    "harassment": "acoso hostigamiento",
    "discrimination": "discriminacion",
    "racist": "racista racistas",
    "hurt": "lastimado lastimada lastimaron atropellan atropellaron atropellado atropellar",
    "injured": "herido herida heridos",
    "damage": "daño daños",
    "harm": "dañar",
    "crash": "choque choco",
    "accident": "accidente accidentes",
    "problem": "problema problemas",
    "complaint": "queja quejas",
    "complain": "quejarme quejarse",
    "abandoned": "abandonado abandonada",
    "unfortunately": "lamentablemente desafortunadamente",
    "lamentable": "lamentable",
    "lost": "perdido perdida perdi perder",
    "forgotten": "olvidaron olvidado",
    "disaster": "desastre",
    "chaos": "caos",
    "disgusting": "asqueroso asquerosa",
    "desperate": "desesperado desesperada",
    "suspicious": "sospechoso sospechosa",
    "pathetic": "patetico patetica",
    "pain": "dolor",
    "fail": "fallo fallaron",
    "failure": "fracaso",
    "lied": "mintio mintieron",
    "liar": "mentiroso mentirosa mentira",
    "confused": "confundido confundida",
    "embarrassed": "avergonzado avergonzada humillado humillada",
    "wasted": "desperdicio",
    "lazy": "flojo flojos perezoso",
    "nervous": "nervioso nerviosa",
    "attacked": "atacaron ataco atacado",
    "stupid": "estupido estupida",
    "worse": "peor",
    "dirty": "sucio sucia",
    "interrupting": "interrumpia interrumpio interrumpieron interrumpiendo",
    "rushed": "apresurado apresurada",
}

# Spanish closed-class words onto the English tokens VADER's rules know (negation, boosters, "but").
SPANISH_FUNCTION_WORDS: Final[Mapping[str, str]] = {
    "no": "not",
    "nunca": "never",
    "jamas": "never",
    "nadie": "none",
    "nada": "nothing",
    "ningun": "none",
    "ninguna": "none",
    "ninguno": "none",
    "ni": "nor",
    "tampoco": "neither",
    "sin": "without",
    "poco": "not",
    "poca": "not",
    "pero": "but",
    "sino": "but",
    "muy": "very",
    "tan": "so",
    "bastante": "quite",
    "demasiado": "extremely",
    "demasiada": "extremely",
    "super": "really",
    "sumamente": "extremely",
    "extremadamente": "extremely",
    "realmente": "really",
    "verdaderamente": "really",
    "totalmente": "totally",
    "completamente": "completely",
    "absolutamente": "absolutely",
    "increiblemente": "incredibly",
    "especialmente": "especially",
    "particularmente": "particularly",
    "mas": "more",
    "mucho": "very",
    "mucha": "very",
    "muchos": "very",
    "muchas": "very",
    "apenas": "barely",
    "casi": "almost",
    "algo": "somewhat",
}

# Multi-word expressions rewritten before scoring. "@word" is an English token passed to VADER as is.
_EN_IDIOMS: Final[tuple[tuple[str, str], ...]] = (
    (r"\bcan'?t say enough good things\b", "very good things"),
    (r"\b(?:can'?t|cannot|could ?n'?t|could not) thank (?:you|them|him|her|everyone) enough\b", "very thankful"),
    (r"\b(?:couldn'?t|could not) (?:be|have been) happier\b", "very happy"),
    (r"\b(?:couldn'?t|could not) have asked for (?:a )?better\b", "very good"),
    (r"\bno complaints?\b|\bno (?:issues|problems?)\b", "satisfied"),
    (r"\banything but\b", "not"),
    (r"\babove and beyond\b", "outstanding"),
    (r"\bwent out of (?:his|her|their|the) way\b", "very helpful"),
    (r"\bnobody\b|\bno-one\b", "none"),
    (r"\b(?:broke|broken|breaking|break) into\b", "burglarized"),
    (r"\b(?:drug dealing|dealing drugs|selling drugs|drug deals?)\b", "drugdealing"),
    (r"\b(?:street|drag) racing\b", "streetracing"),
    (r"\bhit[- ]and[- ]run\b", "hitandrun"),
)
_ES_IDIOMS: Final[tuple[tuple[str, str], ...]] = (
    (r"\bfalta de respeto\b|\bfalt(?:o|aron|arme|arnos) (?:al|el) respeto\b", "@disrespect"),
    (r"\bsin embargo\b|\bno obstante\b", "@but"),
    (r"\bun poco\b", "@slightly"),
    (r"\bni siquiera\b", "@not"),
    (r"\bno (?:solo|solamente)\b", ""),
    (r"\bno tengo (?:ninguna )?quejas?\b|\bsin (?:quejas|problemas?)\b|\bningun problema\b", "@satisfied"),
    (r"\bno (?:puedo|podemos) agradecer(?:les|le)? lo suficiente\b", "@very @grateful"),
    (r"\bmil gracias\b", "@very @grateful"),
    (r"\bde nada\b", ""),
    (r"\bde verdad\b", "@really"),
    (r"\b(?:hizo|hicieron) todo lo posible\b", "@very @helpful"),
    (r"\bexceso de velocidad\b|\bmuy rapido\b(?= por| en la calle)", "@speeding"),
    (r"\bcarreras (?:de autos|de carros|clandestinas)\b|\barrancones\b", "@streetracing"),
    (r"\b(?:venta de|vendiendo|venden|vende) drogas\b|\bnarcomenudeo\b", "@drugdealing"),
    (r"\bse metieron (?:a|en)\b|\bentraron a robar\b", "@burglarized"),
    (r"\bchoque con fuga\b|\bse dio a la fuga\b", "@hitandrun"),
)

# -- complaint cues: events that carry no sentiment words --------------------------------------------------

_EN_NUM = r"(?:\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|twelve|several|many|multiple|a few)"
_ES_NUM = r"(?:\d+|una?|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez|doce|varias|varios|muchas|muchos)"
_EN_MINUTES = r"(?:\d{2,}|twenty|thirty|forty|forty[- ]five|fifty|sixty|ninety)"
_ES_MINUTES = r"(?:\d{2,}|veinte|treinta|cuarenta|cincuenta|sesenta|noventa)"

_EN_CUES: Final[tuple[tuple[str, str], ...]] = (
    (
        "no-show",
        r"\b(?:never|didn'?t|did not|nobody|no one|no-one|none of them|not a single (?:one|officer|person|car))\s+"
        r"(?:(?!hesitat|fail|stop|forg)\w+\s+){0,2}?"
        r"(?:came|comes?|show(?:s|ed)?(?: up)?|arrive[sd]?|respond(?:s|ed)?|answer(?:s|ed)?|"
        r"call(?:s|ed)? (?:me |us )?back|follow(?:s|ed)?[ -]?up|got back|gets? back|return(?:s|ed)?|"
        r"contact(?:s|ed)?|bother(?:s|ed)?|help(?:s|ed)?|care[sd]?|look(?:s|ed)? (?:at|into)|listen(?:s|ed)?|"
        r"investigat\w*|do(?:es)? anything|did anything|heard (?:anything|back)|hear (?:anything|back)|"
        r"pick(?:s|ed)? up|received|sen[dt] (?:anyone|anybody|a car|an officer|someone|help)|"
        r"take (?:any |a |the )?(?:photos?|pictures?|notes|statements?|reports?|fingerprints|it seriously)|"
        r"took (?:any |a |the )?(?:photos?|pictures?|notes|statements?|reports?|fingerprints|it seriously)|"
        r"talk(?:ed)? to|write|wrote|got out)\b",
    ),
    (
        "still-waiting",
        r"\bstill\s+(?:waiting|no\b|haven'?t|have not|hasn'?t|has not|nothing|pending|unanswered|there)|"
        r"\bstill (?:\w+ ){1,2}(?:pending|open|unanswered|unresolved)\b",
    ),
    (
        "no-response",
        r"\bno\s+(?:response|reply|answer|callback|call back|follow[- ]?up|updates?|word)\b|"
        r"\bwithout (?:any |an )?(?:updates?|response|word|reply|contact|"
        r"anyone (?:contacting|calling|looking|telling))\b|"
        r"\bunanswered\b",
    ),
    (
        "long-wait",
        r"\b(?:wait(?:ed|ing)?|took|takes?|taking|after|over|almost|nearly|more than)\s+(?:\w+\s+){0,3}?"
        + _EN_NUM
        + r"\s+(?:hours?|days?|weeks?|months?)\b|\b"
        + _EN_NUM
        + r"\s+(?:hours?|days?|weeks?|months?)\s+(?:later|(?:for (?:\w+ ){1,3}?)?to (?:arrive|"
        r"respond|show|come|call|get|"
        r"answer|reply|take|send))\b|"
        r"\b(?:long|endless) wait\b|\bwait(?:ed|ing)? forever\b|\btook forever\b|"
        r"\b(?:taking|takes|took|take) (?:so|too|this|that) long\b|\btoo long\b|"
        r"\b(?:wait(?:ed|ing)?|rang|ringing|on hold|took|after|over|more than)\s+(?:for\s+)?"
        r"(?:about\s+|almost\s+|nearly\s+|over\s+)?" + _EN_MINUTES + r"\s+minutes\b",
    ),
    (
        "hung-up",
        r"\bhung up\b|\bhang up on\b|\bvoice ?mail\b|\brang (?:out|and rang)\b|\b(?:put|left|kept) (?:me|us) on hold\b",
    ),
    (
        "refused",
        r"\b(?:refused|refuses|refusing|wouldn'?t|would not|won'?t|will not)\s+(?:\w+\s+)?(?:to\s+)?"
        r"(?:take|file|help|give|listen|answer|provide|tell|explain|let|accept|look|return|respond|write)\b",
    ),
    (
        "dismissed",
        r"\b(?:brushed|blew|shrugged)\s+(?:me|us|it|him|her|them)?\s*off\b|\blaughed (?:at|when)\b|"
        r"\brolled (?:his|her|their) eyes\b",
    ),
    (
        "inaction",
        r"\b(?:did|does|do|done|doing) nothing\b|\bnothing (?:was|has been|got|is being) done\b|"
        r"\bnothing (?:they|he|she|we|you) (?:could|can|would) do\b|\bthanks for nothing\b|"
        r"\bnothing (?:changes|changed|happens|happened|gets done|ever changes|is done)\b|"
        r"\b(?:no one|nobody|none|wasn'?t (?:one|anyone|anybody)|isn'?t (?:one|"
        r"anyone|anybody)) (?:was |is )?available\b|"
        r"\b(?:couldn'?t|can'?t|could not|cannot|won'?t|wouldn'?t) send (?:anyone|"
        r"anybody|a car|an officer|someone|help)\b|"
        r"\btold (?:me|us) to call back\b|"
        r"\bdo (?:something|anything) about\b|"
        r"\b(?:haven'?t|hasn'?t|have not|has not|never) (?:done|did) (?:anything|a thing)\b|"
        r"\b(?:actually|just|ever|even|start|please|could|would|maybe) do (?:your|their) jobs?\b|"
        r"\b(?:actually|even) doing (?:your|their|his|her) jobs?\b",
    ),
    (
        "instead-of",
        r"\binstead of (?:catching|doing|helping|patrolling|responding|going after|dealing|investigating|"
        r"answering|stopping|chasing|protecting|focusing|looking)\b",
    ),
    (
        "repeated-attempts",
        r"\b(?:called|reported|asked|emailed|complained|written|wrote|contacted|tried|rang)\s+(?:\w+\s+){0,3}?"
        r"(?:three|four|five|several|multiple|many|numerous|\d+)\s+times\b|"
        r"\b(?:second|third|fourth|fifth|\d+(?:st|nd|rd|th)) (?:day|time|week|night) in a row\b|\bagain and again\b",
    ),
    (
        "stop-request",
        r"\b(?:please\s+)?(?:stop|quit)\s+(?!by\b)\w+ing\b|"
        r"\b(?:should|must|need to|needs to|have to|has to)\s+(?:stop|not be|quit)\b|\brefrain from\b|"
        r"\b(?:ask|request|suggest|urge|beg)\w* (?:that |you |they )?(?:\w+ ){0,3}?(?:not|stop|refrain)\b|"
        r"\bplease (?:don'?t|do not|stop)\b",
    ),
    (
        "obstruction",
        r"\b(?:park\w*|block\w*|idl\w*|stopp\w*)\s+(?:\w+\s+){0,3}?(?:on|in|across)\s+(?:the\s+|a\s+)?"
        r"(?:sidewalk|bike lane|crosswalk|driveway|fire lane|handicap\w*|disabled (?:spot|space|parking)|bus stop)\b|"
        r"\bblock\w* (?:my|our|the) (?:driveway|entrance|garage|street)\b|\bidling\b",
    ),
    (
        "counterfactual",
        r"\b(?:could|should|might) have (?:explained|told|been|called|done|said|listened|helped|taken|asked|"
        r"checked|written|warned)\b|\b(?:would be nice|would help|maybe|perhaps|how about)\b.{0,40}\bactually\b",
    ),
    (
        "never-around",
        r"\bnever (?:around|there|here|available|staffed|open|see (?:an? )?(?:officer|patrol|cop)s?)\b|"
        r"\bnever (?:on|in|at|near|down) (?:my|our) (?:street|block|road|neighbou?rhood|area)\b|"
        r"\bwhy\b[^?.!]{0,80}\b(?:always|never)\b",
    ),
    ("closed-without", r"\bclosed (?:my |the )?(?:case|report|complaint)? ?without\b|\bcase closed\b"),
    ("left-waiting", r"\bleft (?:me |us )?(?:standing|waiting|sitting|stranded|alone|hanging)\b"),
    ("kept-interrupting", r"\bkept (?:interrupting|ignoring|yelling|shouting|laughing|cutting)\b"),
    (
        "disturbance",
        r"\bwoke (?:up )?(?:the whole|my|our|us|everyone|me|the)\b|\bkeep(?:s|ing)? (?:me|us|my \w+|our \w+|everyone) "
        r"(?:up|awake)\b|\bcan'?t sleep\b",
    ),
    (
        "scare-quotes",
        r"""['"](?:help|helpful|service|response|protect\w*|serve|community policing|"""
        r"""investigation|non-emergency|quick|fast|under review|in progress|pending|investigating)['"]""",
    ),
)

_ES_CUES: Final[tuple[tuple[str, str], ...]] = (
    (
        "no-show",
        r"\b(?:nunca|jamas|nadie|no|ninguna patrulla|ningun oficial)\s+"
        r"(?:(?:me|nos|le|les|lo|la|se|ha|han|habia|habian|quiso|quisieron|pudo|pudieron|volvi|volvimos)\s+){0,2}"
        r"(?:llego|llegaron|llegado|vino|vinieron|venido|aparecio|aparecieron|respondio|respondieron|respondido|"
        r"contesto|contestaron|contestado|contesta|contestan|devolvio|devolvieron|devuelto|regreso|regresaron|"
        r"llamo|llamaron|llamado|ayudo|ayudaron|ayudado|atendio|atendieron|atendido|"
        r"(?:hizo|hicieron|hace|hacen|hecho|hacer) nada|dio seguimiento|dieron seguimiento|ha contactado|"
        r"han contactado|contactado|contacto|contactaron|investigo|investigaron|escucho|escucharon|"
        r"a saber|supe nada|(?:hizo|hicieron) caso|vio|vieron|importo|importa|"
        r"tom(?:o|aron) (?:fotos|notas|la denuncia|mi denuncia|el reporte|mi reporte|mi declaracion|en serio)|"
        r"habl(?:o|aron) con|encuentra|encuentran|encontro|encontraron|dijo|dijeron|aviso|avisaron|explico|"
        r"explicaron)\b|\bnunca hay nadie\b|\bno (?:vino|llego) nadie\b|\bme (?:dejo|dejaron|tuvieron) en espera\b",
    ),
    (
        "still-waiting",
        r"\b(?:sigo|seguimos|sigue|siguen|todavia|aun)\s+(?:esperando|sin|no|pendiente|ahi|abierto|igual)\b|"
        r"\b(?:no|nadie) (?:ha|han) hecho nada\b",
    ),
    (
        "no-response",
        r"\bsin (?:respuesta|noticias|contestar|seguimiento|actualizacion|que nadie|decirme nada|avisarme)\b|"
        r"\bninguna respuesta\b",
    ),
    (
        "long-wait",
        r"\b(?:espere|esperamos|esperando|espera|esperar|tardaron|tardo|tarda|tardan|tardar|despues de|mas de|"
        r"durante|casi)\s+(?:\w+\s+){0,3}?"
        + _ES_NUM
        + r"\s+(?:horas?|dias?|semanas?|meses?|mes)\b|\bhora y media\b|\b"
        + _ES_NUM
        + r"\s+(?:horas|dias|semanas|meses)\s+(?:despues|en llegar|en responder|en contestar|"
        r"para que (?:llegara|llegue|viniera|venga|respondieran|contestaran|alguien))\b|"
        r"\b(?:larga|eterna) espera\b|\bespera (?:fue )?(?:muy |tan |demasiado )?(?:larga|eterna)\b|"
        r"\btard(?:a|an|o|aron) (?:tanto|demasiado|mucho)\b|\bdemasiado tiempo\b|"
        r"\b(?:espere|esperamos|esperando|esperar|sono|sonando|tardaron|tardo|despues de|mas de)\s+(?:\w+\s+)?"
        + _ES_MINUTES
        + r"\s+minutos\b",
    ),
    ("hung-up", r"\bme colgaron\b|\bcolg(?:o|aron)\b|\bbuzon de voz\b"),
    (
        "refused",
        r"\bse (?:nego|negaron|niega|niegan) a\b|"
        r"\bno (?:quiso|quisieron|quieren|quiere) (?:tomar|ayudar|escuchar|dar|darme|explicar|recibir|hacer)\b|"
        r"\bno me (?:dejaba|dejo|dejaron)\b",
    ),
    (
        "dismissed",
        r"\bse (?:rieron|rio|burlo|burlaron)\b|\bno (?:me|nos|le) (?:hicieron|hizo) caso\b|\bni caso\b|"
        r"\b(?:puso|pusieron) los ojos en blanco\b|\bno (?:valia|vale) la pena\b",
    ),
    (
        "inaction",
        r"\bno (?:hicieron|hizo|hacen|hace|podian|podia|pueden|puede|ha hecho|han hecho) (?:hacer )?nada\b|"
        r"\bgracias por nada\b|\bhacer algo (?:con|al respecto|sobre|por)\b|\bhaga(?:n)? su trabajo\b|"
        r"\bno (?:podian|pueden|podia|puede|quisieron|quiso|iban a|van a) (?:mandar|"
        r"enviar) (?:a )?(?:nadie|ninguna|ningun)\b|"
        r"\bno (?:habia|hay) (?:ninguno|nadie|ninguna)(?: disponible)?\b|\bnada cambia\b|\bnadie hace nada\b|"
        r"\bme dijeron que (?:volviera|regresara) a llamar\b",
    ),
    (
        "instead-of",
        r"\ben (?:lugar|vez) de (?:atrapar|perseguir|hacer|ayudar|patrullar|atender|responder|detener|"
        r"investigar|cuidar|proteger)\b",
    ),
    (
        "repeated-attempts",
        r"\b(?:he llamado|llame|llamamos|hemos llamado|reporte|he reportado|hemos reportado|pregunte|escribi|"
        r"he escrito|sono)\s+(?:\w+\s+){0,3}?(?:tres|cuatro|cinco|varias|muchas|\d+) veces\b|"
        r"\b(?:segundo|tercer|cuarto|quinto) dia (?:seguido|consecutivo)\b|\botra vez y otra vez\b",
    ),
    (
        "stop-request",
        r"(?<!\bno )\b(?:dejen|deje|dejar|dejaran) de \w+|"
        r"\b(?:les |le )?(?:pido|pedimos|ruego|rogamos|solicito|sugiero) (?:\w+ ){0,2}?(?:que )?(?:no|dejen)\b|"
        r"\bpor favor,? no\b",
    ),
    (
        "obstruction",
        r"\b(?:estacion\w+|bloque\w+|encendid\w+)\s+(?:\w+\s+){0,4}?(?:en|sobre|afuera de|frente a)\s+"
        r"(?:la\s+|el\s+|mi\s+|los\s+)?(?:banqueta|acera|ciclovia|cruce peatonal|entrada|rampa|parada|cafe|"
        r"lugares? (?:para|de) discapacitados|cajon(?:es)? de discapacitados)\b|"
        r"\bbloquearon (?:mi|la|nuestra) (?:entrada|cochera|calle)\b|"
        r"\b(?:en la|sobre la) (?:ciclovia|banqueta|acera)\b",
    ),
    (
        "counterfactual",
        r"\b(?:pudo|pudieron|debio|debieron|debia|debian|podria|podrian) haber(?:me|nos|le|les|lo)? "
        r"(?:explicado|dicho|llamado|hecho|escuchado|ayudado|tomado|revisado|avisado|preguntado)\b|"
        r"\b(?:seria bueno|ojala|podrian|tal vez|quizas)\b.{0,40}\bde verdad\b",
    ),
    (
        "never-around",
        r"\bnunca (?:hay nadie|estan|esta nadie|hay patrullas|se ve|se les ve|pasan|vienen)\b|"
        r"\bnunca (?:en|por) (?:mi|nuestra) (?:calle|cuadra|colonia|"
        r"barrio)\b|\bpor que\b[^?.!]{0,80}\b(?:siempre|nunca)\b",
    ),
    ("closed-without", r"\bcerr(?:aron|o) (?:mi |el )?(?:reporte|caso|denuncia)? ?sin\b|\bcerraron el caso\b"),
    ("left-waiting", r"\bme (?:dejaron|dejo) (?:esperando|parad[oa]|sol[oa]|tirad[oa])\b"),
    (
        "disturbance",
        r"\bno (?:nos |me |les |los )?(?:deja|dejan) dormir\b|\bdespert(?:o|aron) a (?:toda|todo|mis|los|la)\b|"
        r"\bno (?:puedo|podemos|pueden|puede|podia|podiamos|podian) dormir\b",
    ),
    (
        "scare-quotes",
        r"""['"](?:servicio|ayuda|proteccion|respuesta|atencion|en revision|en proceso|pendiente|investigando)['"]""",
    ),
)

# Sarcasm: a praise frame whose object is a negative act ("great job ignoring", "gracias por hacerme perder").
_EN_PRAISE_FRAME = re.compile(
    r"\b(?:great|good|nice|excellent|fantastic|amazing|brilliant|awesome) (?:job|work|idea|service)\b|"
    r"\bwell done\b|\bway to go\b|\bthanks?(?: you)?(?: so much| a lot)? for\b|\blove (?:how|that)\b|\bso glad\b|"
    r"\b(?:real|very|so) (?:professional|helpful|nice) of\b"
)
_ES_PRAISE_FRAME = re.compile(
    r"\b(?:excelente|buen|gran|magnifico|increible) (?:trabajo|servicio|idea)\b|\b(?:muchas )?gracias por\b|"
    r"\bme encanta (?:como|que)\b|\bfelicidades\b|\bbravo\b|"
    r"\bque (?:bien|bonito|lindo|rapidez|eficiencia|profesional|amable|util|servicio)\b"
)
_EN_ACT = re.compile(r"\w+ing$|^nothing$")
_ES_ACT = re.compile(r"\w+(?:ando|iendo|ar|er|ir|arme|erme|irme)$|^nada$")

# -- misconduct allegations ----------------------------------------------------------------------------------

_EN_MISCONDUCT: Final[tuple[tuple[str, str], ...]] = (
    ("excessive force", r"\b(?:excessive|unnecessary|unreasonable|brutal) force\b"),
    ("use of force", r"\buse of force\b|\bused force\b"),
    ("brutality", r"\bbrutal(?:ity|ly)?\b"),
    (
        "physical force",
        r"\b(?:slamm(?:ed|ing)|slams?|punch(?:ed|ing|es)?|kick(?:ed|ing)?|shov(?:ed|ing)|tackl(?:ed|ing)|"
        r"chok(?:ed|ing)|strangl\w*|beat(?:ing)?|beaten|hit|struck|threw|dragg(?:ed|ing)|yank(?:ed|ing)|"
        r"pinn(?:ed|ing)|twist(?:ed|ing)|bent|slapp(?:ed|ing)|smash(?:ed|ing)|stomp(?:ed|ing))\s+"
        r"(?:me|him|her|us|them|my|his|a|an|the|someone|people|protesters?)\b|\bchoke ?holds?\b|\bbeat (?:\w+ )?up\b|"
        r"\b(?:grabb(?:ed|ing)|push(?:ed|ing)|throw(?:ing)?) (?:me|him|her|us|them|(?:my|his|her|our) (?:wife|"
        r"husband|son|daughter|kids?|child|children|mother|mom|father|dad|brother|sister|friend|partner|"
        r"grandmother|grandfather))\b|\b(?:by|from) (?:the|my|his|her) (?:hair|neck|throat|collar)\b",
    ),
    ("taser", r"\b(?:tased|tasered|tasing|tasers?|stun guns?)\b"),
    ("pepper spray", r"\bpepper[- ]?spray(?:ed|ing)?\b|\bmaced\b"),
    (
        "weapon pointed",
        r"\b(?:point(?:ed|ing)|drew|drawn|aim(?:ed|ing)) (?:his|her|their|"
        r"a|the) (?:guns?|weapons?|firearms?|pistols?|rifles?)\b",
    ),
    (
        "neck restraint",
        r"\b(?:knee|kneel\w*|knelt) on (?:my|his|her|their) (?:neck|back|head)\b|"
        r"\b(?:couldn'?t|could not|can'?t|cannot) breathe\b",
    ),
    ("discrimination", r"\bdiscriminat\w*"),
    ("racial profiling", r"\bracial(?:ly)? profil\w*|\bprofiled\b|\bprofiling\b"),
    (
        "identity-based stop",
        r"\b(?:for|because of) (?:being|my) (?:black|latino|latina|hispanic|muslim|asian|gay|trans|immigrant|race|"
        r"skin colou?r|colou?r|accent|religion|ethnicity)\b|\bbecause (?:i'?m|"
        r"i am|we'?re|we are|he'?s|she'?s|they'?re) "
        r"(?:black|latino|latina|hispanic|muslim|asian|gay|trans|an immigrant|immigrants)\b",
    ),
    ("slurs", r"\bslurs?\b|\bracist\w*|\bhomophobic\b|\btransphobic\b|\bsexist\b"),
    ("harassment", r"\bharass\w*"),
    ("retaliation", r"\bretaliat\w*"),
    (
        "misconduct",
        r"\bmisconduct\b|\babuse of (?:power|authority)\b|\babus(?:ed|"
        r"ing) (?:his|her|their) (?:power|authority|badge)\b",
    ),
    (
        "threats",
        r"\bthreat(?:en(?:ed|ing|s)?|s)?\b|\bintimidat\w*|\b(?:you'?ll|you will|you'?d|i'?d|i will|i'?ll) regret\b|"
        r"\b(?:trying|try|tried|want|wanted) to (?:scare|frighten) (?:me|us)\b",
    ),
    (
        "bribery",
        r"\bbrib(?:e|es|ed|ery|ing)\b|\b(?:asked|demanded|wanted) (?:me )?for (?:cash|money|a payment)\b|"
        r"\bpay (?:him|her|them) off\b|\bmake (?:the|my|her|his) (?:ticket|citation|charges?) (?:go away|disappear)\b|"
        r"\b(?:drop|forget|tear up|lose|void) (?:the|my|her|his) (?:ticket|citation|charges?) if\b",
    ),
    ("corruption", r"\bcorrupt\w*|\bextort\w*|\bkickbacks?\b|\bcover(?:ed|ing)? (?:it )?up\b|\bcover-?ups?\b"),
    (
        "sexual misconduct",
        r"\bsexual(?:ly)? (?:misconduct|harass\w*|assault\w*|comments?|"
        r"advances?|remarks?|abuse\w*)\b|\bgrop(?:ed|ing)\b|"
        r"\b(?:touched|touching) (?:me|her|him|my \w+) inappropriately\b|\binappropriate(?:ly)? touch\w*",
    ),
    (
        "unlawful search or arrest",
        r"\b(?:illegal|unlawful|warrantless) (?:search|stop|arrest|detention)\w*|"
        r"\bsearch\w* (?:\w+ ){0,4}?without (?:a |any |my )?(?:warrant|consent|permission|probable cause)\b|"
        r"\b(?:false|wrongful|unlawful) (?:arrest|imprisonment)\b|\bplanted (?:evidence|drugs)\b|"
        r"\bfalsif\w+ (?:the |my )?report\b|"
        r"\b(?:stopped|pulled over|detained|searched|arrested|handcuffed) (?:\w+ ){0,2}?for no reason\b",
    ),
    ("theft by officer", r"\b(?:took|stole|kept|pocketed) (?:my |the )?(?:cash|money|\$\d+)\b"),
    (
        "refused identification",
        r"\brefus\w* to (?:give|provide|show|tell)\w* (?:me )?(?:his|her|their) (?:badge|name)\b",
    ),
    ("denied medical care", r"\bden(?:ied|y|ying) (?:me |him |her )?medical\b"),
)

_ES_MISCONDUCT: Final[tuple[tuple[str, str], ...]] = (
    ("uso de la fuerza", r"\buso (?:excesivo |innecesario |desmedido )?de (?:la )?fuerza\b|\busar la fuerza\b"),
    ("fuerza excesiva", r"\bfuerza (?:excesiva|innecesaria|desmedida|bruta)\b"),
    ("brutalidad", r"\bbrutal(?:idad|mente)?\b"),
    (
        "agresion fisica",
        r"\b(?:me|lo|la|le|nos|los|las|les) (?:golpe\w*|pega\w*|pego|patea\w*|pateo|empuj\w*|estrangul\w*|"
        r"ahorc\w*|asfixi\w*|azot\w*|tir(?:o|aron) al suelo|torci\w*|torc\w*|jal(?:o|aron)|avent(?:o|aron)|"
        r"cachete\w*|abofete\w*)|\bgolpe(?:o|aron|ar|ando|ado|ada|arlo|arla|arme)\b|\btorci(?:o|eron) el brazo\b|"
        r"\bagarr(?:o|aron|ando) a (?:mi|un|una|el|la) \w+|\ba empujones\b|\bempuj(?:o|aron)\b|"
        r"\b(?:del|de los|por el|por los) (?:cabello|pelo|cuello)\b|"
        r"\b(?:tiro|tiraron|aventaron|avento) a (?:mi|un|una|el|la) \w+ al suelo\b|\ba golpes\b|\bpatadas?\b|"
        r"\bpuñetazos?\b",
    ),
    ("pistola electrica", r"\bpistola electrica\b|\btaser\w*|\bdescargas? electricas?\b"),
    ("gas pimienta", r"\bgas (?:pimienta|lacrimogeno)\b"),
    ("arma apuntada", r"\bapunt(?:o|aron|ando|ar) (?:con )?(?:su|la|el|una|un) (?:pistola|arma|rifle)\b"),
    (
        "rodilla en el cuello",
        r"\brodilla (?:\w+ ){0,3}?cuello\b|\bcuello (?:\w+ ){0,3}?rodilla\b|"
        r"\bno (?:podia|puedo|podiamos|pude) respirar\b",
    ),
    ("discriminacion", r"\bdiscrimin\w*"),
    (
        "perfil racial",
        r"\bperfil(?:amiento)? racial\b|\bperfilamiento\b|\bperfil(?:aron|o|ado|ada|ados)\b|"
        r"\bpor (?:ser|mi) (?:latino|latina|negro|negra|moreno|"
        r"morena|indigena|musulman\w*|gay|trans|inmigrante|raza|color de piel|color|acento|religion|origen)\b",
    ),
    ("racismo", r"\bracis(?:ta|tas|mo)\b|\bhomofob\w*|\bsexista\b"),
    ("acoso", r"\bacos(?:o|a|an|aron|ando|ado|ada|ador|aba|aban)\b|\bhostig\w*"),
    ("represalia", r"\brepresalias?\b|\bvenganza\b"),
    (
        "mala conducta",
        r"\bmala conducta\b|\bconducta (?:indebida|inapropiada)\b|\babuso de (?:poder|autoridad)\b|"
        r"\babus(?:o|aron|ando) de su (?:poder|autoridad|placa)\b",
    ),
    (
        "amenazas",
        r"\bamenaz\w*|\bintimid\w*|\bte vas a arrepentir\b|"
        r"\b(?:me|nos) (?:quieren|querian|quiere|queria) (?:asustar|espantar)\b",
    ),
    (
        "soborno",
        r"\bsoborn\w*|\bmordida\b|\bcoima\b|\b(?:me|nos|le|les) pid(?:io|ieron) dinero\b|"
        r"\bpidi(?:o|eron) (?:dinero|efectivo)\b|\bpara no (?:ponerme|ponerle|darme) la multa\b|"
        r"\b(?:retirar|quitar|olvidar|perdonar|anular)\w* (?:los cargos|el cargo|la multa|la infraccion) si\b|"
        r"\b(?:le |me |te )?(?:quitaba|quito|quita|quitaria|perdonaba|perdono|"
        r"perdona|anulaba|rompia) la (?:multa|infraccion) si\b",
    ),
    ("corrupcion", r"\bcorrup\w*|\bextorsi\w*|\bencubr\w*"),
    (
        "conducta sexual",
        r"\b(?:comentarios|insinuaciones|propuestas) sexuales\b|\b(?:acoso|abuso|agresion) sexual\b|\bmanose\w*|"
        r"\btoc(?:o|aron|ando) (?:de forma |de manera )?inapropiad\w*|\btocamientos\b",
    ),
    (
        "registro o detencion ilegal",
        r"\b(?:registro|revision|cateo|detencion|arresto) (?:ilegal|injustificad[oa]|arbitrari[oa])\b|"
        r"\b(?:revis|registr|cate)\w* (?:\w+ ){0,4}?sin (?:una |ninguna )?(?:orden|permiso|consentimiento|"
        r"mi permiso|mi consentimiento)\b|\bsembr(?:aron|o) (?:pruebas|evidencia|drogas)\b|\bpruebas falsas\b|"
        r"\b(?:detuvieron|pararon|arrestaron|revisaron|esposaron) (?:\w+ ){0,2}?sin (?:ningun )?motivo\b|"
        r"\bsin motivo alguno\b",
    ),
    (
        "robo por un oficial",
        r"\b(?:se quedo|se quedaron|tomo|tomaron|robo|robaron) (?:con )?(?:mi |el |mis )?(?:dinero|efectivo)\b",
    ),
    (
        "negarse a identificarse",
        r"\bse nego a (?:dar|darme|mostrar|decirme) (?:su )?(?:numero de placa|placa|nombre)\b",
    ),
    ("maltrato", r"\bmaltrat\w*"),
    ("agresion", r"\bagredi\w*|\bagresion\b"),
)

# Words that take the allegation away from the police, that negate it, or that make it a question about policy.
_POLICE_ACTORS: Final[frozenset[str]] = _words(
    "officer officers police cop cops deputy deputies sergeant detective trooper troopers lieutenant captain "
    "dispatcher patrolman oficial oficiales policia policias agente agentes patrulla patrullas patrullero "
    "sargento teniente comandante"
)
_THIRD_PARTIES: Final[frozenset[str]] = _words(
    "man woman guy guys someone somebody driver neighbor neighbour neighbors neighbours suspect thief thieves "
    "robber burglar stranger strangers teenager teenagers teens person customer landlord boss coworker ex "
    "boyfriend girlfriend husband wife dog gang hombre mujer tipo tipos alguien conductor chofer vecino vecina "
    "vecinos vecinas sospechoso ladron ladrones desconocido desconocidos asaltante jefe pandilla perro"
)
_NEGATORS: Final[frozenset[str]] = _words(
    "not no never without nobody none neither nor nothing cannot nunca jamas sin ni nadie ningun ninguna "
    "ninguno tampoco"
)
_HYPOTHETICAL: Final[frozenset[str]] = _words(
    "if worried afraid scared feared fear fearing expected expecting concerned miedo temia temor preocupaba "
    "preocupada preocupado"
)
_NOT_A_NEGATION_AFTER: Final[frozenset[str]] = _words("only just solo solamente")
_PROCESS_WORDS: Final[re.Pattern[str]] = re.compile(
    r"^(?:investigat|look|follow|respond|report|answer|address|handl|act|deal|investig|atend|denunci|"
    r"segui|reviso|revisar|hicieron|hizo|took|take)"
)
_PROCESS_NOUNS_AFTER: Final[frozenset[str]] = _words(
    "complaint complaints report reports case claim claims allegation allegations queja quejas denuncia "
    "denuncias reporte caso"
)
_TOPIC_NOUNS: Final[frozenset[str]] = _words(
    "policy policies training trainings data statistics stats numbers rules guidelines procedures incidents "
    "politica politicas capacitacion capacitaciones datos estadisticas cifras reglas incidentes protocolo"
)
_HEDGE: Final[re.Pattern[str]] = re.compile(
    r"\b(?:but|pero)\b.{0,30}\b(?:felt|feels|seemed|seems|looked|looks|parecia|parece|parecio|se sintio)\b"
)
_NT_STEMS: Final[frozenset[str]] = _words("did was were is are does do had has have could would should ca wo")
_CLAUSE_WIDE_NEGATION: Final[re.Pattern[str]] = re.compile(
    r"\bat no (?:point|time)\b|\bin no way\b|\ben ningun momento\b|\bde ninguna manera\b"
)

# -- text normalisation ------------------------------------------------------------------------------------

_WORD = re.compile(r"[\w'@-]+")
_EDGE_PUNCT = "¿¡\"'“”‘’«»()[]{}.,;:!?…"
_CLAUSE_BREAK = re.compile(r"[,;:.!?…]|\b(?:but|however|pero|aunque|sino)\b")
_SPANISH_MARKERS: Final[frozenset[str]] = _words(
    "el la los las de del que y en un una por con para es fue muy pero mi mis se al lo le su sus esta estan "
    "nos como cuando porque"
)
_ENGLISH_MARKERS: Final[frozenset[str]] = _words(
    "the and to of in is was my i for it on with that but they he she you we were are this have at"
)


def detect_language(text: str, declared: str) -> Language:
    """The declared language, unless the text is plainly the other one (a Spanish text sent with the default)."""
    words = _WORD.findall(fold(text))
    spanish = sum(word in _SPANISH_MARKERS for word in words)
    english = sum(word in _ENGLISH_MARKERS for word in words)
    if spanish >= 2 and spanish > 2 * english:
        return "es"
    if english >= 2 and english > 2 * spanish:
        return "en"
    return "es" if declared == "es" else "en"


# -- the analyzer ------------------------------------------------------------------------------------------


class _Vader(Protocol):
    lexicon: dict[str, float]

    def polarity_scores(self, text: str) -> dict[str, float]: ...


class _Stemmer(Protocol):
    def stemWord(self, word: str) -> str: ...  # snowballstemmer's name


@dataclass(frozen=True)
class _Compiled:
    idioms: tuple[tuple[re.Pattern[str], str], ...]
    cues: tuple[tuple[str, re.Pattern[str]], ...]
    misconduct: tuple[tuple[str, re.Pattern[str]], ...]


class _Engine:
    """Everything built once: VADER with the domain supplement, the Spanish glossary index, compiled patterns."""

    def __init__(self) -> None:
        vader: _Vader = SentimentIntensityAnalyzer()
        vader.lexicon.update(DOMAIN_LEXICON)
        self.vader = vader
        service_vader = copy.copy(vader)  # same rules and emoji table, its own lexicon
        service_vader.lexicon = {word: value for word, value in vader.lexicon.items() if word not in INCIDENT_WORDS}
        self.service_vader = service_vader
        self._stem_lock = threading.Lock()
        self._stemmer: _Stemmer = snowballstemmer.stemmer("spanish")
        self.exact: dict[str, str] = {}
        self.stems: dict[str, str] = {}
        for headword, forms in SPANISH_GLOSSARY.items():
            for entry in forms.split():
                form = entry.removeprefix("=")
                self.exact.setdefault(form, headword)
                stem = self.stem(form)
                if len(stem) >= 4 and not entry.startswith("="):
                    self.stems.setdefault(stem, headword)
        self.en = _compile(_EN_IDIOMS, _EN_CUES, _EN_MISCONDUCT)
        self.es = _compile(_ES_IDIOMS, _ES_CUES, _ES_MISCONDUCT)
        self.all_misconduct = self.en.misconduct + self.es.misconduct

    def stem(self, word: str) -> str:
        with self._stem_lock:  # Snowball stemmer objects keep state between calls
            return str(self._stemmer.stemWord(word))

    def spanish_headword(self, word: str) -> str | None:
        """The English headword a (folded, lower-case) Spanish word maps to, if any."""
        if word in self.exact:
            return self.exact[word]
        stem = self.stem(word)
        return self.stems.get(stem) if len(stem) >= 4 else None

    def valence(self, token: str, language: Language) -> float:
        word = token.strip(_EDGE_PUNCT).lower()
        if language == "es":
            headword = self.spanish_headword(word)
            return self.vader.lexicon.get(headword, 0.0) if headword else 0.0
        return self.vader.lexicon.get(word, 0.0)

    def compound(self, text: str, language: Language, *, service_only: bool = False) -> float:
        """VADER's compound score; `service_only` leaves out INCIDENT_WORDS."""
        if language == "en":
            prepared = _apply_idioms(unaccented(text), self.en.idioms)
        else:
            prepared = self._spanish_for_vader(text)
        analyzer = self.service_vader if service_only else self.vader
        return float(analyzer.polarity_scores(prepared)["compound"])

    def _spanish_for_vader(self, text: str) -> str:
        """Spanish text as the token stream VADER's English rules understand (see module docstring)."""
        folded = _apply_idioms(unaccented(text), self.es.idioms)
        out: list[str] = []
        for raw in folded.split():
            core = raw.strip(_EDGE_PUNCT)
            if not core:
                continue
            if core.startswith("@"):
                out.append(core[1:])
                continue
            lower = core.lower()
            mapped = SPANISH_FUNCTION_WORDS.get(lower) or self.spanish_headword(lower)
            if mapped is None:
                out.append(f"{lower}_es")  # never a VADER word, never a negator or booster
            elif core.isupper() and len(core) > 1:
                out.append(mapped.upper())
            else:
                out.append(mapped)
        emphasis = "".join(ch for ch in text if ch in "!?")
        if emphasis:
            out.append(emphasis)
        return " ".join(out)


def _compile(
    idioms: Iterable[tuple[str, str]], cues: Iterable[tuple[str, str]], misconduct: Iterable[tuple[str, str]]
) -> _Compiled:
    return _Compiled(
        idioms=tuple((re.compile(pattern, re.IGNORECASE), replacement) for pattern, replacement in idioms),
        cues=tuple((name, re.compile(pattern)) for name, pattern in cues),
        misconduct=tuple((name, re.compile(pattern)) for name, pattern in misconduct),
    )


def _apply_idioms(text: str, idioms: Iterable[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in idioms:
        text = pattern.sub(replacement, text)
    return text


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def warm_up() -> None:
    """Builds the analyzer and the learned model now instead of on the first assessment."""
    _engine()
    severity_model()


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        with _ENGINE_LOCK:
            if _ENGINE is None:
                _ENGINE = _Engine()
    return _ENGINE


# -- signals -------------------------------------------------------------------------------------------------


def analyse_text(text: str, language: str = "en") -> TextSignals:
    """Sentiment, complaint cues, misconduct allegations and the learned model's scores of one text.

    Pure; no I/O after the first call.
    """
    signals = rule_signals(text, language)
    model = severity_model()
    features = model_features(text, signals)
    return replace(
        signals,
        negative_score=model.negative.probability(features),
        critical_score=model.critical.probability(features),
    )


def model_features(text: str, signals: TextSignals) -> dict[str, float]:
    """What the learned model reads: the text's own features plus what the rules found (bench/severity/train.py)."""
    features = text_features(text, signals.language)
    if signals.compound < 0:
        features["r:sentiment-negative"] = -signals.compound
    elif signals.compound > 0:
        features["r:sentiment-positive"] = signals.compound
    if signals.clause_compound < 0:
        features["r:clause-negative"] = -signals.clause_compound
    for cue in signals.cues:
        features["r:" + cue] = 1.0
    if signals.misconduct:
        features["r:misconduct"] = 1.0
    return normalised(features)


def rule_signals(text: str, language: str) -> TextSignals:
    """The hand-written part: VADER sentiment, complaint cues and misconduct patterns."""
    engine = _engine()
    effective = detect_language(text, language)
    compiled = engine.es if effective == "es" else engine.en
    folded = fold(text)
    notes: list[str] = []
    if effective != language:
        notes.append(f"language:{effective}-detected")

    cues = [f"cue:{name}" for name, pattern in compiled.cues if pattern.search(folded)]
    if _sarcastic(folded, effective, engine):
        cues.append("cue:sarcasm")

    allegations: list[str] = []
    for name, pattern in engine.all_misconduct:
        for match in pattern.finditer(folded):
            verdict = _allegation(folded, match.start(), match.end())
            if verdict is None:
                if name not in allegations:
                    allegations.append(name)
                break
            note = f"misconduct-{verdict}:{name}"
            if note not in notes:
                notes.append(note)
    notes = [note for note in notes if note.split(":", 1)[1] not in allegations]

    return TextSignals(
        language=effective,
        compound=engine.compound(text, effective),
        clause_compound=_worst_service_clause(text, effective, engine),
        cues=tuple(cues),
        misconduct=tuple(allegations),
        notes=tuple(notes),
    )


def _sarcastic(folded: str, language: Language, engine: _Engine) -> bool:
    """A praise frame whose object reads negative.

    Either a negative act within three words ("great job ignoring my call", "gracias por nada"), or the rest of
    the sentence reads negative ("so glad I pay taxes for a department that can't find a stolen car"); a frame
    that ends its sentence ("Way to go, officers.") takes the next sentence as its object.
    """
    frame = _ES_PRAISE_FRAME if language == "es" else _EN_PRAISE_FRAME
    act = _ES_ACT if language == "es" else _EN_ACT
    for match in frame.finditer(folded):
        following = _WORD.findall(folded[match.end() :])[:3]
        for word in following:
            if word in {"nothing", "nada"}:
                return True
            if act.match(word) and engine.valence(word, language) <= -1.0:
                return True
        sentences = _SENTENCE_END.split(folded[match.end() :], maxsplit=2)
        tail = sentences[0]
        tail_words = _WORD.findall(tail)
        if len(tail_words) <= 2 and not any(engine.valence(w, language) for w in tail_words) and len(sentences) > 1:
            tail = sentences[1]
        if engine.compound(tail, language) <= _SARCASM_TAIL:
            return True
    return False


_SARCASM_TAIL: Final[float] = -0.3
_SENTENCE_END: Final[re.Pattern[str]] = re.compile(r"[.!?…]+")
_CLAUSES: Final[re.Pattern[str]] = re.compile(
    r"[.!?;…]+|\b(?:but|though|although|however|except|pero|aunque|excepto|sin embargo)\b", re.IGNORECASE
)
_SERVICE_WORDS: Final[frozenset[str]] = _POLICE_ACTORS | _words(
    "wait waiting waited response responded respond service dispatch department station precinct desk line "
    "call calls staff you your they them espera esperar respuesta servicio atencion despachador despachadora "
    "departamento estacion recepcion linea llamada llamadas personal ustedes"
)


def _worst_service_clause(text: str, language: Language, engine: _Engine) -> float:
    """The lowest compound among clauses about the police or the service, none of them about a third party.

    VADER weights what follows "but" over what precedes it, which reads "the wait was terrible but the officer
    was great" as positive; a clause is scored on its own so that a complaint inside praise is not lost, while
    anger at someone else ("I was furious at the driver, but the officer was fantastic") does not count.
    """
    worst = 0.0
    for clause in _CLAUSES.split(text):
        words = set(_WORD.findall(fold(clause)))
        if words & _SERVICE_WORDS and not words & _THIRD_PARTIES:
            worst = min(worst, engine.compound(clause, language, service_only=True))
    return worst


def _about_a_topic(before: list[str], after: list[str]) -> bool:
    """The term names a subject of policy or statistics: "use of force policy", "estadísticas sobre ... perfil"."""
    return any(word in _TOPIC_NOUNS for word in after[:2]) or any(word in _TOPIC_NOUNS for word in before[-6:])


def _allegation(folded: str, start: int, end: int) -> str | None:
    """None if the mention at folded[start:end] is an allegation, else why not: negated, hypothetical, ..."""
    sentence_start = max(folded.rfind(mark, 0, start) for mark in ".!?\n") + 1
    sentence_end_candidates = [i for i in (folded.find(mark, end) for mark in ".!?\n") if i != -1]
    sentence_end = min(sentence_end_candidates) if sentence_end_candidates else len(folded)
    sentence = folded[sentence_start:sentence_end]
    before_sentence = _WORD.findall(folded[sentence_start:start])
    after_words = _WORD.findall(folded[end:sentence_end])

    # A question about policy or statistics ("Where can I read the use of force policy?").
    is_question = "?" in folded[sentence_end : sentence_end + 1] or sentence.lstrip().startswith("¿")
    if is_question and _about_a_topic(before_sentence, after_words):
        return "topic"

    # Done by someone who is not police: "a man threatened me", "harassment from my neighbor".
    if len(after_words) >= 2 and after_words[0] in {"from", "by", "de", "del", "por"}:
        nearest = next((w for w in after_words[1:4] if w in _THIRD_PARTIES or w in _POLICE_ACTORS), None)
        if nearest in _THIRD_PARTIES:
            return "third-party"
    actor = next((w for w in reversed(before_sentence) if w in _THIRD_PARTIES or w in _POLICE_ACTORS), None)
    if actor in _THIRD_PARTIES:
        return "third-party"

    # Negated or feared, within the clause and a few words before it.
    clause_start = sentence_start
    for found in _CLAUSE_BREAK.finditer(folded, sentence_start, start):
        clause_start = found.end()
    clause_before = _WORD.findall(folded[clause_start:start])
    if _CLAUSE_WIDE_NEGATION.search(folded[clause_start:start]):
        return "negated"
    if after_words and after_words[0] in _PROCESS_NOUNS_AFTER:
        return None  # "they never investigated my harassment complaint": the process is negated, not the act
    window = clause_before[-4:]
    for index, word in enumerate(window):
        following = window[index + 1 :]
        if word in _HYPOTHETICAL:
            return "hypothetical"
        is_negator = word in _NEGATORS or word.endswith("n't") or (word.endswith("nt") and word[:-2] in _NT_STEMS)
        if not is_negator or (following and following[0] in _NOT_A_NEGATION_AFTER):
            continue
        if any(_PROCESS_WORDS.match(w) for w in following):
            continue  # "nobody investigated the racial profiling": the process is negated
        if _HEDGE.search(folded, end, sentence_end):
            return None  # "I'm not saying it was racial profiling, but it sure felt like it"
        return "negated"
    return None


# -- decision --------------------------------------------------------------------------------------------------


def decide(
    *,
    kind: str,
    rating: int | None,
    signals: TextSignals,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    model_thresholds: ModelThresholds | None = None,
) -> SeverityAssessment:
    """Combines the kind, the rating and the text's signals; any negative signal wins.

    Rules first: a misconduct pattern makes the item critical, the kind, a low rating, VADER or a complaint cue
    make it negative. Then the learned model: a misconduct score at or above its threshold makes the item critical
    and a negative score at or above its threshold makes it negative; between a threshold and its "sure" level
    the item is flagged `uncertain` (reason `uncertain:...`), so that a person confirms its severity.
    """
    limits = model_thresholds or severity_model().thresholds
    reasons: list[str] = []
    if kind in NEGATIVE_KINDS:
        reasons.append(f"kind:{kind}")
    if rating is not None and rating <= LOW_RATING:
        reasons.append(f"rating:{rating}")
    if signals.compound < thresholds.negative:
        reasons.append(f"sentiment:{signals.compound:.2f}")
    if signals.clause_compound <= thresholds.clause:
        reasons.append(f"clause-sentiment:{signals.clause_compound:.2f}")
    reasons.extend(signals.cues)
    notes = list(signals.notes)
    allegations = [f"misconduct:{name}" for name in signals.misconduct]
    if allegations:
        return SeverityAssessment("critical", True, allegations + reasons + notes)
    if signals.critical_score >= limits.critical:
        uncertain = signals.critical_score < limits.critical_sure
        model_reason = f"{'uncertain' if uncertain else 'model'}:misconduct-{signals.critical_score:.2f}"
        return SeverityAssessment("critical", True, [model_reason, *reasons, *notes], uncertain=uncertain)
    if reasons:
        return SeverityAssessment("negative", True, reasons + notes)
    if signals.negative_score >= limits.negative:
        uncertain = signals.negative_score < limits.negative_sure
        model_reason = f"{'uncertain' if uncertain else 'model'}:negative-{signals.negative_score:.2f}"
        return SeverityAssessment("negative", True, [model_reason, *notes], uncertain=uncertain)
    positive: list[str] = []
    if kind == "praise":
        positive.append("kind:praise")
    if rating is not None and rating >= HIGH_RATING:
        positive.append(f"rating:{rating}")
    if signals.compound >= thresholds.positive:
        positive.append(f"sentiment:{signals.compound:.2f}")
    if positive:
        return SeverityAssessment("positive", False, positive + notes)
    return SeverityAssessment("neutral", False, notes)


def assess_severity(*, kind: str, text: str, rating: int | None, language: str = "en") -> SeverityAssessment:
    """Severity of one feedback item at intake. Conservative: any negative signal makes it negative."""
    return decide(kind=kind, rating=rating, signals=analyse_text(text, language))
