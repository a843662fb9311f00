"""A real rater in headless Chromium: consent, training, keyboard votes, a reload, the end.

Screenshots of the instructions, the rating screen and the completion page are written to
test-artifacts/ at the repository root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from raters.models import Rating, Session, Trial
from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.raters.conftest import build_study

# Playwright's sync API runs an event loop in this thread; the ORM calls below are plain
# synchronous test code, not code running inside that loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

READY = """(previous) => {
  const m = window.mosaic;
  return location.pathname.endsWith('/done/') ||
    (m && m.current && m.accepting && m.current.trial.token !== previous);
}"""
BOTH_DISPLAYED = """() => window.mosaic.current.viewers.every(
  (v) => v.world.getItemCount() === 1 && v.world.getItemAt(0).getFullyLoaded())"""
# Device pixels per image pixel in each viewer, and whether that viewer smooths.
IMAGE_SCALES = """() => window.mosaic.current.viewers.map((v) => {
  const item = v.world.getItemAt(0);
  const size = item.getContentSize();
  const pane = v.viewport.getContainerSize();
  return {
    scale: item.viewportToImageZoom(v.viewport.getZoom(true)) * window.devicePixelRatio,
    fit: Math.min(pane.x / size.x, pane.y / size.y) * window.devicePixelRatio,
    settled: v.viewport.getZoom(true) === v.viewport.getZoom(false) && item.getFullyLoaded(),
    smoothing: v.drawer._imageSmoothingEnabled,
  };
})"""


@pytest.fixture
def browser_page() -> Iterator[object]:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # What the Content-Security-Policy blocked, if anything: the pages must need none of it.
        page.on("console", lambda message: "Content Security Policy" in message.text and errors.append(message.text))
        yield page
        browser.close()
        assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_rater_completes_a_session_with_the_keyboard_across_a_reload(live_server, browser_page) -> None:
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    setup = build_study(methods=3, scenes=4, trials_per_session=6, control_rate=0.2, size=(900, 600))
    study = setup.study
    study.completion_redirect_url = "https://app.prolific.com/submissions/complete?cc={code}"
    study.save()
    for asset in ImageAsset.objects.all():
        image_tiles_build(asset=asset)

    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=browser-rater&STUDY_ID=s&SESSION_ID=x")
    playwright_api.expect(page.locator(".scale li")).to_have_count(5)
    page.screenshot(path=str(ARTIFACTS / "rater-instructions.png"), full_page=True)
    page.locator("#consent").check()
    page.keyboard.press("Enter")  # submits the consent form
    page.wait_for_url("**/r/*/")

    session = Session.objects.get()
    expected_votes = session.trials.count()
    pressed: dict[str, int] = {}
    previous = ""
    reloaded = False
    screenshot_taken = False
    while True:
        page.wait_for_function(READY, arg=previous)
        if page.url.endswith("/done/"):
            break
        assert page.evaluate(BOTH_DISPLAYED)
        # Each pair opens at fit: the whole image, as large as its pane allows.
        for viewer in page.evaluate(IMAGE_SCALES):
            assert viewer["scale"] == pytest.approx(viewer["fit"], rel=1e-3)
        state = page.evaluate(
            "() => ({token: window.mosaic.current.trial.token, phase: window.mosaic.current.trial.phase})"
        )
        token = state["token"]
        if state["phase"] == "rating" and not screenshot_taken:
            playwright_api.expect(page.locator("#progress")).to_have_text("1 / 6")
            page.screenshot(path=str(ARTIFACTS / "rater-rating-screen.png"))
            screenshot_taken = True
            # At 100% the pixels are the original's: one image pixel per device pixel, unsmoothed.
            page.keyboard.press("g")
            page.wait_for_function(f"() => ({IMAGE_SCALES})().every((v) => v.settled && Math.abs(v.scale - 1) < 1e-9)")
            assert not any(viewer["smoothing"] for viewer in page.evaluate(IMAGE_SCALES))
        if len(pressed) == 5 and not reloaded:
            # A reload resumes at the first unanswered trial.
            page.reload()
            page.wait_for_function(READY, arg="")
            assert page.evaluate("() => window.mosaic.current.trial.token") == token
            reloaded = True
        score = 1 + len(pressed) % 5
        page.keyboard.press(str(score))
        pressed[token] = score
        if state["phase"] == "training":
            playwright_api.expect(page.locator("#feedback")).to_be_visible()
            page.keyboard.press("Enter")
            playwright_api.expect(page.locator("#feedback")).to_be_hidden()
        previous = token

    code = Session.objects.get().completion_code
    playwright_api.expect(page.locator("#completion-code")).to_have_text(code)
    assert page.locator("#return-link").get_attribute("href").endswith(f"cc={code}")
    page.screenshot(path=str(ARTIFACTS / "rater-completion.png"))

    assert reloaded
    assert len(pressed) == expected_votes
    stored = dict(Rating.objects.values_list("trial__token", "score"))
    assert stored == pressed  # every vote landed, exactly once, with the key pressed
    assert Trial.objects.filter(rating__isnull=True).count() == 0
    rater = Session.objects.get().rater
    assert (rater.viewport_width, rater.viewport_height) == (1920, 1080)
    assert rater.device_pixel_ratio == 1
    assert "Chrome" in rater.user_agent
