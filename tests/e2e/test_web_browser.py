"""The people's pages in a real browser: Debian's Chromium driven by Playwright, against the platform started the
way `make up` starts it (fresh databases, `config/sla-policy.walkthrough.yaml`: ten minutes for the unit and its
supervisor, seconds above them).

The issue's flow, step by step, each with a screenshot under test-artifacts/screenshots/ and an axe-core scan:
a resident submits in Spanish on a phone without JavaScript and gets a tracking code; a unit member signs in,
finds it at the top of the inbox and answers it after previewing the redacted text; the resident reads the
answer and contests it, and the item reappears one level higher, in the supervisor's inbox; the oversight member
sees what escalated to the board (a complaint naming an officer, which climbs in seconds) and a verified audit
trail. A second test scans every page in both languages, and checks the browser asked nothing of other sites.
A last one walks triage: a resident ticks allegation boxes, a unit member triages an item waiting for it, a
supervisor is refused the lowering of a critical item in words, professional standards lowers it with a reason,
and the board sees that lowering.
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
    # The form posts and redirects; wait for the page it lands on, or the next reload races the navigation.
    async with page.expect_navigation():
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
        "inbox-awaiting-triage": "/staff?unit=&triage=needed",
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
        await page.wait_for_selector("#tracking-code")  # the form post answers with the confirmation itself
        code = await page.inner_text("#tracking-code")
        await screenshot(page, "keyboard-only-confirmation")
    assert re.fullmatch(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){3}", code.strip())


# Words of triage and severity, which a resident's pages never show (en and es).
INTERNALS = ("triage", "severity", "critical", "clasific", "gravedad", "crític")
LOWERING_REASON = "The resident wrote back: the officer was curt, nothing more."


async def test_allegation_boxes_triage_and_the_boards_list_of_lowerings(web_platform: Stack, browser: Browser) -> None:
    web, intake = web_platform.service_url("web"), web_platform.service_url("intake")
    officer_name, lee = unique("Officer Diaz"), unique("Sergeant Lee")
    standards_name, board_name = unique("Investigator Park"), unique("Board member Okafor")
    officer_token = issue_token(web_platform, officer_name, "unit_member", "north-patrol")
    supervisor_token = issue_token(web_platform, lee, "supervisor", "north-sergeants")
    standards_token = issue_token(web_platform, standards_name, "professional_standards")
    board_token = issue_token(web_platform, board_name, "oversight")
    question_marker, complaint_marker = unique("saturday"), unique("bus-stop")
    async with httpx.AsyncClient(timeout=10) as http:
        await submit(
            http,
            web_platform,
            kind="question",
            text=f"What time does the front desk open on Saturdays? {question_marker}",
            location={"neighbourhood": "Northgate"},
        )

    # 1. A resident declares what the officer did by ticking boxes in plain words (Spanish, phone, no JavaScript).
    resident = await visitor(browser, web, locale="es-ES", phone=True, javascript=False)
    page = await resident.open()
    await page.goto(f"{web}/language/es?next=/submit")
    boxes = await page.inner_text("fieldset:has(input[name=allegations])")
    assert "Uso de la fuerza" in boxes and "Descortesía" in boxes and "asuntos internos" in boxes
    await page.check("input[name=kind][value=complaint]")
    await page.check("input[name=allegations][value=force]")
    await page.check("input[name=allegations][value=discourtesy]")
    await page.fill("#text", f"El agente me empujó en la parada del autobús y me insultó. {complaint_marker}")
    await page.select_option("#neighbourhood", "Northgate")
    await resident.check(page, "t01-resident-allegation-boxes-es")
    await page.click("button:has-text('Enviar comentario')")
    code = (await page.inner_text("#tracking-code")).strip()
    confirmation = (await page.inner_text("main")).lower()
    assert not [word for word in INTERNALS if word in confirmation], confirmation
    await resident.check(page, "t02-resident-confirmation-es")
    await page.goto(f"{web}/track/{code}")
    tracking = await page.inner_text("main")
    assert "Uso de la fuerza" in tracking and "Descortesía" in tracking, "what the resident declared, in words"
    assert not [word for word in INTERNALS if word in tracking.lower()], tracking
    await resident.check(page, "t03-resident-tracking-allegations-es")
    async with httpx.AsyncClient(timeout=10) as http:
        complaint_id = (await http.get(f"{intake}/v1/feedback/{code}")).json()["feedback_id"]

    # 2. A unit member filters the inbox to what waits for triage, sees the triage deadline, and triages it.
    officer = await visitor(browser, web, locale="en-US", phone=False, javascript=True)
    desk = await officer.open()
    await sign_in(desk, web, officer_name, officer_token)
    await desk.goto(f"{web}/staff?triage=needed")
    await reload_until(desk, "table.inbox tbody", question_marker, "the question in the list waiting for triage")
    row = desk.locator("table.inbox tbody tr", has_text=question_marker)
    assert "Waiting for triage" in await row.inner_text() and "Triage:" in await row.inner_text()
    await officer.check(desk, "t04-unit-inbox-waiting-for-triage")
    await row.locator("a").click()
    assert "Waiting for triage" in await desk.inner_text(".facts")
    await officer.check(desk, "t05-unit-item-triage-form")
    await desk.select_option("#triage_kind", "complaint")
    await desk.select_option("#triage_severity", "negative")
    await desk.click("#triage-section button[type=submit]")
    assert "Triage recorded" in await desk.inner_text(".notice--success")
    assert "to Negative" in await desk.inner_text(".timeline"), "severity raised"
    await officer.check(desk, "t06-unit-triaged")
    await desk.goto(f"{web}/staff?triage=needed")
    assert question_marker not in await desk.inner_text("main"), "triaged: no longer waiting"

    # 3. A supervisor may not lower a critical item: intake refuses, and the page says so in words.
    sergeant = await visitor(browser, web, locale="en-US", phone=False, javascript=True)
    supervisor_desk = await sergeant.open()
    await sign_in(supervisor_desk, web, lee, supervisor_token)
    await supervisor_desk.goto(f"{web}/staff/items/{complaint_id}")
    assert "Use of force" in await supervisor_desk.inner_text(".facts")
    await supervisor_desk.select_option("#triage_severity", "negative")
    await supervisor_desk.fill("#triage_reason", LOWERING_REASON)
    await supervisor_desk.click("#triage-section button[type=submit]")
    refused = await supervisor_desk.inner_text(".notice--problem")
    assert "Only professional standards or the civilian oversight board may lower a critical item" in refused
    assert await supervisor_desk.input_value("#triage_reason") == LOWERING_REASON, "what they wrote is kept"
    await sergeant.check(supervisor_desk, "t07-supervisor-lowering-refused")

    # 4. Professional standards lowers it; the page asks for the reason first.
    investigator = await visitor(browser, web, locale="en-US", phone=False, javascript=True)
    standards_desk = await investigator.open()
    await sign_in(standards_desk, web, standards_name, standards_token)
    await standards_desk.goto(f"{web}/staff/items/{complaint_id}")

    async def delivered() -> bool:
        await standards_desk.reload()
        return bool(await standards_desk.query_selector("section:has(#deliveries-title) tbody tr"))

    await eventually(delivered, timeout=60, interval=1.0, what="notify's deliveries on the item page")
    deliveries = await standards_desk.inner_text("section:has(#deliveries-title)")
    assert "e-mail" in deliveries and "@" not in deliveries, "status, channel and attempts, never an address"
    await standards_desk.select_option("#triage_severity", "negative")
    await standards_desk.click("#triage-section button[type=submit]")
    assert "Say why you lower the severity" in await standards_desk.inner_text(".error-summary")
    await investigator.check(standards_desk, "t08-standards-lowering-needs-a-reason")
    await standards_desk.fill("#triage_reason", LOWERING_REASON)
    await standards_desk.click("#triage-section button[type=submit]")
    assert "Triage recorded" in await standards_desk.inner_text(".notice--success")
    assert "severity lowered from Critical to Negative" in await standards_desk.inner_text(".timeline")
    await investigator.check(standards_desk, "t09-standards-lowered")

    # 5. The board sees the lowering with its reason, beside escalations and contested answers.
    overseer = await visitor(browser, web, locale="en-US", phone=False, javascript=True)
    board_desk = await overseer.open()
    await sign_in(board_desk, web, board_name, board_token)
    lowerings = await board_desk.inner_text("section:has(#lowered-title)")
    assert LOWERING_REASON in lowerings and standards_name in lowerings
    assert "Does not match" not in lowerings
    await overseer.check(board_desk, "t10-oversight-severity-lowerings")

    await page.goto(f"{web}/track/{code}")
    assert not [word for word in INTERNALS if word in (await page.inner_text("main")).lower()], "still nothing"
    for person in (resident, officer, sergeant, investigator, overseer):
        person.assert_only_this_site()
        for context in (person.context, person.twin):
            if context is not None:
                await context.close()
