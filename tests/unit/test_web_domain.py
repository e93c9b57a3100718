"""The pages' pure parts: form reading, plain-word presenters, the clickable map, language choice and formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from heard_web import forms, presenters
from heard_web.areas import MAP_HEIGHT, MAP_WIDTH, CityMap
from heard_web.config import CONFIG_DIR, RIVERTON_NEIGHBOURHOODS
from heard_web.i18n import Formats, load_translations, negotiate
from heard_web.security import local_path

CITY = CityMap.load(CONFIG_DIR / "precincts.geojson")
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ES = load_translations()["es"].gettext


def submit(**fields: str) -> forms.SubmitForm:
    return forms.read_submit_form(fields, language="es", neighbourhoods=RIVERTON_NEIGHBOURHOODS, city=CITY)


def test_an_anonymous_submission_becomes_intakes_request_in_the_visitors_language() -> None:
    read = submit(kind="complaint", text="  Nadie vino  \r\n", neighbourhood="Northgate", officer_badge="4127")
    assert read.errors == []
    assert read.body == {
        "kind": "complaint",
        "text": "Nadie vino",
        "language": "es",
        "location": {"neighbourhood": "Northgate"},
        "officer_badge": "4127",
    }


def test_missing_and_invalid_fields_are_reported_by_field() -> None:
    read = submit(kind="rant", text="", neighbourhood="Atlantis", officer_badge="<b>", latitude="1", longitude="2")
    assert read.body is None
    assert [error.field for error in read.errors] == ["kind", "text", "neighbourhood", "map", "officer_badge"]
    too_long = submit(kind="praise", text="x" * 5001)
    assert too_long.errors[0].params == {"max": 5000, "count": 5001}


def test_contact_details_need_consent_and_a_way_to_reach_the_resident() -> None:
    assert [e.field for e in submit(kind="concern", text="t", contact_email="ana@example.org").errors] == ["consent"]
    assert [e.field for e in submit(kind="concern", text="t", contact_name="Ana", consent="yes").errors] == [
        "contact_email"
    ]
    assert [e.field for e in submit(kind="concern", text="t", contact_email="nope", consent="yes").errors] == [
        "contact_email"
    ]
    read = submit(kind="concern", text="t", contact_email="ana@example.org", consent="yes")
    assert read.body is not None and read.body["contact"] == {"consent_to_contact": True, "email": "ana@example.org"}
    assert "contact" not in (submit(kind="concern", text="t").body or {}), "anonymous unless details are given"


def test_a_click_on_the_map_becomes_a_place_inside_the_city() -> None:
    north = CITY.location_at(MAP_WIDTH / 2, 40)
    assert north is not None and CITY.area_at(*north) == "North Precinct"
    south = CITY.location_at(MAP_WIDTH / 2, MAP_HEIGHT - 40)
    assert south is not None and CITY.area_at(*south) == "South Precinct"
    assert CITY.location_at(1, 1) is None, "the padding around the areas is not a place"
    read = submit(kind="praise", text="t", latitude=str(north[0]), longitude=str(north[1]))
    assert read.body is not None and read.body["location"] == {"latitude": north[0], "longitude": north[1]}
    svg = CITY.svg(marker=north)
    assert svg.startswith("<svg") and "North Precinct" in svg and "<circle" in svg


def test_the_resident_timeline_says_with_whom_and_why_in_plain_words() -> None:
    history: list[dict[str, Any]] = [
        {"status": "submitted", "at": "2026-05-01T10:00:00+00:00"},
        {"status": "routed", "at": "2026-05-01T10:00:01+00:00", "unit_id": "north-patrol"},
        {
            "status": "escalated",
            "at": "2026-05-01T11:00:00+00:00",
            "unit_id": "north-sergeants",
            "level": 1,
            "reason": "acknowledge_overdue",
        },
        {"status": "answered", "at": "2026-05-01T12:00:00+00:00"},
        {"status": "reopened", "action": "contested", "at": "2026-05-01T13:00:00+00:00", "text": "Not enough"},
    ]
    units = {"north-patrol": "North Precinct Patrol", "north-sergeants": "North Precinct Sergeants"}
    titles = [entry.title for entry in presenters.resident_timeline(history, units, ES)]
    assert titles == [
        "Comentario recibido.",
        "Asignado a North Precinct Patrol.",
        "Elevado a supervisor (North Precinct Sergeants): nadie confirmó la recepción a tiempo.",
        "Se publicó una respuesta.",
        "Usted impugnó la respuesta, así que se reabrió un nivel más arriba.",
    ]
    assert presenters.resident_timeline(history, units, ES)[-1].text == "Not enough"


def test_staff_see_who_did_what_and_the_referral_reason() -> None:
    history: list[dict[str, Any]] = [
        {"status": "referred", "at": "x", "by": "Officer Diaz", "reason": "traffic, not patrol"}
    ]
    entry = presenters.staff_timeline(history, {}, lambda s: s)[0]
    assert (entry.actor, entry.text) == ("Officer Diaz", "traffic, not patrol")
    assert presenters.resident_timeline(history, {}, lambda s: s)[0].text is None


def test_the_deadline_waited_on_comes_first_and_counts_down() -> None:
    item = {
        "status": "routed",
        "acknowledge_by": (NOW - timedelta(minutes=5)).isoformat(),
        "answer_by": (NOW + timedelta(days=2)).isoformat(),
    }
    deadline = presenters.next_deadline(item, NOW)
    assert deadline is not None and deadline.what == "acknowledge" and deadline.overdue
    acknowledged = presenters.next_deadline({**item, "status": "acknowledged"}, NOW)
    assert acknowledged is not None and acknowledged.what == "answer" and not acknowledged.overdue
    assert presenters.next_deadline({**item, "status": "answered"}, NOW) is None


def test_buttons_follow_the_lifecycle() -> None:
    assert presenters.staff_actions({"status": "routed", "unit_id": "u"}) == presenters.Actions(True, True, True, True)
    assert presenters.staff_actions({"status": "answered", "unit_id": "u"}) == presenters.Actions(
        False, True, False, True
    )
    assert presenters.staff_actions({"status": "closed"}) == presenters.Actions(False, False, False, False)
    answered = {"status": "answered", "answer": {"text": "x", "contested": False}}
    assert presenters.resident_actions(answered) == presenters.ResidentActions(True, True, True, True)
    contested = {"status": "reopened", "answer": {"text": "x", "contested": True}, "erased": True}
    assert presenters.resident_actions(contested) == presenters.ResidentActions(True, False, True, False)


def test_the_board_sees_age_arrival_and_every_reminder() -> None:
    item = {
        "submitted_at": (NOW - timedelta(hours=3)).isoformat(),
        "history": [
            {
                "status": "escalated",
                "at": "2026-05-01T10:00:00+00:00",
                "unit_id": "oversight-board",
                "level": 4,
                "reason": "answer_overdue",
            },
            {
                "status": "escalated",
                "at": "2026-05-01T11:00:00+00:00",
                "unit_id": "oversight-board",
                "level": 4,
                "reason": "reminder",
            },
            {
                "status": "escalated",
                "at": "2026-05-01T11:30:00+00:00",
                "unit_id": "oversight-board",
                "level": 4,
                "reason": "reminder",
            },
        ],
    }
    row = presenters.board_item(item, "oversight-board", NOW)
    assert row.age == timedelta(hours=3) and row.reminders == 2 and not row.answered
    assert row.reached_board_at == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert row.last_reminder_at == datetime(2026, 5, 1, 11, 30, tzinfo=UTC)


def test_the_audit_trail_marks_the_entry_where_it_breaks() -> None:
    trail = {
        "verified": False,
        "broken_at": 2,
        "entries": [
            {"seq": 1, "action": "submitted", "actor": "resident", "details": {"negative": True}, "hash": "a" * 64},
            {
                "seq": 2,
                "action": "answered",
                "actor": "Officer Diaz",
                "details": {"answer_length": 12},
                "hash": "b" * 64,
            },
        ],
    }
    rows = presenters.audit_rows(trail, ES)
    assert [(row.seq, row.action, row.broken) for row in rows] == [(1, "enviado", False), (2, "respondido", True)]
    assert rows[0].details == [("negative", "yes")] and rows[0].hash == "a" * 16


def test_language_choice_remembered_then_negotiated() -> None:
    assert negotiate("es", "en-US,en;q=0.9") == "es"
    assert negotiate(None, "fr-FR, es-MX;q=0.8, en;q=0.5") == "es"
    assert negotiate("de", "de-DE") == "en"
    assert negotiate(None, None) == "en"


def test_durations_and_times_read_naturally_in_each_language() -> None:
    english, spanish = Formats("en", "America/Chicago"), Formats("es", "America/Chicago")
    assert english.duration(timedelta(hours=2, minutes=13, seconds=5)) == "2 hours 13 minutes"
    assert spanish.duration(timedelta(days=1, hours=3)) == "1 día 3 horas"
    assert english.duration(timedelta(minutes=5, seconds=3)) == "5 min 3 sec"
    assert english.duration(-timedelta(seconds=42)) == "42 sec", "overdue durations are shown without a sign"
    # In the city's time zone: 03:00 UTC is the evening before in Chicago.
    assert english.datetime("2026-05-01T03:00:00+00:00").replace("\u202f", " ") == "Apr 30, 2026, 10:00 PM"
    assert spanish.datetime("2026-05-01T17:00:00+00:00") == "1 may 2026, 12:00"
    assert spanish.date("2026-05-14") == "14 de mayo de 2026"


def test_redirects_never_leave_the_site() -> None:
    assert local_path("/staff/items/1?x=2") == "/staff/items/1?x=2"
    for hostile in ("https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/a\nb", None):
        assert local_path(hostile) == "/"


def test_the_walkthrough_policy_gives_people_minutes_and_the_chain_above_them_seconds() -> None:
    from heard_routing.files import load_model
    from heard_routing.policy import SlaPolicy

    policy = load_model(CONFIG_DIR / "sla-policy.walkthrough.yaml", SlaPolicy)
    assert policy.windows(severity="negative", level=0).acknowledge == timedelta(minutes=10)
    assert policy.windows(severity="negative", level=1).answer == timedelta(minutes=10)
    assert policy.windows(severity="critical", level=3).acknowledge == timedelta(seconds=3)
