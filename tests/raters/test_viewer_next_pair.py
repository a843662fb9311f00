"""The next pair is ready when the rater votes: a vote on a rated pair puts the preloaded
pair up before the server has answered, the buttons wait for the answer, and a refused
vote brings its pair back."""

from __future__ import annotations

import pytest

from raters.models import Rating
from studies.models import ImageAsset
from studies.services import image_tiles_build
from tests.raters.conftest import build_study
from tests.raters.test_browser import CHROMIUM, browser_page, playwright_api  # noqa: F401
from tests.raters.test_rating_screen import READY, _start, _vote

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

expect = playwright_api.expect
# The pair on screen, and whether its preloaded successor is complete.
SCREEN = """() => {
  const s = window.mosaic;
  return {
    token: s.current.trial.token,
    phase: s.current.trial.phase,
    visible: !s.current.el.classList.contains('hidden'),
    drawn: s.current.readyAt !== null,
    upcoming: s.upcoming && s.upcoming.readyAt !== null ? s.upcoming.trial.token : null,
    accepting: s.accepting,
  };
}"""


@pytest.fixture
def study():
    setup = build_study(methods=3, scenes=4, trials_per_session=6, size=(900, 600))
    for asset in ImageAsset.objects.all():
        image_tiles_build(asset=asset)
    return setup.study


def _to_a_rated_pair_with_its_successor_loaded(page) -> dict:
    while page.evaluate(SCREEN)["phase"] == "training":
        _vote(page)
    page.wait_for_function("() => window.mosaic.upcoming && window.mosaic.upcoming.readyAt !== null")
    return page.evaluate(SCREEN)


@pytest.mark.django_db(transaction=True)
def test_a_vote_shows_the_preloaded_pair_before_the_server_answers(live_server, browser_page, study) -> None:  # noqa: F811 - the fixture
    page = browser_page
    _start(page, live_server, study, "early")
    before = _to_a_rated_pair_with_its_successor_loaded(page)
    held = []
    page.route("**/api/sessions/*/trials/*/rating/", lambda route: held.append(route))
    stored = Rating.objects.count()

    page.keyboard.press("3")
    page.wait_for_function(f"() => window.mosaic.current.trial.token === {before['upcoming']!r}")
    shown = page.evaluate(SCREEN)
    assert held and shown["visible"] and shown["drawn"]  # on screen, complete, the vote still on its way
    assert not shown["accepting"]
    expect(page.locator("#levels button.level").first).to_be_disabled()

    held[0].continue_()
    page.wait_for_function("() => window.mosaic.accepting")
    assert Rating.objects.count() == stored + 1
    assert Rating.objects.filter(trial__token=before["token"], score=3).exists()


@pytest.mark.django_db(transaction=True)
def test_a_refused_vote_brings_its_pair_back(live_server, browser_page, study) -> None:  # noqa: F811 - the fixture
    page = browser_page
    _start(page, live_server, study, "refused")
    before = _to_a_rated_pair_with_its_successor_loaded(page)
    page.route(
        "**/api/sessions/*/trials/*/rating/",
        lambda route: route.fulfill(status=404, json={"detail": "No such trial in this session."}),
    )
    stored = Rating.objects.count()

    page.keyboard.press("3")
    expect(page.locator("#status")).to_have_text("No such trial in this session.")
    page.wait_for_function("() => window.mosaic.accepting")
    back = page.evaluate(SCREEN)
    assert back["token"] == before["token"] and back["visible"]
    assert Rating.objects.count() == stored

    page.unroute("**/api/sessions/*/trials/*/rating/")
    page.keyboard.press("3")  # the same pair can be answered again, and the preloaded one follows
    page.wait_for_function(READY, arg=before["token"])
    assert page.evaluate(SCREEN)["token"] == before["upcoming"]
    assert Rating.objects.filter(trial__token=before["token"]).count() == 1
