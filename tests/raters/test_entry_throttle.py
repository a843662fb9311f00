"""The consent form starts sessions under the same per-client throttle as the API."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.throttling import ScopedRateThrottle

from raters.models import Session
from studies.models import Study
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def low_rates(monkeypatch):
    # DRF reads the rates once, into the class: patch them there. The clock stands still
    # mid-window, so that no window ends halfway through a test.
    monkeypatch.setattr(
        ScopedRateThrottle,
        "THROTTLE_RATES",
        {"session_start": "2/minute", "vote": "100/minute", "session": "100/minute"},
    )
    monkeypatch.setattr(ScopedRateThrottle, "timer", lambda self: 60_000_000.0 + 30)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def study() -> Study:
    return build_study(trials_per_session=4).study


def _consent(study: Study, address: str):
    # A fresh browser each time: no resume cookie, a new Prolific id.
    client = Client(REMOTE_ADDR=address)
    return client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": f"p-{Session.objects.count()}"})


def test_consent_form_starts_are_throttled_per_client_with_a_429_page(study, low_rates) -> None:
    answers = [_consent(study, "198.51.100.21") for _ in range(3)]
    assert [a.status_code for a in answers[:2]] == [302, 302]
    refused = answers[2]
    assert refused.status_code == 429
    assert "Retry-After" in refused
    assert "Too many sessions" in refused.content.decode()
    assert Session.objects.count() == 2
    # Another client is not affected.
    assert _consent(study, "198.51.100.22").status_code == 302


def test_consent_form_and_api_share_the_client_bucket(study, low_rates) -> None:
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="198.51.100.23")
    csrf = client.get(f"/s/{study.slug}/").cookies["csrftoken"].value
    for number in range(2):
        started = client.post(
            f"/api/studies/{study.slug}/sessions/",
            json.dumps({"PROLIFIC_PID": f"api-{number}"}),
            content_type="application/json",
            HTTP_X_CSRFTOKEN=csrf,
        )
        assert started.status_code == 201
    assert _consent(study, "198.51.100.23").status_code == 429
    assert Session.objects.count() == 2


def test_looking_at_the_consent_page_is_not_throttled(study, low_rates) -> None:
    client = Client(REMOTE_ADDR="198.51.100.24")
    assert [client.get(f"/s/{study.slug}/").status_code for _ in range(4)] == [200] * 4
