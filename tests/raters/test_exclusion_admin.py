"""Excluding raters and sessions from the analysis in the admin: a reason is required,
the votes stay stored, and the action can be undone."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from raters.models import Rater, Rating, Session
from raters.payments import study_payment_rows
from tests.factories import RaterFactory, RatingFactory, SessionFactory, StudyFactory, TrialFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def organizer(client):
    client.force_login(get_user_model().objects.create_superuser("org", password="pw"))
    return client


def test_rater_excluded_with_a_reason_marks_every_session_and_keeps_the_votes(organizer) -> None:
    rater = RaterFactory(external_id="tester")
    sessions = [SessionFactory(study=StudyFactory(), rater=rater) for _ in range(2)]
    RatingFactory(trial=TrialFactory(session=sessions[0]), score=3)
    url = reverse("admin:raters_rater_changelist")
    form = {"action": "exclude_from_analysis", "_selected_action": [rater.pk]}
    page = organizer.post(url, form)
    assert page.status_code == 200 and "tester" in page.content.decode()  # asks for the reason first
    assert Rater.objects.get(pk=rater.pk).excluded_reason == ""
    assert organizer.post(url, {**form, "apply": "1", "reason": "organizer's own test"}).status_code == 302
    assert Rater.objects.get(pk=rater.pk).excluded_reason == "organizer's own test"
    assert Rating.objects.filter(trial__session__rater=rater).count() == 1
    for session in sessions:
        row = study_payment_rows(study=session.study)[0]
        assert row["excluded_by_hand"] == "organizer's own test"
    listing = organizer.get(reverse("admin:raters_session_changelist"), {"excluded": "no"}).content.decode()
    assert "rater: organizer" not in listing

    organizer.post(url, {"action": "include_in_analysis", "_selected_action": [rater.pk]})
    assert Rater.objects.get(pk=rater.pk).excluded_reason == ""


def test_staff_without_change_permission_cannot_exclude(client) -> None:
    staff = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_session", content_type__app_label="raters"))
    client.force_login(staff)
    session = SessionFactory()
    response = client.post(
        reverse("admin:raters_session_changelist"),
        {"action": "exclude_from_analysis", "_selected_action": [session.pk], "apply": "1", "reason": "x"},
    )
    assert response.status_code in (200, 302)
    assert Session.objects.get(pk=session.pk).excluded_reason == ""
