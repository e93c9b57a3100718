"""`python -m heard_web.catalog update|check`: the message catalogue of the pages.

`update` extracts every message from the Python code (`N_`, `_`) and the templates (`_()`), writes
`translations/messages.pot`, and merges it into each language's `messages.po` (new messages arrive empty, for a
translator to fill in). `check` exits 1 when a message is missing or untranslated; a test runs the same check.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

__all__ = ["extract", "problems", "read_po", "update"]

from heard_web.i18n import DEFAULT_LOCALE, LOCALES, TRANSLATIONS_DIR

PACKAGE = Path(__file__).parent
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]
TEMPLATE_FILE = TRANSLATIONS_DIR / "messages.pot"
# A fixed header: the files change only when a message does.
FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
TEAM = "Heard <heard@example.org>"


def new_catalog(locale: str | None = None) -> Catalog:
    return Catalog(
        locale=locale,
        project="Heard web",
        version="1.0",
        copyright_holder="Heard",
        msgid_bugs_address="heard@example.org",
        last_translator=TEAM,
        language_team=TEAM,
        creation_date=FIXED_DATE,
        revision_date=FIXED_DATE,
        charset="utf-8",
        fuzzy=False,
    )


def extract() -> Catalog:
    catalog = new_catalog()
    for filename, line, message, comments, context in extract_from_dir(PACKAGE, METHODS):
        catalog.add(message, locations=[(filename, line)], auto_comments=comments, context=context)
    return catalog


def po_file(locale: str) -> Path:
    return TRANSLATIONS_DIR / locale / "LC_MESSAGES" / "messages.po"


def read(locale: str) -> Catalog:
    with po_file(locale).open("rb") as po:
        return read_po(po, locale=locale)


def problems(template: Catalog, locale: str) -> list[str]:
    """Messages of the code without a finished translation in `locale`: missing, empty or fuzzy."""
    catalog = read(locale)
    found = []
    for message in template:
        if not message.id:
            continue
        translated = catalog.get(message.id, message.context)
        strings = translated.string if translated is not None else None
        if translated is None:
            found.append(f"missing: {message.id!r}")
        elif not (all(strings) if isinstance(strings, tuple) else strings):
            found.append(f"untranslated: {message.id!r}")
        elif translated.fuzzy:
            found.append(f"fuzzy: {message.id!r}")
    return found


def update() -> None:
    template = extract()
    with TEMPLATE_FILE.open("wb") as pot:
        write_po(pot, template, width=120, no_location=True, sort_output=True)
    for locale in LOCALES:
        if locale == DEFAULT_LOCALE:
            continue
        path = po_file(locale)
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = read(locale) if path.exists() else new_catalog(locale)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.revision_date, catalog.fuzzy = FIXED_DATE, False
        with path.open("wb") as po:
            write_po(po, catalog, width=120, no_location=True, ignore_obsolete=True, sort_output=True)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "update":
        update()
        return 0
    template = extract()
    missing = [
        f"{locale}: {problem}"
        for locale in LOCALES
        if locale != DEFAULT_LOCALE
        for problem in problems(template, locale)
    ]
    for line in missing:
        print(line, file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
