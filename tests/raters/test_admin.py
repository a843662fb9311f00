from __future__ import annotations

import pytest

from raters.models import Rating
from tests.factories import RatingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("org", "o@example.org", "pw-organizer"))
    return client


def test_votes_are_listed_in_the_admin_with_method_and_scene(staff):
    rating = RatingFactory(score=3, trial__output__method__name="TeamZeta")
    page = staff.get("/admin/raters/rating/").content.decode()
    assert "TeamZeta" in page and rating.trial.output.scene.name in page


def test_votes_cannot_be_changed_or_deleted_in_the_admin(staff):
    rating = RatingFactory(score=3)
    url = f"/admin/raters/rating/{rating.pk}/change/"
    assert staff.post(url, {"score": 5}).status_code == 403
    assert staff.post(f"/admin/raters/rating/{rating.pk}/delete/", {"post": "yes"}).status_code == 403
    rating.refresh_from_db()
    assert rating.score == 3 and Rating.objects.count() == 1


def test_session_page_shows_its_trials_and_votes(staff):
    rating = RatingFactory(score=2)
    page = staff.get(f"/admin/raters/session/{rating.trial.session_id}/change/").content.decode()
    assert rating.trial.output.method.name in page
