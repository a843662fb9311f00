from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from studies.models import ImageAsset, Output, Study
from tests.factories import MethodFactory, OutputFactory, SceneFactory, StudyFactory
from tests.studies.conftest import make_study_folder, zip_folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("organizer", "o@example.org", "pw-organizer")
    client.force_login(user)
    return client


def test_organizer_creates_a_study_with_preset_and_protocol(staff):
    response = staff.post(
        "/admin/studies/study/add/",
        {
            "title": "PIRM-style",
            "slug": "pirm",
            "protocol": "input",
            "scale_preset": "pirm4",
            "ratings_per_output": 10,
            "trials_per_session": 30,
            "control_rate": 0.1,
            "seed": 0,
            "instructions": "",
            "completion_redirect_url": "",
            "mturk_submit_to": "https://www.mturk.com",  # preselected on the form
            "methods-TOTAL_FORMS": 0,
            "methods-INITIAL_FORMS": 0,
            "scenes-TOTAL_FORMS": 0,
            "scenes-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    study = Study.objects.get(slug="pirm")
    assert study.protocol == "input"
    assert [lv["label"] for lv in study.scale_levels][0] == "Much better than the input"


def test_zip_upload_imports_and_metrics_are_shown(staff, tmp_path, django_capture_on_commit_callbacks):
    study = StudyFactory(slug="zip-up")
    archive = zip_folder(make_study_folder(tmp_path / "s"), tmp_path / "s.zip")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            f"/admin/studies/study/{study.pk}/import/",
            {"archive": SimpleUploadedFile("s.zip", archive.read_bytes(), content_type="application/zip")},
        )
    assert response.status_code == 302 and response["Location"].startswith(f"/admin/studies/study/{study.pk}/jobs/")
    assert Output.objects.filter(method__study=study, metric_status="done").count() == 4
    jobs = staff.get(response["Location"]).content.decode()
    assert "Imported 2 scene(s), 2 method(s) and 4 output(s)" in jobs

    listing = staff.get("/admin/studies/output/").content.decode()
    output = Output.objects.filter(method__name="TeamAlpha").first()
    assert f"{output.psnr:.2f}" in listing and f"{output.ssim:.4f}" in listing
    assert f"/img/{output.image.token}.png" in listing  # thumbnail
    page = staff.get(f"/admin/studies/study/{study.pk}/change/").content.decode()
    assert "4 done, 0 pending, 0 failed of 4 outputs" in page
    assert page.count("2 / 2") == 2  # each method's outputs with metrics, in the inline


def test_broken_zip_upload_lists_every_problem_and_imports_nothing(
    staff, tmp_path, media_root, django_capture_on_commit_callbacks
):
    study = StudyFactory(slug="broken")
    folder = make_study_folder(tmp_path / "s")
    (folder / "methods" / "TeamAlpha" / "city.png").unlink()
    (folder / "methods" / "TeamBeta" / "beach.png").write_bytes(b"junk")
    archive = zip_folder(folder, tmp_path / "s.zip")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            f"/admin/studies/study/{study.pk}/import/", {"archive": SimpleUploadedFile("s.zip", archive.read_bytes())}
        )
    assert response.status_code == 302  # the worker's job ran on commit; its page lists the problems
    page = staff.get(response["Location"]).content.decode()
    assert "Nothing was imported" in page
    assert "methods/TeamAlpha: missing the output for scene &#x27;city&#x27;" in page
    assert "methods/TeamBeta/beach.png: not a decodable image" in page
    assert ImageAsset.objects.count() == 0 and study.scenes.count() == 0
    assert not any(p.is_file() for p in media_root.rglob("*"))


def test_upload_that_is_not_a_zip_is_refused(staff):
    study = StudyFactory()
    response = staff.post(
        f"/admin/studies/study/{study.pk}/import/", {"archive": SimpleUploadedFile("s.zip", b"plain text")}
    )
    assert response.status_code == 200 and "not a zip file" in response.content.decode()
    assert not study.jobs.exists()


def test_open_is_refused_while_outputs_are_missing_with_the_reason(staff):
    study = StudyFactory()
    scene_a, scene_b = SceneFactory(study=study, name="a"), SceneFactory(study=study, name="b")
    method = MethodFactory(study=study, name="TeamAlpha")
    OutputFactory(method=method, scene=scene_a)
    response = staff.post(f"/admin/studies/study/{study.pk}/open/", follow=True)
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT
    assert "cannot be opened: 1 output(s) are missing: TeamAlpha / b" in response.content.decode()

    OutputFactory(method=method, scene=scene_b)
    staff.post(f"/admin/studies/study/{study.pk}/open/")
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN and study.opened_at is not None


def test_open_then_close_and_get_is_not_allowed(staff):
    study = StudyFactory()
    OutputFactory(method__study=study)
    assert staff.get(f"/admin/studies/study/{study.pk}/open/").status_code == 405
    staff.post(f"/admin/studies/study/{study.pk}/open/")
    staff.post(f"/admin/studies/study/{study.pk}/close/")
    study.refresh_from_db()
    assert study.status == Study.Status.CLOSED and study.closed_at is not None


def test_non_staff_cannot_reach_the_import_page(client, django_user_model):
    study = StudyFactory()
    user = django_user_model.objects.create_user("rater", password="pw-rater-123")
    client.force_login(user)
    response = client.get(f"/admin/studies/study/{study.pk}/import/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_import_help_shows_its_placeholders_escaped(staff):
    study = StudyFactory()
    page = staff.get(f"/admin/studies/study/{study.pk}/import/").content.decode()
    help_text = page[page.index('class="helptext"') :][:400]
    assert "references/&lt;scene&gt;.png" in help_text
    assert "methods/&lt;method&gt;/&lt;scene&gt;.png" in help_text
    assert "<scene>" not in page


def test_view_site_leads_to_the_study_list(staff):
    page = staff.get("/admin/").content.decode()
    assert '<a href="/admin/studies/study/">View site</a>' in page
    assert staff.get("/admin/studies/study/").status_code == 200
