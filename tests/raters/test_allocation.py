"""Adaptive allocation and self-stopping, through the real session-start and vote services."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.core.cache import cache

from raters import allocation, assignment, services
from raters.models import Rating, Trial
from raters.platforms import RaterIdentity
from studies.models import Study
from tests.raters.conftest import build_study

pytestmark = pytest.mark.django_db

QUALITY = {"Far-High": 4.8, "Close-1": 3.05, "Close-2": 2.95, "Far-Low": 1.2}


@pytest.fixture(autouse=True)
def fresh_decision(settings):
    # Every session start sees the votes stored before it: the test has no time to wait
    # for a bucket to pass.
    settings.MOSAIC_ALLOCATION_REFRESH_SECONDS = 0
    cache.clear()


def rate_session(study: Study, index: int, rng: random.Random, quality: dict[str, float] = QUALITY) -> list[str]:
    """One simulated rater: a session, then a vote on each trial (its score the method's
    quality plus noise), as the rater's browser would send them. The methods it rated."""
    session, _ = services.session_start(
        study=study, identity=RaterIdentity(platform="prolific", external_id=f"r{index}")
    )
    rated = []
    trials = session.trials.select_related("output__method").order_by("position")
    for trial in trials:
        method = trial.output.method
        level = quality.get(method.name, 4.9 if method.kind == "hidden_reference" else 1.1)
        score = min(5, max(1, round(level + rng.gauss(0, 0.7))))
        services.rating_submit(session_token=session.token, trial_token=trial.token, score=score, response_ms=900)
        if trial.kind == Trial.Kind.RATING:
            rated.append(method.name)
    return rated


def run(study: Study, sessions: int, seed: int, quality: dict[str, float] = QUALITY) -> list[list[str]]:
    """Up to ``sessions`` raters, one after the other, until the study stops taking them."""
    rng = random.Random(seed)
    done = []
    for index in range(sessions):
        try:
            done.append(rate_session(study, index, rng, quality))
        except services.StudyNotOpen:
            break
    return done


def test_close_methods_get_most_votes_after_the_warmup():
    setup = build_study(
        method_names=list(QUALITY), scenes=6, trials_per_session=12, allocation="adaptive", warmup_votes=2
    )
    per_session = run(setup.study, sessions=30, seed=1)
    votes = Rating.objects.filter(trial__session__study=setup.study, trial__kind=Trial.Kind.RATING)
    per_output = Counter(votes.values_list("trial__output_id", flat=True))
    assert min(per_output[o.pk] for o in setup.rated_outputs) >= 2  # the warm-up was reached
    # Sessions after the warm-up (4 methods x 6 scenes x 2 votes = 48 votes, ~5 sessions).
    later = Counter(name for rated in per_session[10:] for name in rated)
    close = later["Close-1"] + later["Close-2"]
    assert close / sum(later.values()) > 0.7
    assert later["Close-1"] > 0 and later["Close-2"] > 0


def test_a_close_but_different_pair_gets_more_votes_than_a_cluster_of_equal_methods():
    quality = {"Top": 4.2, "Next": 3.8, "Equal-1": 2.6, "Equal-2": 2.6, "Equal-3": 2.6}
    setup = build_study(
        method_names=list(quality), scenes=6, trials_per_session=12, allocation="adaptive", warmup_votes=2
    )
    per_session = run(setup.study, sessions=30, seed=7, quality=quality)
    # After the warm-up (5 methods x 6 scenes x 2 votes, ~7 sessions of 10 rated trials)
    # and before Top-Next is separated (about session 32 with this seed).
    later = Counter(name for rated in per_session[10:] for name in rated)
    pair = (later["Top"] + later["Next"]) / 2
    cluster = (later["Equal-1"] + later["Equal-2"] + later["Equal-3"]) / 3
    assert pair > 2 * cluster > 0  # the cluster keeps some votes: the exploration floor


