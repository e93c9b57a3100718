"""The people's pages in a real browser: Debian's Chromium driven by Playwright, against the platform started the
way `make up` starts it (fresh databases, `config/sla-policy.walkthrough.yaml`: ten minutes for the unit and its
supervisor, seconds above them).

The issue's flow, step by step, each with a screenshot under test-artifacts/screenshots/ and an axe-core scan:
a resident submits in Spanish on a phone without JavaScript and gets a tracking code; a unit member signs in,
finds it at the top of the inbox and answers it after previewing the redacted text; the resident reads the
answer and contests it, and the item reappears one level higher, in the supervisor's inbox; the oversight member
sees what escalated to the board (a complaint naming an officer, which climbs in seconds) and a verified audit
trail. A second test scans every page in both languages, and checks the browser asked nothing of other sites.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from heard_devstack import Stack
from tests.browser import assert_accessible, browser_context, chromium, screenshot
from tests.e2e.conftest import issue_token, staff, submit
from tests.helpers import eventually, unique

pytestmark = pytest.mark.e2e

RESIDENT_TEXT = "Llamé dos veces por el ruido en el parque y nadie vino. Nadie me explicó por qué."
ANSWER = "Revisamos las llamadas: la patrulla fue desviada a un accidente. Escríbanos a quejas@riverton.example."
CONTEST = "No es suficiente: pasó tres noches seguidas y nadie vino ninguna de ellas."


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


class Visitor:
    """One person's browser: its own cookies, its size and language, with or without JavaScript.

    Every page it opens is scanned by axe-core. axe runs as a script in the page, so a visitor without JavaScript
    has a twin with JavaScript (same cookies, size and language) that opens each of its pages again for the scan.
    Every request the browser makes is recorded: none may go to another site.
    """

    def __init__(self, context: BrowserContext, twin: BrowserContext | None, base: str) -> None:
        self.context, self.twin, self.base = context, twin, base
        self.requests: list[str] = []
        for each in (context, twin):
            if each is not None:
                each.on("request", lambda request: self.requests.append(request.url))

    async def open(self) -> Page:
        return await self.context.new_page()

    async def check(self, page: Page, name: str, *, rescan: bool = True) -> None:
        """Screenshot and axe scan of the page as it is; without JavaScript the twin scans the same address."""
        await screenshot(page, name)
        if self.twin is None:
            await assert_accessible(page, name)
        elif rescan:
            await self.twin.add_cookies(await self.context.cookies())  # type: ignore[arg-type]
            scanning = await self.twin.new_page()
            await scanning.goto(page.url)
            await assert_accessible(scanning, f"{name} (with JavaScript, for the scan)")
            await scanning.close()

    def assert_only_this_site(self) -> None:
        elsewhere = [url for url in self.requests if not url.startswith((self.base, "data:"))]
        assert elsewhere == [], f"the browser asked other sites: {elsewhere[:5]}"


async def visitor(browser: Browser, base: str, *, locale: str, phone: bool, javascript: bool) -> Visitor:
    context = await browser.new_context(**_options(locale, phone, javascript))
    twin = None if javascript else await browser.new_context(**_options(locale, phone, True))
    return Visitor(context, twin, base)


def _options(locale: str, phone: bool, javascript: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"locale": locale, "java_script_enabled": javascript}
    if phone:
        options |= {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
    else:
        options |= {"viewport": {"width": 1280, "height": 900}}
    return options


async def sign_in(page: Page, base: str, name: str, token: str) -> None:
    await page.goto(f"{base}/staff/sign-in")
    await page.fill("#name", name)
    await page.fill("#token", token)
    await page.click("main button[type=submit]")


async def reload_until(page: Page, selector: str, text: str, what: str, timeout: float = 60) -> None:
    async def shown() -> bool:
        await page.reload()
        return text in (await page.inner_text(selector) if await page.query_selector(selector) else "")

    await eventually(shown, timeout=timeout, interval=1.0, what=what)


async def test_resident_staff_and_board_walk_the_whole_flow(web_platform: Stack, browser: Browser) -> None:
    web = web_platform.service_url("web")
    diaz, lee, board = unique("Officer Diaz"), unique("Sergeant Lee"), unique("Board member Okafor")
    unit_token = issue_token(web_platform, diaz, "unit_member", "north-patrol")
    supervisor_token = issue_token(web_platform, lee, "supervisor", "north-sergeants")
    board_token = issue_token(web_platform, board, "oversight")
    async with httpx.AsyncClient(timeout=10) as http:
        # Goes straight to professional standards (it names an officer), so it reaches the board in seconds.
        named = await submit(
            http, web_platform, kind="complaint", text="The officer shoved me at the bus stop", officer_badge="4127"
        )

    # 1. A resident submits in Spanish, on a phone, without JavaScript, and gets a tracking code.
    resident = await visitor(browser, web, locale="es-ES", phone=True, javascript=False)
    page = await resident.open()
    await page.goto(web)
    assert await page.get_attribute("html", "lang") == "es"
    assert "llame al 911" in (await page.inner_text("body")).lower()
    await resident.check(page, "01-resident-home-es")
    await page.click("text=Dar su opinión")
    await page.click("button:has-text('Enviar comentario')")
    assert "Hay un problema" in await page.inner_text(".error-summary")
    await resident.check(page, "02-resident-form-errors-es", rescan=False)
    await page.check("input[name=kind][value=complaint]")
    await page.fill("#text", RESIDENT_TEXT)
    await page.select_option("#neighbourhood", "Northgate")
    await resident.check(page, "03-resident-form-filled-es")
    await page.click("button:has-text('Enviar comentario')")
    code = (await page.inner_text("#tracking-code")).strip()
    assert re.fullmatch(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){3}", code), code
    await resident.check(page, "04-resident-confirmation-es")

    # 2. A unit member signs in, sees it at the top of the inbox, and answers it.
    officer = await visitor(browser, web, locale="en-US", phone=False, javascript=True)
    desk = await officer.open()
    await sign_in(desk, web, diaz, unit_token)
    await reload_until(desk, "table.inbox tbody tr:first-child", RESIDENT_TEXT[:40], "the item in the unit's inbox")
    await officer.check(desk, "05-unit-inbox")
    await desk.click("table.inbox tbody tr:first-child a")
    await officer.check(desk, "06-unit-item")
    await desk.fill("#answer", ANSWER)
    await desk.click("button[value=preview]")
    preview = await desk.inner_text(".preview")
    assert "[email]" in preview and "quejas@riverton.example" not in preview
    await officer.check(desk, "07-unit-answer-preview")
    await desk.click("button[value=publish]")
    assert "published" in await desk.inner_text(".notice--success")
    await officer.check(desk, "08-unit-answered")

    # 3. The resident sees the answer and contests it; it reappears one level higher.
    await page.goto(f"{web}/track/{code}")
    published = await page.inner_text(".panel--answer")
    assert "Revisamos las llamadas" in published and "[email]" in published, "the answer as the preview showed it"
    await resident.check(page, "09-resident-answer-es")
    await page.fill("#reason", CONTEST)
    await page.click("#contest-section button[type=submit]")
    assert "¿Impugnar la respuesta?" in await page.inner_text("h1")
    await resident.check(page, "10-resident-contest-confirm-es", rescan=False)
    await page.click("button[value=confirm]")
    assert "impugnó la respuesta" in await page.inner_text(".notice--success")
    await resident.check(page, "11-resident-contested-es")

    sergeant = await visitor(browser, web, locale="en-US", phone=False, javascript=True)
    supervisor_desk = await sergeant.open()
    await sign_in(supervisor_desk, web, lee, supervisor_token)
    await reload_until(
        supervisor_desk, "table.inbox tbody", RESIDENT_TEXT[:40], "the contested item in the supervisor's inbox"
    )
    assert RESIDENT_TEXT[:40] in await supervisor_desk.inner_text("table.inbox tbody tr:first-child")
    await sergeant.check(supervisor_desk, "12-supervisor-inbox-one-level-higher")
    await supervisor_desk.click("table.inbox tbody tr:first-child a")
    assert "level 1" in await supervisor_desk.inner_text(".facts")

    # 4. The oversight member sees the escalations and a verified audit trail.
    overseer = await visitor(browser, web, locale="en-US", phone=False, javascript=True)
    board_desk = await overseer.open()
    await sign_in(board_desk, web, board, board_token)
    assert board_desk.url.endswith("/oversight"), "the board starts on the oversight view"
    await reload_until(board_desk, "#board-title + p + .table-wrap", "shoved me", "the named complaint at the board")

    async def reminded() -> bool:
        await board_desk.reload()
        count = await board_desk.inner_text(f"tr:has(a[href='/staff/items/{named['feedback_id']}']) .reminders .count")
        return int(count) >= 1

    await eventually(reminded, timeout=60, interval=1.0, what="a reminder at the board")
    assert RESIDENT_TEXT[:40] in await board_desk.inner_text("#contested-title + .table-wrap")
    await overseer.check(board_desk, "13-oversight-board")
    await board_desk.goto(f"{web}/oversight/items/{named['feedback_id']}/audit")
    assert "Verified" in await board_desk.inner_text(".verdict")
    await overseer.check(board_desk, "14-oversight-audit-verified")

    for person in (resident, officer, sergeant, overseer):
        person.assert_only_this_site()
        for context in (person.context, person.twin):
            if context is not None:
                await context.close()


async def test_every_page_passes_axe_in_both_languages_on_a_phone(web_platform: Stack, browser: Browser) -> None:
    web, intake = web_platform.service_url("web"), web_platform.service_url("intake")
    name = unique("Commander Ruiz")
    token = issue_token(web_platform, name, "admin")
    async with httpx.AsyncClient(timeout=10) as http:
        created = await submit(http, web_platform, kind="concern", text="Street lights out on Elm", language="en")
        session = (
            await http.post(
                f"{intake}/v1/staff/sessions",
                headers=staff(),
                json={"title": "Northgate town hall", "date": "2026-05-14", "place": "Library", "facilitator": "Ana"},
            )
        ).json()
        await http.post(
            f"{intake}/v1/staff/sessions/{session['session_id']}/items",
            headers=staff(),
            json=[{"kind": "suggestion", "text": "More patrols near the school"}],
        )
        await http.post(f"{intake}/v1/staff/sessions/{session['session_id']}/publish", headers=staff())
    code, feedback_id, session_id = created["tracking_code"], created["feedback_id"], session["session_id"]
    pages = {
        "home": "/",
        "submit": "/submit",
        "confirmation": f"/submitted/{code}",
        "track-lookup": "/track",
        "track": f"/track/{code}",
        "sessions": "/sessions",
        "session": f"/sessions/{session_id}",
        "not-found": "/no-such-page",
        "sign-in": "/staff/sign-in",
    }
    staff_pages = {
        "inbox": "/staff?unit=",
        "item": f"/staff/items/{feedback_id}",
        "staff-sessions": "/staff/sessions",
        "staff-session": f"/staff/sessions/{session_id}",
        "oversight": "/oversight",
        "audit": f"/oversight/items/{feedback_id}/audit",
    }
    requests: list[str] = []
    for locale in ("en", "es"):
        async with browser_context(browser, phone=True, locale=locale) as context:
            context.on("request", lambda request: requests.append(request.url))
            page = await context.new_page()
            await page.goto(f"{web}/language/{locale}")
            for label, path in pages.items():
                await page.goto(f"{web}{path}")
                assert await page.get_attribute("html", "lang") == locale
                await screenshot(page, f"all-{label}-{locale}")
                await assert_accessible(page, f"{label} ({locale})")
            await sign_in(page, web, name, token)
            for label, path in staff_pages.items():
                await page.goto(f"{web}{path}")
                await screenshot(page, f"all-{label}-{locale}")
                await assert_accessible(page, f"{label} ({locale})")
            assert [url for url in requests if not url.startswith(web)] == []


async def tab_to(page: Page, selector: str, *, limit: int = 60) -> None:
    """Presses Tab until the element matching `selector` has the focus, as a keyboard user would."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("(selector) => document.activeElement.matches(selector)", selector):
            return
    raise AssertionError(f"{selector} cannot be reached with the Tab key")


async def test_a_resident_submits_with_the_keyboard_alone(web_platform: Stack, browser: Browser) -> None:
    web = web_platform.service_url("web")
    async with browser_context(browser, locale="en") as context:
        page = await context.new_page()
        await page.goto(f"{web}/submit")
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.className") == "skip-link", "the first stop skips to content"
        await tab_to(page, "input[name=kind]")
        await page.keyboard.press("ArrowDown")  # radios: arrows move the choice within the group
        assert await page.evaluate("document.activeElement.value") == "concern"
        await tab_to(page, "#text")
        await page.keyboard.type("The crossing on Elm has no light at night.")
        await tab_to(page, "#neighbourhood")
        await page.keyboard.press("ArrowDown")
        await tab_to(page, "button[type=submit]:not([name])")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r".*/submitted/.*"))
        code = await page.inner_text("#tracking-code")
        await screenshot(page, "keyboard-only-confirmation")
    assert re.fullmatch(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){3}", code.strip())
