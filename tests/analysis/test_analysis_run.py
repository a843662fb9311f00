from __future__ import annotations

import pytest

from analysis.models import AnalysisRun
from analysis.services import analysis_run_create, analysis_run_execute, analysis_run_queue
from analysis.tasks import analysis_run_task
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


def vote(study, output, rater: str, score: int):
    session = SessionFactory(study=study, rater=RaterFactory(external_id=rater))
    return RatingFactory(trial=TrialFactory(session=session, output=output), score=score)


@pytest.fixture
def study():
    study = StudyFactory(slug="runs")
    outputs = [
        OutputFactory(
            method=MethodFactory(study=study, name=m),
            scene=SceneFactory(study=study, name=f"{m}-scene", reference=None),
            image=None,
        )
        for m in ("A", "B")
    ]
    for i, score in enumerate([5, 4, 4]):
        vote(study, outputs[0], f"a{i}", score)
        vote(study, outputs[1], f"b{i}", score - 2)
    study.test_outputs = outputs
    return study


def test_queued_run_executes_on_commit_and_stores_versions(
    study, django_capture_on_commit_callbacks, eager_celery
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = analysis_run_queue(study=study, params={"n_boot": 50})
    assert run.status == AnalysisRun.Status.PENDING  # nothing runs before the commit
    assert len(callbacks) == 1
    callbacks[0]()
    run.refresh_from_db()
    assert run.status == AnalysisRun.Status.DONE, run.error
    assert run.n_votes == 6
    assert run.finished_at is not None
    assert run.estimators["pipeline"]["name"] == "mosaic-analysis"
    assert run.estimators["tables"]["leaderboard"]["version"]
    assert "scipy" in run.estimators["libraries"]
    assert run.params["confidence"] == 0.95 and run.params["n_boot"] == 50


def test_run_counts_only_the_votes_stored_when_it_was_created(study) -> None:
    run = analysis_run_create(study=study, params={"n_boot": 20})
    vote(study, study.test_outputs[0], "late", 1)  # arrives while the task waits in the queue
    analysis_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.n_votes == 6
    board = {r["method"]: r for r in run.results["tables"]["leaderboard_all_raters"]["records"]}
    assert board["A"]["mos"] == pytest.approx(13 / 3)


def test_run_without_votes_fails_with_the_reason() -> None:
    study = StudyFactory()
    run = analysis_run_create(study=study)
    analysis_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == AnalysisRun.Status.FAILED
    assert "no counted votes" in run.error


def test_redelivered_task_does_not_compute_a_done_run_again(study) -> None:
    run = analysis_run_create(study=study, params={"n_boot": 20})
    analysis_run_task.apply(args=[run.pk])
    run.refresh_from_db()
    finished = run.finished_at
    assert run.status == AnalysisRun.Status.DONE
    analysis_run_task.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.finished_at == finished


def test_unknown_parameter_is_refused(study) -> None:
    with pytest.raises(ValueError, match="unknown analysis parameter"):
        analysis_run_create(study=study, params={"n_bootstrap": 5})
    assert not AnalysisRun.objects.exists()


def test_task_is_late_acknowledged() -> None:
    assert analysis_run_task.acks_late is True
