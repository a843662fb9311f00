"""A Content-Security-Policy on every page, and the pages still work under it in Chromium."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.raters.conftest import build_study
from tests.raters.test_browser import CHROMIUM, LAUNCH_ARGS, playwright_api

pytestmark = pytest.mark.django_db


def test_every_kind_of_page_forbids_inline_and_foreign_scripts(admin_client: Client) -> None:
    study = build_study(slug="csp").study
    rater = Client()
    token = rater.post(f"/s/{study.slug}/", {"consent": "yes"})["Location"].split("/")[2]
    pages = [
        Client().get(f"/s/{study.slug}/"),
        rater.get(f"/r/{token}/"),
        rater.get(f"/api/sessions/{token}/next/"),
        Client().get("/admin/login/"),
        admin_client.get(f"/admin/studies/study/{study.pk}/change/"),
        admin_client.get(f"/analysis/{study.slug}/results/"),
        admin_client.get("/api/docs/"),
    ]
    for response in pages:
        assert response.status_code == 200, response
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in policy


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
@pytest.mark.django_db(transaction=True)
def test_the_admin_and_the_api_docs_work_under_the_policy(live_server, django_user_model) -> None:
    django_user_model.objects.create_superuser("organizer", "o@example.org", "csp-password")
    blocked: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.on("console", lambda message: "Content Security Policy" in message.text and blocked.append(message.text))
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "organizer")
        page.fill("#id_password", "csp-password")
        page.click("input[type=submit]")
        page.wait_for_selector("#site-name")
        page.goto(f"{live_server.url}/admin/studies/study/add/")
        page.wait_for_selector("#study_form")
        page.goto(f"{live_server.url}/api/docs/")
        page.wait_for_selector(".swagger-ui .opblock", timeout=20_000)
        browser.close()
    assert not blocked, blocked
