"""The results page in a real headless Chromium, under the site's Content-Security-Policy.

A screenshot of the page is written to test-artifacts/ at the repository root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from analysis.services import analysis_run_now

# Playwright's sync API runs an event loop in this thread; the ORM calls below are plain
# synchronous test code, not code running inside that loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def browser_page() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: "Content Security Policy" in message.text and errors.append(message.text))
        yield page
        browser.close()
        assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_results_page_renders_both_questions_and_ties_in_chromium(live_server, browser_page, close_study) -> None:
    from raters.models import Session
    from studies.models import Method

    Method.objects.filter(study=close_study, name="Gamma").update(kind=Method.Kind.BASELINE)
    Session.objects.filter(study=close_study, rater__external_id="r12").update(excluded_reason="organizer's test")
    analysis_run_now(study=close_study, params={"n_boot": 100})
    client = Client()
    client.force_login(get_user_model().objects.create_user("organizer", password="pw", is_staff=True))
    page = browser_page
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page.goto(live_server.url + reverse("analysis:study-results", kwargs={"slug": close_study.slug}))
    assert page.locator("#question-test").text_content().startswith("On this test set")
    assert page.locator("#question-new").text_content().startswith("On new scenes too")
    assert "Alpha, Beta" in page.locator("#tied-with-winner").inner_text()
    assert "of 12 raters" in page.locator("#raters-used").inner_text()
    assert page.locator("#leaderboard tbody tr").count() == 4
    assert "baseline, not ranked" in page.locator("#leaderboard tr.baseline").inner_text()
    assert "organizer's test" in page.locator("#manual-exclusions").inner_text()
    heatmap = page.locator("img[alt^='Per-image MOS']")
    heatmap.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heatmap.element_handle())
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "analysis-results.png"), full_page=True)
