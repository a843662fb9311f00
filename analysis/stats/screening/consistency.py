"""Screening rules that adapt to the study: inconsistency against the pool, straight-lining.

A fixed correlation threshold flags most good raters when teams are close (the true MOS
then varies little, so even a perfect rater's correlation is low). These rules compare a
rater with the other raters of the same study instead:

* **inconsistency** (``p910-inconsistency-vs-pool``): the ITU-T P.910 Annex E subject
  model gives each rater an inconsistency ``upsilon`` (the spread of their votes around
  quality + their own bias, so a rater who is merely strict or lenient is not penalised).
  A careless rater who answers at random has a spread far above the pool's. The rule
  takes the pool's typical inconsistency, ``u_ref = factor * u_pool``, and flags a rater
  when a one-sided chi-square test rejects ``upsilon <= u_ref``:
  ``n * upsilon**2 / u_ref**2 > chi2.ppf(1 - alpha, n - 1)``. The test accounts for how
  many votes the rater gave: a rater with 12 votes needs a larger spread to be flagged
  than one with 50. ``u_pool`` (version 1.1) is the pooled spread of the raters with
  enough votes up to the pool's 80th percentile of ``upsilon``:
  ``sqrt(sum(n * upsilon**2) / sum(n))`` over them, so that the careless few at the top
  do not set the bar. Pooling the votes of most of the pool estimates it with less noise
  than version 1.0's median, and a noisy bar is what flags good raters in small studies:
  in bench/validity's small design (20 raters of 15 votes), version 1.0 flagged
  4.7-5.2% of good raters for 91-92% of careless ones, version 1.1 3.5-4.4% for 91-93%.
* **straight-lining** (``straight-lining``): every vote of the rater at one level, over
  at least ``min_votes`` votes. Such a rater gives no information (their correlation
  with the others is undefined) and is always flagged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .._common import Estimator, Votes, group_mean_std, prepare_votes

INCONSISTENCY = Estimator("p910-inconsistency-vs-pool", "1.1")
STRAIGHT_LINING = Estimator("straight-lining", "1.0")

DEFAULT_FACTOR = 1.25
#: Raters above this quantile of the pool's inconsistency do not set its reference.
POOL_QUANTILE = 0.8
DEFAULT_ALPHA = 0.005
DEFAULT_MIN_VOTES = 5


def pool_inconsistency(n_votes: np.ndarray, upsilon: np.ndarray) -> float:
    """The pooled inconsistency of the raters up to the pool's ``POOL_QUANTILE`` (see the
    module docstring): ``sqrt(sum(n * upsilon**2) / sum(n))`` over them."""
    kept = upsilon <= np.quantile(upsilon, POOL_QUANTILE)
    return float(np.sqrt(np.sum(n_votes[kept] * upsilon[kept] ** 2) / np.sum(n_votes[kept])))


def _inconsistency(
    raters: np.ndarray, n_votes: np.ndarray, upsilon: np.ndarray, factor: float, alpha: float, min_votes: int
) -> pd.DataFrame:
    n = n_votes.astype(float)
    eligible = (n >= min_votes) & np.isfinite(upsilon)
    u_ref = factor * pool_inconsistency(n[eligible], upsilon[eligible]) if eligible.any() else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        statistic = n * upsilon**2 / u_ref**2
        p = stats.chi2.sf(statistic, np.maximum(n - 1, 1))
    flagged = eligible & (u_ref > 0) & (p < alpha)
    return pd.DataFrame(
        {
            "rater": raters,
            "inconsistency": upsilon,
            "inconsistency_reference": u_ref,
            "inconsistency_p": np.where(eligible, p, np.nan),
            "rejected": flagged,
        }
    )


def _straight_lining(votes: Votes, min_votes: int) -> pd.DataFrame:
    n, _, std = group_mean_std(votes.rater, votes.score, votes.n_raters, ddof=0)
    flat = (n >= min_votes) & (std < 1e-12)
    return pd.DataFrame(
        {
            "rater": np.asarray(votes.raters),
            "n_votes": n.astype(np.int64),
            "score_std": std,
            "rejected": flat,
        }
    )


def straight_lining_screening(
    df: pd.DataFrame,
    *,
    min_votes: int = DEFAULT_MIN_VOTES,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> pd.DataFrame:
    """Flag raters who gave the same level to every output (at least ``min_votes`` votes).

    Returns
    -------
    DataFrame
        One row per rater: ``n_votes``, ``score_std`` (ddof=0), ``rejected``.

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": np.repeat([1, 2], 5), "scene": np.tile(list("abcde"), 2),
    ...                       "method": "A", "score": [3, 3, 3, 3, 3, 1, 2, 3, 4, 5]})
    >>> straight_lining_screening(votes)["rejected"].tolist()
    [True, False]
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    table = _straight_lining(votes, min_votes).rename(columns={"rater": rater})
    return STRAIGHT_LINING.stamp(table, min_votes=min_votes)


def inconsistency_screening(
    df: pd.DataFrame,
    *,
    factor: float = DEFAULT_FACTOR,
    alpha: float = DEFAULT_ALPHA,
    min_votes: int = DEFAULT_MIN_VOTES,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> pd.DataFrame:
    """Flag raters whose P.910 inconsistency is well above the pool's.

    See the module docstring for the rule. ``factor`` says how much noisier than the
    pool a rater may be before the test starts (1.25: good raters differ in care, and
    the rule must not flag the less careful half of them); ``alpha`` is the
    per-rater error rate of the one-sided chi-square test.

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows are ignored.
    factor : float
        ``u_ref = factor * u_pool`` (:func:`pool_inconsistency`).
    alpha : float
        Level of the one-sided test of ``upsilon <= u_ref``.
    min_votes : int
        Raters with fewer votes are not judged (they take no part in the median either).
    rater, scene, method, score, kind : str
        Column names.

    Returns
    -------
    DataFrame
        One row per rater: ``inconsistency`` (P.910 upsilon), ``inconsistency_reference``
        (``u_ref``), ``inconsistency_p`` (p-value of the test), ``rejected``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> quality = rng.uniform(1.5, 4.5, 40)
    >>> scores = np.clip(np.round(quality + rng.normal(0, 0.5, (12, 40))), 1, 5)
    >>> scores[-1] = rng.integers(1, 6, 40)          # rater 11 answers at random
    >>> votes = pd.DataFrame({"rater": np.repeat(np.arange(12), 40),
    ...                       "scene": np.tile(np.arange(40), 12), "method": "A",
    ...                       "score": scores.ravel()})
    >>> inconsistency_screening(votes)["rejected"].to_numpy().nonzero()[0].tolist()
    [11]
    """
    from ..subject_model import _p910_from_votes

    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    fit = _p910_from_votes(votes, 0.95).raters
    table = _inconsistency(
        fit["rater"].to_numpy(), fit["n_votes"].to_numpy(), fit["residual_sd"].to_numpy(float), factor, alpha, min_votes
    )
    table = table.rename(columns={"rater": rater})
    return INCONSISTENCY.stamp(table, factor=factor, alpha=alpha, min_votes=min_votes)
