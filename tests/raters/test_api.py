"""The rater API, with CSRF enforced as in a browser."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from raters import services
from raters.models import Rating, Session, Trial
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db


class Rater:
    """A browser-like client: the CSRF cookie from the study page, the header on POST."""

    def __init__(self, slug: str) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.slug = slug
        page = self.client.get(f"/s/{slug}/")
        self.csrf = page.cookies["csrftoken"].value

    def post(self, url: str, data: object, **extra: str):
        return self.client.post(
            url, json.dumps(data), content_type="application/json", HTTP_X_CSRFTOKEN=self.csrf, **extra
        )

    def start(self, **params: object):
        return self.post(f"/api/studies/{self.slug}/sessions/", params)

    def next(self, token: str):
        return self.client.get(f"/api/sessions/{token}/next/")

    def vote(self, token: str, trial: str, score: object, response_ms: object = 1200):
        return self.post(f"/api/sessions/{token}/trials/{trial}/rating/", {"score": score, "response_ms": response_ms})


@pytest.fixture
def study():
    return build_study(trials_per_session=6, control_rate=0.2).study


@pytest.fixture
def rater(study) -> Rater:
    return Rater(study.slug)


@pytest.fixture
def session_token(rater: Rater) -> str:
    response = rater.start()
    assert response.status_code == 201, response.content
    return response.json()["token"]


def _first_trial(rater: Rater, token: str) -> dict:
    return rater.next(token).json()["trial"]


def test_start_creates_a_session_and_resumes_it_for_the_same_prolific_id(rater: Rater) -> None:
    params = {"PROLIFIC_PID": "5f1a2b3c4d5e6f7a8b9c0d1e", "STUDY_ID": "S1", "SESSION_ID": "X1"}
    first = rater.start(**params)
    assert first.status_code == 201
    # A different browser (no cookie) with the same id gets the same session back.
    again = Rater(rater.slug).start(**params)
    assert again.status_code == 200
    assert again.json()["token"] == first.json()["token"]
    assert Session.objects.count() == 1
    session = Session.objects.get()
    assert (session.platform_study_id, session.platform_session_id) == ("S1", "X1")
    assert session.rater.platform == "prolific"


def test_mturk_worker_is_recognised_by_worker_id(rater: Rater) -> None:
    params = {"workerId": "A1B2C3", "assignmentId": "ASG1", "hitId": "HIT1"}
    assert rater.start(**params).status_code == 201
    assert Rater(rater.slug).start(**params).status_code == 200
    assert Session.objects.get().rater.platform == "mturk"


def test_direct_rater_resumes_through_the_cookie_and_a_new_browser_gets_a_new_session(rater: Rater) -> None:
    first = rater.start().json()["token"]
    assert rater.start().json()["token"] == first
    assert Rater(rater.slug).start().json()["token"] != first


def test_start_records_the_device(rater: Rater) -> None:
    device = {
        "screen_width": 2560,
        "screen_height": 1440,
        "viewport_width": 1900,
        "viewport_height": 1000,
        "device_pixel_ratio": 1.5,
    }
    rater.post(f"/api/studies/{rater.slug}/sessions/", {"device": device}, HTTP_USER_AGENT="TestBrowser/1.0")
    stored = Session.objects.get().rater
    assert (stored.screen_width, stored.viewport_height, stored.device_pixel_ratio) == (2560, 1000, 1.5)
    assert stored.user_agent == "TestBrowser/1.0"


def test_device_endpoint_updates_the_rater(rater: Rater, session_token: str) -> None:
    response = rater.post(f"/api/sessions/{session_token}/device/", {"viewport_width": 1280, "viewport_height": 700})
    assert response.status_code == 204
    assert Session.objects.get().rater.viewport_height == 700


def test_start_on_unknown_study_is_404_and_on_closed_study_is_409(rater: Rater, study) -> None:
    assert rater.post("/api/studies/no-such-study/sessions/", {}).status_code == 404
    study.status = "closed"
    study.save()
    assert rater.start().status_code == 409


def test_next_returns_the_first_unanswered_trial_and_the_one_after(rater: Rater, session_token: str) -> None:
    body = rater.next(session_token).json()
    assert body["trial"]["phase"] == "training"
    assert body["trial"]["number"] == 1
    assert body["upcoming"]["number"] == 2
    assert body["later"]["number"] == 3
    assert [pane["label"] for pane in body["trial"]["panes"]] == ["Reference (DSLR)", "Result"]
    # Asking again without answering resumes at the same trial (a reload).
    assert rater.next(session_token).json()["trial"]["token"] == body["trial"]["token"]


def test_vote_is_stored_with_response_time_and_201(rater: Rater, session_token: str) -> None:
    trial = _first_trial(rater, session_token)
    response = rater.vote(session_token, trial["token"], 5, 2345)
    assert response.status_code == 201
    body = response.json()
    assert (body["score"], body["response_ms"]) == (5, 2345)
    rating = Rating.objects.get()
    assert (rating.score, rating.response_ms, rating.trial.token) == (5, 2345, trial["token"])


def test_training_vote_gets_feedback_with_the_expected_range(rater: Rater, session_token: str) -> None:
    trial = _first_trial(rater, session_token)  # the hidden reference comes first
    body = rater.vote(session_token, trial["token"], 1).json()
    assert body["feedback"]["ok"] is False
    assert sorted(level["score"] for level in body["feedback"]["expected"]) == [4, 5]
    assert Rating.objects.get().trial.kind == Trial.Kind.TRAINING


def test_same_vote_again_returns_200_with_the_stored_vote(rater: Rater, session_token: str) -> None:
    trial = _first_trial(rater, session_token)
    first = rater.vote(session_token, trial["token"], 4, 1000)
    again = rater.vote(session_token, trial["token"], 4, 9999)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["response_ms"] == 1000
    assert again.json()["created_at"] == first.json()["created_at"]
    assert Rating.objects.count() == 1


def test_different_score_for_an_answered_trial_is_409_and_changes_nothing(rater: Rater, session_token: str) -> None:
    trial = _first_trial(rater, session_token)
    rater.vote(session_token, trial["token"], 4)
    response = rater.vote(session_token, trial["token"], 2)
    assert response.status_code == 409
    assert response.json()["rating"]["score"] == 4
    assert list(Rating.objects.values_list("score", flat=True)) == [4]


@pytest.mark.parametrize("score", [0, 6, -1, "abc", "4", 4.5, None, True, [4]])
def test_score_outside_the_scale_or_not_an_integer_is_400_naming_the_field(
    rater: Rater, session_token: str, score: object
) -> None:
    trial = _first_trial(rater, session_token)
    response = rater.vote(session_token, trial["token"], score)
    assert response.status_code == 400
    assert "score" in response.json()
    assert not Rating.objects.exists()


def test_missing_score_is_400(rater: Rater, session_token: str) -> None:
    trial = _first_trial(rater, session_token)
    response = rater.post(f"/api/sessions/{session_token}/trials/{trial['token']}/rating/", {})
    assert response.status_code == 400
    assert "score" in response.json()


def test_negative_response_time_is_400_naming_the_field(rater: Rater, session_token: str) -> None:
    trial = _first_trial(rater, session_token)
    response = rater.vote(session_token, trial["token"], 3, -5)
    assert response.status_code == 400
    assert "response_ms" in response.json()


def test_trial_of_another_session_is_404(rater: Rater, session_token: str, study) -> None:
    other = Rater(study.slug)
    other_token = other.start().json()["token"]
    foreign = _first_trial(other, other_token)
    assert rater.vote(session_token, foreign["token"], 4).status_code == 404
    assert not Rating.objects.exists()


def test_unknown_session_or_trial_token_is_404(rater: Rater, session_token: str) -> None:
    trial = _first_trial(rater, session_token)
    assert rater.vote("no-such-session", trial["token"], 4).status_code == 404
    assert rater.vote(session_token, "no-such-trial", 4).status_code == 404
    assert rater.next("no-such-session").status_code == 404
    assert rater.client.get("/api/sessions/no-such-session/").status_code == 404


def test_post_without_csrf_token_is_403_for_anonymous_raters(rater: Rater, session_token: str, study) -> None:
    trial = _first_trial(rater, session_token)
    url = f"/api/sessions/{session_token}/trials/{trial['token']}/rating/"
    response = rater.client.post(url, json.dumps({"score": 4}), content_type="application/json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    fresh = Client(enforce_csrf_checks=True)
    assert fresh.post(f"/api/studies/{study.slug}/sessions/", {}, content_type="application/json").status_code == 403
    assert not Rating.objects.exists()


def test_walking_the_session_completes_it_with_a_code_and_exactly_one_vote_per_trial(
    rater: Rater, session_token: str, study
) -> None:
    study.completion_redirect_url = "https://app.prolific.com/submissions/complete?cc={code}"
    study.save()
    seen = []
    while (trial := rater.next(session_token).json()["trial"]) is not None:
        seen.append(trial["token"])
        assert rater.vote(session_token, trial["token"], 3).status_code == 201
    session = Session.objects.get()
    assert session.status == Session.Status.COMPLETE
    assert len(seen) == session.trials.count() == Rating.objects.count()
    summary = rater.client.get(f"/api/sessions/{session_token}/").json()
    assert summary["completion_code"] == session.completion_code
    assert summary["progress"] == {"answered": 6, "total": 6, "training_answered": 3, "training_total": 3}
    done = rater.client.get(summary["completion_page"])
    assert session.completion_code in done.content.decode()
    assert f"cc={session.completion_code}" in done.content.decode()


def test_schema_documents_the_rater_api() -> None:
    client = Client()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/sessions/{token}/trials/{trial_token}/rating/" in paths
    assert "/api/studies/{slug}/sessions/" in paths
    assert client.get("/api/docs/").status_code == 200


def test_next_after_a_long_absence_shows_the_fresh_trials_the_session_was_given(study, rater, settings) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.MOSAIC_SESSION_TIMEOUT_MINUTES = 30
    token = rater.start(PROLIFIC_PID="away").json()["token"]
    first = rater.next(token).json()["trial"]["token"]
    released = services.sessions_release_abandoned(study=study, now=timezone.now() + timedelta(minutes=45))
    assert released == 1

    answer = rater.next(token).json()
    live = Trial.objects.filter(session__token=token, released_at__isnull=True)
    # Training trials are never released: the first one is still where the rater resumes.
    assert answer["trial"]["token"] == first
    assert answer["session"]["status"] == Session.Status.TRAINING
    assert answer["session"]["progress"]["total"] == study.trials_per_session
    counted = live.exclude(kind=Trial.Kind.TRAINING)
    assert counted.count() == study.trials_per_session, "the released trials were replaced"
    # Walking on reaches the fresh trials, never a released one.
    seen = []
    while (trial := rater.next(token).json()["trial"]) is not None:
        seen.append(trial["token"])
        assert rater.vote(token, trial["token"], 3).status_code == 201
    assert set(seen) == set(live.values_list("token", flat=True))
