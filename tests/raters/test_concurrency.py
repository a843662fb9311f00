"""Many sessions starting at once still get an even coverage of the study's outputs.

Assignment is serialised per study (a row lock on PostgreSQL, the IMMEDIATE write lock
on SQLite), so each start sees the outstanding trials of the starts before it.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from raters import services
from raters.models import Rating, Session, Trial
from raters.platforms import RaterIdentity
from raters.selectors import output_load_drift
from tests.raters.conftest import build_study

THREADS = 8


pytestmark = pytest.mark.django_db(transaction=True)

# config/settings_test.py keeps the SQLite test database on disk: an in-memory one would
# answer "table is locked" across threads instead of waiting on the busy timeout.


def _run_concurrently(work, count: int) -> list:
    barrier = threading.Barrier(count)

    def run(index: int):
        try:
            barrier.wait()
            return work(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_concurrent_starts_give_even_coverage_once_all_sessions_are_complete() -> None:
    setup = build_study(methods=3, scenes=4, trials_per_session=5, control_rate=0.0)
    study = setup.study

    def start(index: int) -> int:
        identity = RaterIdentity(platform="prolific", external_id=f"crowd-{index}")
        session, created = services.session_start(study=study, identity=identity)
        assert created
        return session.pk

    pks = _run_concurrently(start, THREADS)
    assert len(set(pks)) == THREADS
    for session in Session.objects.all():
        for trial in session.trials.order_by("position"):
            services.rating_submit(session_token=session.token, trial_token=trial.token, score=3, response_ms=10)
    votes = Counter(Rating.objects.filter(trial__kind=Trial.Kind.RATING).values_list("trial__output_id", flat=True))
    counts = [votes[output.pk] for output in setup.rated_outputs]
    assert sum(counts) == THREADS * 5
    assert max(counts) - min(counts) <= 1, counts
    assert output_load_drift(study=study) == {}


def test_concurrent_starts_with_the_same_platform_id_share_one_session() -> None:
    study = build_study(methods=2, scenes=3, trials_per_session=4).study

    def start(index: int) -> str:
        # A double click: the same platform session twice.
        identity = RaterIdentity(platform="prolific", external_id="same-person", platform_session_id="ps")
        session, _ = services.session_start(study=study, identity=identity)
        return session.token

    tokens = _run_concurrently(start, THREADS)
    assert len(set(tokens)) == 1
    assert Session.objects.count() == 1


def test_concurrent_replays_of_one_vote_store_it_once() -> None:
    study = build_study(methods=2, scenes=3, trials_per_session=4).study
    session, _ = services.session_start(study=study, identity=RaterIdentity())
    trial = session.trials.order_by("position").first()

    def submit(index: int) -> bool:
        return services.rating_submit(
            session_token=session.token, trial_token=trial.token, score=5, response_ms=index
        ).created

    created = _run_concurrently(submit, THREADS)
    assert created.count(True) == 1
    assert Rating.objects.filter(trial=trial).count() == 1


def test_votes_racing_the_release_of_their_idle_session_leave_each_trial_answered_or_released(settings) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.MOSAIC_SESSION_TIMEOUT_MINUTES = 30
    study = build_study(methods=3, scenes=4, trials_per_session=4, control_rate=0.0).study
    long_ago = timezone.now() - timedelta(hours=2)
    sessions = [services.session_start(study=study, identity=RaterIdentity(), now=long_ago)[0] for _ in range(4)]
    rated = {s.pk: list(s.trials.filter(kind=Trial.Kind.RATING).order_by("position")) for s in sessions}

    def work(index: int) -> int:
        if index % 2:  # half the threads release, half vote: one idle session each
            return services.sessions_release_abandoned(study=study)
        session = sessions[index // 2]
        stored = 0
        for trial in rated[session.pk]:
            try:
                services.rating_submit(session_token=session.token, trial_token=trial.token, score=2, response_ms=1)
                stored += 1
            except services.TrialReleased:
                pass
        return stored

    _run_concurrently(work, 2 * len(sessions))
    trials = Trial.objects.filter(session__in=sessions, kind=Trial.Kind.RATING)
    both = trials.filter(released_at__isnull=False, rating__isnull=False)
    assert not both.exists(), "a vote was stored on a trial handed to someone else"
    assert trials.filter(released_at__isnull=True, rating__isnull=True).count() == 0, "every trial got one or other"
    assert output_load_drift(study=study) == {}


def test_concurrent_votes_of_one_session_complete_it_once_and_each_answer_shows_its_vote() -> None:
    study = build_study(methods=3, scenes=4, trials_per_session=THREADS - 3, control_rate=0.0).study
    session, _ = services.session_start(study=study, identity=RaterIdentity())
    trials = list(session.trials.order_by("position"))
    assert len(trials) == THREADS  # three training trials and the rated ones

    def vote(index: int) -> services.Vote:
        return services.rating_submit(
            session_token=session.token, trial_token=trials[index].token, score=3, response_ms=index
        )

    votes = _run_concurrently(vote, THREADS)
    assert all(v.created for v in votes)
    assert all(v.rating.pk == v.trial["rating__id"] and v.rating.score == 3 for v in votes)
    # One at a time under the session's lock: each answer counts the votes before it and its
    # own, so the counts are 1, 2, ... THREADS in some order.
    counts = sorted(v.progress["answered"] + v.progress["training_answered"] for v in votes)
    assert counts == list(range(1, THREADS + 1))
    # Whichever came last saw every other vote, and completed the session with one code.
    finished = [v for v in votes if v.progress["answered"] + v.progress["training_answered"] == THREADS]
    assert len(finished) == 1 and finished[0].session.status == Session.Status.COMPLETE
    codes = {v.session.completion_code for v in finished}
    stored = Session.objects.get(pk=session.pk)
    assert stored.status == Session.Status.COMPLETE and codes == {stored.completion_code}
    assert Rating.objects.filter(trial__session=session).count() == THREADS
