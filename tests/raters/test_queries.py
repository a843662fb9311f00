"""The rater requests keep a fixed, small number of queries, whatever the session or the
study holds: a change that adds one per trial (an N+1 on the panes, a status counted
trial by trial) fails here.

Committed transactions (``transaction=True``), so that the counts are what a server runs:
inside a test's own transaction every atomic block would add a savepoint and its release.
"""

from __future__ import annotations

import pytest

from raters import services
from raters.models import Session
from raters.platforms import RaterIdentity
from tests.raters.conftest import build_study
from tests.raters.test_api import Rater

pytestmark = pytest.mark.django_db(transaction=True)

MAX_NEXT = 3
# BEGIN, the session locked, its trial, the vote, the progress, the session's update, COMMIT.
MAX_VOTE = 8


@pytest.mark.parametrize(("trials", "others"), [(4, 0), (20, 6)])
def test_next_and_vote_use_a_bounded_number_of_queries(django_assert_max_num_queries, trials, others) -> None:
    study = build_study(trials_per_session=trials, control_rate=0.2).study
    for number in range(others):  # other raters' sessions and votes in the study
        session, _ = services.session_start(
            study=study, identity=RaterIdentity(platform="prolific", external_id=f"o{number}")
        )
        for trial in session.trials.all()[:5]:
            services.rating_submit(session_token=session.token, trial_token=trial.token, score=3, response_ms=1)
    rater = Rater(study.slug)
    token = rater.start(PROLIFIC_PID="queries").json()["token"]
    voted: list[str] = []
    while True:
        with django_assert_max_num_queries(MAX_NEXT):
            trial = rater.next(token).json()["trial"]
        if trial is None:
            break
        with django_assert_max_num_queries(MAX_VOTE):
            assert rater.vote(token, trial["token"], 3).status_code == 201
        voted.append(trial["token"])
    with django_assert_max_num_queries(MAX_VOTE):
        assert rater.vote(token, voted[-1], 3).status_code == 200
    assert len(voted) == trials + 3  # the training trials too
    assert Session.objects.get(token=token).status == Session.Status.COMPLETE
