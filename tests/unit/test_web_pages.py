"""The pages in-process, with the backends answered by a fake transport and sessions kept in memory: security
headers, escaping, CSRF, cookies, sign-in messages, and errors a person understands. The same behaviour on the
real platform is in tests/e2e/test_web.py and tests/e2e/test_web_browser.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import Any

import httpx
import pytest

from heard_shared.events import utc_now
from heard_web.backends import Reply
from heard_web.bootstrap import create_app
from heard_web.config import WebSettings
from heard_web.staff_sessions import StaffSession

CODE = "7K3QD-M2XPA-9RT4B-CHW8N"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
ITEM = {
    "feedback_id": "f-1",
    "status": "routed",
    "kind": "complaint",
    "text": HOSTILE,
    "severity": "negative",
    "submitted_at": "2026-05-01T12:00:00+00:00",
    "unit_id": "north-patrol",
    "level": 0,
    "acknowledge_by": "2026-05-01T13:00:00+00:00",
    "history": [{"status": "submitted", "at": "2026-05-01T12:00:00+00:00"}],
    "has_contact": False,
    "overdue": True,
    "channel": "web",
    "language": "en",
    "notes": [{"text": HOSTILE, "by": "Officer Diaz", "at": "2026-05-01T12:05:00+00:00"}],
}
Handler = Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, message: str = "refused", **details: Any) -> httpx.Response:
    body = {"error": {"code": code, "message": message, **({"details": details} if details else {})}}
    return httpx.Response(status, json=body, headers={"retry-after": "7"} if status == 429 else {})


class Backends:
    """Answers the web service's calls like intake, notify and routing would; tests replace single routes."""

    def __init__(self) -> None:
        self.calls: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], Handler] = {
            ("POST", "/v1/feedback"): lambda r: httpx.Response(202, json={"feedback_id": "f-1", "tracking_code": CODE}),
            ("GET", f"/v1/feedback/{CODE}"): lambda r: httpx.Response(
                200,
                json={
                    "feedback_id": "f-1",
                    "status": "answered",
                    "kind": "complaint",
                    "submitted_at": "2026-05-01T12:00:00+00:00",
                    "answer": {"text": HOSTILE, "answered_at": "2026-05-01T13:00:00+00:00", "contested": False},
                    "erased": False,
                    "unit_id": "north-patrol",
                    "level": 0,
                    "history": ITEM["history"],
                },
            ),
            ("GET", "/v1/staff/feedback/f-1"): lambda r: httpx.Response(200, json=ITEM),
            ("GET", "/v1/staff/feedback"): lambda r: httpx.Response(200, json={"items": [ITEM]}),
            ("GET", "/v1/deliveries"): lambda r: httpx.Response(200, json={"items": []}),
            ("GET", "/v1/organisation"): lambda r: httpx.Response(
                200, json={"units": [{"id": "north-patrol", "name": "North Precinct Patrol"}]}
            ),
            ("POST", "/v1/auth/sign-in"): lambda r: httpx.Response(
                200, json={"name": "Officer Diaz", "roles": ["unit_member"], "unit_id": "north-patrol"}
            ),
        }

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        handler = self.routes.get((request.method, request.url.path))
        return handler(request) if handler else error(404, "not_found")

    async def transport(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None) -> Reply:
        """Web's transport seam: each call as an httpx request, so the tests can read it back."""
        response = self(httpx.Request(method, url, headers=headers, content=body))
        return Reply(response.status_code, response.reason_phrase, response.headers, response.content)


class MemorySessions:
    """The session store's interface, in memory (the real one is tested on MongoDB in tests/integration)."""

    def __init__(self) -> None:
        self.sessions: dict[str, StaffSession] = {}

    async def create(self, *, token: str, name: str, roles: list[str], unit_id: str | None) -> str:
        secret = f"secret-{len(self.sessions)}"
        self.sessions[secret] = StaffSession(
            secret, token, name, frozenset(roles), unit_id, utc_now() + timedelta(hours=1)
        )
        return secret

    async def load(self, secret: str) -> StaffSession | None:
        return self.sessions.get(secret)

    async def end(self, key: str) -> None:
        self.sessions.pop(key, None)


@pytest.fixture
def backends() -> Backends:
    return Backends()


@pytest.fixture
async def client(backends: Backends) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(WebSettings(log_level="WARNING"), transport=backends.transport)
    app.state.site.sessions = MemorySessions()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://heard.test") as http:
        yield http


async def csrf(client: httpx.AsyncClient, path: str = "/submit") -> str:
    page = await client.get(path)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, path
    return found.group(1)


