"""The late-team page in headless Chromium: the warning of an open study, an upload, the result.

The screenshot goes to test-artifacts/late-team.png at the repository root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studies.models import Study
from studies.services import study_create, study_import, study_open
from tests.factories import noise_image
from tests.studies.conftest import make_study_folder, write_png, zip_folder

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.mark.django_db(transaction=True)
def test_organizer_adds_a_late_team_to_an_open_study(live_server, tmp_path, django_user_model) -> None:
    django_user_model.objects.create_superuser("organizer", "o@example.org", "pw-organizer-1")
    study = study_create(title="Track 2", slug="track-2", ratings_per_output=5)
    study_import(study=study, source=make_study_folder(tmp_path / "s"))
    study = study_open(study=study)
    folder = tmp_path / "late"
    for scene in ("beach", "city"):
        write_png(folder / "methods" / "TeamLate" / f"{scene}.png", noise_image(40, 30, seed=3))
    archive = zip_folder(folder, tmp_path / "late.zip")
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "organizer")
        page.fill("#id_password", "pw-organizer-1")
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/admin/studies/study/{study.pk}/change/")
        page.click("#add-method")
        warning = page.locator("#late-warning")
        assert "coverage at zero" in warning.inner_text() and "favour" in warning.inner_text()
        page.set_input_files("#id_archive", str(archive))
        page.screenshot(path=str(ARTIFACTS / "late-team.png"), full_page=True)
        page.click("input[type=submit]")
        # The upload lands on the study's Jobs page; the job ran on commit (eager tasks here).
        messages = page.locator("ul.messagelist").inner_text()
        job = page.locator("#jobs .job").first.inner_text()
        page.screenshot(path=str(ARTIFACTS / "late-team-added.png"), full_page=True)
        browser.close()
    assert "Uploaded late.zip" in messages
    assert "1 method(s) and 2 output(s)" in job and "coverage at zero" in job
    assert Study.objects.get(pk=study.pk).methods.filter(name="TeamLate").exists()
