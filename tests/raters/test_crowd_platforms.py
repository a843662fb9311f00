"""Crowd platforms: Prolific's study-wide code, MTurk's external submit, the links an
organizer pastes, the sessions CSV for paying raters; a study that fills up; warnings
when opening; practice pairs in a study without controls."""

from __future__ import annotations

import csv
import io

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from raters import services
from raters.api.views import _rating_payload
from raters.capacity import study_capacity
from raters.models import Session, Trial
from raters.platforms import RaterIdentity
from studies.models import Method, Output, Study
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db


def _identity(platform: str, pid: str, session_id: str = "sess-1") -> RaterIdentity:
    return RaterIdentity(platform=platform, external_id=pid, platform_study_id="st", platform_session_id=session_id)


def _finish(session: Session, score_for=lambda trial: 3) -> Session:
    for trial in session.trials.select_related("output__method").order_by("position"):
        services.rating_submit(
            session_token=session.token, trial_token=trial.token, score=score_for(trial), response_ms=1
        )
    session.refresh_from_db()
    return session


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("organizer", "o@example.org", "pw-organizer")
    client.force_login(user)
    return client


def test_prolific_rater_gets_the_study_code_and_is_sent_to_prolific(client: Client) -> None:
    study = build_study(methods=2, scenes=3, trials_per_session=3).study
    study.prolific_completion_code = "C1ABCDEF"
    study.save()
    session, _ = services.session_start(study=study, identity=_identity("prolific", "pid-1"))
    session = _finish(session)
    page = client.get(reverse("raters:done", kwargs={"token": session.token})).content.decode()
    assert '<p class="code" id="completion-code">C1ABCDEF</p>' in page
    assert 'href="https://app.prolific.com/submissions/complete?cc=C1ABCDEF"' in page
    assert "data-auto-redirect" in page and "raters/done.js" in page
    # The session keeps its own code, shown as a reference, for the audit.
    assert session.completion_code and session.completion_code != "C1ABCDEF"
    assert f'<span id="session-code">{session.completion_code}</span>' in page
    assert "<script>" not in page


def test_prolific_without_a_study_code_keeps_the_session_code_and_redirect() -> None:
    study = build_study(methods=2, scenes=3, trials_per_session=3).study
    study.completion_redirect_url = "https://example.org/back?c={code}"
    study.save()
    session, _ = services.session_start(study=study, identity=_identity("prolific", "pid-2"))
    session = _finish(session)
    page = Client().get(reverse("raters:done", kwargs={"token": session.token})).content.decode()
    assert f"back?c={session.completion_code}" in page
    assert "data-auto-redirect" not in page and "session-code" not in page


@pytest.mark.parametrize(
    ("site", "action"),
    [
        (Study.MTurkSite.PRODUCTION, "https://www.mturk.com/mturk/externalSubmit"),
        (Study.MTurkSite.SANDBOX, "https://workersandbox.mturk.com/mturk/externalSubmit"),
    ],
)
def test_mturk_rater_submits_the_assignment_to_mturk(site: str, action: str) -> None:
    study = build_study(methods=2, scenes=3, trials_per_session=3, mturk_submit_to=site).study
    session, _ = services.session_start(study=study, identity=_identity("mturk", "WORKER1", "ASSIGN9"))
    session = _finish(session)
    page = Client().get(reverse("raters:done", kwargs={"token": session.token})).content.decode()
    assert f'<form method="post" action="{action}" id="mturk-submit">' in page
    assert '<input type="hidden" name="assignmentId" value="ASSIGN9">' in page
    assert f'<input type="hidden" name="completion_code" value="{session.completion_code}">' in page


def test_a_malformed_prolific_code_is_refused() -> None:
    study = build_study(methods=1, scenes=1).study
    study.prolific_completion_code = "C1 <b>"
    with pytest.raises(ValidationError) as error:
        study.full_clean()
    assert "prolific_completion_code" in error.value.message_dict


def test_admin_shows_the_rater_links_ready_to_paste_with_copy_buttons(staff: Client) -> None:
    study = build_study(methods=1, scenes=1).study
    page = staff.get(reverse("admin:studies_study_change", args=[study.pk])).content.decode()
    entry = f"http://testserver/s/{study.slug}/"
    placeholders = "PROLIFIC_PID={{%PROLIFIC_PID%}}&amp;STUDY_ID={{%STUDY_ID%}}&amp;SESSION_ID={{%SESSION_ID%}}"
    prolific = f"{entry}?{placeholders}"
    assert f'value="{prolific}" data-platform="prolific"' in page
    assert f'value="{entry}" data-platform="mturk"' in page
    assert page.count('class="button copy-link"') == 3
    assert "studies/copy_links.js" in page
    assert "<script>" not in page and "onclick" not in page


