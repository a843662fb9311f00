"""The rating screen's aids: the session plan on the entry page, the instructions again
while rating, the toolbar naming zoom and mode, the zoom kept across pairs, and a small
window (1024 x 700) with its answer buttons on one row and a warning that can be dismissed."""

from __future__ import annotations

import pytest

from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.raters.conftest import build_study
from tests.raters.test_browser import ARTIFACTS, CHROMIUM, IMAGE_SCALES, browser_page, playwright_api  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

expect = playwright_api.expect
READY = "(previous) => window.mosaic && window.mosaic.accepting && window.mosaic.current.trial.token !== previous"
SETTLED_AT = f"(scale) => ({IMAGE_SCALES})().every((v) => v.settled && Math.abs(v.scale - scale) < 1e-9)"


def _start(page, live_server, study, pid: str) -> None:
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID={pid}&STUDY_ID=s&SESSION_ID=x")
    page.locator("#consent").check()
    page.locator("#start").click()
    page.wait_for_url("**/r/*/")
    page.wait_for_function(READY, arg="")


def _vote(page) -> None:
    token = page.evaluate("() => window.mosaic.current.trial.token")
    training = page.evaluate("() => window.mosaic.current.trial.phase") == "training"
    page.keyboard.press("3")
    if training:
        expect(page.locator("#feedback")).to_be_visible()
        page.keyboard.press("Enter")
    page.wait_for_function(READY, arg=token)


@pytest.fixture
def study():
    setup = build_study(methods=3, scenes=4, trials_per_session=5, size=(900, 600))
    for asset in ImageAsset.objects.all():
        image_tiles_build(asset=asset)
    return setup.study


@pytest.mark.django_db(transaction=True)
def test_entry_page_says_how_many_pairs_and_how_long(live_server, browser_page, study) -> None:  # noqa: F811 - the fixture
    page = browser_page
    page.goto(f"{live_server.url}/s/{study.slug}/?PROLIFIC_PID=plan&STUDY_ID=s&SESSION_ID=x")
    plan = page.locator("#session-plan")
    expect(plan).to_contain_text("5 pairs")
    expect(plan).to_contain_text("after 3 practice pairs")
    expect(plan).to_contain_text("about 3 minutes")  # 1 + ceil(8 pairs x 15 s / 60)


@pytest.mark.django_db(transaction=True)
def test_instructions_reopen_and_toolbar_names_zoom_and_mode(live_server, browser_page, study) -> None:  # noqa: F811 - the fixture
    page = browser_page
    _start(page, live_server, study, "aids")
    view_state = page.locator("#view-state")
    expect(view_state).to_contain_text("Fit (")
    expect(view_state).to_contain_text("side by side")
    expect(page.locator("[data-zoom=fit]")).to_have_attribute("aria-pressed", "true")

    page.keyboard.press("g")
    expect(view_state).to_have_text("100% · side by side")
    expect(page.locator("[data-zoom='100']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-zoom=fit]")).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("Space")
    expect(view_state).to_have_text("100% · toggle: Result")
    expect(page.locator("[data-mode=toggle]")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Space")
    expect(view_state).to_have_text("100% · toggle: Reference (DSLR)")
    page.keyboard.press("s")

    # The instructions again, with the scale; keys do not vote meanwhile.
    page.keyboard.press("i")
    help_box = page.locator("#help")
    expect(help_box).to_be_visible()
    expect(help_box.locator(".scale li")).to_have_count(5)
    expect(help_box).to_contain_text(study.instructions or "What you will do")
    page.screenshot(path=str(ARTIFACTS / "rater-instructions-reopened.png"))
    token = page.evaluate("() => window.mosaic.current.trial.token")
    page.keyboard.press("3")
    assert page.evaluate("() => window.mosaic.current.trial.token") == token
    expect(page.locator("#feedback")).to_be_hidden()
    page.keyboard.press("Escape")
    expect(help_box).to_be_hidden()
    page.locator("[data-help]").first.click()
    expect(help_box).to_be_visible()
    page.locator("#help-close").click()
    expect(help_box).to_be_hidden()


@pytest.mark.django_db(transaction=True)
def test_zoom_is_kept_across_pairs_when_asked(live_server, browser_page, study) -> None:  # noqa: F811 - the fixture
    page = browser_page
    _start(page, live_server, study, "keep")
    page.keyboard.press("h")
    page.wait_for_function(SETTLED_AT, arg=2)
    _vote(page)  # without "keep zoom", the next pair opens at fit
    for viewer in page.evaluate(IMAGE_SCALES):
        assert viewer["scale"] == pytest.approx(viewer["fit"], rel=1e-3)

    page.keyboard.press("k")
    expect(page.locator("#keep-zoom")).to_be_checked()
    page.keyboard.press("h")
    page.wait_for_function(SETTLED_AT, arg=2)
    _vote(page)
    page.wait_for_function(SETTLED_AT, arg=2)
    expect(page.locator("#view-state")).to_have_text("200% · side by side")
    page.reload()  # the choice survives a reload
    page.wait_for_function(READY, arg="")
    expect(page.locator("#keep-zoom")).to_be_checked()


@pytest.mark.django_db(transaction=True)
def test_small_window_keeps_answers_on_one_row_and_warning_dismissable(live_server, browser_page, study) -> None:  # noqa: F811 - the fixture
    page = browser_page
    page.set_viewport_size({"width": 1024, "height": 700})
    _start(page, live_server, study, "small")
    warning = page.locator("#viewport-warning")
    expect(warning).to_be_visible()
    tops = page.eval_on_selector_all("#levels button.level", "(bs) => bs.map((b) => b.getBoundingClientRect().top)")
    rights = page.eval_on_selector_all("#levels button.level", "(bs) => bs.map((b) => b.getBoundingClientRect().right)")
    assert len(set(tops)) == 1, tops
    assert max(rights) <= 1024
    # Nothing overflows the toolbar or the window.
    assert page.eval_on_selector(".bar", "(bar) => bar.scrollWidth <= bar.clientWidth")
    assert page.evaluate("() => document.documentElement.scrollWidth <= 1024")
    boxes = page.eval_on_selector_all(
        ".bar .phase, .bar .progress, .bar .tools", "(els) => els.map((e) => e.getBoundingClientRect().toJSON())"
    )
    assert boxes[0]["right"] <= boxes[1]["left"] and boxes[1]["right"] <= boxes[2]["left"], boxes
    page.screenshot(path=str(ARTIFACTS / "rater-1024x700.png"))

    height = page.evaluate("() => document.getElementById('stages').getBoundingClientRect().height")
    page.locator("#viewport-warning-dismiss").click()
    expect(warning).to_be_hidden()
    # The stage takes the rows back and the images still fit it.
    page.wait_for_function(f"() => document.getElementById('stages').getBoundingClientRect().height > {height}")
    page.wait_for_function(
        f"() => ({IMAGE_SCALES})().every((v) => v.settled && Math.abs(v.scale - v.fit) / v.fit < 1e-3)"
    )
    page.reload()
    page.wait_for_function(READY, arg="")
    expect(warning).to_be_hidden()
