"""Rater screening: ITU-R BT.500 kurtosis test, correlation with the others, controls.

Screening only flags raters; :func:`screen_raters` says which rule flagged whom and
:func:`exclude_raters` drops them, so results can be reported with and without exclusion.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import Estimator, Votes, group_mean_std, prepare_votes

BT500 = Estimator("bt500-annex1-2.3.1", "1.0")
CORRELATION = Estimator("rater-correlation-leave-one-out", "1.0")
CONTROLS = Estimator("failed-controls", "1.0")
SCREENING = Estimator("rater-screening", "1.0")

HIDDEN_REFERENCE = "hidden_reference"
LOW_ANCHOR = "low_anchor"


def _bt500(votes: Votes, ddof: int) -> pd.DataFrame:
    size = votes.n_outputs
    out = votes.output
    n, mean, std = group_mean_std(out, votes.score, size, ddof=ddof)
    dev = votes.score - mean[out]
    with np.errstate(invalid="ignore", divide="ignore"):
        m2 = np.bincount(out, weights=dev**2, minlength=size) / n
        m4 = np.bincount(out, weights=dev**4, minlength=size) / n
        beta2 = m4 / (m2 * m2)
    normal = (beta2 >= 2) & (beta2 <= 4)
    k = np.where(normal, 2.0, np.sqrt(20.0))
    # an output everyone rated alike has std 0: nobody deviates from it, so it cannot
    # produce P or Q counts (a literal ">= mean + k*0" would count every vote twice)
    usable = np.isfinite(std) & (std > 0)
    upper = (mean + k * std)[out]
    lower = (mean - k * std)[out]
    use = usable[out]
    p = np.bincount(votes.rater, weights=use & (votes.score >= upper), minlength=votes.n_raters)
    q = np.bincount(votes.rater, weights=use & (votes.score <= lower), minlength=votes.n_raters)
    n_r = np.bincount(votes.rater, minlength=votes.n_raters).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = (p + q) / n_r
        asymmetry = np.abs(p - q) / (p + q)
    rejected = (ratio > 0.05) & (asymmetry < 0.3)
    return pd.DataFrame(
        {
            "rater": np.asarray(votes.raters),
            "n_votes": n_r.astype(np.int64),
            "P": p.astype(np.int64),
            "Q": q.astype(np.int64),
            "ratio": ratio,
            "asymmetry": asymmetry,
            "rejected": rejected,
        }
    )


def bt500_screening(
    df: pd.DataFrame,
    *,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
    ddof: int = 1,
) -> pd.DataFrame:
    """ITU-R BT.500 Annex 1, section 2.3.1 observer screening.

    For each output (method x scene): mean, standard deviation ``s`` and kurtosis
    ``beta2 = m4 / m2**2`` (central moments over N). With ``k = 2`` if
    ``2 <= beta2 <= 4`` (close to normal), else ``k = sqrt(20)``, a vote counts for its
    rater in ``P`` when ``score >= mean + k*s`` and in ``Q`` when
    ``score <= mean - k*s``. A rater with N votes is rejected when
    ``(P+Q)/N > 0.05`` and ``|P-Q|/(P+Q) < 0.3``. Outputs whose votes all agree
    (``s = 0``) count for nobody.

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows are ignored.
    rater, scene, method, score, kind : str
        Column names.
    ddof : int
        Delta degrees of freedom of ``s`` (1: sample standard deviation as in BT.500
        section 2.2.1; 0 reproduces sureal's SR_MOS).

    Returns
    -------
    DataFrame
        One row per rater: ``n_votes``, ``P``, ``Q``, ``ratio`` = (P+Q)/N,
        ``asymmetry`` = |P-Q|/(P+Q), ``rejected``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = np.clip(np.round(rng.normal(3, 0.8, (30, 20))), 1, 5)
    >>> s[-1] = [1, 5] * 10          # rater 29 votes only the extremes
    >>> votes = pd.DataFrame({"rater": np.repeat(np.arange(30), 20),
    ...                       "scene": np.tile(np.arange(20), 30), "method": "A",
    ...                       "score": s.ravel()})
    >>> bool(bt500_screening(votes).set_index("rater").loc[29, "rejected"])
    True
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    table = _bt500(votes, ddof).rename(columns={"rater": rater})
    return BT500.stamp(table, ddof=ddof)


def _rater_correlation(votes: Votes, threshold: float, method: str, min_outputs: int) -> pd.DataFrame:
    n_out, n_r = votes.n_outputs, votes.n_raters
    out = votes.output
    o_sum = np.bincount(out, weights=votes.score, minlength=n_out)
    o_cnt = np.bincount(out, minlength=n_out).astype(float)
    # fold repeated votes of one rater on one output into one pair
    pair, inverse = np.unique(votes.rater * n_out + out, return_inverse=True)
    p_sum = np.bincount(inverse, weights=votes.score, minlength=len(pair))
    p_cnt = np.bincount(inverse, minlength=len(pair)).astype(float)
    p_rater = pair // n_out
    p_out = pair % n_out
    others = o_cnt[p_out] - p_cnt
    ok = others > 0
    x = (p_sum / p_cnt)[ok]
    with np.errstate(invalid="ignore", divide="ignore"):
        y = ((o_sum[p_out] - p_sum) / others)[ok]
    g = p_rater[ok]
    if method == "spearman":
        ranks = pd.DataFrame({"g": g, "x": x, "y": y}).groupby("g")[["x", "y"]].rank()
        x, y = ranks["x"].to_numpy(), ranks["y"].to_numpy()
    elif method != "pearson":
        raise ValueError("method must be 'pearson' or 'spearman'")
    n = np.bincount(g, minlength=n_r).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x - (np.bincount(g, weights=x, minlength=n_r) / n)[g]
        dy = y - (np.bincount(g, weights=y, minlength=n_r) / n)[g]
        sxy = np.bincount(g, weights=dx * dy, minlength=n_r)
        sxx = np.bincount(g, weights=dx * dx, minlength=n_r)
        syy = np.bincount(g, weights=dy * dy, minlength=n_r)
        r = sxy / np.sqrt(sxx * syy)
    r = np.where(n >= 2, np.clip(r, -1.0, 1.0), np.nan)
    flagged = (n >= min_outputs) & (r < threshold)
    return pd.DataFrame(
        {
            "rater": np.asarray(votes.raters),
            "n_outputs": n.astype(np.int64),
            "correlation": r,
            "rejected": flagged,
        }
    )


def correlation_screening(
    df: pd.DataFrame,
    *,
    threshold: float = 0.7,
    method: str = "pearson",
    min_outputs: int = 3,
    rater: str = "rater",
    scene: str = "scene",
    method_col: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> pd.DataFrame:
    """Correlation of each rater's votes with the MOS of the other raters.

    For every output a rater voted on, the rater's score (mean, if they voted twice) is
    paired with the mean of everybody else's votes on that output (leave-that-rater-out
    MOS); outputs nobody else rated are skipped. The Pearson (or Spearman) correlation
    over those pairs is the rater's agreement (P.910/P.913 style). A rater is flagged
    when ``correlation < threshold`` and they rated at least ``min_outputs`` outputs. A
    rater whose votes are all equal has no defined correlation (NaN) and is not flagged
    by this rule.

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows are ignored.
    threshold : float
        Flag below this correlation.
    method : {"pearson", "spearman"}
        Correlation coefficient.
    min_outputs : int
        Minimum number of paired outputs before a rater can be flagged.
    rater, scene, method_col, score, kind : str
        Column names (``method_col`` is the method column, since ``method`` names the
        coefficient).

    Returns
    -------
    DataFrame
        One row per rater: ``n_outputs``, ``correlation``, ``rejected``.

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": np.repeat([1, 2, 3, 4], 4),
    ...                       "scene": np.tile(list("abcd"), 4), "method": "A",
    ...                       "score": [1, 2, 3, 4, 1, 2, 4, 4, 2, 2, 3, 5, 4, 3, 2, 1]})
    >>> correlation_screening(votes)["rejected"].tolist()
    [False, False, False, True]
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method_col, score=score, kind=kind)
    table = _rater_correlation(votes, threshold, method, min_outputs)
    table = table.rename(columns={"rater": rater})
    return CORRELATION.stamp(table, threshold=threshold, method=method, min_outputs=min_outputs)


def _control_thresholds(
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
    ref_max, anchor_min = _control_thresholds(scale_min, scale_max, hidden_ref_max, low_anchor_min)
    table = _controls(votes, methods_info, method, ref_max, anchor_min, max_failures_fraction)
    table = table.rename(columns={"rater": rater})
    return CONTROLS.stamp(
        table,
        hidden_ref_max=ref_max,
        low_anchor_min=anchor_min,
        max_failures_fraction=max_failures_fraction,
    )


def _screen(
    votes: Votes,
    methods_info: pd.DataFrame | None,
    method_key: str,
    *,
    scale_min: float,
    scale_max: float,
    correlation_threshold: float,
    correlation_method: str,
    min_outputs: int,
    hidden_ref_max: float | None,
    low_anchor_min: float | None,
    max_failures_fraction: float,
    bt500_ddof: int,
) -> pd.DataFrame:
    bt = _bt500(votes, bt500_ddof)
    corr = _rater_correlation(votes, correlation_threshold, correlation_method, min_outputs)
    ref_max, anchor_min = _control_thresholds(scale_min, scale_max, hidden_ref_max, low_anchor_min)
    ctrl = _controls(votes, methods_info, method_key, ref_max, anchor_min, max_failures_fraction)
    table = pd.DataFrame(
        {
            "rater": bt["rater"],
            "n_votes": bt["n_votes"],
            "bt500_P": bt["P"],
            "bt500_Q": bt["Q"],
            "bt500_ratio": bt["ratio"],
            "bt500_rejected": bt["rejected"],
            "correlation": corr["correlation"],
            "correlation_rejected": corr["rejected"],
            "controls": ctrl["controls"],
            "controls_failed": ctrl["controls_failed"],
            "controls_rejected": ctrl["rejected"],
        }
    )
    rules = table[["bt500_rejected", "correlation_rejected", "controls_rejected"]]
    table["excluded"] = rules.any(axis=1)
    names = np.array(["bt500", "correlation", "controls"])
    table["excluded_by"] = [",".join(names[row]) for row in rules.to_numpy()]
    return SCREENING.stamp(
        table,
        correlation_threshold=correlation_threshold,
        correlation_method=correlation_method,
        min_outputs=min_outputs,
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
    correlation_threshold: float = 0.7,
    correlation_method: str = "pearson",
    min_outputs: int = 3,
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
    correlation_threshold, correlation_method, min_outputs
        See :func:`correlation_screening`.
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
        ``bt500_ratio``, ``bt500_rejected``, ``correlation``,
        ``correlation_rejected``, ``controls``, ``controls_failed``,
        ``controls_rejected``, ``excluded`` (any rule) and ``excluded_by`` (the rules,
        comma separated).

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": np.repeat([1, 2, 3, 4], 4),
    ...                       "scene": np.tile(list("abcd"), 4), "method": "A",
    ...                       "score": [1, 2, 3, 4, 1, 2, 4, 4, 2, 2, 3, 5, 4, 3, 2, 1]})
    >>> screen_raters(votes)["excluded_by"].tolist()
    ['', '', '', 'correlation']
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
