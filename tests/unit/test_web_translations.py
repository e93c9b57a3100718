"""Every message the pages show is translated: nothing in a template is left outside `_()`, and the Spanish
catalogue has a finished translation for every message of the code and templates."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment

from heard_web import catalog
from heard_web.i18n import LOCALES, load_translations

TEMPLATES = Path(catalog.PACKAGE) / "templates"
# Attributes a person reads or hears; the others (class, href, name, value of hidden fields) are code.
READ_ATTRIBUTES = frozenset({"alt", "title", "placeholder", "aria-label", "aria-roledescription", "label"})
# Names, not messages: the product's name is the same in every language.
NOT_MESSAGES = frozenset({"Heard"})
LETTER = re.compile(r"[^\W\d_]")


class VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_data(self, data: str) -> None:
        self._check(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in READ_ATTRIBUTES and value:
                self._check(value)

    def _check(self, text: str) -> None:
        for word in text.split():
            if "=" in word or '"' in word:
                continue  # attribute markup a macro writes between tags (aria-describedby="..."), not a message
            if LETTER.search(word) and word.strip(".,:;()·") not in NOT_MESSAGES:
                self.found.append(word)


def untranslated_text(source: str) -> list[str]:
    """Words a template shows outside Jinja expressions, i.e. text that no catalogue can translate."""
    environment = Environment(extensions=["jinja2.ext.i18n"])
    plain = []
    for _, token, value in environment.lex(source):
        if token == "data":
            plain.append(value)
        elif token in ("variable_begin", "block_begin"):
            plain.append("0")  # an expression's output: no letters of its own
    parser = VisibleText()
    parser.feed("".join(plain))
    parser.close()
    return parser.found


def test_the_check_finds_text_outside_the_translation_calls() -> None:
    assert untranslated_text('<p>{{ _("Hello") }}</p><img alt="{{ _("Map") }}">') == []
    assert untranslated_text("<p>Hello {{ name }}</p>") == ["Hello"]
    assert untranslated_text('<input placeholder="Your name">') == ["Your", "name"]
    assert untranslated_text("<p>Heard · {{ city }}</p><td>#</td>") == []


@pytest.mark.parametrize(
    "template", sorted(TEMPLATES.rglob("*.html")), ids=lambda path: str(path.relative_to(TEMPLATES))
)
def test_templates_show_no_text_outside_the_catalogue(template: Path) -> None:
    assert untranslated_text(template.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("locale", [locale for locale in LOCALES if locale != "en"])
def test_every_message_has_a_finished_translation(locale: str) -> None:
    problems = catalog.problems(catalog.extract(), locale)
    assert problems == [], "run `make translations` and translate:\n" + "\n".join(problems)


def test_the_published_template_catalogue_is_current() -> None:
    with catalog.TEMPLATE_FILE.open("rb") as pot:
        published = {message.id for message in catalog.read_po(pot) if message.id}
    assert published == {message.id for message in catalog.extract() if message.id}, "run `make translations`"


def test_spanish_is_loaded_and_keeps_the_placeholders() -> None:
    spanish = load_translations()["es"]
    assert spanish.gettext("Give feedback") == "Dar su opinión"
    for message in catalog.extract():
        source = str(message.id)
        if "%(" in source:
            placeholders = set(re.findall(r"%\((\w+)\)s", source))
            assert set(re.findall(r"%\((\w+)\)s", spanish.gettext(source))) == placeholders, source
