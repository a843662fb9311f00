"""Django-free statistics core of Mosaic: pure functions over long-format vote frames.

A vote frame has one row per vote with columns ``rater``, ``scene``, ``method``,
``score`` and ``kind`` ("rating", "control" or "training"; training votes never count).
Every function takes the column names as keyword arguments with those defaults, and
every result table carries ``estimator`` and ``estimator_version`` columns plus the
estimator's parameters in ``df.attrs["estimator"]``.
"""

from __future__ import annotations

from ._common import COUNTED_KINDS, Estimator, prepare_votes
from .agreement import rater_agreement
from .correlation import fit_logistic_4, logistic_4, metric_correlations
from .mos import bootstrap_ci, image_mos, method_mos
from .pirm import pirm2018_scores, total_score
from .planner import plan_study, simulate_study
from .ranking import rank_methods
from .report import full_report
from .screening import (
    bt500_screening,
    control_screening,
    correlation_screening,
    exclude_raters,
    screen_raters,
)
from .sequential import Decision, allocation_weights, decide_from_sums, decide_pairs
from .subject_model import SubjectModelResult, p910_model

__all__ = [
    "COUNTED_KINDS",
    "Decision",
    "Estimator",
    "SubjectModelResult",
    "allocation_weights",
    "bootstrap_ci",
    "bt500_screening",
    "control_screening",
    "correlation_screening",
    "decide_from_sums",
    "decide_pairs",
    "exclude_raters",
    "fit_logistic_4",
    "full_report",
    "image_mos",
    "logistic_4",
    "method_mos",
    "metric_correlations",
    "p910_model",
    "pirm2018_scores",
    "plan_study",
    "prepare_votes",
    "rater_agreement",
    "rank_methods",
    "screen_raters",
    "simulate_study",
    "total_score",
]
