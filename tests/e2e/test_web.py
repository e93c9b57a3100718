"""The people's pages on the running platform, over HTTP like a browser without JavaScript (cookies kept, forms
posted with their CSRF token): authorization is intake's, sessions survive a restart and serve two replicas,
repeated failed sign-ins lock the account, sessions are entered and published through the pages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from heard_devstack import Stack
from tests.e2e.conftest import issue_token, staff, submit
from tests.helpers import eventually, unique

pytestmark = pytest.mark.e2e

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Person:
    """A browser without JavaScript: keeps cookies, fills in each form's CSRF token, never follows redirects."""

    def __init__(self, base: str) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=15)

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path)

    async def post(self, form_page: str, action: str, data: dict[str, Any] | None = None) -> httpx.Response:
        page = await self.http.get(form_page)
        found = _CSRF.search(page.text)
        token = found.group(1) if found else ""
        return await self.http.post(action, data={"csrf_token": token, **(data or {})})

    async def sign_in(self, name: str, token: str) -> httpx.Response:
        return await self.post("/staff/sign-in", "/staff/sign-in", {"name": name, "token": token})

    async def close(self) -> None:
        await self.http.aclose()


@pytest.fixture
async def people(web_platform: Stack) -> AsyncIterator[list[Person]]:
    made: list[Person] = []
    yield made
    for person in made:
        await person.close()


def person(people: list[Person], web_platform: Stack, port: int | None = None) -> Person:
    base = f"http://127.0.0.1:{port}" if port else web_platform.service_url("web")
    made = Person(base)
    people.append(made)
    return made


async def routed_item(http: httpx.AsyncClient, web_platform: Stack, text: str) -> str:
    created = await submit(http, web_platform, kind="complaint", text=text, location={"neighbourhood": "Northgate"})
    feedback_id = str(created["feedback_id"])

    async def assigned() -> bool:
        response = await http.get(
            f"{web_platform.service_url('intake')}/v1/staff/feedback/{feedback_id}", headers=staff()
        )
        return bool(response.json().get("unit_id") == "north-patrol")

    await eventually(assigned, what="the item to be routed to north-patrol")
    return feedback_id


async def status_of(http: httpx.AsyncClient, web_platform: Stack, feedback_id: str) -> str:
    response = await http.get(f"{web_platform.service_url('intake')}/v1/staff/feedback/{feedback_id}", headers=staff())
    return str(response.json()["status"])


async def test_staff_pages_show_no_data_without_a_session_with_the_wrong_role_or_for_another_units_item(
    web_platform: Stack, http: httpx.AsyncClient, people: list[Person]
) -> None:
    marker = unique("page-canary")
    feedback_id = await routed_item(http, web_platform, f"Nobody came after my call {marker}")
    north, south = unique("North Officer"), unique("South Officer")
    north_token = issue_token(web_platform, north, "unit_member", "north-patrol")
    south_token = issue_token(web_platform, south, "unit_member", "south-patrol")
    board = unique("Board member")
    board_token = issue_token(web_platform, board, "oversight")
    item, audit = f"/staff/items/{feedback_id}", f"/oversight/items/{feedback_id}/audit"
    pages = ["/staff", item, "/staff/sessions", "/oversight", audit]

    stranger = person(people, web_platform)
    for path in pages:
        response = await stranger.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/staff/sign-in"), path
        assert marker not in response.text
    acted = await stranger.post("/submit", f"/staff/items/{feedback_id}/acknowledge")
    assert acted.status_code == 303 and "/staff/sign-in" in acted.headers["location"]

    other_unit = person(people, web_platform)
    assert (await other_unit.sign_in(south, south_token)).status_code == 303
    inbox = await other_unit.get("/staff")
    assert inbox.status_code == 200 and marker not in inbox.text
    for path in [*pages[1:], "/staff?unit=north-patrol"]:
        response = await other_unit.get(path)
        if path in ("/staff/sessions", "/staff?unit=north-patrol"):
            assert marker not in response.text, path
            continue
        assert response.status_code == 403, (path, response.status_code)
        assert marker not in response.text, path
    refusal = await other_unit.get(item)
    assert "not assigned to your unit" in refusal.text, "intake's refusal, shown in words"
    refused = await other_unit.post("/staff", f"/staff/items/{feedback_id}/acknowledge")
    assert refused.status_code == 403 and marker not in refused.text
    assert await status_of(http, web_platform, feedback_id) == "routed", "nothing changed"

    member = person(people, web_platform)
    await member.sign_in(north, north_token)
    assert marker in (await member.get(f"/staff/items/{feedback_id}")).text, "the unit sees its own item"
    for path in ("/oversight", f"/oversight/items/{feedback_id}/audit"):
        response = await member.get(path)
        assert response.status_code == 403 and marker not in response.text, path

    overseer = person(people, web_platform)
    assert (await overseer.sign_in(board, board_token)).headers["location"] == "/oversight"
    assert marker in (await overseer.get(f"/staff/items/{feedback_id}")).text, "the board reads everything"
    answered = await overseer.post(
        f"/staff/items/{feedback_id}", f"/staff/items/{feedback_id}/answer", {"answer": "Done.", "decision": "publish"}
    )
    assert answered.status_code == 403 and "read feedback and its history but not change it" in answered.text
    assert await status_of(http, web_platform, feedback_id) == "routed", "the board changes nothing"


