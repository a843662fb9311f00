"""A vote writes the session row only when it changes it: a new status, or a last-seen
time older than the touch interval."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from raters import services
from raters.models import Session, Trial
from raters.platforms import RaterIdentity
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db


def _vote(session: Session, trial: Trial, when) -> None:
    vote = services.rating_submit(
        session_token=session.token, trial_token=trial.token, score=4, response_ms=5, now=when
    )
    assert vote.created


def test_votes_write_the_session_only_for_a_new_status_or_a_stale_last_seen() -> None:
    setup = build_study(trials_per_session=4, control_rate=0.0)
    start = timezone.now()
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity(), now=start)
    training = list(session.trials.filter(kind=Trial.Kind.TRAINING).order_by("position"))
    rated = list(session.trials.exclude(kind=Trial.Kind.TRAINING).order_by("position"))
    assert len(training) == 3 and len(rated) == 4

    _vote(session, training[0], start + timedelta(seconds=10))
    session.refresh_from_db()
    assert (session.status, session.last_seen_at) == (Session.Status.TRAINING, start), "nothing to write"

    _vote(session, training[1], start + timedelta(minutes=2))
    session.refresh_from_db()
    assert session.last_seen_at == start + timedelta(minutes=2), "a minute passed: alive again"

    _vote(session, training[2], start + timedelta(minutes=2, seconds=5))
    session.refresh_from_db()
    assert session.status == Session.Status.RATING, "the last training vote moves the session on"
    assert session.last_seen_at == start + timedelta(minutes=2)

    for index, trial in enumerate(rated):
        _vote(session, trial, start + timedelta(minutes=2, seconds=10 + index))
    session.refresh_from_db()
    assert session.status == Session.Status.COMPLETE and session.completion_code
    assert session.completed_at == start + timedelta(minutes=2, seconds=13)
