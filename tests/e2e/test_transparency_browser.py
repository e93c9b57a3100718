"""The transparency page in a real browser: Debian's Chromium driven by Playwright, against the platform (analytics
publishes with a threshold of 1 there, so the items this test submits show).

A resident opens the page, narrows it to complaints with the filter form (the choice lands in the URL), downloads
the CSV behind a table and finds the JSON's figures in it, switches to Spanish on a phone, and uses the filters
without JavaScript. Every page is scanned with axe-core and photographed under test-artifacts/screenshots/; the
browser must ask nothing of another site.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.async_api import Browser, Page

from heard_devstack import Stack
from tests.browser import assert_accessible, browser_context, chromium, screenshot
from tests.e2e.conftest import public_count, submit
from tests.helpers import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def submitted_complaints(http: httpx.AsyncClient, platform: Stack) -> int:
    return await public_count(http, platform, "funnel", "stage", "submitted", "items", kind="complaint")


async def download_csv(page: Page, table: str) -> list[dict[str, str]]:
    async with page.expect_download() as info:
        await page.locator(f'a[href^="/v1/transparency/{table}.csv"]').click()
    download = await info.value
    path = await download.path()
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


async def test_a_resident_filters_downloads_the_csv_behind_a_table_and_reads_it_in_spanish_on_a_phone(
    platform: Stack, http: httpx.AsyncClient, browser: Browser
) -> None:
    before = await submitted_complaints(http, platform)
    for text in ("Nobody came when I reported the break-in", "The officer would not give his name"):
        await submit(http, platform, kind="complaint", text=text, location={"neighbourhood": "Northgate"})
    await eventually(
        lambda: _at_least(http, platform, before + 2), what="analytics to publish the two complaints", timeout=60
    )
    base = platform.service_url("analytics")
    requests: list[str] = []

    async with browser_context(browser) as desktop:
        desktop.on("request", lambda request: requests.append(request.url))
        page = await desktop.new_page()
        await page.goto(f"{base}/transparency")
        await assert_accessible(page, "the transparency page")
        await screenshot(page, "transparency-desktop")

        await page.select_option("#kind", "complaint")
        await page.get_by_role("button", name="Show").click()
        await page.wait_for_url("**/transparency?*kind=complaint*")
        query = parse_qs(urlparse(page.url).query)
        assert query["kind"] == ["complaint"], "the filter is kept in the URL, so the view can be shared"
        assert await page.locator("#kind").input_value() == "complaint"
        await assert_accessible(page, "the transparency page filtered to complaints")
        await screenshot(page, "transparency-desktop-complaints")

        rows = await download_csv(page, "funnel")
        response = await http.get(f"{base}/v1/transparency", params={"year": query["year"][0], "kind": "complaint"})
        table = response.json()["tables"]["funnel"]
        assert list(rows[0]) == list(table["rows"][0])
        assert [row["stage"] for row in rows] == [row["stage"] for row in table["rows"]]
        for row, expected in zip(rows, table["rows"], strict=True):
            items = expected["items"]
            # A published count is a number in both; a suppressed one is a label in the CSV, an object in the JSON.
            assert row["items"] == (str(items) if isinstance(items, int) else row["items"])
            assert isinstance(items, int) or not row["items"].isdigit()
        assert int(rows[0]["items"]) >= before + 2

    async with browser_context(browser, phone=True, locale="es-US") as phone:
        phone.on("request", lambda request: requests.append(request.url))
        page = await phone.new_page()
        await page.goto(f"{base}/transparency?kind=complaint")
        await page.get_by_role("link", name="Español").click()
        await page.wait_for_url("**lang=es*")
        assert await page.locator("html").get_attribute("lang") == "es"
        assert await page.get_by_role("heading", level=1).inner_text() != "How the department listens and answers"
        assert await page.locator("#kind").input_value() == "complaint", "the language switch keeps the filters"
        overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow}px wider than the phone"
        await assert_accessible(page, "the Spanish transparency page on a phone")
        await screenshot(page, "transparency-phone-es")

    async with browser_context(browser, javascript=False) as plain:
        plain.on("request", lambda request: requests.append(request.url))
        page = await plain.new_page()
        await page.goto(f"{base}/transparency")
        await page.select_option("#area", "north")
        await page.get_by_role("button", name="Show").click()
        await page.wait_for_url("**area=north*")
        assert await page.locator("#area").input_value() == "north", "the form works without JavaScript"

    assert all(url.startswith(base) for url in requests), [url for url in requests if not url.startswith(base)]


async def _at_least(http: httpx.AsyncClient, platform: Stack, expected: int) -> bool:
    return await submitted_complaints(http, platform) >= expected
