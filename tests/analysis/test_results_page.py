from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils.html import escape

from analysis.models import AnalysisRun
from analysis.services import analysis_run_now
from tests.factories import (
    MethodFactory,
    OutputFactory,
    RaterFactory,
    RatingFactory,
    SceneFactory,
    SessionFactory,
    StudyFactory,
    TrialFactory,
)

pytestmark = pytest.mark.django_db


SCORES = {"Team Alpha": [5, 4, 5, 4, 5, 5], "Team Beta": [2, 3, 2, 1, 2, 2]}


@pytest.fixture
def study():
    study = StudyFactory(slug="page", title="Page study", ratings_per_output=4)
    scenes = [SceneFactory(study=study, name=f"s{i}", reference=None) for i in range(2)]
    sessions = [SessionFactory(study=study, rater=RaterFactory(external_id=f"r{i}")) for i in range(3)]
    for method_name, scores in SCORES.items():
        method = MethodFactory(study=study, name=method_name)
        for scene_index, scene in enumerate(scenes):
            output = OutputFactory(method=method, scene=scene, image=None, psnr=28.0 + scene_index, ssim=0.9)
            for rater_index, session in enumerate(sessions):
                RatingFactory(
                    trial=TrialFactory(session=session, output=output),
                    score=scores[scene_index * 3 + rater_index],
                )
    return study


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("organizer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="add_analysisrun"))
    client.force_login(user)
    return client


def url(study) -> str:
    return reverse("analysis:study-results", kwargs={"slug": study.slug})


def test_anonymous_is_sent_to_the_login_page(client, study) -> None:
    response = client.get(url(study))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_logged_in_non_staff_is_refused(client, study) -> None:
    client.force_login(get_user_model().objects.create_user("rater", password="pw"))
    response = client.get(url(study))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_staff_sees_coverage_before_any_run(staff_client, study) -> None:
    response = staff_client.get(url(study))
    assert response.status_code == 200
    html = response.content.decode()
    assert "No finished analysis yet" in html
    # 4 outputs with 3 votes each, target 4: all below target.
    assert response.context["coverage"].n_below_target == 4
    assert response.context["coverage"].median == 3


def test_staff_sees_the_leaderboard_of_the_latest_run(staff_client, study) -> None:
    run = analysis_run_now(study=study, params={"n_boot": 100})
    response = staff_client.get(url(study))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="leaderboard"' in html
    assert html.index("Team Alpha") < html.index("Team Beta")
    assert "4.67" in html  # MOS of Team Alpha: mean of 4.67 and 4.67
    assert f"Analysis run {run.number}" in html
    assert "method-mos" in html  # estimator named on the page
    for name in ("leaderboard.csv", "ratings.csv", "raters.csv", "leaderboard.tex", "run.json", "mos.svg"):
        assert reverse("analysis:run-file", args=[study.slug, run.pk, name]) in html


def test_run_analysis_button_queues_a_run_that_completes_eagerly(
    staff_client, study, django_capture_on_commit_callbacks, eager_celery
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff_client.post(reverse("analysis:study-run", kwargs={"slug": study.slug}))
    assert response.status_code == 302
    assert len(callbacks) == 1
    run = AnalysisRun.objects.get()
    assert run.status == AnalysisRun.Status.DONE, run.error
    assert run.n_votes == 12
    assert run.results["tables"]["leaderboard"]["records"][0]["method"] == "Team Alpha"


def test_staff_without_the_analysis_permission_cannot_run_one(client, study) -> None:
    client.force_login(get_user_model().objects.create_user("helper", password="pw", is_staff=True))
    response = client.post(reverse("analysis:study-run", kwargs={"slug": study.slug}), follow=True)
    assert "needs the permission" in response.content.decode()
    assert not AnalysisRun.objects.exists()


def test_run_analysis_is_post_only_and_staff_only(client, staff_client, study) -> None:
    run_url = reverse("analysis:study-run", kwargs={"slug": study.slug})
    assert staff_client.get(run_url).status_code == 405
    client.logout()
    assert client.post(run_url).status_code == 302
    assert not AnalysisRun.objects.exists()


def test_downloads_serve_the_stored_run(staff_client, client, study) -> None:
    run = analysis_run_now(study=study, params={"n_boot": 100})
    response = staff_client.get(reverse("analysis:run-file", args=[study.slug, run.pk, "leaderboard.csv"]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.content.decode().splitlines()[1].split(",")[1] == "Team Alpha"
    png = staff_client.get(reverse("analysis:run-file", args=[study.slug, run.pk, "mos.png"]))
    assert png.content.startswith(b"\x89PNG")
    archive = staff_client.get(reverse("analysis:run-zip", args=[study.slug, run.pk]))
    assert archive.status_code == 200 and archive.content.startswith(b"PK")
    missing = staff_client.get(reverse("analysis:run-file", args=[study.slug, run.pk, "secrets.txt"]))
    assert missing.status_code == 404
    staff_client.logout()
    anonymous = client.get(reverse("analysis:run-file", args=[study.slug, run.pk, "leaderboard.csv"]))
    assert anonymous.status_code == 302


def test_results_page_names_both_questions_ranks_ties_raters_used_and_the_p910_fit(staff_client, close_study) -> None:
    run = analysis_run_now(study=close_study, params={"n_boot": 100})
    board = {r["method"]: r for r in run.results["tables"]["leaderboard"]["records"]}
    html = staff_client.get(url(close_study)).content.decode()
    # both questions with the estimand stored in the run
    assert 'id="question-test"' in html and "estimand: test set" in html
    assert 'id="question-new"' in html and "estimand: new scenes" in html
    assert board["Alpha"]["estimand_t_scenes"] == "new scenes, these raters"
    # each team's rank range for each question, as stored; the close pair shares a range
    assert board["Alpha"]["rank_display"] == "1-2" and board["Beta"]["rank_display"].startswith("1-")
    for team in ("Alpha", "Beta", "Gamma"):
        row = html[html.index(f"<td>{team}") :]
        row = row[: row.index("</tr>")]
        assert f'<td class="num rank">{board[team]["rank_display"]}</td>' in row
        assert f'<td class="num rank-new">{board[team]["rank_display_new_scenes"]}</td>' in row
    # the set tied with the winner, as stored
    tied = [m for m in ("Alpha", "Beta", "Gamma") if board[m]["tied_with_winner"]]
    assert tied == ["Alpha", "Beta"]
    assert "Not separable from the winner on this test set: <strong>Alpha, Beta</strong>" in html
    # the control failures leave 6 of 13 raters (the others vote with the same spread:
    # the inconsistency rule keeps them all): said so, and the fewer-than-half warning
    # is on the page
    assert board["Alpha"]["n_raters_used"] == 6
    assert "rests on <strong>6 of 13 raters</strong> (7 excluded by screening)" in html
    assert "rest on 6 of 13 raters, fewer than half" in html
    # P.910 convergence of both fits with their iteration counts
    fits = run.estimators["tables"]["p910_fit"]["params"]
    for label, name in (("screened raters", "p910"), ("every rater", "p910_all_raters")):
        assert f"{label}: converged in {fits[name]['n_iterations']} iterations" in html


def test_results_page_reports_a_p910_fit_that_did_not_converge(staff_client, study) -> None:
    run = analysis_run_now(study=study, params={"n_boot": 100})
    run.estimators["tables"]["p910_fit"]["params"]["p910"] = {"converged": False, "n_iterations": 1000}
    run.save(update_fields=["estimators"])
    html = staff_client.get(url(study)).content.decode()
    assert '<span class="warning">did not converge</span> in 1000 iterations' in html


def test_rater_agreement_is_on_the_page_and_in_run_json(staff_client, close_study) -> None:
    run = analysis_run_now(study=close_study, params={"n_boot": 100})
    stored = {r["measure"]: r for r in run.results["tables"]["agreement"]["records"]}
    every = {r["measure"]: r for r in run.results["tables"]["agreement_all_raters"]["records"]}
    # the three teams are far apart for the raters kept: the ranking replicates
    assert stored["split_half_ranking"]["value"] > 0.5
    assert -1 < every["krippendorff_alpha"]["value"] < 1
    html = staff_client.get(url(close_study)).content.decode()
    table = html[html.index('id="agreement"') :]
    table = table[: table.index("</table>")]
    for measure in ("split_half_ranking", "krippendorff_alpha"):
        assert escape(stored[measure]["label"]) in table
        assert f"{stored[measure]['value']:.3f}" in table
        assert f"{every[measure]['value']:.3f}" in table
    manifest = staff_client.get(reverse("analysis:run-file", args=[close_study.slug, run.pk, "run.json"])).json()
    assert manifest["agreement"]["agreement"] == run.results["tables"]["agreement"]["records"]
    assert manifest["estimators"]["tables"]["agreement"]["name"] == "rater-agreement"
    assert manifest["estimators"]["tables"]["agreement_all_raters"]["params"]["krippendorff"]
