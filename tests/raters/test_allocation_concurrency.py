"""Adaptive starts at once: each sees the outstanding trials of the ones before it, and the
weighted choice keeps its rules (loads exact, one session per rater, budget respected)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.core.cache import cache

from raters import services
from raters.models import Rating, Session, Trial
from raters.platforms import RaterIdentity
from raters.selectors import output_load_drift
from tests.raters.conftest import build_study
from tests.raters.test_concurrency import THREADS, _run_concurrently

pytestmark = pytest.mark.django_db(transaction=True)

QUALITY = {"Far-High": 4.8, "Close-1": 3.05, "Close-2": 2.95, "Far-Low": 1.2}


def _vote_all(session: Session, rng: random.Random) -> None:
    for trial in session.trials.select_related("output__method").order_by("position"):
        quality = QUALITY.get(trial.output.method.name, 3.0)
        score = min(5, max(1, round(quality + rng.gauss(0, 0.6))))
        services.rating_submit(session_token=session.token, trial_token=trial.token, score=score, response_ms=10)


def test_concurrent_adaptive_starts_keep_loads_exact_and_favour_the_close_pair(settings) -> None:
    settings.MOSAIC_ALLOCATION_REFRESH_SECONDS = 3600  # one decision for all the starts below
    cache.clear()
    setup = build_study(method_names=list(QUALITY), scenes=4, trials_per_session=8, control_rate=0.0)
    study = setup.study
    study.allocation = "adaptive"
    study.save(update_fields=["allocation"])
    rng = random.Random(1)
    for index in range(12):  # past the warm-up, one after the other
        session, _ = services.session_start(study=study, identity=RaterIdentity(external_id=f"w{index}"))
        _vote_all(session, rng)
    cache.clear()
    before = Counter(
        Rating.objects.filter(trial__kind=Trial.Kind.RATING).values_list("trial__output__method__name", flat=True)
    )

    def start(index: int) -> int:
        session, created = services.session_start(study=study, identity=RaterIdentity(external_id=f"c{index}"))
        assert created
        return session.pk

    pks = _run_concurrently(start, THREADS)
    assert len(set(pks)) == THREADS
    assert output_load_drift(study=study) == {}
    handed = Counter(
        Trial.objects.filter(session_id__in=pks, kind=Trial.Kind.RATING).values_list("output__method__name", flat=True)
    )
    assert sum(handed.values()) == THREADS * 8
    assert handed["Close-1"] + handed["Close-2"] > 0.7 * sum(handed.values()), (before, handed)
    for session in Session.objects.filter(pk__in=pks):
        outputs = list(session.trials.values_list("output_id", flat=True))
        assert len(outputs) == len(set(outputs))
