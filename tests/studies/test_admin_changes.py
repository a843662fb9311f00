"""The admin pages of a changing study: late team, replaced output, slug/protocol/scale."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from studies.models import Output, Study
from studies.services import study_create, study_import, study_open
from tests.factories import noise_image, png_bytes
from tests.studies.conftest import write_png, zip_folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("organizer", "o@example.org", "pw-organizer"))
    return client


@pytest.fixture
def study(study_folder) -> Study:
    study = study_create(title="Track", slug="track", ratings_per_output=7)
    study_import(study=study, source=study_folder)
    return study


def _form(staff, study: Study) -> dict:
    """The study page's form as the browser would post it back."""
    page = staff.get(f"/admin/studies/study/{study.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    for prefix in ("methods", "scenes"):
        data |= {f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0}
    data["stop_when_decided"] = "on" if data["stop_when_decided"] else ""
    return {k: v for k, v in data.items() if v != ""} | {"instructions": ""}


def test_late_team_page_of_an_open_study_warns_and_adds_the_method(
    staff, study, tmp_path, django_capture_on_commit_callbacks
):
    study = study_open(study=study)
    page = staff.get(f"/admin/studies/study/{study.pk}/methods/add/").content.decode()
    assert "coverage at zero" in page and "New sessions favour it" in page and "7 votes per output" in page
    folder = tmp_path / "late"
    for scene in ("beach", "city"):
        write_png(folder / "methods" / "TeamLate" / f"{scene}.png", noise_image(40, 30))
    archive = zip_folder(folder, tmp_path / "late.zip")
    with django_capture_on_commit_callbacks(execute=True):  # the worker's job runs on commit
        response = staff.post(
            f"/admin/studies/study/{study.pk}/methods/add/",
            {"archive": SimpleUploadedFile("late.zip", archive.read_bytes())},
        )
    text = staff.get(response["Location"]).content.decode()
    assert "Imported 0 scene(s), 1 method(s) and 2 output(s)" in text and "coverage at zero" in text
    assert study.methods.filter(name="TeamLate").exists()


def test_late_team_page_lists_every_problem_and_adds_nothing(
    staff, study, tmp_path, django_capture_on_commit_callbacks
):
    folder = tmp_path / "late"
    write_png(folder / "methods" / "TeamLate" / "beach.png", noise_image(20, 10))
    archive = zip_folder(folder, tmp_path / "late.zip")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            f"/admin/studies/study/{study.pk}/methods/add/",
            {"archive": SimpleUploadedFile("late.zip", archive.read_bytes())},
        )
    page = staff.get(response["Location"]).content.decode()
    assert "Nothing was imported: 2 problem(s)" in page
    assert "methods/TeamLate: missing the output for scene &#x27;city&#x27;" in page
    assert "20x10 differs from the reference" in page
    assert not study.methods.filter(name="TeamLate").exists()


def test_replace_page_replaces_a_draft_output_and_refuses_once_open(staff, study, django_capture_on_commit_callbacks):
    output = Output.objects.get(method__name="TeamAlpha", scene__name="beach")
    assert "Replace image" in staff.get(f"/admin/studies/output/{output.pk}/change/").content.decode()

    def replace(upload: SimpleUploadedFile) -> str:
        """Post the upload, let the worker's job run on commit, return the page it leads to."""
        with django_capture_on_commit_callbacks(execute=True):
            response = staff.post(f"/admin/studies/output/{output.pk}/replace/", {"image": upload})
        if response.status_code != 302:
            return response.content.decode()
        return staff.get(response["Location"]).content.decode()

    bad = replace(SimpleUploadedFile("fix.png", png_bytes(noise_image(10, 10))))
    assert "Nothing was replaced" in bad and "fix.png: 10x10 differs from the reference&#x27;s 40x30" in bad
    not_image = replace(SimpleUploadedFile("notes.txt", b"x"))
    assert "notes.txt: .txt is not an accepted format" in not_image
    old = output.image_id
    done = replace(SimpleUploadedFile("fix.png", png_bytes(noise_image(40, 30, seed=9))))
    assert "The image of TeamAlpha / beach was replaced" in done
    output.refresh_from_db()
    assert output.image_id != old

    study_open(study=study)
    page = staff.get(f"/admin/studies/output/{output.pk}/replace/").content.decode()
    assert "can only be replaced before the study opens" in page
    refused = replace(SimpleUploadedFile("fix.png", png_bytes(noise_image(40, 30, seed=3))))
    assert "can only be replaced before the study opens" in refused


def test_slug_protocol_and_scale_change_in_a_draft_and_the_rater_link_follows(staff, study):
    data = _form(staff, study) | {"slug": "track-2", "protocol": "single", "scale_preset": "pirm4"}
    response = staff.post(f"/admin/studies/study/{study.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    study.refresh_from_db()
    assert (study.slug, study.protocol, study.scale_preset) == ("track-2", "single", "pirm4")
    assert [lv["score"] for lv in study.scale_levels] == [4, 3, 2, 1]
    page = staff.get(f"/admin/studies/study/{study.pk}/change/").content.decode()
    assert "/s/track-2/" in page and "/s/track/" not in page
    study_open(study=study)
    assert staff.get("/s/track-2/").status_code == 200
    assert staff.get("/s/track/").status_code == 404


def test_protocol_input_is_refused_while_scenes_have_no_input_photo(staff, study):
    data = _form(staff, study) | {"protocol": "input"}
    page = staff.post(f"/admin/studies/study/{study.pk}/change/", data).content.decode()
    assert "2 scene(s) have none: beach, city" in page
    study.refresh_from_db()
    assert study.protocol == "reference"


def test_slug_protocol_and_scale_are_read_only_with_the_reason_once_opened(staff, study):
    study = study_open(study=study)
    data = _form(staff, study) | {"slug": "other", "protocol": "single", "scale_preset": "pirm4"}
    page = staff.get(f"/admin/studies/study/{study.pk}/change/").content.decode()
    assert "fixed since the study opened" in page
    assert 'name="slug"' not in page and 'name="protocol"' not in page
    staff.post(f"/admin/studies/study/{study.pk}/change/", data)
    study.refresh_from_db()
    assert (study.slug, study.protocol, study.scale_preset) == ("track", "reference", "aim5")
