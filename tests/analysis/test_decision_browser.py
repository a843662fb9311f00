"""An organizer watches the live decision in headless Chromium: the figure loads and
refreshes by itself under the site's Content-Security-Policy, the API answers."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client

from raters import services
from raters.platforms import RaterIdentity
from tests.raters.conftest import build_study
from tests.raters.test_browser import CHROMIUM, LAUNCH_ARGS

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def organizer_page(live_server) -> Iterator[object]:
    user = get_user_model().objects.create_superuser("org", "org@example.org", "pw")
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"]
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
        page = context.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: "Content Security Policy" in message.text and errors.append(message.text))
        yield page
        browser.close()
        assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_decision_figure_refreshes_itself_and_the_api_shows_it(live_server, organizer_page, settings) -> None:
    settings.MOSAIC_ALLOCATION_REFRESH_SECONDS = 0
    settings.MOSAIC_DECISION_REFRESH_SECONDS = 1
    cache.clear()
    quality = {"Best": 4.8, "Worst": 1.2}
    study = build_study(method_names=list(quality), scenes=2, trials_per_session=4, slug="watched").study
    rng = random.Random(0)
    for index in range(3):
        session, _ = services.session_start(study=study, identity=RaterIdentity(external_id=f"w{index}"))
        for trial in session.trials.select_related("output__method"):
            score = min(5, max(1, round(quality.get(trial.output.method.name, 3.0) + rng.gauss(0, 0.4))))
            services.rating_submit(session_token=session.token, trial_token=trial.token, score=score, response_ms=1)
    page = organizer_page
    page.goto(f"{live_server.url}/admin/studies/study/{study.pk}/change/")
    image = page.locator("#live-decision")
    page.wait_for_function("() => document.getElementById('live-decision').naturalWidth > 0")
    first = image.get_attribute("src")
    page.wait_for_function(f"() => document.getElementById('live-decision').getAttribute('src') !== {first!r}")
    page.wait_for_function("() => document.getElementById('live-decision').naturalWidth > 0")
    body = page.request.get(f"{live_server.url}/api/studies/watched/decision/").json()
    assert [pair["method_a"] for pair in body["pairs"]] == ["Best"]
    assert body["pairs"][0]["state"] in {"separated", "undecided"}
