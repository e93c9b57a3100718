"""Messages in the recipient's language: Jinja2 templates, Babel catalogues, Babel's date formats.

Each template in `templates/` extends `base.j2` (the HTML part) and defines `subject`, `text` and `sms`
blocks. English is the source language; `locale/<lang>/LC_MESSAGES/messages.po` holds the translations,
compiled to `.mo` at install (`make venv` and the Dockerfile run `python -m heard_notify.i18n compile`).

    python -m heard_notify.i18n extract    # templates -> locale/messages.pot, merged into every .po
    python -m heard_notify.i18n compile    # .po -> .mo
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE / "templates"
LOCALES = PACKAGE / "locale"
LANGUAGES = ("en", "es")
DOMAIN = "messages"
EXTRACT_METHODS = [("**.j2", "jinja2")]
EXTRACT_OPTIONS = {"**.j2": {"extensions": "jinja2.ext.i18n", "newstyle_gettext": "true"}}
RESIDENT_TEMPLATES = ("received", "acknowledged", "escalated", "answered", "closed", "follow_up")
STAFF_TEMPLATES = ("assigned", "reminder", "escalated_to_you", "top_reminder", "critical", "digest")


class CatalogueMissing(RuntimeError):
    """The compiled catalogue is not there: the package was not installed with `make venv` or the image build."""


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    sms: str


def translations(language: str) -> Translations | None:
    if language == "en":
        return None
    mo = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not mo.exists():
        raise CatalogueMissing(f"{mo} is missing; run `python -m heard_notify.i18n compile` (make venv does)")
    with mo.open("rb") as handle:
        return Translations(handle, domain=DOMAIN)


@cache
def _environment(language: str, html: bool, zone_name: str) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=html,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        keep_trailing_newline=False,
    )
    catalogue = translations(language)
    if catalogue is None:
        environment.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    else:
        environment.install_gettext_translations(catalogue, newstyle=True)  # type: ignore[attr-defined]
    zone = ZoneInfo(zone_name)

    def when(value: str | datetime | None) -> str:
        if not value:
            return ""
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return format_datetime(moment, "medium", tzinfo=zone, locale=language)

    environment.filters["when"] = when
    return environment


def _block(template: Template, name: str, context: Mapping[str, Any]) -> str:
    return "".join(template.blocks[name](template.new_context(dict(context)))).strip()


def render(template_name: str, language: str, context: Mapping[str, Any], *, zone: str = "UTC") -> Rendered:
    """Subject, text, HTML and SMS of one template in one language; a missing variable raises."""
    language = language if language in LANGUAGES else "en"
    values = {"lang": language, "unsubscribe_url": None, **context}
    plain = _environment(language, False, zone).get_template(f"{template_name}.j2")
    html = _environment(language, True, zone).get_template(f"{template_name}.j2")
    return Rendered(
        subject=" ".join(_block(plain, "subject", values).split()),
        text=_block(plain, "text", values) + "\n",
        html=html.render(values),
        sms=" ".join(_block(plain, "sms", values).split()),
    )


# -- catalogue maintenance -------------------------------------------------------------------------------------


def extract() -> Catalog:
    """Every message the templates use, as a catalogue (msgid -> locations)."""
    catalogue = Catalog(project="heard-notify", domain=DOMAIN)
    for filename, lineno, message, comments, context in extract_from_dir(
        TEMPLATES, EXTRACT_METHODS, options_map=EXTRACT_OPTIONS
    ):
        catalogue.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalogue


def read_catalogue(language: str) -> Catalog:
    with (LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def compile_catalogues() -> list[Path]:
    written = []
    for po in sorted(LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        with po.open("rb") as handle:
            catalogue = read_po(handle, locale=po.parent.parent.name, domain=DOMAIN)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as handle:
            write_mo(handle, catalogue)
        written.append(mo)
    return written


def update_catalogues() -> None:
    template = extract()
    with (LOCALES / f"{DOMAIN}.pot").open("wb") as handle:
        write_po(handle, template, width=120, omit_header=False)
    for language in LANGUAGES[1:]:
        catalogue = read_catalogue(language)
        catalogue.update(template)
        with (LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po").open("wb") as handle:
            write_po(handle, catalogue, width=120)


def main(argv: list[str]) -> int:
    if argv[:1] == ["compile"]:
        for path in compile_catalogues():
            print(f"compiled {path.relative_to(PACKAGE)}")
        return 0
    if argv[:1] == ["extract"]:
        update_catalogues()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
