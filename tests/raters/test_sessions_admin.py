"""The admin's Sessions list as an organizer pays raters from it: progress, failed
attention checks, the screening of the latest finished run and the suggested
approve/reject, the same as the payments CSV says."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from analysis.models import AnalysisRun
from analysis.services import analysis_run_now
from raters.models import Session
from raters.payments import session_payments, study_payment_rows
from studies.models import Method
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

CHANGELIST = "admin:raters_session_changelist"


@pytest.fixture
def organizer(client):
    client.force_login(get_user_model().objects.create_superuser("org", password="pw"))
    return client


def build_paid_study(*, slug: str = "paid", good_raters: int = 6):
    """Three teams on four scenes and two attention checks per session (a hidden reference
    and a low anchor). ``good`` raters finish and pass both checks, ``cheat`` finishes and
    fails both, ``late`` rated 6 of its 14 pairs and stopped."""
    rng = np.random.default_rng(7)
    study = StudyFactory(slug=slug, title=f"Study {slug}", ratings_per_output=10)
    scenes = [SceneFactory(study=study, name=f"s{i}", reference=None) for i in range(4)]
    true = {"Alpha": 4.2, "Beta": 3.0, "Gamma": 1.8}
    methods = {name: MethodFactory(study=study, name=name) for name in true}
    teams = {name: [OutputFactory(method=m, scene=s, image=None) for s in scenes] for name, m in methods.items()}
    reference = OutputFactory(
        method=MethodFactory(study=study, name="Ref", kind=Method.Kind.HIDDEN_REFERENCE), scene=scenes[0], image=None
    )
    anchor = OutputFactory(
        method=MethodFactory(study=study, name="Anchor", kind=Method.Kind.LOW_ANCHOR), scene=scenes[1], image=None
    )

    def session(name: str, *, status: str, ref: int, low: int, stop_after: int | None = None) -> Session:
        """A session of the twelve team outputs then the two checks, rated in that order
        up to ``stop_after`` trials (all when None)."""
        s = SessionFactory(study=study, rater=RaterFactory(external_id=name), status=status)
        trials = [(o, true[m]) for m, outputs in teams.items() for o in outputs]
        trials += [(reference, ref), (anchor, low)]
        for position, (output, mean) in enumerate(trials):
            kind = "rating" if output.method.kind == Method.Kind.SUBMISSION else "control"
            trial = TrialFactory(session=s, output=output, position=position, kind=kind)
            if stop_after is None or position < stop_after:
                score = mean if kind == "control" else int(np.clip(np.rint(mean + rng.normal(0, 0.5)), 1, 5))
                RatingFactory(trial=trial, score=score)
        return s

    good = [session(f"good{i}", status=Session.Status.COMPLETE, ref=5, low=1) for i in range(good_raters)]
    cheat = session("cheat", status=Session.Status.COMPLETE, ref=1, low=5)
    late = session("late", status=Session.Status.RATING, ref=5, low=1, stop_after=6)
    return study, good, cheat, late


def rows(page: str) -> dict[int, str]:
    """The changelist's result rows by session id, as text without tags."""
    table = page[page.index('id="result_list"') :]
    found = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S):
        link = re.search(r"/admin/raters/session/(\d+)/change/", row)
        if link:
            found[int(link.group(1))] = " ".join(re.sub(r"<[^>]+>", " ", row).split())
    return found


def test_organizer_sees_progress_failed_checks_and_the_suggestion(organizer) -> None:
    study, good, cheat, late = build_paid_study()
    listed = rows(organizer.get(reverse(CHANGELIST)).content.decode())
    assert "14 / 14" in listed[good[0].pk] and "0 of 2" in listed[good[0].pk]
    assert "approve : finished, passed all 2 attention checks" in listed[good[0].pk]
    assert "2 of 2" in listed[cheat.pk] and "reject : failed 2 of 2 attention checks" in listed[cheat.pk]
    # The unfinished session answered none of its checks: its last two trials.
    assert "6 / 14" in listed[late.pk] and "none answered" in listed[late.pk]
    assert "reject : did not finish: 6 of 14 pairs rated" in listed[late.pk]
    assert all("no analysis run yet" in text for text in listed.values())