async def signed_in(client: httpx.AsyncClient) -> str:
    token = await csrf(client, "/staff/sign-in")
    response = await client.post(
        "/staff/sign-in", data={"csrf_token": token, "name": "Officer Diaz", "token": "heard_x"}
    )
    assert response.status_code == 303, response.text
    return await csrf(client, "/staff")


async def test_every_page_carries_a_strict_policy_and_loads_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    await signed_in(client)
    for path in (
        "/",
        "/submit",
        "/track",
        f"/track/{CODE}",
        f"/submitted/{CODE}",
        "/staff",
        "/staff/items/f-1",
        "/nope",
    ):
        response = await client.get(path)
        assert response.status_code in (200, 404), path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["cache-control"] == "no-store"
        for url in re.findall(r'(?:src|href|action)="([^"]*)"', response.text):
            assert url.startswith(("/", "#")) or url == "http://127.0.0.1:8084/", f"{path} refers to {url}"
        assert "<script>" not in response.text and " style=" not in response.text, (
            "nothing inline for the policy to allow"
        )


async def test_what_people_wrote_is_escaped_everywhere(client: httpx.AsyncClient) -> None:
    await signed_in(client)
    for path in ("/staff/items/f-1", f"/track/{CODE}", "/staff"):
        page = (await client.get(path)).text
        assert HOSTILE not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;" in page, path


