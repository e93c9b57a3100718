"""Reading the pages' forms: each returns what to send to the API, or the errors to show next to the fields.

Pure: form fields in (as the browser sent them), a request body or a list of `FieldError`s out. The messages are
marked for translation and rendered in the visitor's language; intake validates everything again.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from heard_web.areas import CityMap
from heard_web.i18n import N_
from heard_web.presenters import KINDS

TEXT_MAX = 5000
ANSWER_MAX = 10000
REASON_MAX = 500
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^[+0-9 ().-]{5,40}$")
_BADGE = re.compile(r"^[A-Za-z0-9 #-]{1,40}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def clean(value: Any) -> str:
    """A form value as text: trimmed, line endings made plain, no NUL or unpaired surrogates."""
    text = value if isinstance(value, str) else ""
    text = text.replace("\r\n", "\n").replace("\x00", "").strip()
    return text.encode("utf-8", "replace").decode("utf-8")


def _length_error(name: str, value: str, maximum: int) -> FieldError | None:
    if len(value) > maximum:
        return FieldError(
            name,
            N_("This is too long: keep it under %(max)s characters (it has %(count)s)."),
            {"max": maximum, "count": len(value)},
        )
    return None


@dataclass(frozen=True)
class SubmitForm:
    values: dict[str, str]
    errors: list[FieldError]
    body: dict[str, Any] | None  # intake's submit request, when there are no errors


def read_submit_form(
    form: Mapping[str, Any], *, language: str, neighbourhoods: tuple[str, ...], city: CityMap
) -> SubmitForm:
    names = (
        "kind",
        "text",
        "neighbourhood",
        "latitude",
        "longitude",
        "officer_badge",
        "contact_name",
        "contact_email",
        "contact_phone",
        "consent",
    )
    values = {name: clean(form.get(name)) for name in names}
    errors: list[FieldError] = []
    if values["kind"] not in KINDS:
        errors.append(FieldError("kind", N_("Choose what kind of feedback this is.")))
    if not values["text"]:
        errors.append(FieldError("text", N_("Tell us what happened or what you think.")))
    elif problem := _length_error("text", values["text"], TEXT_MAX):
        errors.append(problem)
    if values["neighbourhood"] and values["neighbourhood"] not in neighbourhoods:
        errors.append(FieldError("neighbourhood", N_("Choose a neighbourhood from the list.")))
    spot = _spot(values, city)
    if (values["latitude"] or values["longitude"]) and spot is None:
        errors.append(FieldError("map", N_("That place is not on the map. Click inside one of the areas.")))
    if values["officer_badge"] and not _BADGE.fullmatch(values["officer_badge"]):
        errors.append(FieldError("officer_badge", N_("A badge number has at most 40 letters, digits, spaces, # or -.")))
    contact = _contact(values, errors)
    if errors:
        return SubmitForm(values, errors, None)
    body: dict[str, Any] = {"kind": values["kind"], "text": values["text"], "language": language}
    location: dict[str, Any] = {}
    if values["neighbourhood"]:
        location["neighbourhood"] = values["neighbourhood"]
    if spot is not None:
        location |= {"latitude": spot[0], "longitude": spot[1]}
    if location:
        body["location"] = location
    if values["officer_badge"]:
        body["officer_badge"] = values["officer_badge"]
    if contact:
        body["contact"] = contact
    return SubmitForm(values, [], body)


def _spot(values: Mapping[str, str], city: CityMap) -> tuple[float, float] | None:
    try:
        latitude, longitude = float(values["latitude"]), float(values["longitude"])
    except ValueError:
        return None
    if city.area_at(latitude, longitude) is None:
        return None
    return latitude, longitude


def _contact(values: Mapping[str, str], errors: list[FieldError]) -> dict[str, Any] | None:
    name, email, phone = values["contact_name"], values["contact_email"], values["contact_phone"]
    consent = values["consent"] == "yes"
    if email and not _EMAIL.fullmatch(email):
        errors.append(FieldError("contact_email", N_("Enter an e-mail address like name@example.org.")))
    if phone and not _PHONE.fullmatch(phone):
        errors.append(FieldError("contact_phone", N_("Enter a phone number using digits, spaces and + ( ) - only.")))
    if len(name) > 200:
        errors.append(FieldError("contact_name", N_("A name has at most 200 characters.")))
    if not (name or email or phone or consent):
        return None  # anonymous: nothing about the resident is stored
    if not consent:
        errors.append(
            FieldError(
                "consent",
                N_("Tick the box to let us contact you, or leave your name, e-mail and phone empty."),
            )
        )
        return None
    if not (email or phone):
        errors.append(FieldError("contact_email", N_("Give an e-mail address or a phone number, or untick the box.")))
        return None
    contact: dict[str, Any] = {"consent_to_contact": True}
    for key, value in (("name", name), ("email", email), ("phone", phone)):
        if value:
            contact[key] = value
    return contact


def read_text(
    form: Mapping[str, Any], name: str, *, maximum: int, required: str | None
) -> tuple[str, FieldError | None]:
    """One free-text field; `required` is the message when it is empty (None: it may be empty)."""
    value = clean(form.get(name))
    if not value and required:
        return value, FieldError(name, required)
    return value, _length_error(name, value, maximum)


@dataclass(frozen=True)
class SessionForm:
    values: dict[str, str]
    errors: list[FieldError]
    body: dict[str, Any] | None


def read_session_form(form: Mapping[str, Any], *, neighbourhoods: tuple[str, ...]) -> SessionForm:
    names = ("title", "date", "place", "facilitator", "neighbourhood", "language", "notes")
    values = {name: clean(form.get(name)) for name in names}
    errors = [
        FieldError(name, message)
        for name, message in (
            ("title", N_("Give the session a title.")),
            ("place", N_("Say where the session took place.")),
            ("facilitator", N_("Say who facilitated the session.")),
        )
        if not values[name]
    ]
    errors += [
        problem
        for name in ("title", "place", "facilitator")
        if (problem := _length_error(name, values[name], 200)) is not None
    ]
    if not _DATE.fullmatch(values["date"]):
        errors.append(FieldError("date", N_("Enter the date as year-month-day, for example 2026-05-14.")))
    if values["neighbourhood"] and values["neighbourhood"] not in neighbourhoods:
        errors.append(FieldError("neighbourhood", N_("Choose a neighbourhood from the list.")))
    if values["language"] not in ("en", "es"):
        values["language"] = "en"
    if problem := _length_error("notes", values["notes"], 2000):
        errors.append(problem)
    if errors:
        return SessionForm(values, errors, None)
    body = {name: values[name] for name in names if values[name]}
    return SessionForm(values, [], body)


def read_session_item(form: Mapping[str, Any], *, neighbourhoods: tuple[str, ...]) -> SessionForm:
    names = ("kind", "text", "neighbourhood", "officer_badge", "ref")
    values = {name: clean(form.get(name)) for name in names}
    errors: list[FieldError] = []
    if values["kind"] not in KINDS:
        errors.append(FieldError("kind", N_("Choose what kind of feedback this is.")))
    if not values["text"]:
        errors.append(FieldError("text", N_("Write down what was said.")))
    elif problem := _length_error("text", values["text"], TEXT_MAX):
        errors.append(problem)
    if values["neighbourhood"] and values["neighbourhood"] not in neighbourhoods:
        errors.append(FieldError("neighbourhood", N_("Choose a neighbourhood from the list.")))
    if values["officer_badge"] and not _BADGE.fullmatch(values["officer_badge"]):
        errors.append(FieldError("officer_badge", N_("A badge number has at most 40 letters, digits, spaces, # or -.")))
    if values["ref"] and not re.fullmatch(r"[A-Za-z0-9_.:/#-]{1,100}", values["ref"]):
        errors.append(FieldError("ref", N_("A card number uses letters, digits and . _ : / # - only.")))
    if errors:
        return SessionForm(values, errors, None)
    return SessionForm(values, [], {name: values[name] for name in names if values[name]})
