"""Reading a session's uploaded items: every row is judged on its own, and the whole upload only when unreadable."""

from __future__ import annotations

import json

import pytest

from heard_intake.sessions import (
    RejectedItem,
    SessionItem,
    UploadError,
    parse_csv_items,
    parse_json_items,
    validate_row,
)


def judged(rows: list[object]) -> list[SessionItem | RejectedItem]:
    return [validate_row(raw) for raw in parse_json_items(json.dumps(rows).encode())]


def test_csv_rows_are_validated_one_by_one_with_their_file_lines() -> None:
    sheet = (
        "\ufeffKind,Text,Neighbourhood,Rating,Ref\n"
        "complaint,Speeding on Elm St every night,Northgate,,card-1\n"
        "\n"
        "praise,,Northgate,5,card-2\n"
        "nonsense,Something,,,card-3\n"
        'suggestion,"More lights, please",,9,card-4\n'
        "praise,Too,many,cells,here,!\n"
    ).encode()
    results = [validate_row(raw) for raw in parse_csv_items(sheet)]
    assert isinstance(results[0], SessionItem)
    assert results[0].neighbourhood == "Northgate" and results[0].ref == "card-1"
    rejected = [r for r in results if isinstance(r, RejectedItem)]
    assert [(r.row, r.line) for r in rejected] == [(2, 4), (3, 5), (4, 6), (5, 7)]
    assert rejected[0].errors[0].field == "text"
    assert rejected[1].errors[0].field == "kind"
    assert rejected[2].errors[0].field == "rating"
    assert rejected[3].errors[0].field == "row"


@pytest.mark.parametrize(
    ("sheet", "message"),
    [
        (b"", "empty"),
        (b"kind,text,email\npraise,hi,a@b.c\n", "unknown"),
        (b"kind,comment\npraise,hi\n", "missing"),
        (b"kind,text,text\npraise,a,b\n", "each once"),
        (b"kind,text\n\xff\xfe,bad\n", "UTF-8"),
        (b'kind,text\npraise,"unterminated\n', "line"),
    ],
)
def test_unreadable_sheets_are_refused_as_a_whole(sheet: bytes, message: str) -> None:
    with pytest.raises(UploadError, match=message):
        parse_csv_items(sheet)


def test_json_items_must_be_an_array_of_objects() -> None:
    with pytest.raises(UploadError):
        parse_json_items(b'{"kind": "praise"}')
    with pytest.raises(UploadError):
        parse_json_items(b"[1, 2")
    results = judged([{"kind": "praise", "text": "Thank you"}, "just text", {"kind": "praise", "text": "x", "x": 1}])
    assert isinstance(results[0], SessionItem)
    assert isinstance(results[1], RejectedItem) and results[1].errors[0].field == "item"
    assert isinstance(results[2], RejectedItem) and results[2].errors[0].field == "x"


def test_text_that_cannot_be_stored_is_a_row_error_not_a_crash() -> None:
    results = [validate_row(raw) for raw in parse_json_items(b'[{"kind": "praise", "text": "bad \\ud800 text"}]')]
    assert isinstance(results[0], RejectedItem)
    assert "Unicode" in results[0].errors[0].problem
    nul = judged([{"kind": "praise", "text": "nul \u0000 here"}])
    assert isinstance(nul[0], RejectedItem)


def test_contact_details_have_no_column() -> None:
    with pytest.raises(UploadError):
        parse_csv_items(b"kind,text,phone\npraise,hi,555 1234\n")
    assert isinstance(judged([{"kind": "praise", "text": "hi", "contact": {"email": "a@b.org"}}])[0], RejectedItem)
