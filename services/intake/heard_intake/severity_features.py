"""What the learned part of the severity assessment sees in a text: word stems, word pairs and concepts.

The same function feeds training (bench/severity/train.py) and assessment, so the two cannot drift apart.

Stems (Snowball, English or Spanish) and word pairs let the model learn phrasings from the labelled set; they
reach only as far as the set's vocabulary. Concepts reach further: each is a hand-written, bilingual list of words
for one idea that matters in feedback to a police department (a police actor, force, money, touching,
surveillance, a citation, a complaint made earlier, ...), so "lana" and "cash", "manoseó" and "groped" become one
feature, and a word the labelled set never used still counts. Pairs of concepts in one sentence ("police" with
"money", "complained earlier" with "citation") are features too, because misconduct is often told in harmless
words that only mean something together: the officer, my number, texting.

Character n-grams were tried and left out: on the tuning set they lowered the cross-validated AUC (0.94 to 0.91
for negative, 0.97 to 0.95 for critical) and cost three times as much per item.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import threading
from collections.abc import Mapping
from typing import Final, Protocol

import snowballstemmer  # type: ignore[import-untyped]

_FOLD: Final[dict[int, str]] = str.maketrans(
    {
        "á": "a",
        "é": "e",
        "í": "i",
        "ó": "o",
        "ú": "u",
        "ü": "u",
        "Á": "A",
        "É": "E",
        "Í": "I",
        "Ó": "O",
        "Ú": "U",
        "Ü": "U",
        "’": "'",
        "‘": "'",
        "“": '"',
        "”": '"',
        "«": '"',
        "»": '"',
    }
)


def unaccented(text: str) -> str:
    """Accents off (ñ kept) and typographic quotes straightened; case kept (VADER reads capitals as emphasis)."""
    return text.translate(_FOLD)


def fold(text: str) -> str:
    """Lower case, accents off (ñ kept), typographic quotes straightened: the form every pattern is written for."""
    return text.translate(_FOLD).lower()


CONCEPTS: Final[Mapping[str, str]] = {
    "police": "officer*, cop, cops, police*, deputy, deputies, sergeant*, detective*, trooper*, patrol*, cruiser*, "
    "squad, lieutenant*, badge, dispatch*, sheriff*, agente*, oficial, oficiales, policia*, patrull*, "
    "transito, guardia*, sargento*, teniente*, comandante*, poli, polis, placa, municipal*, uniformad*, "
    "comisaria*, precinct*, station",
    "force": "grab*, shov*, push*, slam*, punch*, kick*, hit, hitting, beat, beating, beaten, slap*, chok*, tackl*, "
    "threw, throw*, drag*, yank*, twist*, knee*, pinned, pinning, stomp*, tase*, taser*, pepper*, baton*, "
    "bruis*, bloody, bleed*, split, headlock, smash*, rough*, manhandl*, empuj*, golpe*, pega*, pego, "
    "pegaron, cachetad*, bofetad*, patad*, puñetaz*, avent*, arrastr*, jalon*, torci*, rodilla*, estrell*, "
    "ahorc*, asfixi*, moreton*, sangr*, tumbar*, tumbaron, tiraron, tiro, tirar*, azot*, zarandea*, "
    "macanaz*, porraz*, apalea*, agarr*",
    "weapon": "gun, guns, pistol*, rifle*, firearm*, weapon*, holster*, pistola*, arma, armas, escopeta*, macana*, "
    "tolete*, porra",
    "threat": "regret*, luck, disappear*, accident*, ditch, watch your back, know where you live, careful, "
    "arrepent*, suerte, desaparec*, zanja, cuidadito, cuidado, se donde vives, ir mal, te va a ir, "
    "amenaz*, threat*, intimidat*, intimid*",
    "money": "cash, money, bucks, dollar*, pay, paid, paying, payment*, fee, bribe*, donation*, tip, coffee fund, "
    "$, lana, dinero, efectivo, peso, pesos, euro*, dolar*, pag*, mordida, refresco, billete*, plata, "
    "coima, feria, soborn*",
    "go-away": "go away, disappear*, forget about, skip, make it go away, look the other way, let it slide, "
    "se olvida*, olvidar*, arreglaba, se arregla, quitaba la multa, hacerse de la vista gorda",
    "sexual": "touch*, grop*, fondl*, body, thigh*, breast*, chest, butt, shirt, blouse, bra, underwear, date, "
    "go out with, my number, her number, snapchat, instagram, texting, messag*, flirt*, kiss*, sexy, "
    "pretty, undress*, strip*, favor*, toc*, manose*, cuerpo, pierna*, pecho*, nalga*, blusa, brasier, "
    "ropa interior, salir con, su numero, mi numero, whatsapp, mensaj*, coquete*, beso*, besar*, desnud*, "
    "guapa, bonita, favorcito",
    "earlier-complaint": "complain*, complaint*, testif*, testimony, witness*, filed, reported, posted, "
    "video, spoke, council, hearing, lawsuit, sued, letter, queja*, quej*, declar*, testigo*, "
    "denunci*, subi, hable, cabildo, demanda*",
    "since": "since, after, ever since, ever, desde, despues",
    "repeated": "every day, every single, every time, again, keeps, kept, always, daily, weekly, cada vez, "
    "todos los dias, siempre, otra vez, diario, cada semana",
    "identity": "white, black, brown, latino*, latina*, hispanic*, asian*, muslim*, hijab*, mosque*, accent*, "
    "immigra*, papers, green card, status, really from, country, belong, race, racial, skin, color, "
    "colour, indigenous, arab*, mexican*, gay, trans, durag, hoodie, english, spanish, guero*, moren*, "
    "indigena*, negro*, velo*, mezquita*, papel*, legal, ilegal*, pais, acento*, ingles, espanol, raza, "
    "piel, barrio, parecia",
    "insult": "stupid, idiot, thug, boy, bitch, slur*, called me, illegals, illegal, "
    "retard*, monkey, animal, pendej*, idiot*, estupid*, mocoso*, delincuent*, naco*, indio*, insult*, "
    "burl*, vieja, loca",
    "evidence": "camera, body camera, bodycam, footage, delet*, eras*, turned off, video, report says, lied, lie, "
    "planted, found, fabricat*, borr*, apag*, camara, informe, mintio, mentira, sembr*, encontro",
    "search-detain": "search*, went through, warrant, without asking, without permission, "
    "held, detain*, cuff*, handcuff*, back of the cruiser, back seat, frisk*, pat down, pat-down, revis*, registr*, "
    "sin orden, sin permiso, esposa*, detenid*, detuv*, retuv*, cache*, orden judicial",
    "took": "took, taken, kept, missing, came back with, stole*, stolen, watch, wallet, belongings, se llevaron, "
    "quitaron, quito, devolvieron con, se quedaron, cartera, reloj, pertenencias",
    "hearsay": "says, say, said, told me, heard, friend, cousin, neighbor*, neighbour*, coworker*, roommate*, sister, "
    "brother, uncle, aunt, dice, dicen, dijo, conto, contaron, me dijeron, primo*, amig*, vecin*, "
    "compañer*, herman*, tio, tia, cuñad*",
    "vulnerable": "child*, kid, kids, son, daughter, teen*, elderly, disabled, wheelchair, autis*, old lady, grandma, "
    "grandpa, pregnant, niño*, niña*, hijo, hija, adolescent*, anciano*, discapacit*, silla de ruedas, "
    "autista, abuel*, embarazada, señora mayor",
    "neglect": "nobody, no one, nothing, never, didn't, did not, won't, wouldn't, refused, ignor*, nadie, nada, "
    "nunca, jamas, se nego",
    "duration": "hours, days, weeks, months, month, year, still, since, horas, dias, semanas, meses, mes, año, "
    "todavia, sigo, seguimos, aun",
    "contact": "call back, callback, called, calls, email*, voicemail, phone, answer*, respond*, reply, follow*, "
    "update*, llame, llamada*, llamar*, correo*, buzon, telefono, contest*, respuest*, seguimiento, "
    "devolver, novedades",
    "citation": "ticket*, fine, fined, fines, citation*, tow*, impound*, meter, parking, quota, speed trap, multa*, "
    "infraccion*, grua, corralon, boleta*, parquimetro*, radar",
    "surveillance": "drone*, camera*, cameras, plate reader*, license plate readers, facial recognition, footage, "
    "surveil*, watched, watching, spy*, spying, track*, monitor*, recording, ring doorbell, data, dron*, "
    "camara*, lector*, de placas, reconocimiento facial, vigil*, espi*, rastre*, grab*, datos",
    "worry": "worr*, concern*, uneasy, afraid, scared, fear*, nervous, unsafe, anxious, anxiety, uncomfortable, "
    "preocup*, miedo, inquiet*, insegur*, susto, nervios*, incomod*, temo, temor",
    "meeting": "meeting*, session*, forum*, town hall, listening, pta, association, assembly, minutes, notes, junta*, "
    "reunion*, foro*, asamblea*, sesion*, cabildo, notas, minuta*",
    "but": "but, however, though, although, unfortunately, only wish, pero, aunque, sin embargo, lastima, ojala",
    "why": "why, how come, is it normal, is it too much, what's the point, whats the point, is there a reason, "
    "por que, porque, es normal, para que, es mucho pedir, como es posible",
    "info": "how do i, how can i, where can i, where do i, can i, when is, what hours, who do i, is there, "
    "do i need, como me, como puedo, donde puedo, donde se, cuando es, que horario, con quien, necesito, "
    "hay algun",
    "thanks": "thank*, thanks, grateful, appreciat*, kudos, shout-out, shoutout, props, bless, gracias, agradec*, "
    "felicit*, reconoc*, aplauso",
    "praise-word": "kind, great, excellent, professional, respectful, helpful, patient, calm, wonderful, amazing, "
    "friendly, fantastic, awesome, fair, quick, caring, amable*, excelente*, profesional*, respetuos*, "
    "servicial*, paciente*, tranquil*, maravillos*, increible*, genial*, rapid*, chido*, padr*, majo*, "
    "maja*",
    "sarcasm-mark": "🙄, 🙃, 😒, 😑, lol, lmao, smh, /s, 10/10, real heroes, so professional, "
    "truly, riveting, revolutionary, bravo, bravisimo, clarisimo, chapo, chapeau, que maravilla, que eficiencia, "
    "felicidades, oh sure, oh good, oh great, cool cool, wow, yeah right, como no, uy que bien",
    "stop-request": "please don't, please do not, stop, should not, shouldn't, quit, no more, dejen de, deje de, "
    "no deberian, por favor no, ya basta",
    "harm": "hurt, injur*, pain, blood, hospital*, scar*, trauma*, lastim*, herid*, dolor*, sangre",
}

_WORD: Final[re.Pattern[str]] = re.compile(r"[a-zñ0-9']+|[$🙄🙃😒😑]")
_SENTENCE: Final[re.Pattern[str]] = re.compile(r"[.!?;\n]+|\s[-–—]\s")


class _ConceptIndex:
    """Whole words and prefixes by dictionary lookup; a phrase is tried only when its first word is present."""

    def __init__(self, concepts: Mapping[str, str]) -> None:
        self.exact: dict[str, set[str]] = {}
        self.prefixes: dict[str, set[str]] = {}
        self.phrases: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for concept, entries in concepts.items():
            for entry in (entry.strip() for entry in entries.split(",")):
                if " " in entry or not _WORD.fullmatch(entry.rstrip("*")):
                    body = re.escape(entry.rstrip("*"))
                    tail = r"[a-zñ]*" if entry.endswith("*") else r"(?![a-zñ])"
                    pattern = re.compile(r"(?<![a-zñ])" + body + tail)
                    self.phrases.setdefault(_WORD.findall(entry)[0], []).append((pattern, concept))
                elif entry.endswith("*"):
                    self.prefixes.setdefault(entry[:-1], set()).add(concept)
                else:
                    self.exact.setdefault(entry, set()).add(concept)
        self.prefix_lengths = sorted({len(prefix) for prefix in self.prefixes})
        self.of_word = functools.lru_cache(maxsize=65536)(self._of_word)

    def _of_word(self, word: str) -> frozenset[str]:
        found = set(self.exact.get(word, ()))
        for length in self.prefix_lengths:
            if length > len(word):
                break
            found.update(self.prefixes.get(word[:length], ()))
        return frozenset(found)

    def of_sentence(self, sentence: str, words: list[str]) -> set[str]:
        found: set[str] = set()
        for word in set(words):
            found |= self.of_word(word)
            for pattern, concept in self.phrases.get(word, ()):
                if concept not in found and pattern.search(sentence):
                    found.add(concept)
        return found


class _Stemmer(Protocol):
    def stemWord(self, word: str) -> str: ...  # snowballstemmer's name


_STEMMERS: Final[dict[str, _Stemmer]] = {
    "en": snowballstemmer.stemmer("english"),
    "es": snowballstemmer.stemmer("spanish"),
}
_STEM_LOCK = threading.Lock()  # Snowball stemmer objects keep state between calls


@functools.lru_cache(maxsize=65536)  # feedback reuses a small vocabulary; Snowball in pure Python is slow
def stem(word: str, language: str) -> str:
    with _STEM_LOCK:
        return str(_STEMMERS["es" if language == "es" else "en"].stemWord(word))


@functools.cache
def _index() -> _ConceptIndex:
    return _ConceptIndex(CONCEPTS)


def text_features(text: str, language: str) -> dict[str, float]:
    """Binary features of one text: stems, word pairs, concepts, concept pairs in a sentence, punctuation."""
    folded = fold(text)
    index = _index()
    words = _WORD.findall(folded)
    features = {"s:" + stem(word, language): 1.0 for word in words}
    for first, second in itertools.pairwise(words):
        features[f"b:{first} {second}"] = 1.0
    everywhere: set[str] = set()
    for sentence in _SENTENCE.split(folded):
        sentence_words = _WORD.findall(sentence)
        if not sentence_words:
            continue
        concepts = sorted(index.of_sentence(sentence, sentence_words))
        everywhere.update(concepts)
        for position, first in enumerate(concepts):
            for second in concepts[position + 1 :]:
                features[f"kk:{first}+{second}"] = 1.0
    for concept in everywhere:
        features["k:" + concept] = 1.0
    if "?" in text:
        features["p:question-mark"] = 1.0
    if "'" in folded or '"' in folded:
        features["p:quotes"] = 1.0
    return features


def normalised(features: Mapping[str, float]) -> dict[str, float]:
    """Unit length, so a long text does not outweigh a short one; done before any feature is looked up."""
    norm = math.sqrt(sum(value * value for value in features.values()))
    return {name: value / norm for name, value in features.items()} if norm else dict(features)
