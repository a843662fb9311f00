"""Adaptive allocation and self-stopping: the live decision of a study, cached.

The decision (analysis.stats.sequential.decide_pairs over the stored votes) is computed at
most once per study and time bucket of ``MOSAIC_ALLOCATION_REFRESH_SECONDS`` and kept in
Django's cache, keyed by the study, its smallest difference and the bucket: session
starts, votes, the admin page and the organizer API all read the same cached decision, and
none of them recomputes it on every request. Every web worker and machine shares it when
the cache is Redis; with the per-process memory cache each process computes its own, still
at most once per bucket.

pandas and SciPy are imported only when a decision is computed: a web worker serving a
uniform study never loads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache

from raters.models import Rating, Trial
from studies import services as study_services
from studies.models import Method, Scene, Study

if TYPE_CHECKING:
    from analysis.stats.sequential import Decision

#: Family-wise error of the live decision over the whole study.
DECISION_ALPHA = 0.05


@dataclass(frozen=True)
class StudyState:
    """What the cache keeps per study and bucket: the decision over method ids, the
    method names, and the counted votes (rating and control) stored when it was made."""

    decision: Decision
    names: dict[int, str]
    n_counted: int
    computed_at: float


def refresh_seconds() -> float:
    return float(settings.MOSAIC_ALLOCATION_REFRESH_SECONDS)


def _cache_key(study: Study, bucket: int) -> str:
    return f"mosaic:decision:{study.pk}:{study.smallest_difference!r}:{bucket}"


def _compute(study: Study) -> StudyState:
    import pandas as pd

    from analysis.stats.sequential import decide_pairs

    methods = dict(
        Method.objects.filter(study=study)
        .exclude(kind__in=Method.CONTROL_KINDS)
        .order_by("pk")
        .values_list("pk", "name")
    )
    scenes = list(Scene.objects.filter(study=study).order_by("pk").values_list("pk", flat=True))
    counted = Rating.objects.filter(trial__session__study=study, trial__kind__in=Trial.COUNTED_KINDS)
    # Rated trials only: controls are screening, not part of the ranking.
    rows = counted.filter(trial__kind=Trial.Kind.RATING, trial__output__method_id__in=list(methods)).values_list(
        "trial__output__method_id", "trial__output__scene_id", "score"
    )
    frame = pd.DataFrame.from_records(list(rows), columns=["method", "scene", "score"])
    decision = decide_pairs(
        frame, smallest_difference=study.smallest_difference, alpha=DECISION_ALPHA, methods=methods, scenes=scenes
    )
    return StudyState(decision=decision, names=methods, n_counted=counted.count(), computed_at=time.time())


def study_state(*, study: Study, now: float | None = None) -> StudyState:
    """The study's live decision, from the cache when this time bucket has one."""
    now = time.time() if now is None else now
    period = refresh_seconds()
    key = _cache_key(study, int(now // period) if period > 0 else int(now * 1e6))
    state = cache.get(key)
    if state is None:
        state = _compute(study)
        cache.set(key, state, timeout=max(2 * period, 1))
    return state


def output_weights(*, study: Study, outputs: list[tuple[int, int]]) -> dict[int, float] | None:
    """Per-output weights for :func:`raters.assignment.choose` of an adaptive study, from
    the cached decision; None for a uniform study or during the warm-up.

    ``outputs`` are (output id, method id) pairs; controls and methods outside the
    decision keep weight 1 (controls are chosen from their own pool at the study's rate).
    """
    if study.allocation != Study.Allocation.ADAPTIVE:
        return None
    from analysis.stats.sequential import allocation_weights

    weights = allocation_weights(study_state(study=study).decision, warmup_votes=study.warmup_votes)
    if weights is None:
        return None
    return {output_id: weights.get(method_id, 1.0) for output_id, method_id in outputs}


def budget_left(*, study: Study, handed_out: int) -> bool:
    """Whether a new session fits the vote budget, ``handed_out`` counted trials (votes
    and outstanding trials) being in the stored loads now."""
    if study.vote_budget is None:
        return True
    return handed_out + study.trials_per_session <= study.vote_budget


def should_stop(*, study: Study, state: StudyState) -> bool:
    """Every adjacent pair is decided, or the vote budget is spent."""
    if study.vote_budget is not None and state.n_counted >= study.vote_budget:
        return True
    return study.stop_when_decided and state.decision.decided


def study_stop_if_decided(*, study: Study) -> bool:
    """Close an open study that asked to stop itself once decided (or whose budget is
    spent); cheap enough to call after every vote: it reads the cached decision. Returns
    whether this call closed it."""
    if study.status != Study.Status.OPEN or not (study.stop_when_decided or study.vote_budget is not None):
        return False
    if not should_stop(study=study, state=study_state(study=study)):
        return False
    try:
        study_services.study_close(study=study)
    except study_services.StudyStateError:  # closed meanwhile, by hand or by another vote
        return False
    return True


def decision_summary(*, study: Study) -> dict:
    """The cached live decision as the organizer API and the admin page show it: methods
    best first with their intervals, adjacent pairs with their states (JSON-ready)."""
    import math

    state = study_state(study=study)

    def number(value: object) -> float | None:
        value = float(value)  # type: ignore[arg-type]
        return value if math.isfinite(value) else None

    methods = [
        {
            "method": state.names[row["method"]],
            "rank": int(row["rank"]),
            "mos": number(row["mos"]),
            "se": number(row["se"]),
            "cs_low": number(row["cs_low"]),
            "cs_high": number(row["cs_high"]),
            "n_votes": int(row["n_votes"]),
        }
        for row in state.decision.methods.to_dict("records")
    ]
    pairs = [
        {
            "method_a": state.names[row["method_a"]],
            "method_b": state.names[row["method_b"]],
            "diff": number(row["diff"]),
            "cs_low": number(row["cs_low"]),
            "cs_high": number(row["cs_high"]),
            "state": row["state"],
            "votes_to_decide": None if number(row["votes_to_decide"]) is None else int(row["votes_to_decide"]),
        }
        for row in state.decision.pairs.to_dict("records")
    ]
    return {
        "study": study.slug,
        "status": study.status,
        "allocation": study.allocation,
        "smallest_difference": study.smallest_difference,
        "alpha": DECISION_ALPHA,
        "method": "normal-mixture confidence sequences (Howard et al. 2021), Bonferroni over adjacent pairs",
        "decided": state.decision.decided,
        "n_votes": state.n_counted,
        "vote_budget": study.vote_budget,
        "stop_when_decided": study.stop_when_decided,
        "computed_at": state.computed_at,
        "methods": methods,
        "pairs": pairs,
    }
