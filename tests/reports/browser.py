"""Open a self-contained HTML report in headless Chromium and check that it rendered.

Used by the browser tests: the page must raise no console error or page error, and the
number of rendered plotly plots (a ``.js-plotly-plot`` holding an ``svg.main-svg``) must
equal the figure count the page declares (``<meta name="interp-figures">``, written by
``interp.reports.html.write_html``). A screenshot of the whole page is saved.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p), None)


@dataclass
class Rendered:
    declared: int  # figures the report says it has
    rendered: int  # plotly plots that drew an svg
    errors: list[str]  # console errors and uncaught page errors

    @property
    def ok(self) -> bool:
        return not self.errors and self.rendered == self.declared


def render(page_path: Path, screenshot: Path) -> Rendered:
    """Load ``page_path`` in headless Chromium, wait for the plots, screenshot it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(f"console: {m.text}")
                    if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            page.wait_for_timeout(500)  # plotly draws on the next animation frames
            declared = int(page.locator("meta[name=interp-figures]").get_attribute("content"))
            rendered = page.locator(".js-plotly-plot:has(svg.main-svg)").count()
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return Rendered(declared, rendered, errors)
