"""A vote is checked against the session as it was read, then stored against the session
as it stands once locked (raters.services._vote_store: one database function on
PostgreSQL, a transaction elsewhere). Whatever comes in between, the other tab's vote, a
release or the import, is what the store goes by, and the answer shows it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from raters import services, sql
from raters.models import Rating, Session, Trial
from raters.platforms import RaterIdentity
from raters.selectors import output_load_drift
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db


def _started(trials_per_session: int = 3) -> tuple[Session, list[Trial]]:
    study = build_study(trials_per_session=trials_per_session, control_rate=0.0).study
    session, _ = services.session_start(study=study, identity=RaterIdentity())
    return session, list(session.trials.order_by("position"))


def _vote(session: Session, trial: Trial, score: int = 4) -> services.Vote:
    return services.rating_submit(session_token=session.token, trial_token=trial.token, score=score, response_ms=7)


def _before_the_store(monkeypatch: pytest.MonkeyPatch, happen) -> list[int]:
    """Run ``happen`` once, after the vote was checked and before it is stored."""
    store, calls = services._vote_store, []

    def store_after(**kwargs):
        if not calls:
            calls.append(kwargs["trial_id"])
            happen()
        return store(**kwargs)

    monkeypatch.setattr(services, "_vote_store", store_after)
    return calls


def test_the_vote_of_another_tab_stored_in_between_counts_and_is_shown(monkeypatch) -> None:
    session, trials = _started()
    *earlier, second_last, last = trials
    for trial in earlier:
        _vote(session, trial)
    calls = _before_the_store(monkeypatch, lambda: _vote(session, last, score=2))

    vote = _vote(session, second_last)

    assert calls == [second_last.pk]
    assert vote.created
    # The store saw the other vote: its own completed the session.
    assert vote.session.status == Session.Status.COMPLETE and vote.session.completion_code
    assert all(state.answered for state in vote.states)
    assert {state.id: state.score for state in vote.states}[last.pk] == 2
    stored = Session.objects.get(pk=session.pk)
    assert (stored.status, stored.completion_code) == (Session.Status.COMPLETE, vote.session.completion_code)
    assert stored.completed_at is not None


def test_a_trial_released_in_between_takes_no_vote_and_changes_nothing(monkeypatch) -> None:
    session, trials = _started()
    before = Session.objects.get(pk=session.pk)
    _before_the_store(monkeypatch, lambda: Trial.objects.filter(pk=trials[0].pk).update(released_at=timezone.now()))

    with pytest.raises(services.TrialReleased):
        _vote(session, trials[0])

    assert not Rating.objects.exists()
    after = Session.objects.get(pk=session.pk)
    assert (after.status, after.last_seen_at, after.completion_code) == (
        before.status,
        before.last_seen_at,
        before.completion_code,
    )


@pytest.mark.parametrize(("score", "created"), [(4, False), (2, None)])
def test_a_vote_the_import_stored_in_between_is_kept_and_not_doubled(monkeypatch, score: int, created) -> None:
    session, trials = _started()
    _before_the_store(monkeypatch, lambda: Rating.objects.create(trial=trials[0], score=4, response_ms=3))

    if created is None:
        with pytest.raises(services.VoteConflict) as conflict:
            _vote(session, trials[0], score=score)
        assert conflict.value.trial.score == 4
    else:
        vote = _vote(session, trials[0], score=score)
        assert vote.created is False
        assert (vote.trial.score, vote.trial.response_ms) == (4, 3)

    assert list(Rating.objects.values_list("score", flat=True)) == [4]
    assert output_load_drift(study=session.study) == {}


def test_a_vote_of_a_deleted_session_is_refused(monkeypatch) -> None:
    session, trials = _started()
    _before_the_store(monkeypatch, lambda: Session.objects.filter(pk=session.pk).delete())

    with pytest.raises(services.SessionNotFound):
        _vote(session, trials[0])
    assert not Rating.objects.exists()


def test_on_postgresql_a_vote_is_two_statements_a_read_and_the_store() -> None:
    session, trials = _started()
    with CaptureQueriesContext(connection) as queries:
        vote = _vote(session, trials[0])
    assert vote.created
    statements = [query["sql"] for query in queries.captured_queries]
    if sql.votes_in_one_call():
        assert len(statements) == 2, statements
        assert "mosaic_vote_store" in statements[1]
    else:
        # The read, then the transaction: its savepoint, the session, its trials, the vote.
        assert len(statements) >= 5, statements
