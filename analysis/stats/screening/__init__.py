"""Rater screening: which raters the analysis should not rely on, and which rule said so.

Rules (one module each):

* :mod:`.bt500`: ITU-R BT.500 Annex 1 kurtosis test;
* :mod:`.consistency`: P.910 inconsistency against the pool (careless raters) and
  straight-lining (one level for everything);
* :mod:`.correlation`: correlation with the others' MOS; reported for every rater, used
  for exclusion only with an explicit threshold (a fixed threshold flags most good
  raters when teams are close);
* :mod:`.controls`: failed hidden references and low anchors.

Screening only flags raters; :func:`screen_raters` says which rule flagged whom and
:func:`exclude_raters` drops them, so results can be reported with and without exclusion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._common import Estimator, Votes, prepare_votes
from .bt500 import BT500, _bt500, bt500_screening
from .consistency import (
    DEFAULT_ALPHA,
    DEFAULT_FACTOR,
    DEFAULT_MIN_VOTES,
    INCONSISTENCY,
    STRAIGHT_LINING,
    _inconsistency,
    _straight_lining,
    inconsistency_screening,
    straight_lining_screening,
)
from .controls import CONTROLS, HIDDEN_REFERENCE, LOW_ANCHOR, _controls, control_screening, control_thresholds
from .correlation import CORRELATION, _rater_correlation, correlation_screening

SCREENING = Estimator("rater-screening", "2.0")

RULES = ("bt500", "inconsistency", "straight_lining", "correlation", "controls")

__all__ = [
    "BT500",
    "CONTROLS",
    "CORRELATION",
    "HIDDEN_REFERENCE",
    "INCONSISTENCY",
    "LOW_ANCHOR",
    "RULES",
    "SCREENING",
    "STRAIGHT_LINING",
    "bt500_screening",
    "control_screening",
    "correlation_screening",
    "exclude_raters",
    "inconsistency_screening",
    "screen_raters",
    "straight_lining_screening",
]


def _screen(
    votes: Votes,
    methods_info: pd.DataFrame | None,
    method_key: str,
    *,
    scale_min: float,
    scale_max: float,
    correlation_threshold: float | None,
    correlation_method: str,
    min_outputs: int,
    hidden_ref_max: float | None,
    low_anchor_min: float | None,
    max_failures_fraction: float,
    bt500_ddof: int,
    inconsistency_factor: float = DEFAULT_FACTOR,
    inconsistency_alpha: float = DEFAULT_ALPHA,
    min_votes: int = DEFAULT_MIN_VOTES,
    p910_raters: pd.DataFrame | None = None,
) -> pd.DataFrame:
    if p910_raters is None:
        from ..subject_model import _p910_from_votes

        p910_raters = _p910_from_votes(votes, 0.95).raters
    bt = _bt500(votes, bt500_ddof)
    corr = _rater_correlation(votes, correlation_threshold, correlation_method, min_outputs)
    ref_max, anchor_min = control_thresholds(scale_min, scale_max, hidden_ref_max, low_anchor_min)
    ctrl = _controls(votes, methods_info, method_key, ref_max, anchor_min, max_failures_fraction)
    inc = _inconsistency(
        np.asarray(votes.raters),
        p910_raters["n_votes"].to_numpy(),
        p910_raters["residual_sd" if "residual_sd" in p910_raters else "inconsistency"].to_numpy(float),
        inconsistency_factor,
        inconsistency_alpha,
        min_votes,
    )
    flat = _straight_lining(votes, min_votes)
    table = pd.DataFrame(
        {
            "rater": bt["rater"],
            "n_votes": bt["n_votes"],
            "bt500_P": bt["P"],
            "bt500_Q": bt["Q"],
            "bt500_ratio": bt["ratio"],
            "bt500_rejected": bt["rejected"],
            "inconsistency": inc["inconsistency"],
            "inconsistency_reference": inc["inconsistency_reference"],
            "inconsistency_p": inc["inconsistency_p"],
            "inconsistency_rejected": inc["rejected"],
            "straight_lining_rejected": flat["rejected"],
            "correlation": corr["correlation"],
            "correlation_rejected": corr["rejected"],
            "controls": ctrl["controls"],
            "controls_failed": ctrl["controls_failed"],
            "controls_rejected": ctrl["rejected"],
        }
    )
    rules = table[[f"{name}_rejected" for name in RULES]]
    table["excluded"] = rules.any(axis=1)
    names = np.array(RULES)
    table["excluded_by"] = [",".join(names[row]) for row in rules.to_numpy()]
    return SCREENING.stamp(
        table,
        rules={
            "bt500": f"{BT500.name} {BT500.version}",
            "inconsistency": f"{INCONSISTENCY.name} {INCONSISTENCY.version}",
            "straight_lining": f"{STRAIGHT_LINING.name} {STRAIGHT_LINING.version}",
            "correlation": f"{CORRELATION.name} {CORRELATION.version}",
            "controls": f"{CONTROLS.name} {CONTROLS.version}",
        },
        correlation_threshold=correlation_threshold,
        correlation_method=correlation_method,
        min_outputs=min_outputs,
        inconsistency_factor=inconsistency_factor,
        inconsistency_alpha=inconsistency_alpha,
        min_votes=min_votes,
        hidden_ref_max=ref_max,
        low_anchor_min=anchor_min,
        max_failures_fraction=max_failures_fraction,
        bt500_ddof=bt500_ddof,
    )


def screen_raters(
    df: pd.DataFrame,
    methods_info: pd.DataFrame | None = None,
    scale_min: float = 1,
    scale_max: float = 5,
    *,
    correlation_threshold: float | None = None,
    correlation_method: str = "pearson",
    min_outputs: int = 3,
    inconsistency_factor: float = DEFAULT_FACTOR,
    inconsistency_alpha: float = DEFAULT_ALPHA,
    min_votes: int = DEFAULT_MIN_VOTES,
    hidden_ref_max: float | None = None,
    low_anchor_min: float | None = None,
    max_failures_fraction: float = 0.25,
    bt500_ddof: int = 1,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> pd.DataFrame:
    """Run every screening rule and say, per rater, which rules flagged them.

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows are ignored.
    methods_info : DataFrame, optional
        ``method`` and ``method_kind`` columns, for the control rule.
    scale_min, scale_max : float
        Ends of the rating scale (for the control thresholds).
    correlation_threshold : float or None
        Exclude raters whose correlation with the others falls below it; ``None``
        (default) reports the correlation only. See :func:`correlation_screening`.
    correlation_method, min_outputs
        See :func:`correlation_screening`.
    inconsistency_factor, inconsistency_alpha, min_votes
        See :func:`inconsistency_screening` (``min_votes`` also for straight-lining).
    hidden_ref_max, low_anchor_min, max_failures_fraction
        See :func:`control_screening`.
    bt500_ddof : int
        See :func:`bt500_screening`.
    rater, scene, method, score, kind : str
        Column names.

    Returns
    -------
    DataFrame
        One row per rater: ``rater``, ``n_votes``, ``bt500_P``, ``bt500_Q``,
        ``bt500_ratio``, ``bt500_rejected``, ``inconsistency``,
        ``inconsistency_reference``, ``inconsistency_p``, ``inconsistency_rejected``,
        ``straight_lining_rejected``, ``correlation``, ``correlation_rejected``,
        ``controls``, ``controls_failed``, ``controls_rejected``, ``excluded`` (any
        rule) and ``excluded_by`` (the rules, comma separated).

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": np.repeat([1, 2, 3, 4], 5),
    ...                       "scene": np.tile(list("abcde"), 4), "method": "A",
    ...                       "score": [1, 2, 3, 4, 5, 1, 2, 4, 4, 5, 2, 2, 3, 5, 5,
    ...                                 3, 3, 3, 3, 3]})
    >>> screen_raters(votes)["excluded_by"].tolist()
    ['', '', '', 'straight_lining']
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    table = _screen(
        votes,
        methods_info,
        method,
        scale_min=scale_min,
        scale_max=scale_max,
        correlation_threshold=correlation_threshold,
        correlation_method=correlation_method,
        min_outputs=min_outputs,
        inconsistency_factor=inconsistency_factor,
        inconsistency_alpha=inconsistency_alpha,
        min_votes=min_votes,
        hidden_ref_max=hidden_ref_max,
        low_anchor_min=low_anchor_min,
        max_failures_fraction=max_failures_fraction,
        bt500_ddof=bt500_ddof,
    )
    return table.rename(columns={"rater": rater})


def exclude_raters(df: pd.DataFrame, screening: pd.DataFrame, *, rater: str = "rater") -> pd.DataFrame:
    """Votes of the raters that :func:`screen_raters` did not exclude.

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": [1, 2], "score": [3, 4]})
    >>> screening = pd.DataFrame({"rater": [1, 2], "excluded": [False, True]})
    >>> exclude_raters(votes, screening)["rater"].tolist()
    [1]
    """
    dropped = screening.loc[screening["excluded"].astype(bool), rater]
    return df[~df[rater].isin(dropped)]
