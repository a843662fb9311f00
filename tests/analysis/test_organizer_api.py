from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from analysis.models import AnalysisRun
from analysis.services import analysis_run_now
from tests.analysis.test_results_page import study  # noqa: F401 - shared fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_api(api: APIClient) -> APIClient:
    organizer = get_user_model().objects.create_user("org", password="pw", is_staff=True)
    organizer.user_permissions.add(Permission.objects.get(codename="add_analysisrun"))
    api.force_authenticate(organizer)
    return api


def test_staff_without_the_analysis_permission_reads_results_but_runs_nothing(api, study) -> None:  # noqa: F811
    api.force_authenticate(get_user_model().objects.create_user("helper", password="pw", is_staff=True))
    assert api.get("/api/studies/page/results/").status_code == 200
    refused = api.post("/api/studies/page/analysis-runs/", {"n_boot": 200}, format="json")
    assert refused.status_code == 403 and "permission" in refused.json()["detail"]
    assert not AnalysisRun.objects.exists()


def test_a_run_cannot_ask_for_an_unbounded_bootstrap(staff_api, study) -> None:  # noqa: F811
    response = staff_api.post("/api/studies/page/analysis-runs/", {"n_boot": 100_000}, format="json")
    assert response.status_code == 400 and "n_boot" in response.json()
    assert not AnalysisRun.objects.exists()


def test_non_staff_and_anonymous_get_403(api, study) -> None:  # noqa: F811
    assert api.get("/api/studies/page/results/").status_code == 403
    assert api.post("/api/studies/page/analysis-runs/").status_code == 403
    api.force_authenticate(get_user_model().objects.create_user("rater", password="pw"))
    assert api.get("/api/studies/page/results/").status_code == 403
    assert api.get("/api/studies/page/analysis-runs/").status_code == 403
    assert api.post("/api/studies/page/analysis-runs/").status_code == 403
    assert not AnalysisRun.objects.exists()


def test_staff_gets_the_latest_results_as_json(staff_api, study) -> None:  # noqa: F811
    run = analysis_run_now(study=study, params={"n_boot": 100})
    response = staff_api.get("/api/studies/page/results/")
    assert response.status_code == 200
    body = response.json()
    assert body["run"]["id"] == run.pk
    assert body["run"]["estimators"]["tables"]["leaderboard"]["name"] == "method-mos"
    board = body["leaderboard"]
    assert [row["method"] for row in board] == ["Team Alpha", "Team Beta"]
    assert board[0]["mos"] == pytest.approx(14 / 3)
    assert board[0]["ci_method"] == "mos-rater-cluster"
    assert board[0]["estimand"] == "test set"
    assert board[0]["rank_display"] in {"1", "1-2"}
    assert {row["metric"] for row in body["correlations"]} == {"psnr", "ssim"}
    assert body["screening"]["n_raters"] == 3
    assert set(body["screening"]["excluded_by_rule"]) == {
        "bt500",
        "inconsistency",
        "straight_lining",
        "correlation",
        "controls",
    }
    assert body["coverage"]["n_votes"] == 12
    assert body["coverage"]["target"] == 4


def test_results_before_any_run_are_empty(staff_api, study) -> None:  # noqa: F811
    body = staff_api.get("/api/studies/page/results/").json()
    assert body["run"] is None
    assert body["leaderboard"] == []


@pytest.mark.django_db(transaction=True)
def test_staff_queues_a_run_that_runs_eagerly_on_commit(staff_api, study, eager_celery) -> None:  # noqa: F811
    # Real commits (transaction=True): the embedded default's eager Celery runs the task
    # when the run row commits, so the answer already shows the finished run.
    response = staff_api.post("/api/studies/page/analysis-runs/", {"n_boot": 100, "seed": 7}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "done"
    assert body["params"]["n_boot"] == 100
    assert body["params"]["seed"] == 7
    run = AnalysisRun.objects.get()
    assert run.status == AnalysisRun.Status.DONE
    listed = staff_api.get("/api/studies/page/analysis-runs/").json()
    assert [r["id"] for r in listed] == [run.pk]
    detail = staff_api.get(f"/api/studies/page/analysis-runs/{run.pk}/").json()
    assert "leaderboard" in detail["results"]["tables"]


def test_bad_parameters_are_refused(staff_api, study) -> None:  # noqa: F811
    response = staff_api.post("/api/studies/page/analysis-runs/", {"confidence": 2}, format="json")
    assert response.status_code == 400
    assert "confidence" in response.json()
    assert not AnalysisRun.objects.exists()


def test_unknown_study_is_404(staff_api) -> None:
    assert staff_api.get("/api/studies/nope/results/").status_code == 404


def test_openapi_schema_documents_the_organizer_api(staff_api) -> None:
    response = staff_api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if response["Content-Type"].startswith("application/json") else None
    text = response.content.decode()
    assert "/api/studies/{slug}/results/" in text
    assert "analysis_runs_create" in text
    if schema:
        assert "/api/studies/{slug}/analysis-runs/" in schema["paths"]


def test_schema_has_no_warnings(tmp_path) -> None:
    from django.core.management import call_command

    # Two nested serializers with one component name would silently merge in the schema.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "AnalysisRunParams" in (tmp_path / "schema.yaml").read_text()
