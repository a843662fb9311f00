"""The live decision in the organizer API and on the admin study page, and the planner form."""

from __future__ import annotations

import random

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from raters import services
from raters.platforms import RaterIdentity
from studies.models import Study
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db

QUALITY = {"Best": 4.8, "Middle": 3.0, "Worst": 1.2}


@pytest.fixture
def voted(settings) -> Study:
    settings.MOSAIC_ALLOCATION_REFRESH_SECONDS = 0
    cache.clear()
    setup = build_study(method_names=list(QUALITY), scenes=3, trials_per_session=6, slug="live")
    rng = random.Random(0)
    for index in range(6):
        session, _ = services.session_start(study=setup.study, identity=RaterIdentity(external_id=f"p{index}"))
        for trial in session.trials.select_related("output__method"):
            quality = QUALITY.get(trial.output.method.name, 3.0)
            score = min(5, max(1, round(quality + rng.gauss(0, 0.5))))
            services.rating_submit(session_token=session.token, trial_token=trial.token, score=score, response_ms=1)
    return setup.study


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("org", "org@example.org", "pw")
    client.force_login(user)
    return client


def test_decision_api_is_staff_only(voted):
    api = APIClient()
    assert api.get("/api/studies/live/decision/").status_code == 403
    api.force_authenticate(get_user_model().objects.create_user("rater", password="pw"))
    assert api.get("/api/studies/live/decision/").status_code == 403


def test_decision_api_gives_methods_and_pair_states(voted):
    api = APIClient()
    api.force_authenticate(get_user_model().objects.create_user("org", password="pw", is_staff=True))
    body = api.get("/api/studies/live/decision/").json()
    assert [m["method"] for m in body["methods"]] == ["Best", "Middle", "Worst"]
    assert [(p["method_a"], p["method_b"]) for p in body["pairs"]] == [("Best", "Middle"), ("Middle", "Worst")]
    assert {p["state"] for p in body["pairs"]} <= {"separated", "equivalent", "undecided"}
    assert body["n_votes"] == 36
    assert body["smallest_difference"] == pytest.approx(0.1)
    for pair in body["pairs"]:
        assert (pair["votes_to_decide"] is None) == (pair["state"] != "undecided")
    assert api.get("/api/studies/nothing/decision/").status_code == 404


def test_study_page_shows_the_decision_refreshed_by_a_static_script(staff, voted):
    page = staff.get(reverse("admin:studies_study_change", args=[voted.pk]))
    html = page.content.decode()
    image = reverse("admin:studies_study_decision", args=[voted.pk])
    assert f'id="live-decision" src="{image}"' in html
    assert "studies/decision.js" in html
    assert "<script>" not in html.replace(" ", "")  # nothing inline
    figure = staff.get(image)
    assert figure["Content-Type"] == "image/png"
    assert figure.content.startswith(b"\x89PNG")
    assert "no-store" in figure["Cache-Control"]


def test_decision_figure_is_for_staff_only(client, voted):
    response = client.get(reverse("admin:studies_study_decision", args=[voted.pk]))
    assert response.status_code == 302  # to the admin login


def test_planner_form_reports_raters_for_both_policies(staff, voted):
    url = reverse("admin:studies_study_plan", args=[voted.pk])
    params = {
        "difference": 1.0,
        "rater_bias_sd": 0.2,
        "inconsistency_low": 0.3,
        "inconsistency_high": 0.6,
        "scene_sd": 0.2,
        "reps": 2,
    }
    html = staff.get(url, params).content.decode()
    assert 'id="plan"' in html
    assert "uniform" in html and "adaptive" in html


def test_planner_form_refuses_bad_input(staff, voted):
    url = reverse("admin:studies_study_plan", args=[voted.pk])
    html = staff.get(url, {"difference": -1, "rater_bias_sd": 0.2, "inconsistency_low": 0.5,
                           "inconsistency_high": 0.3, "scene_sd": 0.2, "reps": 2}).content.decode()  # fmt: skip
    assert 'id="plan"' not in html
    assert "errorlist" in html


def test_planner_form_says_when_the_assumed_methods_leave_the_scale(staff, voted):
    url = reverse("admin:studies_study_plan", args=[voted.pk])
    html = staff.get(url, {"difference": 2.0, "rater_bias_sd": 0.2, "inconsistency_low": 0.3,
                           "inconsistency_high": 0.6, "scene_sd": 0.2, "reps": 2}).content.decode()  # fmt: skip
    assert 'id="plan"' not in html
    assert "beyond the scale 1-5: plan for a smaller difference" in html


def _change_form_data(staff, study: Study) -> tuple[str, dict]:
    url = reverse("admin:studies_study_change", args=[study.pk])
    form = staff.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name in form.fields}
    data |= {f"{prefix}-{key}": 0 for prefix in ("methods", "scenes") for key in ("TOTAL_FORMS", "INITIAL_FORMS")}
    return url, data


def test_negative_smallest_difference_is_refused_in_the_admin(staff):
    study = build_study(method_names=["A", "B"], scenes=1, status=Study.Status.DRAFT).study
    url, data = _change_form_data(staff, study)
    response = staff.post(url, data | {"smallest_difference": -0.1})
    assert response.status_code == 200
    assert "Must be a positive MOS difference" in response.content.decode()
    study.refresh_from_db()
    assert study.smallest_difference == pytest.approx(0.1)


def test_smallest_difference_is_fixed_once_the_study_is_open(staff, voted):
    url, data = _change_form_data(staff, voted)
    assert "smallest_difference" not in data
    response = staff.post(url, data | {"smallest_difference": 0.5})
    assert response.status_code == 302
    voted.refresh_from_db()
    assert voted.smallest_difference == pytest.approx(0.1)
