"""The published OpenAPI document of intake matches the code, and documents the surfaces the brief promises."""

from __future__ import annotations

import json

from heard_intake.openapi import OPENAPI_FILE, openapi_document, render


def test_published_openapi_document_matches_the_code() -> None:
    assert OPENAPI_FILE.exists(), "run `python -m heard_intake.openapi write`"
    assert OPENAPI_FILE.read_text(encoding="utf-8") == render(openapi_document()), (
        "schemas/openapi/intake.json is out of date: run `python -m heard_intake.openapi write` (or `make schemas`)"
    )


def test_open311_and_session_surfaces_are_documented() -> None:
    paths = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))["paths"]
    assert {"get", "post"} <= set(paths["/open311/v2/requests.json"])
    for path in (
        "/open311/v2/services.json",
        "/open311/v2/services/{service_code}.json",
        "/open311/v2/requests/{service_request_id}.json",
        "/v1/sessions/{session_id}/summary",
    ):
        assert "get" in paths[path], path
    form = paths["/open311/v2/requests.json"]["post"]["requestBody"]["content"]
    assert "application/x-www-form-urlencoded" in form
    uploads = paths["/v1/staff/sessions/{session_id}/items"]["post"]["requestBody"]["content"]
    assert {"application/json", "text/csv", "multipart/form-data"} <= set(uploads)
