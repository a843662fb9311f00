"""The rater hot paths keep a fixed, small number of queries, whatever the session holds.

Two hundred raters voting at once multiply every query of "next" and "submit": a change
that adds one (an N+1 on the panes, a status recomputed query by query) fails here.
The counts include the savepoints of the test's own transaction.
"""

from __future__ import annotations

import pytest

from raters import sql
from raters.models import Session
from tests.raters.conftest import build_study
from tests.raters.test_api import Rater

pytestmark = pytest.mark.django_db

MAX_START = 14
# The session with its study and its trials: one statement.
MAX_NEXT = 1
# One call on PostgreSQL; elsewhere a transaction (its savepoint and release, the locked
# session with its study, its trials, the vote, the session's update).
MAX_SUBMIT_ONE_CALL = 1
MAX_SUBMIT = 6
# An answered trial: the same, without the writes.
MAX_RESUBMIT_ONE_CALL = 1
MAX_RESUBMIT = 4


@pytest.mark.parametrize("trials", [4, 20])
def test_next_and_submit_use_a_bounded_number_of_queries(django_assert_max_num_queries, trials: int) -> None:
    study = build_study(trials_per_session=trials, control_rate=0.2).study
    rater = Rater(study.slug)
    with django_assert_max_num_queries(MAX_START):
        token = rater.start(PROLIFIC_PID="queries").json()["token"]
    voted: list[str] = []
    while True:
        with django_assert_max_num_queries(MAX_NEXT):
            trial = rater.next(token).json()["trial"]
        if trial is None:
            break
        with django_assert_max_num_queries(MAX_SUBMIT_ONE_CALL if sql.votes_in_one_call() else MAX_SUBMIT):
            assert rater.vote(token, trial["token"], 3).status_code == 201
        voted.append(trial["token"])
    with django_assert_max_num_queries(MAX_RESUBMIT_ONE_CALL if sql.votes_in_one_call() else MAX_RESUBMIT):
        assert rater.vote(token, voted[-1], 3).status_code == 200
    assert len(voted) == trials + 3  # the training trials too
    assert Session.objects.get(token=token).status == Session.Status.COMPLETE