def test_screening_outcome_comes_from_the_latest_finished_run(organizer) -> None:
    study, good, cheat, late = build_paid_study()
    run = analysis_run_now(study=study, params={"n_boot": 50})
    assert run.status == AnalysisRun.Status.DONE, run.error
    flagged = {r["rater"]: r["excluded_by"] for r in run.results["tables"]["raters"]["records"]}
    assert "controls" in flagged["cheat"] and flagged["good0"] == ""
    # A later run that failed does not hide the finished one.
    AnalysisRun.objects.create(study=study, number=2, status=AnalysisRun.Status.FAILED)
    RatingFactory(trial=TrialFactory(session=SessionFactory(study=study), output=late.trials.first().output))

    listed = rows(organizer.get(reverse(CHANGELIST)).content.decode())
    assert "kept (run 1)" in listed[good[0].pk]
    assert f"excluded: {flagged['cheat'].replace(',', ', ')} (run 1)" in listed[cheat.pk]
    newcomer = Session.objects.filter(study=study).order_by("-pk").first()
    assert "not in run 1 (no votes by then)" in listed[newcomer.pk]


def test_session_excluded_by_hand_shows_it_in_the_screening_column(organizer) -> None:
    study, good, cheat, late = build_paid_study()
    Session.objects.filter(pk=good[1].pk).update(excluded_reason="pilot run")
    analysis_run_now(study=study, params={"n_boot": 50})
    listed = rows(organizer.get(reverse(CHANGELIST)).content.decode())
    assert "excluded by hand: pilot run (run 1)" in listed[good[1].pk]
    # Paid like any other: the suggestion stands, the reason says the votes do not count.
    assert "approve : finished, passed all 2 attention checks; excluded from the analysis by hand" in listed[good[1].pk]


def test_suggestion_filter_lists_approved_or_rejected_sessions(organizer) -> None:
    study, good, cheat, late = build_paid_study(good_raters=2)
    approved = rows(organizer.get(reverse(CHANGELIST), {"suggestion": "approve"}).content.decode())
    rejected = rows(organizer.get(reverse(CHANGELIST), {"suggestion": "reject"}).content.decode())
    assert set(approved) == {s.pk for s in good}
    assert set(rejected) == {cheat.pk, late.pk}


def test_admin_and_payments_csv_agree_on_every_session(organizer) -> None:
    study, *_ = build_paid_study(good_raters=3)
    csv_text = organizer.get(reverse("admin:studies_study_sessions_csv", args=[study.pk])).content.decode()
    exported = list(csv.DictReader(io.StringIO(csv_text)))
    listed = rows(organizer.get(reverse(CHANGELIST), {"study__id__exact": study.pk}).content.decode())
    assert len(exported) == len(listed) == 5
    for row in exported:
        text = listed[int(row["session"])]
        assert f"{row['votes']} / {row['trials']}" in text
        assert f"{row['suggestion']} : {row['reason']}" in text
        if int(row["controls"]):
            assert f"{row['failed_controls']} of {row['controls']}" in text
    sessions = list(Session.objects.filter(study=study).select_related("study", "rater"))
    payments = session_payments(sessions=sessions)
    for row in study_payment_rows(study=study):
        payment = payments[row["session"]]
        assert (payment.votes, payment.suggestion, payment.reason) == (row["votes"], row["suggestion"], row["reason"])


def _fake_run(study, raters: list[str]) -> AnalysisRun:
    records = [{"rater": name, "excluded": False, "excluded_by": ""} for name in raters]
    return AnalysisRun.objects.create(
        study=study,
        number=1,
        status=AnalysisRun.Status.DONE,
        results={"tables": {"raters": {"columns": ["rater", "excluded", "excluded_by"], "records": records}}},
    )


@pytest.mark.parametrize("per_study", [2, 20])
def test_changelist_queries_do_not_grow_with_the_sessions(organizer, django_assert_max_num_queries, per_study) -> None:
    for slug in ("one", "two", "three"):
        study = StudyFactory(slug=slug)
        output = OutputFactory(method__study=study, image=None)
        control = OutputFactory(method__study=study, method__kind=Method.Kind.HIDDEN_REFERENCE, image=None)
        names = []
        for i in range(per_study):
            session = SessionFactory(study=study, rater=RaterFactory(external_id=f"{slug}{i}"))
            RatingFactory(trial=TrialFactory(session=session, output=output), score=3)
            RatingFactory(trial=TrialFactory(session=session, output=control, kind="control"), score=1)
            names.append(f"{slug}{i}")
        if slug != "three":
            _fake_run(study, names)
    # login session and user, the study filter's choices, two counts, the page, its trials, the runs
    with django_assert_max_num_queries(8):
        page = organizer.get(reverse(CHANGELIST)).content.decode()
    listed = rows(page)
    assert len(listed) == min(3 * per_study, 100)
    assert sum("kept (run 1)" in text for text in listed.values()) == min(2 * per_study, 100)
    assert all("1 of 1" in text for text in listed.values())
