"""The Jobs page in headless Chromium: its progress bar follows a running import by itself
(static/studies/jobs.js polling the staff-only JSON endpoint, no reload, no inline script).

The screenshots go to test-artifacts/jobs-running.png and jobs-done.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from studies.models import Job
from studies.services import study_create
from studies.services.jobs import JobProgress

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.mark.django_db(transaction=True)
def test_jobs_page_progress_bar_refreshes_by_itself(live_server, django_user_model, settings, monkeypatch) -> None:
    settings.MOSAIC_JOBS_REFRESH_MS = 300
    monkeypatch.setattr("studies.services.jobs.PROGRESS_INTERVAL_S", 0)
    django_user_model.objects.create_superuser("organizer", "o@example.org", "pw-organizer-1")
    study = study_create(title="Track 1", slug="track-1")
    # A job as a worker leaves it while checking an upload's files (the worker is this test).
    job = Job.objects.create(study=study, kind=Job.Kind.IMPORT, source_name="track1.zip", status=Job.Status.RUNNING)
    progress = JobProgress(job)
    progress.start_checking(8)
    progress.file_checked()
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "organizer")
        page.fill("#id_password", "pw-organizer-1")
        page.click("input[type=submit]")
        page.goto(f"{live_server.url}/admin/studies/study/{study.pk}/jobs/")
        bar = page.locator(f"#job-{job.pk} progress")
        assert bar.get_attribute("value") == "1" and bar.get_attribute("max") == "8"
        page.evaluate("window.notReloaded = true")

        for _ in range(4):
            progress.file_checked()
        # expect() polls from Python: the page's CSP refuses the eval of wait_for_function.
        playwright_api.expect(bar).to_have_attribute("value", "5", timeout=10_000)
        assert "files checked 5 / 8" in page.locator(f"#job-{job.pk}").inner_text()
        page.screenshot(path=str(ARTIFACTS / "jobs-running.png"), full_page=True)

        for _ in range(3):
            progress.file_checked()
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.DONE, stage="", summary={"scenes": 2, "methods": 3, "outputs": 6}
        )
        job_card = page.locator(f"#job-{job.pk}")
        playwright_api.expect(job_card).to_have_attribute("data-status", "done", timeout=10_000)
        text = page.locator(f"#job-{job.pk}").inner_text()
        page.screenshot(path=str(ARTIFACTS / "jobs-done.png"), full_page=True)
        assert page.evaluate("window.notReloaded") is True  # refreshed in place, not reloaded
        browser.close()
    assert "Imported 2 scene(s), 3 method(s) and 6 output(s)" in text and "files checked 8 / 8" in text
    assert not [line for line in console if "Content Security Policy" in line], console
