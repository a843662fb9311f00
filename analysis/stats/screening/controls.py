"""Failed controls: a hidden reference rated low, a low anchor rated high."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._common import HIDDEN_REFERENCE, LOW_ANCHOR, Estimator, Votes, prepare_votes

CONTROLS = Estimator("failed-controls", "1.0")


def control_thresholds(
    scale_min: float,
    scale_max: float,
    hidden_ref_max: float | None,
    low_anchor_min: float | None,
) -> tuple[float, float]:
    span = scale_max - scale_min
    if span <= 0:
        raise ValueError("scale_max must be greater than scale_min")
    # bottom quarter of the scale for a hidden reference, top quarter for a low anchor:
    # on the AIM 1..5 scale a reference rated 2 ("poor") or 1 fails, an anchor rated 4+
    # fails; on the PIRM 1..4 scale only the extreme level fails
    ref = scale_min + span / 4 if hidden_ref_max is None else hidden_ref_max
    anchor = scale_max - span / 4 if low_anchor_min is None else low_anchor_min
    return ref, anchor


def _controls(
    votes: Votes,
    methods_info: pd.DataFrame | None,
    method_key: str,
    hidden_ref_max: float,
    low_anchor_min: float,
    max_failures_fraction: float,
) -> pd.DataFrame:
    n_r = votes.n_raters
    ref = np.zeros(votes.n_methods, dtype=bool)
    anchor = np.zeros(votes.n_methods, dtype=bool)
    if methods_info is not None and len(methods_info):
        kinds = methods_info.set_index(method_key)["method_kind"]
        kinds = kinds.reindex(votes.methods)
        ref = (kinds == HIDDEN_REFERENCE).to_numpy()
        anchor = (kinds == LOW_ANCHOR).to_numpy()
    is_ref = ref[votes.method]
    is_anchor = anchor[votes.method]
    failed = (is_ref & (votes.score <= hidden_ref_max)) | (is_anchor & (votes.score >= low_anchor_min))
    n_ctrl = np.bincount(votes.rater, weights=is_ref | is_anchor, minlength=n_r)
    n_fail = np.bincount(votes.rater, weights=failed, minlength=n_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = n_fail / n_ctrl
    return pd.DataFrame(
        {
            "rater": np.asarray(votes.raters),
            "controls": n_ctrl.astype(np.int64),
            "controls_failed": n_fail.astype(np.int64),
            "controls_failed_fraction": fraction,
            "rejected": (n_ctrl > 0) & (fraction > max_failures_fraction),
        }
    )


def control_screening(
    df: pd.DataFrame,
    methods_info: pd.DataFrame | None,
    *,
    scale_min: float = 1,
    scale_max: float = 5,
    hidden_ref_max: float | None = None,
    low_anchor_min: float | None = None,
    max_failures_fraction: float = 0.25,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> pd.DataFrame:
    """Failed controls: a hidden reference rated low or a low anchor rated high.

    Control votes are the votes on outputs of methods whose ``method_kind`` in
    ``methods_info`` is ``"hidden_reference"`` or ``"low_anchor"``. A vote on a hidden
    reference fails when ``score <= hidden_ref_max`` (default: bottom quarter of the
    scale, ``scale_min + (scale_max - scale_min) / 4``, i.e. 2 on a 1..5 scale); a vote
    on a low anchor fails when ``score >= low_anchor_min`` (default: top quarter,
    ``scale_max - (scale_max - scale_min) / 4``, i.e. 4 on 1..5). A rater is flagged when
    the fraction of their control votes that failed exceeds ``max_failures_fraction``.

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows are ignored.
    methods_info : DataFrame or None
        Columns ``method`` (named like the vote frame's method column) and
        ``method_kind``. ``None`` means no controls: nobody is flagged.
    scale_min, scale_max : float
        Ends of the rating scale.
    hidden_ref_max, low_anchor_min : float, optional
        Failure thresholds; defaults derived from the scale as above.
    max_failures_fraction : float
        Flag above this fraction of failed control votes.
    rater, scene, method, score, kind : str
        Column names.

    Returns
    -------
    DataFrame
        One row per rater: ``controls``, ``controls_failed``,
        ``controls_failed_fraction``, ``rejected``.

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": [1, 1, 2, 2], "scene": "a",
    ...                       "method": ["ref", "anchor"] * 2, "score": [5, 1, 1, 5]})
    >>> info = pd.DataFrame({"method": ["ref", "anchor"],
    ...                      "method_kind": ["hidden_reference", "low_anchor"]})
    >>> control_screening(votes, info)["rejected"].tolist()
    [False, True]
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    ref_max, anchor_min = control_thresholds(scale_min, scale_max, hidden_ref_max, low_anchor_min)
    table = _controls(votes, methods_info, method, ref_max, anchor_min, max_failures_fraction)
    table = table.rename(columns={"rater": rater})
    return CONTROLS.stamp(
        table,
        hidden_ref_max=ref_max,
        low_anchor_min=anchor_min,
        max_failures_fraction=max_failures_fraction,
    )
