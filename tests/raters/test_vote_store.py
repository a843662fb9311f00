"""A vote is found, checked and stored against its session as it stands once locked
(raters.services.rating_submit). Whatever came before, the other tab's vote, a release,
the import or a deletion, is what the vote goes by, and the answer shows it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from raters import services
from raters.models import Rating, Session, Trial
from raters.platforms import RaterIdentity
from raters.selectors import output_load_drift
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db


def _started(trials_per_session: int = 3, control_rate: float = 0.0) -> tuple[Session, list[Trial]]:
    study = build_study(trials_per_session=trials_per_session, control_rate=control_rate).study
    session, _ = services.session_start(study=study, identity=RaterIdentity())
    return session, list(session.trials.order_by("position"))


def _vote(session: Session, trial: Trial, score: int = 4) -> services.Vote:
    return services.rating_submit(session_token=session.token, trial_token=trial.token, score=score, response_ms=7)


def _as_stored(session: Session) -> tuple[dict[str, int], str]:
    """The session's progress and status counted by hand from its stored trials."""
    trials = list(Trial.objects.filter(session=session).select_related("rating"))
    answered = [t for t in trials if hasattr(t, "rating")]
    live = [t for t in trials if t.released_at is None or hasattr(t, "rating")]
    training = [t for t in live if t.kind == Trial.Kind.TRAINING]
    counted = [t for t in live if t.kind != Trial.Kind.TRAINING]
    progress = {
        "total": len(counted),
        "answered": sum(t in answered for t in counted),
        "training_total": len(training),
        "training_answered": sum(t in answered for t in training),
    }
    if progress["training_answered"] < progress["training_total"]:
        status = Session.Status.TRAINING
    elif progress["answered"] < progress["total"]:
        status = Session.Status.RATING
    else:
        status = Session.Status.COMPLETE
    return progress, status


def test_the_vote_of_another_tab_counts_and_the_last_vote_completes_the_session() -> None:
    session, trials = _started()
    *earlier, second_last, last = trials
    for trial in earlier:
        _vote(session, trial)
    _vote(session, last, score=2)  # the other tab

    vote = _vote(session, second_last)

    assert vote.created
    assert vote.session.status == Session.Status.COMPLETE and vote.session.completion_code
    assert vote.progress == {"total": 3, "answered": 3, "training_total": 3, "training_answered": 3}
    stored = Session.objects.get(pk=session.pk)
    assert (stored.status, stored.completion_code) == (Session.Status.COMPLETE, vote.session.completion_code)
    assert stored.completed_at is not None


def test_the_answer_counts_progress_and_status_as_the_stored_trials_do() -> None:
    # Released trials, answered first or not, training and rated ones: the answer's counts
    # against the same trials counted by hand.
    session, trials = _started(trials_per_session=6, control_rate=0.3)
    training = [t for t in trials if t.kind == Trial.Kind.TRAINING]
    counted = [t for t in trials if t.kind != Trial.Kind.TRAINING]
    assert {t.kind for t in counted} == {Trial.Kind.RATING, Trial.Kind.CONTROL}
    answered_then_released = counted[0]
    _vote(session, answered_then_released)
    Trial.objects.filter(pk__in=[answered_then_released.pk, counted[1].pk]).update(released_at=timezone.now())

    seen = []
    for trial in [*training, *counted[2:]]:
        vote = _vote(session, trial, score=3)
        progress, status = _as_stored(session)
        assert vote.progress == progress
        assert vote.session.status == status == Session.objects.get(pk=session.pk).status
        seen.append((status, progress["answered"], progress["training_answered"]))

    assert seen[0] == (Session.Status.TRAINING, 1, 1)
    assert seen[len(training) - 1] == (Session.Status.RATING, 1, len(training))
    assert seen[-1] == (Session.Status.COMPLETE, len(counted) - 1, len(training))
    assert vote.progress["total"] == len(counted) - 1  # the released, unanswered one is gone


def test_a_released_trial_takes_no_vote_and_changes_nothing() -> None:
    session, trials = _started()
    Trial.objects.filter(pk=trials[0].pk).update(released_at=timezone.now())
    before = Session.objects.get(pk=session.pk)

    with pytest.raises(services.TrialReleased):
        _vote(session, trials[0])

    assert not Rating.objects.exists()
    after = Session.objects.get(pk=session.pk)
    assert (after.status, after.last_seen_at, after.completion_code) == (
        before.status,
        before.last_seen_at,
        before.completion_code,
    )


def test_a_vote_stored_before_its_trial_was_released_still_stands() -> None:
    session, trials = _started()
    _vote(session, trials[0], score=5)
    Trial.objects.filter(pk=trials[0].pk).update(released_at=timezone.now())

    again = _vote(session, trials[0], score=5)

    assert again.created is False and again.rating.score == 5
    assert Rating.objects.count() == 1


@pytest.mark.parametrize(("score", "created"), [(4, False), (2, None)])
def test_a_vote_the_import_stored_is_kept_and_not_doubled(score: int, created) -> None:
    session, trials = _started()
    Rating.objects.create(trial=trials[0], score=4, response_ms=3)

    if created is None:
        with pytest.raises(services.VoteConflict) as conflict:
            _vote(session, trials[0], score=score)
        assert conflict.value.vote.rating.score == 4
        assert conflict.value.vote.progress["training_answered"] == 1
    else:
        vote = _vote(session, trials[0], score=score)
        assert vote.created is False
        assert (vote.rating.score, vote.rating.response_ms) == (4, 3)

    assert list(Rating.objects.values_list("score", flat=True)) == [4]
    assert output_load_drift(study=session.study) == {}


@pytest.mark.parametrize("score", [0, 6, -(2**40), True, "3", None, 3.0])
def test_a_score_off_the_scale_is_refused_naming_the_scale_and_changes_nothing(score) -> None:
    session, trials = _started()
    before = Session.objects.get(pk=session.pk)

    with pytest.raises(services.InvalidScore, match="Must be one of 1, 2, 3, 4, 5"):
        _vote(session, trials[0], score=score)

    assert not Rating.objects.exists()
    assert Session.objects.get(pk=session.pk).last_seen_at == before.last_seen_at


def test_a_trial_of_another_session_or_a_deleted_session_takes_no_vote() -> None:
    session, trials = _started()
    other, other_trials = _started()

    with pytest.raises(services.TrialNotFound):
        _vote(session, other_trials[0])
    Session.objects.filter(pk=session.pk).delete()
    with pytest.raises(services.SessionNotFound):
        _vote(session, trials[0])
    assert not Rating.objects.exists()
