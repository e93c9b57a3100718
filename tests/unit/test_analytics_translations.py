"""Every message of the transparency pages has a Spanish translation, and the template catalogue is current."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po

from heard_analytics import i18n

LOCALES = Path(i18n.__file__).parent / "locales"


def spanish_catalogue() -> dict[str, tuple[str, bool]]:
    with (LOCALES / "es" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        catalogue = read_po(handle)
    return {str(m.id): (str(m.string), m.fuzzy) for m in catalogue if m.id}


def test_every_message_in_the_code_and_templates_has_a_spanish_translation() -> None:
    spanish = spanish_catalogue()
    extracted = {str(m.id) for m in i18n.extract() if m.id}
    assert extracted, "nothing extracted: the extraction methods no longer find the messages"
    missing = sorted(m for m in extracted if m not in spanish or not spanish[m][0])
    fuzzy = sorted(m for m in extracted if m in spanish and spanish[m][1])
    assert missing == [], (
        f"untranslated in es/messages.po (python -m heard_analytics.i18n extract, then translate): {missing}"
    )
    assert fuzzy == [], f"fuzzy (unchecked) translations in es/messages.po: {fuzzy}"


def test_a_spanish_translation_keeps_every_placeholder() -> None:
    import re

    placeholder = re.compile(r"%\([a-z_]+\)s")
    wrong = {
        message: translation
        for message, (translation, _) in spanish_catalogue().items()
        if sorted(placeholder.findall(message)) != sorted(placeholder.findall(translation))
    }
    assert wrong == {}


def test_the_compiled_spanish_catalogue_serves_a_new_message() -> None:
    assert i18n.translations("es").gettext("Any allegation") != "Any allegation"