async def test_forms_without_the_csrf_token_or_from_another_site_are_refused(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    token = await csrf(client)
    fields = {"kind": "praise", "text": "Thanks"}
    assert (await client.post("/submit", data=fields)).status_code == 403
    assert (await client.post("/submit", data={**fields, "csrf_token": "guess"})).status_code == 403
    for site in ("cross-site", "same-site"):
        cross = await client.post("/submit", data={**fields, "csrf_token": token}, headers={"sec-fetch-site": site})
        assert cross.status_code == 403, site
    other_origin = await client.post(
        "/submit", data={**fields, "csrf_token": token}, headers={"origin": "https://evil.example"}
    )
    assert other_origin.status_code == 403
    assert not [call for call in backends.calls if call.method == "POST"], "nothing reached intake"
    accepted = await client.post(
        "/submit", data={**fields, "csrf_token": token}, headers={"origin": "http://heard.test"}
    )
    assert accepted.status_code == 200 and f'id="tracking-code" data-copy-source>{CODE}<' in accepted.text


async def test_a_submission_is_sent_with_the_residents_address_and_language(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    client.cookies.set("heard_lang", "es")
    token = await csrf(client)
    await client.post(
        "/submit", data={"csrf_token": token, "kind": "complaint", "text": "Nadie vino", "neighbourhood": "Northgate"}
    )
    sent = next(call for call in backends.calls if call.method == "POST")
    assert json.loads(sent.content) == {
        "kind": "complaint",
        "text": "Nadie vino",
        "language": "es",
        "location": {"neighbourhood": "Northgate"},
    }
    assert sent.headers["x-forwarded-for"] == "127.0.0.1", "intake's per-client limits see the resident"


async def test_the_form_answers_with_its_confirmation_and_a_resent_form_carries_the_same_key(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    client.cookies.set("heard_lang", "es")
    form = (await client.get("/submit")).text
    token = await csrf(client)
    key = re.search(r'name="submission_key" value="([^"]+)"', form)
    assert key and len(key.group(1)) >= 22
    fields = {"csrf_token": token, "submission_key": key.group(1), "kind": "concern", "text": "Sin luz"}
    first, again = [await client.post("/submit", data=fields) for _ in range(2)]
    assert first.text == again.text and CODE in first.text and "Gracias" in first.text
    # Served by the form post, it still switches language to the confirmation's own address.
    assert f'href="/language/en?next=/submitted/{CODE}"' in first.text
    sent = [call.headers["idempotency-key"] for call in backends.calls if call.method == "POST"]
    assert sent == [key.group(1)] * 2, "intake sees one submission sent twice, and answers with the same item"
    assert (await client.get(f"/submitted/{CODE}")).text == first.text

    backends.routes[("POST", "/v1/feedback")] = lambda r: error(422, "idempotency_key_reused")
    edited = await client.post("/submit", data={**fields, "text": "Sin luz en Elm"})
    assert edited.status_code == 409 and "ya se envió una vez" in edited.text and "Sin luz en Elm" in edited.text
    fresh = re.search(r'name="submission_key" value="([^"]+)"', edited.text)
    assert fresh and fresh.group(1) != key.group(1), "sending it once more makes new feedback"


async def test_refusals_keep_what_the_resident_typed_and_say_what_to_do(
    client: httpx.AsyncClient, backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    token = await csrf(client)
    backends.routes[("POST", "/v1/feedback")] = lambda r: error(429, "rate_limited")
    limited = await client.post("/submit", data={"csrf_token": token, "kind": "concern", "text": "Lights are out"})
    assert limited.status_code == 429
    assert "Wait 7 seconds" in limited.text and "Lights are out" in limited.text
    backends.routes[("POST", "/v1/feedback")] = lambda r: httpx.Response(
        503, json={"error": {"code": "overloaded", "message": "x"}}
    )
    key = "k" * 22
    busy = await client.post(
        "/submit", data={"csrf_token": token, "submission_key": key, "kind": "concern", "text": "Lights are out"}
    )
    assert busy.status_code == 503 and "nothing was sent" in busy.text and "Lights are out" in busy.text
    assert f'name="submission_key" value="{key}"' in busy.text, "trying again cannot make a second item"
    logged = capsys.readouterr().out
    assert "backend unavailable" in logged and "overloaded" in logged, "operators hear of it too"
    invalid = await client.post("/submit", data={"csrf_token": token, "kind": "", "text": ""})
    assert invalid.status_code == 400 and "There is a problem" in invalid.text and 'href="#kind"' in invalid.text


async def test_a_map_click_without_javascript_marks_the_place_and_keeps_the_form(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    token = await csrf(client)
    page = await client.post(
        "/submit", data={"csrf_token": token, "kind": "praise", "text": "Kind officer", "map.x": "160", "map.y": "60"}
    )
    assert page.status_code == 200 and "North Precinct" in page.text and "Kind officer" in page.text
    assert re.search(r'name="latitude" value="45\.\d+"', page.text)
    assert not [call for call in backends.calls if call.method == "POST"], "a map click sends nothing yet"


async def test_the_language_switch_is_remembered_and_stays_on_the_site(client: httpx.AsyncClient) -> None:
    switched = await client.get("/language/es", params={"next": "/submit"})
    assert switched.status_code == 303 and switched.headers["location"] == "/submit"
    assert "heard_lang=es" in switched.headers["set-cookie"] and "Max-Age=31536000" in switched.headers["set-cookie"]
    page = await client.get("/submit")
    assert '<html lang="es">' in page.text and "No es para emergencias" in page.text
    escape = await client.get("/language/en", params={"next": "//evil.example/"})
    assert escape.headers["location"] == "/"


async def test_staff_pages_send_strangers_to_the_sign_in_and_ask_intake_nothing(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    for path in ("/staff", "/staff/items/f-1", "/staff/sessions", "/oversight", "/oversight/items/f-1/audit"):
        response = await client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/staff/sign-in?next=")
    assert not [call for call in backends.calls if call.url.path.startswith(("/v1/staff", "/v1/oversight"))]


async def test_sign_in_sets_a_protected_cookie_and_uses_the_token_for_every_call(backends: Backends) -> None:
    app = create_app(WebSettings(log_level="WARNING"), transport=backends.transport)
    app.state.site.sessions = MemorySessions()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://heard.test") as client:
        token = await csrf(client, "/staff/sign-in")
        response = await client.post(
            "/staff/sign-in",
            data={"csrf_token": token, "name": "Officer Diaz", "token": "heard_x", "next": "/staff/items/f-1"},
        )
        assert response.status_code == 303 and response.headers["location"] == "/staff/items/f-1"
        cookies = response.headers.get_list("set-cookie")
        session = next(cookie for cookie in cookies if cookie.startswith("__Host-heard_session="))
        assert {"HttpOnly", "Secure", "SameSite=lax", "Path=/"} <= {part.strip() for part in session.split(";")}
        assert any(cookie.startswith("__Host-heard_csrf=") for cookie in cookies), "a fresh CSRF token with the session"
        assert response.headers["strict-transport-security"].startswith("max-age=")
        await client.get("/staff/items/f-1")
    staff_calls = [call for call in backends.calls if call.url.path.startswith("/v1/staff")]
    assert staff_calls and all(call.headers["authorization"] == "Bearer heard_x" for call in staff_calls)


async def test_failed_sign_ins_say_how_many_attempts_are_left_then_that_the_account_is_locked(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    token = await csrf(client, "/staff/sign-in")
    backends.routes[("POST", "/v1/auth/sign-in")] = lambda r: error(401, "sign_in_failed", attempts_left=2)
    wrong = await client.post("/staff/sign-in", data={"csrf_token": token, "name": "Officer Diaz", "token": "nope"})
    assert wrong.status_code == 401 and "locked for a while: 2" in wrong.text and "Set-Cookie" not in wrong.headers
    backends.routes[("POST", "/v1/auth/sign-in")] = lambda r: error(
        429, "account_locked", locked_until="2026-05-01T17:15:00+00:00"
    )
    locked = await client.post("/staff/sign-in", data={"csrf_token": token, "name": "Officer Diaz", "token": "nope"})
    assert locked.status_code == 401 and "locked until May 1, 2026, 12:15" in locked.text


async def test_a_refusal_by_intake_shows_no_data(client: httpx.AsyncClient, backends: Backends) -> None:
    await signed_in(client)
    backends.routes[("GET", "/v1/staff/feedback/f-1")] = lambda r: error(403, "not_your_unit")
    page = await client.get("/staff/items/f-1")
    assert page.status_code == 403 and "not assigned to your unit" in page.text and "alert" not in page.text


async def test_a_revoked_token_ends_the_session(client: httpx.AsyncClient, backends: Backends) -> None:
    await signed_in(client)
    backends.routes[("GET", "/v1/staff/feedback")] = lambda r: error(401, "invalid_token")
    response = await client.get("/staff")
    assert response.status_code == 303 and "reason=expired" in response.headers["location"]
    assert (await client.get("/staff/items/f-1")).status_code == 303, "the session is gone"


async def test_the_answer_is_previewed_after_redaction_before_it_is_published(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    token = await signed_in(client)
    backends.routes[("POST", "/v1/staff/answer-preview")] = lambda r: httpx.Response(
        200, json={"public_text": "Call us at [phone].", "redacted": True}
    )
    published: list[dict[str, Any]] = []

    def publish(request: httpx.Request) -> httpx.Response:
        published.append(json.loads(request.content))
        return httpx.Response(200, json=ITEM)

    backends.routes[("POST", "/v1/staff/feedback/f-1/answer")] = publish
    preview = await client.post(
        "/staff/items/f-1/answer",
        data={"csrf_token": token, "answer": "Call us at 555-123-4567.", "decision": "preview"},
    )
    assert preview.status_code == 200 and "Call us at [phone]." in preview.text and "were removed" in preview.text
    assert published == [], "nothing is published by a preview"
    done = await client.post(
        "/staff/items/f-1/answer",
        data={"csrf_token": token, "answer": "Call us at 555-123-4567.", "decision": "publish"},
    )
    assert done.status_code == 303 and published == [{"answer": "Call us at 555-123-4567."}]


async def test_allegations_are_checkboxes_in_plain_words_and_reach_intake_in_the_contracts_order(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    client.cookies.set("heard_lang", "es")
    form = await client.get("/submit")
    assert 'type="checkbox" id="allegations" name="allegations" value="force"' in form.text
    assert "Uso de la fuerza" in form.text and "Represalias" in form.text
    token = await csrf(client)
    fields = {"csrf_token": token, "kind": "complaint", "text": "Me empujó"}
    await client.post("/submit", data={**fields, "allegations": ["retaliation", "force", "force"]})
    sent = json.loads(next(call for call in backends.calls if call.method == "POST").content)
    assert sent["allegations"] == ["force", "retaliation"]
    tampered = await client.post("/submit", data={**fields, "allegations": ["force", "mischief"]})
    assert tampered.status_code == 400 and 'href="#allegations"' in tampered.text
    assert re.search(r'value="force"[^>]* checked', tampered.text), "what was ticked stays ticked"
    assert len([call for call in backends.calls if call.method == "POST"]) == 1


async def test_the_tracking_page_shows_what_the_resident_declared_and_nothing_of_triage(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    view = backends.routes[("GET", f"/v1/feedback/{CODE}")](httpx.Request("GET", "/")).json()
    backends.routes[("GET", f"/v1/feedback/{CODE}")] = lambda r: httpx.Response(
        200, json={**view, "allegations": ["discourtesy"]}
    )
    page = await client.get(f"/track/{CODE}")
    assert page.status_code == 200 and "Discourtesy" in page.text
    assert "triage" not in page.text.lower() and "severity" not in page.text.lower()


async def test_triage_sends_kind_and_severity_and_a_lowering_needs_a_reason_before_intake_is_asked(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    token = await signed_in(client)
    page = await client.get("/staff/items/f-1")
    assert 'action="/staff/items/f-1/triage"' in page.text
    sent: list[dict[str, Any]] = []

    def triage(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json=ITEM)

    backends.routes[("POST", "/v1/staff/feedback/f-1/triage")] = triage
    fields = {"csrf_token": token, "triage_kind": "concern", "triage_severity": "neutral"}
    missing = await client.post("/staff/items/f-1/triage", data={**fields, "triage_reason": "no"})
    assert missing.status_code == 400 and 'href="#triage_reason"' in missing.text and sent == []
    done = await client.post("/staff/items/f-1/triage", data={**fields, "triage_reason": "A question, not a complaint"})
    assert done.status_code == 303 and done.headers["location"] == "/staff/items/f-1?done=triaged"
    assert sent == [{"kind": "concern", "severity": "neutral", "reason": "A question, not a complaint"}]


async def test_intakes_refusal_to_lower_a_critical_item_is_a_message_on_the_item_page(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    token = await signed_in(client)
    backends.routes[("GET", "/v1/staff/feedback/f-1")] = lambda r: httpx.Response(
        200, json={**ITEM, "severity": "critical", "allegations": ["force"]}
    )
    backends.routes[("POST", "/v1/staff/feedback/f-1/triage")] = lambda r: error(403, "lowering_critical_needs_role")
    refused = await client.post(
        "/staff/items/f-1/triage",
        data={
            "csrf_token": token,
            "triage_kind": "complaint",
            "triage_severity": "negative",
            "triage_reason": "It was a misunderstanding",
        },
    )
    assert refused.status_code == 409
    assert "Only professional standards or the civilian oversight board may lower a critical item" in refused.text
    assert "It was a misunderstanding" in refused.text and "Use of force" in refused.text


async def test_the_item_page_shows_delivery_status_and_attempts_but_no_address(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    await signed_in(client)
    delivery = {
        "feedback_id": "f-1",
        "recipient": "unit:north-patrol/sgt-lee",
        "audience": "staff",
        "channel": "email",
        "template": "routed",
        "status": "sent",
        "attempts": 2,
        "created_at": "2026-05-01T12:01:00+00:00",
    }
    backends.routes[("GET", "/v1/deliveries")] = lambda r: httpx.Response(200, json={"items": [delivery]})
    page = await client.get("/staff/items/f-1")
    assert "e-mail" in page.text and "<td>2</td>" in page.text and "sgt-lee" not in page.text
    asked = next(call for call in backends.calls if call.url.path == "/v1/deliveries")
    assert asked.url.params["feedback_id"] == "f-1"


async def test_the_inbox_filters_items_awaiting_triage_and_counts_down_to_the_triage_deadline(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    await signed_in(client)
    waiting = {
        **ITEM,
        "severity": "neutral",
        "triage_state": "awaiting",
        "needs_triage": True,
        "triage_by": (utc_now() + timedelta(hours=2)).isoformat(),
    }
    backends.routes[("GET", "/v1/staff/feedback")] = lambda r: httpx.Response(200, json={"items": [waiting]})
    page = await client.get("/staff", params={"triage": "needed"})
    assert "Waiting for triage" in page.text and "Triage:" in page.text and "due in 1 hour" in page.text
    asked = [call for call in backends.calls if call.url.path == "/v1/staff/feedback"][-1]
    assert asked.url.params["triage"] == "needed"


async def test_the_oversight_view_lists_every_severity_lowering_with_its_reason(
    client: httpx.AsyncClient, backends: Backends
) -> None:
    backends.routes[("POST", "/v1/auth/sign-in")] = lambda r: httpx.Response(
        200, json={"name": "Board Member", "roles": ["oversight"], "unit_id": None}
    )
    backends.routes[("GET", "/v1/oversight/contested")] = lambda r: httpx.Response(200, json={"items": []})
    lowering = {
        "feedback_id": "f-1",
        "at": "2026-05-01T14:00:00+00:00",
        "by": "Sgt Lee",
        "role": "professional_standards",
        "decision": "lowered",
        "from": {"kind": "complaint", "severity": "critical"},
        "to": {"kind": "complaint", "severity": "negative"},
        "unit_id": "north-patrol",
        "reason": HOSTILE,
        "reason_matches_ledger": False,
    }
    backends.routes[("GET", "/v1/oversight/severity-changes")] = lambda r: httpx.Response(
        200, json={"direction": "lowered", "items": [lowering]}
    )
    await signed_in(client)
    page = await client.get("/oversight")
    assert page.status_code == 200 and "Severity lowered by staff" in page.text and "Sgt Lee" in page.text
    assert "&lt;script&gt;" in page.text and "<script>alert" not in page.text
    assert "Does not match the audit trail" in page.text
