"""The report in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Asserts what a user would see: no console errors, every thumbnail decodes, no request
leaves the report folder, and the pager leads to the next page. A full-page screenshot is
kept in test-artifacts/ for a human to look at.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil

import pytest

from sparkdup.config import load_config
from sparkdup.jobs import report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "test-artifacts")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is needed for the browser test: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def open_page(browser, path: str):
    """Load a report page; return (page, console errors, requested URLs)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto("file://" + path)
    page.wait_for_load_state("load")
    return page, errors, requests


def image_states(page) -> list[list]:
    return page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")


def test_report_loads_in_chromium_with_every_thumbnail(spark, pipeline_run, browser):
    out, _, _ = pipeline_run
    cfg = load_config(overrides=["report.max_per_section=6", "report.max_pages=2"])  # force a second page
    report.run(spark, cfg, argparse.Namespace(output=out), "browser-run")
    index = os.path.join(out, "report", "index.html")
    html = open(index, encoding="utf-8").read()
    expected = len(re.findall(r"<img src=\"data:image/", html))
    assert expected >= 20

    page, errors, requests = open_page(browser, index)
    states = image_states(page)
    assert errors == []
    assert len(states) == expected
    assert all(complete and w > 0 and h > 0 for complete, w, h in states), states  # every thumbnail decoded
    assert all(u.startswith(("file://", "data:")) for u in requests), requests  # nothing fetched from outside
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "report-index.png")
    page.screenshot(path=shot, full_page=True)
    assert os.path.getsize(shot) > 50_000  # a real rendering, not a blank page

    # the duplicate groups of this run fill more than one page of 6: follow the pager
    page.click("text=next →")
    page.wait_for_load_state("load")
    assert page.url.endswith("/duplicates-2.html")
    second = image_states(page)
    assert second and all(complete and w > 0 for complete, w, _ in second)
    assert "Showing 7-12 of" in page.content()
    page.screenshot(path=os.path.join(ARTIFACTS, "report-duplicates-2.png"), full_page=True)
