"""The crowd-platform pages in Chromium: the admin's rater links copied with one click, a
Prolific rater's completion page, the page of a full study."""

from __future__ import annotations

import pytest
from django.urls import reverse

from raters import services
from raters.platforms import RaterIdentity
from tests.raters.conftest import build_study
from tests.raters.test_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, playwright_api

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
expect = playwright_api.expect


@pytest.fixture
def context():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
        errors: list[str] = []
        ctx.on("weberror", lambda error: errors.append(str(error.error)))
        yield ctx
        browser.close()
        assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_organizer_copies_the_prolific_link_with_one_click(live_server, context, django_user_model) -> None:
    django_user_model.objects.create_superuser("organizer", "o@example.org", "pw-organizer")
    study = build_study(methods=1, scenes=1).study
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    csp: list[str] = []
    page.on("console", lambda message: "Content Security Policy" in message.text and csp.append(message.text))
    page.goto(f"{live_server.url}/admin/login/?next=/admin/studies/study/{study.pk}/change/")
    page.fill("#id_username", "organizer")
    page.fill("#id_password", "pw-organizer")
    page.click("input[type=submit]")
    page.wait_for_url("**/change/")
    box = page.locator("#platform-links")
    box.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "admin-rater-links.png"), full_page=True)
    button = box.locator("button.copy-link").first
    button.click()
    expect(button).to_have_text("Copied")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == (
        f"{live_server.url}/s/{study.slug}/"
        "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )
    assert not csp, csp


@pytest.mark.django_db(transaction=True)
def test_prolific_completion_and_full_pages(live_server, context) -> None:
    study = build_study(methods=2, scenes=3, trials_per_session=6, control_rate=0, controls=False).study
    study.prolific_completion_code = "C1ABCDEF"
    study.ratings_per_output = 1
    study.full_return_url = "https://app.prolific.com/submissions/complete?cc=FULL"
    study.save()
    identity = RaterIdentity(platform="prolific", external_id="pid", platform_session_id="x")
    session, _ = services.session_start(study=study, identity=identity)
    for trial in session.trials.order_by("position"):
        services.rating_submit(session_token=session.token, trial_token=trial.token, score=4, response_ms=1)
    # Prolific is out of reach from the test: the redirect is caught, not followed.
    context.route("https://app.prolific.com/**", lambda route: route.fulfill(status=200, body="prolific"))
    page = context.new_page()
    page.goto(live_server.url + reverse("raters:done", kwargs={"token": session.token}))
    expect(page.locator("#completion-code")).to_have_text("C1ABCDEF")
    expect(page.locator("#redirect-note")).to_contain_text("taken back to Prolific in")
    page.screenshot(path=str(ARTIFACTS / "rater-completion-prolific.png"))
    page.wait_for_url("https://app.prolific.com/submissions/complete?cc=C1ABCDEF", timeout=10_000)

    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=late&STUDY_ID=s&SESSION_ID=y")
    expect(page.locator("h1")).to_have_text("This study is full")
    expect(page.locator("#full-return-link")).to_have_attribute("href", study.full_return_url)
    page.screenshot(path=str(ARTIFACTS / "rater-study-full.png"))