async def test_repeated_failed_sign_ins_lock_the_account_even_for_the_right_token(
    web_platform: Stack, people: list[Person]
) -> None:
    name = unique("Officer Vega")
    token = issue_token(web_platform, name, "unit_member", "north-patrol")
    visitor = person(people, web_platform)
    for attempt in range(4):
        response = await visitor.sign_in(name, f"heard_wrong_{attempt}")
        assert response.status_code == 401 and f"locked for a while: {4 - attempt}" in response.text
    locked = await visitor.sign_in(name, "heard_wrong_again")
    assert "this account is locked until" in locked.text
    still = await visitor.sign_in(name, token)
    assert still.status_code == 401 and "this account is locked until" in still.text
    assert "heard_session" not in still.headers.get("set-cookie", "")


async def test_a_staff_session_survives_a_restart_serves_a_second_replica_and_ends_on_sign_out(
    web_platform: Stack, people: list[Person]
) -> None:
    name = unique("Sergeant Park")
    token = issue_token(web_platform, name, "supervisor", "north-sergeants")
    first = person(people, web_platform)
    assert (await first.sign_in(name, token)).status_code == 303
    assert (await first.get("/staff")).status_code == 200

    web_platform.stop_process("web")
    web_platform.start_service("web")
    assert (await first.get("/staff")).status_code == 200, "the session outlived the process"

    second_port = web_platform.profile.service_port("web") + 9
    web_platform.start_service("web", name="web-2", port=second_port)
    try:
        second = person(people, web_platform, second_port)
        second.http.cookies = first.http.cookies
        assert (await second.get("/staff")).status_code == 200, "the other replica serves the same session"
        signed_out = await second.post("/staff", "/staff/sign-out")
        assert signed_out.headers["location"] == "/staff/sign-in?done=signed_out"
    finally:
        web_platform.stop_process("web-2")
    after = await first.get("/staff")
    assert after.status_code == 303 and "/staff/sign-in" in after.headers["location"], "signed out everywhere"


async def test_a_facilitator_enters_a_session_by_hand_and_by_csv_and_publishes_it(
    web_platform: Stack, people: list[Person]
) -> None:
    name = unique("Facilitator Ana")
    token = issue_token(web_platform, name, "admin")
    facilitator = person(people, web_platform)
    await facilitator.sign_in(name, token)
    title = unique("Millbrook town hall")
    created = await facilitator.post(
        "/staff/sessions",
        "/staff/sessions",
        {"title": title, "date": "2026-05-14", "place": "Millbrook library", "facilitator": "Ana", "language": "en"},
    )
    assert created.status_code == 303, created.text
    page = created.headers["location"].split("?")[0]
    card = {"kind": "suggestion", "text": "More foot patrols", "ref": "c1"}
    one = await facilitator.post(page, f"{page}/items", card)
    assert one.status_code == 303 and "done=item_added" in one.headers["location"]

    csv_page = await facilitator.get(page)
    csrf = _CSRF.search(csv_page.text)
    assert csrf
    sheet = (
        "kind,text,neighbourhood,ref\n"
        "praise,The officers at the fair were kind,Millbrook,c2\n"
        "rant,This kind does not exist,,c3\n"
        "complaint,,Millbrook,c4\n"
        "concern,Speeding on Elm Street,,c5\n"
    )
    uploaded = await facilitator.http.post(
        f"{page}/upload",
        data={"csrf_token": csrf.group(1)},
        files={"file": ("cards.csv", sheet.encode(), "text/csv")},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert "Accepted: 2. Rejected: 2." in uploaded.text
    assert re.search(r"<td>2</td><td>3</td><td>kind:", uploaded.text), "each bad row is reported with its line"
    assert re.search(r"<td>3</td><td>4</td><td>text:", uploaded.text)

    published = await facilitator.post(page, f"{page}/publish")
    assert published.status_code == 303
    resident = person(people, web_platform)
    listing = await resident.get("/sessions")
    assert title in listing.text
    summary = await resident.get(page.replace("/staff", ""))
    assert summary.status_code == 200
    for said in ("More foot patrols", "The officers at the fair were kind", "Speeding on Elm Street"):
        assert said in summary.text
