"""English and Spanish: Babel catalogues, the visitor's choice (remembered in a cookie) and local formatting.

Messages are English in the code and templates; `translations/es/LC_MESSAGES/messages.po` translates them. The
catalogue is compiled in memory at start-up, so there is no binary file to rebuild or forget. Python code marks
its messages with `N_` (translated when a page renders them); templates use `_()` and `{% trans %}`.
`make translations` extracts the messages and updates the catalogue; a test fails on any message left untranslated.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from babel.units import format_unit

LOCALES = ("en", "es")
DEFAULT_LOCALE = "en"
LANGUAGE_NAMES = {"en": "English", "es": "Español"}
LANGUAGE_COOKIE = "heard_lang"
TRANSLATIONS_DIR = Path(__file__).with_name("translations")


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated where a page renders it."""
    return message


def load_translations(directory: Path = TRANSLATIONS_DIR) -> dict[str, NullTranslations]:
    translations: dict[str, NullTranslations] = {DEFAULT_LOCALE: NullTranslations()}
    for locale in LOCALES:
        if locale == DEFAULT_LOCALE:
            continue
        with (directory / locale / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=locale)
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        translations[locale] = Translations(compiled)
    return translations


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The remembered choice, else the browser's preferred language we have, else English."""
    if cookie in LOCALES:
        return str(cookie)
    preferences: list[tuple[float, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        if parameters.strip().startswith("q="):
            try:
                quality = float(parameters.strip()[2:])
            except ValueError:
                quality = 0.0
        language = tag.split("-")[0].lower()
        if language in LOCALES and quality > 0:
            preferences.append((-quality + position * 1e-6, language))
    return min(preferences)[1] if preferences else DEFAULT_LOCALE


class Formats:
    """Dates, times and durations in the visitor's language and the city's time zone."""

    def __init__(self, locale: str, timezone: str) -> None:
        self.locale = Locale.parse(locale)
        self.zone = ZoneInfo(timezone)

    def datetime(self, value: datetime | str | None) -> str:
        """Date and time to the minute, in the city's time zone (e.g. "May 1, 2026, 12:00 PM")."""
        moment = parse_time(value)
        if moment is None:
            return ""
        local = moment.astimezone(self.zone)
        day = format_date(local, "medium", locale=self.locale)
        return f"{day}, {format_time(local, 'short', tzinfo=self.zone, locale=self.locale)}"

    def date(self, value: str | None) -> str:
        """A calendar date such as a session's ("2026-05-14"), written out in full."""
        try:
            return format_date(date.fromisoformat(str(value)[:10]), "long", locale=self.locale)
        except ValueError:
            return str(value or "")

    def duration(self, delta: timedelta) -> str:
        """The two largest units, e.g. '2 days 3 hours' or '5 min 10 s'; never negative."""
        seconds = max(0, int(abs(delta.total_seconds())))
        parts: list[tuple[int, str]] = []
        for size, unit in ((86400, "duration-day"), (3600, "duration-hour"), (60, "duration-minute")):
            if seconds >= size:
                parts.append((seconds // size, unit))
                seconds %= size
        parts.append((seconds, "duration-second"))
        shown = [part for part in parts if part[0]][:2] or [(0, "duration-second")]
        length: Literal["long", "short"] = "long" if shown[0][1] in ("duration-day", "duration-hour") else "short"
        return " ".join(format_unit(count, unit, length=length, locale=self.locale) for count, unit in shown)


def parse_time(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def translate(translations: Mapping[str, NullTranslations], locale: str, message: str, **params: object) -> str:
    text = translations[locale].gettext(message)
    return text % params if params else text
