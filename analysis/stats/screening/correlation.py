"""Correlation of each rater's votes with the others' MOS (P.910/P.913 style)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._common import Estimator, Votes, prepare_votes

CORRELATION = Estimator("rater-correlation-leave-one-out", "1.1")


def _rater_correlation(votes: Votes, threshold: float | None, method: str, min_outputs: int) -> pd.DataFrame:
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
    if threshold is None:
        flagged = np.zeros(n_r, dtype=bool)
    else:
        # no defined correlation (a rater who always gives one level) is no agreement
        flagged = (n >= min_outputs) & ~(r >= threshold)
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
    threshold: float | None = 0.7,
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
    rater whose votes are all equal has no defined correlation (NaN) and is flagged too.

    A fixed threshold does not adapt to the study: when teams are close, the true MOS
    varies little between the outputs a rater saw and good raters' correlations fall
    below 0.7 (in ``bench/validity`` most good raters are flagged). :func:`screen_raters`
    therefore reports the correlation without excluding by it unless a threshold is
    given; ``threshold=None`` here does the same.

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows are ignored.
    threshold : float or None
        Flag below this correlation; ``None`` reports the correlation and flags nobody.
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
