"""Real-browser checks the page tests share: Debian's Chromium driven by Playwright, axe-core scans, screenshots.

Playwright drives the Chromium that `make install` takes from Debian's packages (it never downloads a browser
of its own); axe-core comes pinned inside `axe-playwright-python`. Screenshots go to `test-artifacts/`, which
CI keeps and git ignores.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from heard_devstack import ROOT

ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# Headless, and quiet on a closed network: without the background-networking flags Chromium keeps trying
# to reach Google's hosts, which this machine refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# WCAG 2.0/2.1/2.2 A and AA rules; a violation of impact serious or critical fails the page.
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]}}
BLOCKING_IMPACTS = {"serious", "critical"}


def chromium_executable() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise RuntimeError("Chromium is missing: `make install` installs Debian's chromium package")
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_executable(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def browser_context(
    browser: Browser, *, phone: bool = False, javascript: bool = True, locale: str = "en-US"
) -> AsyncIterator[BrowserContext]:
    """A fresh context (own cookies) at desktop or phone size; `javascript=False` proves pages work without it."""
    options: dict[str, Any] = {"viewport": PHONE if phone else DESKTOP, "java_script_enabled": javascript}
    if phone:
        options |= {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    context = await browser.new_context(locale=locale, **options)
    try:
        yield context
    finally:
        await context.close()


async def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical WCAG 2.2 AA violations axe-core finds on the page as it is now.

    axe-core runs as a script in the page, so the page's context must allow JavaScript: a flow tested
    without JavaScript opens each page again in a JavaScript context for its scan.
    """
    results = await Axe().run(page, options=AXE_OPTIONS)
    violations: list[dict[str, Any]] = results.response.get("violations", [])
    return [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]


async def assert_accessible(page: Page, what: str) -> None:
    violations = await axe_violations(page)
    if violations:
        lines = [
            f"- {v['id']} ({v['impact']}): {v['help']} — {', '.join(str(n['target']) for n in v['nodes'][:5])}"
            for v in violations
        ]
        raise AssertionError(f"axe-core found serious or critical violations on {what}:\n" + "\n".join(lines))


async def screenshot(page: Page, name: str) -> Path:
    """Saves a full-page PNG under test-artifacts/screenshots/ and returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
