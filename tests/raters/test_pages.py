"""The rater's HTML pages: arrival, consent, resume, the end."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import Client

from raters import services
from raters.cookies import cookie_name
from raters.models import Session
from studies.models import Study
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study() -> Study:
    return build_study(trials_per_session=4).study


def _start(client: Client, study: Study, **params: str):
    return client.post(f"/s/{study.slug}/", {"consent": "yes", **params})


def test_entry_page_shows_the_scale_labels_and_a_consent_form(client: Client, study: Study) -> None:
    page = client.get(f"/s/{study.slug}/").content.decode()
    for level in study.scale_levels:
        assert level["label"] in page
    assert 'name="consent"' in page
    assert "1280" in page  # the small-window warning is on the page
    assert not Session.objects.exists()  # looking is not starting


def test_entry_carries_platform_parameters_into_the_form(client: Client, study: Study) -> None:
    page = client.get(f"/s/{study.slug}/?PROLIFIC_PID=abc&STUDY_ID=s9&SESSION_ID=x9").content.decode()
    assert 'name="PROLIFIC_PID" value="abc"' in page
    assert 'name="STUDY_ID" value="s9"' in page


def test_start_without_consent_shows_the_page_again(client: Client, study: Study) -> None:
    response = client.post(f"/s/{study.slug}/", {})
    assert response.status_code == 200
    assert "Please tick the box" in response.content.decode()
    assert not Session.objects.exists()


def test_consent_starts_a_session_records_the_device_and_opens_the_rating_screen(client: Client, study: Study) -> None:
    response = _start(
        client, study, viewport_width="1900", viewport_height="1000", device_pixel_ratio="2", screen_width="3840"
    )
    session = Session.objects.get()
    assert response["Location"] == f"/r/{session.token}/"
    assert client.cookies[cookie_name(study)].value == session.token
    assert (session.rater.viewport_width, session.rater.device_pixel_ratio) == (1900, 2.0)
    page = client.get(response["Location"]).content.decode()
    assert "openseadragon.min.js" in page
    assert "Comparable image quality" in page


def test_returning_platform_rater_is_sent_to_the_same_session(study: Study) -> None:
    _start(Client(), study, PROLIFIC_PID="p-1", SESSION_ID="ps-1")
    other_browser = Client()
    response = other_browser.get(f"/s/{study.slug}/?PROLIFIC_PID=p-1&SESSION_ID=ps-1")
    assert response.status_code == 302
    assert response["Location"] == f"/r/{Session.objects.get().token}/"
    _start(other_browser, study, PROLIFIC_PID="p-1", SESSION_ID="ps-1")
    assert Session.objects.count() == 1


@pytest.mark.parametrize("platform_session", [{}, {"SESSION_ID": "someone-else"}])
def test_a_platform_id_alone_does_not_open_someone_elses_session(study: Study, platform_session) -> None:
    """Prolific and MTurk ids are not secrets: another browser needs the rater's cookie or
    the same platform session, and otherwise gets a page saying so, without the session."""
    owner = Client()
    _start(owner, study, PROLIFIC_PID="p-2", SESSION_ID="ps-2")
    session = Session.objects.get()
    for trial in session.trials.all():
        services.rating_submit(session_token=session.token, trial_token=trial.token, score=3, response_ms=1)
    session.refresh_from_db()
    assert session.completion_code

    query = urlencode({"PROLIFIC_PID": "p-2", **platform_session})
    stranger = Client()
    for response in (
        stranger.get(f"/s/{study.slug}/?{query}"),
        stranger.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "p-2", **platform_session}),
    ):
        body = response.content.decode()
        assert response.status_code == 409 and "another browser" in body
        assert session.token not in body and session.completion_code not in body
        assert session.token not in response.get("Location", "")
    assert owner.get(f"/s/{study.slug}/?PROLIFIC_PID=p-2").status_code == 302  # the owner's cookie still works


def test_direct_rater_resumes_through_the_cookie(client: Client, study: Study) -> None:
    first = _start(client, study)
    again = client.get(f"/s/{study.slug}/")
    assert again["Location"] == first["Location"]
    assert Client().get(f"/s/{study.slug}/").status_code == 200  # a new browser starts afresh


def test_mturk_preview_shows_instructions_without_a_start_button(client: Client, study: Study) -> None:
    page = client.get(f"/s/{study.slug}/?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H").content.decode()
    assert "Accept the task to start" in page
    assert 'id="start-form"' not in page


def test_draft_study_is_404_and_closed_study_turns_new_raters_away(client: Client, study: Study) -> None:
    draft = build_study(status=Study.Status.DRAFT).study
    assert client.get(f"/s/{draft.slug}/").status_code == 404
    assert client.get("/s/no-such-study/").status_code == 404
    study.status = Study.Status.CLOSED
    study.save()
    assert client.get(f"/s/{study.slug}/").status_code == 410
    assert _start(client, study).status_code == 409
    assert not Session.objects.exists()


def test_malformed_platform_id_is_400(client: Client, study: Study) -> None:
    assert client.get(f"/s/{study.slug}/?PROLIFIC_PID=%3Cscript%3E").status_code == 400


def test_unknown_session_pages_are_404(client: Client) -> None:
    assert client.get("/r/nope/").status_code == 404
    assert client.get("/r/nope/done/").status_code == 404


def test_completion_page_waits_for_the_last_vote(client: Client, study: Study) -> None:
    response = _start(client, study)
    token = response["Location"].strip("/").split("/")[-1]
    assert client.get(f"/r/{token}/done/")["Location"] == f"/r/{token}/"


def test_entry_form_post_without_csrf_token_is_403(study: Study) -> None:
    strict = Client(enforce_csrf_checks=True)
    assert strict.post(f"/s/{study.slug}/", {"consent": "yes"}).status_code == 403
    assert not Session.objects.exists()