def test_sessions_csv_suggests_approve_or_reject_with_the_reason(staff: Client) -> None:
    study = build_study(methods=2, scenes=4, trials_per_session=5, control_rate=0.4).study
    good, _ = services.session_start(study=study, identity=_identity("prolific", "-good"))
    _finish(good, lambda trial: 5 if trial.output.method.kind == Method.Kind.HIDDEN_REFERENCE else 3)
    careless, _ = services.session_start(study=study, identity=_identity("prolific", "careless"))

    def wrong(trial: Trial) -> int:
        kind = trial.output.method.kind
        return 1 if kind == Method.Kind.HIDDEN_REFERENCE else 5 if kind == Method.Kind.LOW_ANCHOR else 3

    _finish(careless, wrong)
    services.session_start(study=study, identity=_identity("prolific", "quitter"))

    response = staff.get(reverse("admin:studies_study_sessions_csv", args=[study.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert f'filename="{study.slug}-sessions.csv"' in response["Content-Disposition"]
    rows = {row["platform_id"]: row for row in csv.DictReader(io.StringIO(response.content.decode()))}
    assert set(rows) == {"'-good", "careless", "quitter"}  # a leading "-" is guarded against formulas
    assert rows["'-good"]["suggestion"] == "approve"
    assert rows["'-good"]["completion_code"] == Session.objects.get(rater__external_id="-good").completion_code
    assert rows["'-good"]["votes"] == "5" and rows["'-good"]["failed_controls"] == "0"
    assert int(rows["careless"]["controls"]) >= 2
    assert rows["careless"]["failed_controls"] == rows["careless"]["controls"]
    assert rows["careless"]["suggestion"] == "reject" and "attention checks" in rows["careless"]["reason"]
    assert rows["quitter"]["suggestion"] == "reject"
    assert rows["quitter"]["reason"] == "did not finish: 0 of 5 pairs rated"


def test_sessions_csv_needs_staff(client: Client) -> None:
    study = build_study(methods=1, scenes=1).study
    response = client.get(reverse("admin:studies_study_sessions_csv", args=[study.pk]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_full_study_starts_no_session_and_says_so(client: Client, staff: Client) -> None:
    # 2 methods x 3 scenes, 1 vote each: the first session's 6 rated trials fill it.
    study = build_study(methods=2, scenes=3, trials_per_session=6, control_rate=0, controls=False).study
    study.ratings_per_output = 1
    study.full_return_url = "https://app.prolific.com/submissions/complete?cc=NOROOM"
    study.save()
    first, _ = services.session_start(study=study, identity=_identity("prolific", "first"))
    assert study_capacity(study=study).full
    sessions = Session.objects.count()
    with pytest.raises(services.StudyFull):
        services.session_start(study=study, identity=_identity("prolific", "second"))
    assert Session.objects.count() == sessions  # nothing was written

    page = client.get(f"/s/{study.slug}/?PROLIFIC_PID=late&STUDY_ID=s&SESSION_ID=x")
    assert page.status_code == 409
    body = page.content.decode()
    assert "This study is full" in body
    assert 'href="https://app.prolific.com/submissions/complete?cc=NOROOM"' in body
    posted = client.post(f"/s/{study.slug}/", {"PROLIFIC_PID": "late", "consent": "yes"})
    assert posted.status_code == 409 and "This study is full" in posted.content.decode()
    # The rater already in goes on.
    again = client.get(f"/s/{study.slug}/?PROLIFIC_PID=first&STUDY_ID=st&SESSION_ID=sess-1")
    assert again.status_code == 302 and again["Location"].endswith(f"/r/{first.token}/")
    admin_page = staff.get(reverse("admin:studies_study_change", args=[study.pk])).content.decode()
    assert "<strong id='study-full'>Full</strong>" in admin_page


def test_an_abandoned_session_makes_room_again() -> None:
    from datetime import timedelta

    from django.utils import timezone

    study = build_study(methods=2, scenes=3, trials_per_session=6, control_rate=0, controls=False).study
    study.ratings_per_output = 1
    study.save()
    services.session_start(study=study, identity=_identity("prolific", "first"))
    later = timezone.now() + services.session_timeout() + timedelta(minutes=1)
    session, created = services.session_start(study=study, identity=_identity("prolific", "second"), now=later)
    assert created and session.trials.filter(kind=Trial.Kind.RATING).count() == 6


def test_opening_warns_about_controls_without_control_methods_and_too_few_outputs(staff: Client) -> None:
    study = build_study(
        methods=2, scenes=2, controls=False, status=Study.Status.DRAFT, control_rate=0.1, trials_per_session=10
    ).study
    response = staff.post(reverse("admin:studies_study_open", args=[study.pk]))
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN
    texts = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("no hidden-reference or low-anchor method" in text for text in texts), texts
    assert any("10 trials but the study has only 4 outputs" in text for text in texts), texts


def test_opening_a_well_set_study_gives_no_warning(staff: Client) -> None:
    study = build_study(methods=3, scenes=4, status=Study.Status.DRAFT, trials_per_session=6).study
    response = staff.post(reverse("admin:studies_study_open", args=[study.pk]))
    assert not [m for m in get_messages(response.wsgi_request) if m.level_tag == "warning"]


def test_practice_without_controls_is_best_worst_and_middle_by_psnr_with_words() -> None:
    setup = build_study(methods=5, scenes=3, trials_per_session=4, controls=False, control_rate=0)
    for index, output in enumerate(Output.objects.order_by("pk")):
        output.psnr = 20.0 + index
        output.save(update_fields=["psnr"])
    psnrs = sorted(Output.objects.values_list("psnr", flat=True))
    session, _ = services.session_start(study=setup.study, identity=_identity("prolific", "practice"))
    practice = list(session.trials.filter(kind=Trial.Kind.TRAINING).select_related("output").order_by("position"))
    assert len(practice) == 3
    picked = sorted(trial.output.psnr for trial in practice)
    assert picked[-1] >= psnrs[-3] and picked[0] <= psnrs[2]  # near the ends (other scenes preferred)
    assert psnrs[len(psnrs) // 3] <= picked[1] <= psnrs[-len(psnrs) // 3 - 1]
    hints = {}
    for trial in practice:
        vote = services.rating_submit(session_token=session.token, trial_token=trial.token, score=1, response_ms=1)
        hints[trial.output.psnr] = _rating_payload(vote)["feedback"]
    assert "most faithful" in hints[picked[-1]]["hint"]
    assert not hints[picked[-1]]["ok"]  # 1 is in the lower half: not what the best deserves
    assert "weakest" in hints[picked[0]]["hint"] and hints[picked[0]]["ok"]
    assert "typical" in hints[picked[1]]["hint"]
