"""Allegation categories: what a resident may declare happened, as a fixed, documented list.

Modelled on civilian-oversight practice: the four FADO categories of New York City's Civilian Complaint
Review Board (Force, Abuse of authority, Discourtesy, Offensive language), extended with the kinds of
misconduct oversight boards commonly investigate on their own (discrimination or profiling, harassment,
retaliation, sexual misconduct, corruption, unlawful stop, search or arrest).

The codes are part of the event contract (`feedback.inbound`, `feedback.submitted`) and of intake's HTTP
and Open311 surfaces, so they never change meaning: a new category is an addition, never a rename.
Every declared allegation makes the item critical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

AllegationCategory = Literal[
    "force",
    "abuse_of_authority",
    "discourtesy",
    "offensive_language",
    "discrimination",
    "harassment",
    "retaliation",
    "sexual_misconduct",
    "corruption",
    "unlawful_stop_search_arrest",
]
ALLEGATION_CODES: tuple[str, ...] = get_args(AllegationCategory)
MAX_ALLEGATIONS = len(ALLEGATION_CODES)


@dataclass(frozen=True)
class Allegation:
    code: str
    label_en: str
    label_es: str
    description_en: str
    description_es: str

    def as_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "label": {"en": self.label_en, "es": self.label_es},
            "description": {"en": self.description_en, "es": self.description_es},
        }


ALLEGATIONS: tuple[Allegation, ...] = (
    Allegation(
        "force",
        "Use of force",
        "Uso de la fuerza",
        "Physical force, a weapon, a restraint, a vehicle or a police dog used against a person.",
        "Fuerza física, un arma, esposas u otra sujeción, un vehículo o un perro policía usados contra una persona.",
    ),
    Allegation(
        "abuse_of_authority",
        "Abuse of authority",
        "Abuso de autoridad",
        "Misuse of police powers: threats, refusing to take a report or to give a name or badge number, "
        "entering a home or taking property without cause.",
        "Uso indebido de los poderes policiales: amenazas, negarse a tomar una denuncia o a dar su nombre o "
        "número de placa, entrar en una vivienda o llevarse bienes sin motivo.",
    ),
    Allegation(
        "discourtesy",
        "Discourtesy",
        "Descortesía",
        "Rude or disrespectful words, gestures or behaviour: cursing, yelling, mocking.",
        "Palabras, gestos o conducta groseros o irrespetuosos: insultos, gritos, burlas.",
    ),
    Allegation(
        "offensive_language",
        "Offensive language",
        "Lenguaje ofensivo",
        "Slurs or demeaning remarks about race, ethnicity, religion, gender, sexual orientation, disability or "
        "another personal characteristic.",
        "Insultos o comentarios denigrantes sobre raza, origen, religión, género, orientación sexual, "
        "discapacidad u otra característica personal.",
    ),
    Allegation(
        "discrimination",
        "Discrimination or profiling",
        "Discriminación o perfilamiento",
        "Being treated differently, stopped or targeted because of race, ethnicity, religion, gender, sexual "
        "orientation, disability, immigration status or another protected characteristic.",
        "Recibir un trato distinto, ser parado o señalado por raza, origen, religión, género, orientación sexual, "
        "discapacidad, situación migratoria u otra característica protegida.",
    ),
    Allegation(
        "harassment",
        "Harassment",
        "Acoso",
        "Repeated, unwanted attention, following, stops or contact by police without a lawful reason.",
        "Atención, seguimiento, paradas o contacto reiterados e indeseados de la policía sin motivo legal.",
    ),
    Allegation(
        "retaliation",
        "Retaliation",
        "Represalias",
        "Punishment or threats for complaining, filming the police, reporting or testifying.",
        "Castigos o amenazas por quejarse, grabar a la policía, denunciar o declarar.",
    ),
    Allegation(
        "sexual_misconduct",
        "Sexual misconduct",
        "Conducta sexual indebida",
        "Sexual remarks, advances, touching or demands by an officer.",
        "Comentarios, insinuaciones, tocamientos o exigencias de carácter sexual por parte de un agente.",
    ),
    Allegation(
        "corruption",
        "Corruption",
        "Corrupción",
        "Bribes, theft, asking for money or favours, or using the badge for personal gain.",
        "Sobornos, robos, pedir dinero o favores, o usar el cargo en beneficio propio.",
    ),
    Allegation(
        "unlawful_stop_search_arrest",
        "Unlawful stop, search or arrest",
        "Parada, registro o arresto ilegal",
        "Being stopped, frisked, searched, detained or arrested without a lawful reason.",
        "Ser parado, cacheado, registrado, retenido o arrestado sin motivo legal.",
    ),
)
BY_CODE: dict[str, Allegation] = {allegation.code: allegation for allegation in ALLEGATIONS}


def in_catalog_order(codes: list[str]) -> list[str]:
    """Each code once, in the catalog's order: the same declaration always reads and compares the same."""
    chosen = set(codes)
    return [code for code in ALLEGATION_CODES if code in chosen]
