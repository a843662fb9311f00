"""The admin's Sessions list in Chromium, as an organizer reads it before paying raters."""

from __future__ import annotations

import pytest

from analysis.services import analysis_run_now
from tests.raters.test_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, playwright_api
from tests.raters.test_sessions_admin import build_paid_study

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
expect = playwright_api.expect


@pytest.mark.django_db(transaction=True)
def test_organizer_reads_progress_screening_and_suggestion(live_server, django_user_model) -> None:
    django_user_model.objects.create_superuser("organizer", "o@example.org", "pw-organizer")
    study, good, cheat, late = build_paid_study(good_raters=4)
    analysis_run_now(study=study, params={"n_boot": 50})
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        page.goto(f"{live_server.url}/admin/login/?next=/admin/raters/session/")
        page.fill("#id_username", "organizer")
        page.fill("#id_password", "pw-organizer")
        page.click("input[type=submit]")
        page.wait_for_url("**/admin/raters/session/")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-sessions-list.png"))
        row = page.locator("#result_list tbody tr", has_text="cheat")
        expect(row.locator("td.field-failed_checks")).to_have_text("2 of 2")
        expect(row.locator("td.field-screening")).to_contain_text("excluded: ")
        expect(row.locator("td.field-suggested")).to_have_text("reject: failed 2 of 2 attention checks")
        late_row = page.locator("#result_list tbody tr", has_text="late")
        expect(late_row.locator("td.field-progress")).to_have_text("6 / 14")
        page.get_by_role("link", name="Reject", exact=True).click()
        expect(page.locator("#result_list tbody tr")).to_have_count(2)
        browser.close()
