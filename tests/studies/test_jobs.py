"""Admin uploads run as jobs on a worker: the request returns at once, the study's Jobs page
shows the progress, then the result or every problem."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from studies.models import ImageAsset, Job, Study
from studies.services.jobs import JobProgress
from tests.factories import StudyFactory
from tests.studies.conftest import make_study_folder, zip_folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("organizer", "o@example.org", "pw-organizer"))
    return client


def _upload(staff, study: Study, archive) -> object:
    return staff.post(
        f"/admin/studies/study/{study.pk}/import/",
        {"archive": SimpleUploadedFile("entries.zip", archive.read_bytes(), content_type="application/zip")},
    )


def test_upload_returns_at_once_and_the_jobs_page_shows_progress_then_the_study(
    staff, tmp_path, django_capture_on_commit_callbacks, monkeypatch
):
    study = StudyFactory(slug="track")
    archive = zip_folder(make_study_folder(tmp_path / "s"), tmp_path / "s.zip")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = _upload(staff, study, archive)
    # Nothing was checked or imported inside the request: the job waits for a worker.
    assert response.status_code == 302
    assert response["Location"].startswith(f"/admin/studies/study/{study.pk}/jobs/")
    job = Job.objects.get(study=study)
    assert job.status == Job.Status.QUEUED and job.source_name == "entries.zip"
    assert not study.scenes.exists() and not ImageAsset.objects.exists()
    page = staff.get(response["Location"]).content.decode()
    assert "Import: entries.zip" in page and "Waiting for a worker." in page
    assert "Uploaded entries.zip: a worker checks and stores it now" in page  # says where to follow it

    # Halfway through checking (what the worker records as it goes):
    monkeypatch.setattr("studies.services.jobs.PROGRESS_INTERVAL_S", 0)  # every file written
    progress = JobProgress(job)
    progress.start_checking(6)
    for _ in range(3):
        progress.file_checked()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    state = staff.get(f"/admin/studies/study/{study.pk}/jobs.json").json()
    assert state["active"] is True
    shown = {key: state["jobs"][0][key] for key in ("status", "done", "total", "stage", "problems")}
    assert shown == {"status": "running", "done": 3, "total": 6, "stage": "checking the files", "problems": []}
    page = staff.get(f"/admin/studies/study/{study.pk}/jobs/").content.decode()
    assert '<progress max="6" value="3">' in page and "files checked 3 / 6" in page

    # The worker runs the job (eagerly here), then the metric and tile tasks it queues.
    with django_capture_on_commit_callbacks(execute=True):
        for callback in queued:
            callback()
    job.refresh_from_db()
    assert job.status == Job.Status.DONE and (job.files_done, job.files_total) == (6, 6)
    state = staff.get(f"/admin/studies/study/{study.pk}/jobs.json").json()
    assert state["metrics"] == {"done": 4, "failed": 0, "total": 4}
    assert state["tiles"] == {"done": 6, "failed": 0, "total": 6}
    assert state["active"] is False
    page = staff.get(f"/admin/studies/study/{study.pk}/jobs/").content.decode()
    assert "Imported 2 scene(s), 2 method(s) and 4 output(s)" in page
    study_page = staff.get(f"/admin/studies/study/{study.pk}/change/").content.decode()
    assert "beach" in study_page and "TeamAlpha" in study_page
    assert f"/admin/studies/study/{study.pk}/jobs/" in study_page  # the Jobs link


def test_failed_import_lists_every_problem_and_leaves_database_and_files_unchanged(
    staff, tmp_path, media_root, django_capture_on_commit_callbacks
):
    study = StudyFactory(slug="broken")
    folder = make_study_folder(tmp_path / "s")
    (folder / "methods" / "TeamAlpha" / "city.png").unlink()
    (folder / "methods" / "TeamBeta" / "beach.png").write_bytes(b"junk")
    (folder / "references" / "notes.txt").write_text("x")
    archive = zip_folder(folder, tmp_path / "s.zip")
    with django_capture_on_commit_callbacks(execute=True):
        response = _upload(staff, study, archive)
    job = Job.objects.get(study=study)
    assert job.status == Job.Status.FAILED and len(job.problems) == 3
    page = staff.get(response["Location"]).content.decode()
    assert "Nothing was imported: 3 problem(s) to fix" in page
    assert "methods/TeamAlpha: missing the output for scene &#x27;city&#x27;" in page
    assert "methods/TeamBeta/beach.png: not a decodable image" in page
    assert "references/notes.txt: .txt is not an accepted format" in page
    assert not study.scenes.exists() and not study.methods.exists() and not ImageAsset.objects.exists()
    # The upload itself is deleted once the job ended: no file is left behind.
    assert job.upload == "" and not any(p.is_file() for p in media_root.rglob("*"))
    assert staff.get(f"/admin/studies/study/{study.pk}/jobs.json").json()["jobs"][0]["problems"] == job.problems


def test_upload_into_an_open_study_is_refused_at_once_and_queues_nothing(staff, tmp_path, media_root):
    study = StudyFactory(slug="open", status=Study.Status.OPEN)
    archive = zip_folder(make_study_folder(tmp_path / "s"), tmp_path / "s.zip")
    response = _upload(staff, study, archive)
    assert response.status_code == 200 and "images can only be imported into a draft study" in response.content.decode()
    assert not Job.objects.exists() and not any(p.is_file() for p in media_root.rglob("*"))


def test_jobs_json_is_for_staff_only(client, django_user_model):
    study = StudyFactory()
    url = f"/admin/studies/study/{study.pk}/jobs.json"
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    client.force_login(django_user_model.objects.create_user("rater", password="pw-rater-123"))
    not_staff = client.get(url)
    assert not_staff.status_code == 302 and "/admin/login/" in not_staff["Location"]
    client.force_login(django_user_model.objects.create_user("helper", password="pw-helper-123", is_staff=True))
    assert client.get(url).status_code == 403  # staff without the permission to view studies
    assert client.get(f"/admin/studies/study/{study.pk}/jobs/").status_code == 403
    client.force_login(django_user_model.objects.create_superuser("organizer", "o@example.org", "pw"))
    allowed = client.get(url)
    assert allowed.status_code == 200 and allowed["Content-Type"] == "application/json"
    assert set(allowed.json()) == {"jobs", "metrics", "tiles", "analysis", "active"}
    assert "no-cache" in allowed["Cache-Control"] or "no-store" in allowed["Cache-Control"]
