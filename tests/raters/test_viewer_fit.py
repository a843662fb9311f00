""" "Fit" keeps fitting when the layout changes: toggle mode, back, and a window resize."""

from __future__ import annotations

import pytest

from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.raters.conftest import build_study
from tests.raters.test_browser import CHROMIUM, IMAGE_SCALES, browser_page, playwright_api  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

PANE_WIDTH = "() => window.mosaic.current.viewers[0].viewport.getContainerSize().x"
FITTED = f"() => ({IMAGE_SCALES})().every((v) => v.settled && Math.abs(v.scale - v.fit) / v.fit < 1e-3)"


@pytest.mark.django_db(transaction=True)
def test_fit_follows_toggle_mode_and_window_resizes(live_server, browser_page) -> None:  # noqa: F811 - the fixture
    page = browser_page
    setup = build_study(methods=2, scenes=3, trials_per_session=4, size=(900, 600))
    for asset in ImageAsset.objects.all():
        image_tiles_build(asset=asset)
    page.goto(f"{live_server.url}/s/{setup.study.slug}/?PROLIFIC_PID=fit-rater&STUDY_ID=s&SESSION_ID=x")
    page.locator("#consent").check()
    page.keyboard.press("Enter")
    page.wait_for_url("**/r/*/")
    page.wait_for_function("() => window.mosaic && window.mosaic.current && window.mosaic.current.readyAt !== null")
    page.wait_for_function(FITTED)
    side_by_side = [v["fit"] for v in page.evaluate(IMAGE_SCALES)]

    width = page.evaluate(PANE_WIDTH)
    page.keyboard.press("Space")  # one pane, twice as wide: the image must grow to fit it
    page.wait_for_function(f"() => ({PANE_WIDTH})() > {width * 1.5}")
    page.wait_for_function(FITTED)
    assert page.evaluate(IMAGE_SCALES)[0]["fit"] > side_by_side[0] * 1.2

    page.keyboard.press("s")
    page.wait_for_function(f"() => ({PANE_WIDTH})() === {width}")
    page.wait_for_function(FITTED)

    page.set_viewport_size({"width": 1400, "height": 800})
    page.wait_for_function(f"() => ({PANE_WIDTH})() < {width}")
    page.wait_for_function(FITTED)
    assert page.evaluate(IMAGE_SCALES)[0]["fit"] < side_by_side[0]
