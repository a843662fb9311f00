"""Abuse and bad input: throttling per client, what a rater cannot reach, bounded uploads."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from raters.models import Rating, Session
from studies.models import ImageAsset, Study
from tests.factories import StudyFactory
from tests.raters.conftest import build_study
from tests.studies.conftest import make_study_folder, zip_folder

pytestmark = pytest.mark.django_db


class Rater:
    """A browser: its own cookies and CSRF token, and its own client address."""

    def __init__(self, slug: str, address: str) -> None:
        self.client = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
        self.csrf = self.client.get(f"/s/{slug}/").cookies["csrftoken"].value
        self.slug = slug

    def post(self, url: str, data: object):
        return self.client.post(url, json.dumps(data), content_type="application/json", HTTP_X_CSRFTOKEN=self.csrf)

    def start(self):
        return self.post(f"/api/studies/{self.slug}/sessions/", {})

    def first_trial(self, token: str) -> str:
        return self.client.get(f"/api/sessions/{token}/next/").json()["trial"]["token"]


@pytest.fixture
def low_rates(monkeypatch):
    # DRF reads the rates once, into the class: patch them there. The clock stands still
    # mid-window, so that no window ends halfway through a test.
    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"session_start": "2/minute", "vote": "3/minute", "session": "4/minute"}
    )
    monkeypatch.setattr(ScopedRateThrottle, "timer", lambda self: 60_000_000.0 + 30)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def study() -> Study:
    return build_study(methods=3, scenes=3, slug="abuse", trials_per_session=6).study


def test_session_starts_are_throttled_per_client_address(study, low_rates):
    starts = [Rater("abuse", "198.51.100.1").start().status_code for _ in range(3)]
    assert starts[:2] == [201, 201] and starts[2] == 429
    assert Session.objects.count() == 2
    assert Rater("abuse", "198.51.100.2").start().status_code == 201  # another client is not affected


def test_votes_are_throttled_per_session_and_a_refused_vote_is_not_stored(study, low_rates):
    rater = Rater("abuse", "198.51.100.3")
    token = rater.start().json()["token"]
    trial = rater.first_trial(token)
    url = f"/api/sessions/{token}/trials/{trial}/rating/"
    answers = [rater.post(url, {"score": 5}).status_code for _ in range(3)]
    assert answers == [201, 200, 200]  # the same vote again: idempotent
    throttled = rater.post(url, {"score": 4})
    assert throttled.status_code == 429 and "Retry-After" in throttled
    assert list(Rating.objects.values_list("score", flat=True)) == [5]


def test_raters_behind_one_address_each_have_their_own_vote_budget(study, low_rates):
    """A lab or a class behind one address: each session votes at the full rate."""
    raters = [Rater("abuse", "198.51.100.8") for _ in range(2)]
    for rater in raters:
        token = rater.start().json()["token"]
        url = f"/api/sessions/{token}/trials/{rater.first_trial(token)}/rating/"
        assert [rater.post(url, {"score": 5}).status_code for _ in range(3)] == [201, 200, 200]
    assert Rating.objects.count() == 2


def test_a_sessions_reads_are_throttled_per_session(study, low_rates):
    rater = Rater("abuse", "198.51.100.9")
    token = rater.start().json()["token"]
    answers = [rater.client.get(f"/api/sessions/{token}/next/").status_code for _ in range(5)]
    assert answers == [200, 200, 200, 200, 429]
    other = Rater("abuse", "198.51.100.9")
    other_token = other.start().json()["token"]
    assert other.client.get(f"/api/sessions/{other_token}/next/").status_code == 200


def test_a_body_nested_too_deeply_gets_a_400_and_changes_nothing(study):
    rater = Rater("abuse", "198.51.100.10")
    token = rater.start().json()["token"]
    url = f"/api/sessions/{token}/trials/{rater.first_trial(token)}/rating/"
    nested = '{"score": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = rater.client.post(url, nested, content_type="application/json", HTTP_X_CSRFTOKEN=rater.csrf)
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]
    assert not Rating.objects.exists()


def test_forwarded_for_header_does_not_buy_a_new_bucket_without_a_proxy(study, low_rates):
    rater = Rater("abuse", "198.51.100.4")
    for index in range(2):
        assert (
            rater.client.post(
                f"/api/studies/{rater.slug}/sessions/",
                "{}",
                content_type="application/json",
                HTTP_X_CSRFTOKEN=rater.csrf,
                HTTP_X_FORWARDED_FOR=f"10.0.0.{index}",
            ).status_code
            == 201
        )
        rater.client.cookies.pop(f"mosaic_session_{study.pk}", None)  # a fresh browser each time
    spoofed = rater.client.post(
        f"/api/studies/{rater.slug}/sessions/",
        "{}",
        content_type="application/json",
        HTTP_X_CSRFTOKEN=rater.csrf,
        HTTP_X_FORWARDED_FOR="10.0.0.99",
    )
    assert spoofed.status_code == 429


def test_a_rater_cannot_reach_the_admin_or_the_organizer_pages_and_api(study):
    rater = Rater("abuse", "198.51.100.5")
    rater.start()
    assert rater.client.get("/admin/").status_code == 302  # to the login page
    assert rater.client.get("/admin/studies/study/").status_code == 302
    assert rater.client.get(f"/api/studies/{study.slug}/results/").status_code == 403
    assert rater.client.get(f"/api/studies/{study.slug}/analysis-runs/").status_code == 403
    assert rater.post(f"/api/studies/{study.slug}/analysis-runs/", {}).status_code == 403
    assert rater.client.get(f"/analysis/{study.slug}/results/").status_code == 302


def test_a_rater_cannot_read_or_vote_in_another_session(study):
    alice, bob = Rater("abuse", "198.51.100.6"), Rater("abuse", "198.51.100.7")
    alice_token = alice.start().json()["token"]
    bob_token = bob.start().json()["token"]
    bob_trial = bob.first_trial(bob_token)
    assert alice.post(f"/api/sessions/{alice_token}/trials/{bob_trial}/rating/", {"score": 5}).status_code == 404
    assert alice.client.get(f"/api/sessions/{alice_token[:-1]}x/next/").status_code == 404
    assert Rating.objects.count() == 0
    # What Alice's session shows names no method, scene or stored file of anyone.
    body = alice.client.get(f"/api/sessions/{alice_token}/next/").content.decode()
    assert "Team-" not in body and "Scene-Hidden" not in body and "Secret" not in body


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("organizer", "o@example.org", "pw"))
    return client


def _nothing_imported(study: Study, media_root) -> None:
    assert study.scenes.count() == 0 and study.methods.count() == 0 and ImageAsset.objects.count() == 0
    assert not any(p.is_file() for p in media_root.rglob("*"))


def test_upload_over_the_size_limit_is_refused_and_changes_nothing(staff, settings, tmp_path, media_root):
    study = StudyFactory(slug="big")
    archive = zip_folder(make_study_folder(tmp_path / "s"), tmp_path / "s.zip").read_bytes()
    settings.MOSAIC_MAX_UPLOAD_BYTES = len(archive) - 1
    response = staff.post(f"/admin/studies/study/{study.pk}/import/", {"archive": SimpleUploadedFile("s.zip", archive)})
    assert response.status_code == 200 and "the limit is" in response.content.decode()
    _nothing_imported(study, media_root)


def test_zip_that_inflates_past_the_limit_is_refused_and_changes_nothing(
    staff, settings, tmp_path, media_root, django_capture_on_commit_callbacks
):
    study = StudyFactory(slug="zipbomb")
    folder = make_study_folder(tmp_path / "s")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bomb:
        for path in sorted(folder.rglob("*.png")):
            bomb.write(path, path.relative_to(folder).as_posix())
        bomb.writestr("methods/TeamAlpha/padding.txt", b"\0" * 5_000_000)  # 5 MB of zeros: ~5 kB zipped
    settings.MOSAIC_MAX_UPLOAD_BYTES = 1_000_000
    payload = buffer.getvalue()
    assert len(payload) < settings.MOSAIC_MAX_UPLOAD_BYTES
    with django_capture_on_commit_callbacks(execute=True):  # the worker's job runs on commit
        response = staff.post(
            f"/admin/studies/study/{study.pk}/import/", {"archive": SimpleUploadedFile("b.zip", payload)}
        )
    assert response.status_code == 302
    page = staff.get(response["Location"]).content.decode()
    assert "Nothing was imported" in page and "b.zip: unpacks to more than" in page
    _nothing_imported(study, media_root)


def test_a_class_of_50_behind_one_address_completes_at_the_default_rates(monkeypatch):
    """The production defaults, not the test overlay's: 50 raters of a lab behind one NAT
    address each start a session and vote it through within the same minute."""
    from config import settings as defaults

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", defaults.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    monkeypatch.setattr(ScopedRateThrottle, "timer", lambda self: 60_000_000.0 + 30)
    cache.clear()
    build_study(methods=3, scenes=3, slug="lab", trials_per_session=4)
    for _ in range(50):
        rater = Rater("lab", "192.0.2.77")
        token = rater.start().json()["token"]
        while (trial := rater.client.get(f"/api/sessions/{token}/next/").json()["trial"]) is not None:
            assert rater.post(f"/api/sessions/{token}/trials/{trial['token']}/rating/", {"score": 3}).status_code == 201
    assert Session.objects.filter(status=Session.Status.COMPLETE).count() == 50
    cache.clear()