def test_uniform_study_spreads_votes_evenly():
    setup = build_study(method_names=list(QUALITY), scenes=6, trials_per_session=12, allocation="uniform")
    per_session = run(setup.study, sessions=20, seed=1)
    counts = Counter(name for rated in per_session for name in rated)
    assert max(counts.values()) - min(counts.values()) <= 20 // 2


def test_adaptive_sessions_keep_their_rules():
    setup = build_study(
        method_names=list(QUALITY), scenes=6, trials_per_session=12, allocation="adaptive", warmup_votes=2
    )
    run(setup.study, sessions=12, seed=2)
    session, _ = services.session_start(study=setup.study, identity=RaterIdentity(platform="prolific", external_id="x"))
    trials = list(session.trials.select_related("output").order_by("position"))
    counted = [t for t in trials if t.kind in Trial.COUNTED_KINDS]
    assert len(counted) == setup.study.trials_per_session
    outputs = [t.output_id for t in trials]
    assert len(outputs) == len(set(outputs))  # no output twice, training included
    scenes = [t.output.scene_id for t in counted]
    assert all(a != b for a, b in zip(scenes, scenes[1:], strict=False))
    controls = sum(t.kind == Trial.Kind.CONTROL for t in counted)
    assert controls == assignment.control_count(trials=12, control_rate=setup.study.control_rate)
    assert len({t.output.method_id for t in counted if t.kind == Trial.Kind.RATING}) >= 2
    from raters.selectors import output_load_drift

    assert output_load_drift(study=setup.study) == {}


def test_weights_are_cached_within_a_bucket(settings, django_assert_max_num_queries):
    settings.MOSAIC_ALLOCATION_REFRESH_SECONDS = 3600
    setup = build_study(method_names=list(QUALITY), scenes=4, allocation="adaptive")
    run(setup.study, sessions=8, seed=3)
    first = allocation.study_state(study=setup.study)
    with django_assert_max_num_queries(0):
        again = allocation.study_state(study=setup.study)
    assert again.computed_at == first.computed_at


def test_study_stops_itself_once_every_adjacent_pair_is_decided():
    far = {"Far-High": 4.8, "Far-Low": 1.2}
    setup = build_study(method_names=list(far), scenes=3, trials_per_session=6, stop_when_decided=True)
    done = run(setup.study, sessions=12, seed=4)
    assert len(done) < 12
    setup.study.refresh_from_db()
    assert setup.study.status == Study.Status.CLOSED
    state = allocation.study_state(study=setup.study)
    assert state.decision.decided
    with pytest.raises(services.StudyNotOpen):
        services.session_start(study=setup.study, identity=RaterIdentity())


def test_undecided_study_stays_open():
    setup = build_study(method_names=["Close-1", "Close-2"], scenes=3, trials_per_session=6, stop_when_decided=True)
    run(setup.study, sessions=3, seed=5)
    setup.study.refresh_from_db()
    assert setup.study.status == Study.Status.OPEN


def test_vote_budget_refuses_sessions_beyond_it():
    setup = build_study(method_names=list(QUALITY), scenes=4, trials_per_session=10, vote_budget=25)
    for index in range(2):  # 20 trials handed out, none answered yet
        services.session_start(study=setup.study, identity=RaterIdentity(platform="prolific", external_id=f"b{index}"))
    with pytest.raises(services.StudyNotOpen, match="all the votes"):
        services.session_start(study=setup.study, identity=RaterIdentity())
    setup.study.refresh_from_db()
    assert setup.study.status == Study.Status.OPEN  # the two sessions may still finish


def test_spent_vote_budget_closes_the_study():
    setup = build_study(method_names=list(QUALITY), scenes=4, trials_per_session=10, vote_budget=30)
    done = run(setup.study, sessions=5, seed=6)
    assert len(done) == 3
    counted = Rating.objects.filter(trial__session__study=setup.study, trial__kind__in=Trial.COUNTED_KINDS).count()
    assert counted == 30
    setup.study.refresh_from_db()
    assert setup.study.status == Study.Status.CLOSED
