"""ITU-R BT.500 Annex 1, section 2.3.1 observer screening (kurtosis test)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._common import Estimator, Votes, group_mean_std, prepare_votes

BT500 = Estimator("bt500-annex1-2.3.1", "1.0")


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
