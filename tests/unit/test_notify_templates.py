"""Every template renders in English and Spanish with text, HTML and SMS variants; the Spanish catalogue
translates every message the templates use (nothing missing, empty or fuzzy), with Spanish plural forms."""

from __future__ import annotations

import re
from typing import Any

import pytest
from babel.messages.mofile import read_mo

from heard_notify import i18n

CONTEXT: dict[str, Any] = {
    "feedback_id": "f-123",
    "tracking_url": "https://heard.example/v1/feedback/ABCDE-FGHJK-MNPQR-STVWX",
    "unsubscribe_url": "https://notify.example/v1/unsubscribe/t",
    "yes_url": "https://notify.example/v1/follow-up/t/yes",
    "no_url": "https://notify.example/v1/follow-up/t/no",
    "staff_url": "https://heard.example/v1/staff/feedback/f-123",
    "answer": "We spoke to the officers <and> apologised.",
    "unit_name": "North Precinct Patrol",
    "unit_id": "north-patrol",
    "level": 2,
    "level_name": "commander",
    "severity": "critical",
    "reason": "answer_overdue",
    "missed_deadline": "2026-11-02T15:00:00+00:00",
    "acknowledge_by": "2026-11-03T15:00:00+00:00",
    "answer_by": "2026-11-06T15:00:00+00:00",
    "deadline": "2026-11-03T15:00:00+00:00",
    "stage": "answer",
    "repeat": 2,
    "resolution": "answered",
    "closed_at": "2026-11-02T15:00:00+00:00",
    "date": "2026-11-02",
    "overdue": [
        {"feedback_id": "a", "deadline": "2026-11-01T10:00:00+00:00", "severity": "critical", "staff_url": "u"}
    ],
    "new": [{"feedback_id": "b", "staff_url": "u"}],
}
TEMPLATES = (*i18n.RESIDENT_TEMPLATES, *i18n.STAFF_TEMPLATES)


def test_every_template_file_is_known() -> None:
    files = {path.stem for path in i18n.TEMPLATES.glob("*.j2") if not path.stem.startswith("_")} - {"base"}
    assert files == set(TEMPLATES)


@pytest.mark.parametrize("language", i18n.LANGUAGES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_renders_every_variant(template: str, language: str) -> None:
    rendered = i18n.render(template, language, CONTEXT, zone="America/Chicago")
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.text.strip() and rendered.sms.strip()
    assert f'<html lang="{language}">' in rendered.html and "</html>" in rendered.html
    assert "{{" not in rendered.text + rendered.html + rendered.sms
    assert "%(" not in rendered.subject + rendered.text + rendered.sms, "a placeholder was not filled"
    if template in i18n.RESIDENT_TEMPLATES:
        assert "911" in rendered.text and "911" in rendered.html
    if template == "answered":
        assert "apologised." in rendered.text and "&lt;and&gt;" in rendered.html, "HTML escapes, text does not"


def test_spanish_messages_are_spanish() -> None:
    english = i18n.render("answered", "en", CONTEXT)
    spanish = i18n.render("answered", "es", CONTEXT)
    assert english.subject == "Your feedback has an answer"
    assert spanish.subject == "Su comentario tiene una respuesta"
    assert "llame al 911" in spanish.text


def test_spanish_plural_forms() -> None:
    one = i18n.render("digest", "es", {**CONTEXT, "new": []})
    two = i18n.render("digest", "es", {**CONTEXT, "overdue": CONTEXT["overdue"] * 2, "new": []})
    assert one.subject == "1 comentario vencido" and two.subject == "2 comentarios vencidos"


def test_a_missing_variable_fails_instead_of_rendering_blank() -> None:
    with pytest.raises(Exception, match="tracking_url"):
        i18n.render("received", "en", {"feedback_id": "f"})


def test_the_spanish_catalogue_translates_every_message() -> None:
    used = {message.id for message in i18n.extract() if message.id}
    catalogue = i18n.read_catalogue("es")
    assert catalogue.plural_forms == "nplurals=2; plural=(n != 1);"
    problems = []
    for msgid in used:
        message = catalogue.get(msgid)
        if message is None:
            problems.append(f"missing: {msgid!r}")
        elif message.fuzzy or not message.string or (isinstance(message.string, tuple) and not all(message.string)):
            problems.append(f"untranslated or fuzzy: {msgid!r}")
    obsolete = {m.id for m in catalogue if m.id} - used
    assert problems == [] and obsolete == set(), "\n".join(problems + [f"obsolete: {o!r}" for o in obsolete])


def test_translations_keep_their_placeholders() -> None:
    placeholder = re.compile(r"%\((\w+)\)s")
    for message in i18n.read_catalogue("es"):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = set(placeholder.findall(str(ids[-1])))
        for string in strings:
            assert set(placeholder.findall(str(string))) == expected, message.id


def test_the_compiled_catalogue_matches_the_source() -> None:
    mo = i18n.LOCALES / "es" / "LC_MESSAGES" / "messages.mo"
    with mo.open("rb") as handle:
        compiled = read_mo(handle)
    source = i18n.read_catalogue("es")

    def ids(catalogue: Any) -> set[Any]:
        return {tuple(m.id) if isinstance(m.id, list | tuple) else m.id for m in catalogue if m.id}

    assert ids(compiled) == ids(source), "the compiled catalogue is stale: run make venv (it compiles the .po files)"
