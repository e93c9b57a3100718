"""English and Spanish for the transparency pages: Babel catalogues, compiled at install or image build.

`python -m heard_analytics.i18n compile` writes the `.mo` files next to the `.po` files (`make venv` and the
Dockerfile run it); `extract` rewrites the template `messages.pot` from the code and templates. A test fails on
any message without a Spanish translation. If a `.mo` file is missing (a fresh checkout that skipped the build
step) the catalogue is compiled in memory from its `.po`, so a page is never served half in English.
"""

from __future__ import annotations

import sys
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import NullTranslations, Translations

LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"
PACKAGE = Path(__file__).resolve().parent
LOCALES = PACKAGE / "locales"
DOMAIN = "messages"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2.ext:babel_extract")]


def N_(message: str) -> str:
    """Marks a message for translation where it is defined; it is translated where it is shown."""
    return message


@cache
def translations(language: str) -> NullTranslations:
    if language == DEFAULT_LANGUAGE:
        return NullTranslations()
    folder = LOCALES / language / "LC_MESSAGES"
    compiled = folder / f"{DOMAIN}.mo"
    if compiled.exists():
        with compiled.open("rb") as handle:
            return Translations(handle, domain=DOMAIN)
    with (folder / f"{DOMAIN}.po").open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


def extract() -> Catalog:
    catalog = Catalog(project="heard-analytics", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(PACKAGE), METHODS, keywords=KEYWORDS, strip_comment_tags=True
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def compile_all() -> None:
    for po in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po"):
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=po.parent.parent.name)
        with po.with_suffix(".mo").open("wb") as handle:
            write_mo(handle, catalog)


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "compile"
    if command == "compile":
        compile_all()
    elif command == "extract":
        with (LOCALES / f"{DOMAIN}.pot").open("wb") as handle:
            write_po(handle, extract(), omit_header=False, sort_output=True)
    else:
        raise SystemExit("usage: python -m heard_analytics.i18n compile|extract")


if __name__ == "__main__":
    main()
