"""The results page and exports as a challenge report: exclusions by hand, run numbers,
baselines, the per-image heatmap, the stale-results notice and "download everything"."""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from analysis.frames import ratings_frame
from analysis.services import analysis_run_now
from analysis.stats import method_mos
from raters.models import Rating, Session
from studies.models import Method
from tests.factories import RatingFactory, TrialFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def organizer(client):
    client.force_login(get_user_model().objects.create_superuser("org", password="pw"))
    return client


def _page(client, study) -> str:
    response = client.get(reverse("analysis:study-results", kwargs={"slug": study.slug}))
    assert response.status_code == 200
    return response.content.decode()


def test_session_excluded_in_the_admin_leaves_every_table_and_is_listed(organizer, close_study) -> None:
    session = Session.objects.get(study=close_study, rater__external_id="r00")
    url = reverse("admin:raters_session_changelist")
    form = {"action": "exclude_from_analysis", "_selected_action": [session.pk]}
    # Without a reason nothing changes and the form asks again.
    response = organizer.post(url, {**form, "apply": "1", "reason": "  "})
    assert response.status_code == 200 and "Give a reason" in response.content.decode()
    session.refresh_from_db()
    assert session.excluded_reason == ""
    response = organizer.post(url, {**form, "apply": "1", "reason": "pilot run"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.excluded_reason == "pilot run"

    run = analysis_run_now(study=close_study, params={"n_boot": 100})
    kept = ratings_frame(close_study)
    assert "r00" not in set(kept["rater"]) and run.n_votes == len(kept)
    board = {r["method"]: r for r in run.results["tables"]["leaderboard_all_raters"]["records"]}
    expected = method_mos(kept).set_index("method")["mos"]
    assert board["Alpha"]["mos"] == pytest.approx(expected["Alpha"])
    raters = {r["rater"] for r in run.results["tables"]["raters"]["records"]}
    assert "r00" not in raters and len(raters) == 12

    page = _page(organizer, close_study)
    table = page[page.index('id="manual-exclusions"') :]
    assert "pilot run" in table[: table.index("</table>")] and "r00" in table[: table.index("</table>")]
    exclusions = organizer.get(
        reverse("analysis:run-file", kwargs={"slug": close_study.slug, "run_id": run.pk, "name": "exclusions.csv"})
    ).content.decode()
    assert "pilot run" in exclusions and ",16\n" in exclusions  # 4 methods x 4 scenes left out
    from raters.payments import study_payment_rows

    row = next(r for r in study_payment_rows(study=close_study) if r["session"] == session.pk)
    assert row["excluded_by_hand"] == "pilot run" and "excluded from the analysis by hand" in row["reason"]


def test_run_numbers_count_within_the_study(organizer, close_study) -> None:
    first = analysis_run_now(study=close_study, params={"n_boot": 100})
    second = analysis_run_now(study=close_study, params={"n_boot": 100})
    assert (first.number, second.number) == (1, 2)
    assert "Analysis run 2 of this study" in _page(organizer, close_study)
    response = organizer.get(reverse("analysis:run-zip", kwargs={"slug": close_study.slug, "run_id": second.pk}))
    assert "close-run2-results.zip" in response["Content-Disposition"]
    api = organizer.get(reverse("analysis:api-results", kwargs={"slug": close_study.slug})).json()
    assert api["run"]["number"] == 2


def test_votes_after_the_run_show_a_stale_notice_with_their_count(organizer, close_study) -> None:
    analysis_run_now(study=close_study, params={"n_boot": 100})
    assert 'id="stale-notice"' not in _page(organizer, close_study)
    output = Method.objects.get(study=close_study, name="Alpha").outputs.first()
    for session in Session.objects.filter(study=close_study)[:3]:
        RatingFactory(trial=TrialFactory(session=session, output=output), score=4)
    page = _page(organizer, close_study)
    assert "3 votes arrived after run 1" in page
    assert (
        organizer.get(reverse("analysis:api-results", kwargs={"slug": close_study.slug})).json()["votes_after_run"] == 3
    )


def test_baselines_are_marked_and_ranked_only_when_asked(organizer, close_study) -> None:
    Method.objects.filter(study=close_study, name="Gamma").update(kind=Method.Kind.BASELINE)
    run = analysis_run_now(study=close_study, params={"n_boot": 100})
    board = {r["method"]: r for r in run.results["tables"]["leaderboard"]["records"]}
    assert board["Gamma"]["rank"] is None and board["Gamma"]["ranked"] is False
    assert board["Alpha"]["ranked"] is True
    page = _page(organizer, close_study)
    assert "baseline, not ranked" in page
    latex = organizer.get(
        reverse("analysis:run-file", kwargs={"slug": close_study.slug, "run_id": run.pk, "name": "leaderboard.tex"})
    ).content.decode()
    assert r"Gamma$^\dagger$ &" in latex and "Baseline, not ranked" in latex
    svg = organizer.get(
        reverse("analysis:run-file", kwargs={"slug": close_study.slug, "run_id": run.pk, "name": "mos.svg"})
    ).content.decode()
    assert "(baseline)" in svg

    organizer.post(reverse("analysis:study-run", kwargs={"slug": close_study.slug}), {"rank_baselines": "on"})
    ranked = analysis_run_now(study=close_study, params={"n_boot": 100, "rank_baselines": True})
    board = {r["method"]: r for r in ranked.results["tables"]["leaderboard"]["records"]}
    assert board["Gamma"]["rank"] is not None and board["Gamma"]["ranked"] is True


def test_heatmap_and_download_everything(organizer, close_study) -> None:
    run = analysis_run_now(study=close_study, params={"n_boot": 100})
    page = _page(organizer, close_study)
    assert "scene_mos.svg" in page
    svg = organizer.get(
        reverse("analysis:run-file", kwargs={"slug": close_study.slug, "run_id": run.pk, "name": "scene_mos.svg"})
    )
    assert svg.status_code == 200 and b"<svg" in svg.content
    archive = zipfile.ZipFile(
        io.BytesIO(
            organizer.get(reverse("analysis:run-zip", kwargs={"slug": close_study.slug, "run_id": run.pk})).content
        )
    )
    names = set(archive.namelist())
    assert {"sessions.csv", "import_manifest.json", "scene_mos.png", "exclusions.csv"} <= names
    sessions = archive.read("sessions.csv").decode().splitlines()
    assert sessions[0].startswith("platform,platform_id,platform_session_id,session,status")
    assert len(sessions) == 1 + 13
    manifest = json.loads(archive.read("import_manifest.json"))
    assert {m["method"] for m in manifest["methods_csv"]} == {"Alpha", "Beta", "Gamma", "Reference"}
    assert json.loads(archive.read("run.json"))["run_number"] == 1


def test_no_raw_nan_on_the_page(organizer, close_study) -> None:
    # One scene only: no interval over scenes, so the tables hold missing values.
    Rating.objects.filter(trial__session__study=close_study).exclude(trial__output__scene__name="s0").delete()
    analysis_run_now(study=close_study, params={"n_boot": 100})
    page = _page(organizer, close_study)
    assert not re.search(r"\bnan\b", page, flags=re.IGNORECASE)
