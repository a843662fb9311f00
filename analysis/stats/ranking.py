"""Ranking of methods by MOS, with groups the data cannot separate shown as tied ranks.

Two procedures, both controlling the family-wise error of false separations over the
whole table (strong control, all pairs):

* ``"stepdown-maxt"`` (default): every pair tested with the covariance of the question
  asked ("test set" or "new scenes", :mod:`.inference`), p-values adjusted by the
  step-down max-T procedure (Westfall & Young 1993; Hothorn, Bretz & Westfall 2008);
* ``"holm"`` (conservative option, version 1.0's only procedure): paired t-tests (or
  Wilcoxon) over scenes, ``MOS[a, i] - MOS[b, i]`` over the scenes i where both have
  votes, Holm corrected over all pairs; it answers "on new scenes too".

A paired t-test over scenes alone counts the study's raters as fixed: their biases, shared
by every scene, do not cancel between two methods rated by different raters, so with a
small panel it separated equal methods 5.5-6.7% of the time in bench/validity's small
design (20 raters). Version 2.0 adds to each pair's variance the rater part of the
two-way cluster decomposition (Cameron, Gelbach & Miller 2011: ``Cov_rater -
Cov_rater x scene`` of the pair's difference, see :mod:`.inference`) when it is positive,
and keeps the paired test's ``n_scenes - 1`` degrees of freedom: never narrower than the
paired test, and without the noise of the full two-way estimate, which separated equal
methods 8-11% of the time there. Same design: 3.7-4.2%; AIM-like power at 0.28 MOS 89%
(the paired test alone: 90%).

Pairs whose differences have no variance are never separated. A method's rank is ``1 + (number of methods significantly
better than it)``, so methods nobody beats share rank 1; the display string is the
range ``rank .. (number of methods not significantly worse than it)``, e.g. ``"1-2"``
for two leaders the data cannot separate and ``"3"`` for a method separated from all.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from ._common import Estimator, Votes, prepare_votes
from .inference import (
    MAXT,
    NEW_SCENES,
    NEW_SCENES_RATER_PART,
    QUESTIONS,
    TEST_SET,
    TEST_SET_PAIR_DF,
    covariances,
    stepdown_maxt,
)

RANKING = Estimator("ranking-paired-holm", "2.0")


def _image_matrix(votes: Votes) -> np.ndarray:
    """methods x scenes per-image MOS, NaN where an output has no vote."""
    n = np.bincount(votes.output, minlength=votes.n_outputs)
    s = np.bincount(votes.output, weights=votes.score, minlength=votes.n_outputs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (s / n).reshape(votes.n_methods, votes.n_scenes)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (Holm, Scand. J. Statist. 6, 1979); NaN stays NaN.

    Written out because statsmodels' ``multipletests`` takes about 35 ms a call, a third
    of a whole AIM-sized report (tests check this against it).

    The i-th smallest of m finite p-values becomes ``max over j <= i of min(1, (m - j + 1) p_(j))``.
    """
    adjusted = np.full(len(p), np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    adjusted[order] = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    return adjusted


def single_entry_ranking(names: list) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ranking of fewer than two methods: each at rank 1, no pairs to test."""
    ranking = pd.DataFrame(
        {"method": names, "rank": 1, "rank_high": 1, "rank_display": "1", "tied_with_winner": True}
    ).astype({"rank": "int64", "rank_high": "int64"})
    return ranking, pd.DataFrame(columns=["pair", "diff", "p", "p_holm", "significant", "estimand"])


def _rank(
    votes: Votes, alpha: float, test: str, method_key: str, cov: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Holm over paired tests (module docstring); ``cov`` is :func:`.inference.covariances`
    of ``votes`` when the caller has it."""
    img = _image_matrix(votes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mos = np.nanmean(img, axis=1)
    names = np.asarray(votes.methods)
    order = np.lexsort((names.astype(str), -mos))
    if test not in ("t", "wilcoxon"):
        raise ValueError("test must be 't' or 'wilcoxon'")
    # every pair at once: scipy's ttest_rel per pair cost most of an AIM-sized report
    pairs = np.array(list(combinations(order, 2)), dtype=np.int64).reshape(-1, 2)
    a_img, b_img = img[pairs[:, 0]], img[pairs[:, 1]]
    both = ~np.isnan(a_img) & ~np.isnan(b_img)
    n = both.sum(axis=1)
    diff = np.where(both, a_img - b_img, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = diff.sum(axis=1) / n
        var = (np.where(both, diff - mean[:, None], 0.0) ** 2).sum(axis=1) / (n - 1)
    spread = np.where(both, diff, -np.inf).max(axis=1, initial=-np.inf) - np.where(both, diff, np.inf).min(
        axis=1, initial=np.inf
    )
    # constant differences (identical, or shifted by the same amount on every scene)
    # have no variance to test against: never a separation. Version 1.2: "constant" up
    # to rounding (4.3 - 0.5 is not exactly 3.8), which version 1.1 tested as t = 1e16
    scale = max(1.0, float(np.nanmax(np.abs(img)))) if np.isfinite(img).any() else 1.0
    live = (n >= 2) & (spread > 1e-9 * scale)
    stat = np.full(len(pairs), np.nan)
    p = np.where(n >= 2, 1.0, np.nan)
    if test == "t":
        rater_part = (covariances(votes) if cov is None else cov)[NEW_SCENES_RATER_PART]
        a, b = pairs[:, 0], pairs[:, 1]
        shared = rater_part[a, a] + rater_part[b, b] - 2 * rater_part[a, b]
        with np.errstate(invalid="ignore", divide="ignore"):
            t = mean / np.sqrt(var / n + np.maximum(shared, 0.0))
        stat[live] = t[live]
        p[live] = 2 * stats.t.sf(np.abs(t[live]), n[live] - 1)
    else:
        for k in np.flatnonzero(live):
            res = stats.wilcoxon(a_img[k, both[k]], b_img[k, both[k]])
            stat[k], p[k] = float(res.statistic), float(res.pvalue)
    pairwise = pd.DataFrame(
        {
            "method_a": names[pairs[:, 0]],
            "method_b": names[pairs[:, 1]],
            "pair": [f"{x} vs {y}" for x, y in zip(names[pairs[:, 0]], names[pairs[:, 1]], strict=True)],
            "n_scenes": n.astype(np.int64),
            "diff": np.where(n > 0, mean, np.nan),
            "statistic": stat,
            "p": p,
        }
    )
    p_holm = holm(p)
    pairwise["p_holm"] = p_holm
    pairwise["significant"] = np.nan_to_num(p_holm, nan=1.0) < alpha
    pairwise["test"] = "paired-t" if test == "t" else "wilcoxon"

    ranking = _ranking_table(names, order, mos, img, pairwise, method_key)
    pairwise = pairwise.rename(columns={"method_a": f"{method_key}_a", "method_b": f"{method_key}_b"})
    params = {"alpha": alpha, "test": test, "correction": "holm", "question": NEW_SCENES}
    pairwise["estimand"] = NEW_SCENES
    ranking["estimand"] = NEW_SCENES
    return RANKING.stamp(ranking, **params), RANKING.stamp(pairwise, **params)


def _ranking_table(
    names: np.ndarray, order: np.ndarray, mos: np.ndarray, img: np.ndarray, pairwise: pd.DataFrame, method_key: str
) -> pd.DataFrame:
    index = {name: i for i, name in enumerate(names)}
    m = len(names)
    better = np.zeros((m, m), dtype=bool)
    sig = pairwise[pairwise["significant"]]
    for a, b, d in sig[["method_a", "method_b", "diff"]].itertuples(index=False):
        winner, loser = (a, b) if d > 0 else (b, a)
        better[index[winner], index[loser]] = True
    above = better.sum(axis=0)
    below = better.sum(axis=1)
    low = 1 + above[order]
    high = m - below[order]
    winner = order[0] if m else None
    ranked = names[order]
    return pd.DataFrame(
        {
            method_key: ranked,
            "mos": mos[order],
            "n_scenes": (~np.isnan(img[order])).sum(axis=1),
            "rank": low,
            "rank_high": high,
            "rank_display": [str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in zip(low, high, strict=True)],
            "n_better": low - 1,
            "n_worse": m - high,
            # the methods the data cannot tell from the top one (the top one included)
            "tied_with_winner": [bool(i == winner or not better[winner, i]) for i in order],
        }
    )


def _rank_maxt(
    votes: Votes, alpha: float, question: str, method_key: str, seed: int = 0, cov: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    if question not in QUESTIONS:
        raise ValueError(f"question must be one of {QUESTIONS}")
    img = _image_matrix(votes)
    cov = covariances(votes) if cov is None else cov
    pair_df = cov[TEST_SET_PAIR_DF]
    mos, cov, df = cov[question]
    names = np.asarray(votes.methods)
    order = np.lexsort((names.astype(str), -mos))
    pairs = np.array(list(combinations(order, 2)), dtype=np.int64).reshape(-1, 2)
    if question == TEST_SET:
        # one reference distribution for the whole table: the multivariate t on the
        # smallest Satterthwaite degrees of freedom of the pairs tested (version 1.1)
        df = float(pair_df[pairs[:, 0], pairs[:, 1]].min()) if len(pairs) else float(max(votes.n_raters - 1, 1))
    t, p, adjusted = stepdown_maxt(mos, cov, df, pairs, seed=seed)
    a, b = pairs[:, 0], pairs[:, 1]
    both = ~np.isnan(img[a]) & ~np.isnan(img[b])
    pairwise = pd.DataFrame(
        {
            "method_a": names[a],
            "method_b": names[b],
            "pair": [f"{x} vs {y}" for x, y in zip(names[a], names[b], strict=True)],
            "n_scenes": both.sum(axis=1),
            "diff": mos[a] - mos[b],
            "statistic": t,
            "p": p,
            "p_adjusted": adjusted,
        }
    )
    # the column name of version 1.0, kept for readers of stored runs and exports
    pairwise["p_holm"] = adjusted
    pairwise["significant"] = adjusted < alpha
    pairwise["test"] = "t-rater-cluster-cr2" if question == TEST_SET else "t-two-way-cluster"
    pairwise["estimand"] = question
    ranking = _ranking_table(names, order, mos, img, pairwise, method_key)
    ranking["estimand"] = question
    pairwise = pairwise.rename(columns={"method_a": f"{method_key}_a", "method_b": f"{method_key}_b"})
    params = {"alpha": alpha, "question": question, "df": df, "n_simulations": 4000, "seed": seed}
    return MAXT.stamp(ranking, **params), MAXT.stamp(pairwise, **params)


def rank_methods(
    df: pd.DataFrame,
    *,
    alpha: float = 0.05,
    test: str = "t",
    procedure: str = "stepdown-maxt",
    question: str = TEST_SET,
    seed: int = 0,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank methods by MOS and say which differences the data supports.

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows are ignored.
    alpha : float
        Family-wise error rate of false separations over all pairs.
    test : {"t", "wilcoxon"}
        With ``procedure="holm"``: paired t-test (``scipy.stats.ttest_rel``) or
        Wilcoxon signed-rank test on the per-image MOS over scenes.
    procedure : {"stepdown-maxt", "holm"}
        Step-down max-T over all pairs with the question's covariance (default), or
        Holm over all pairs of paired tests over scenes (conservative; answers "on new
        scenes too" whatever ``question`` says).
    question : {"test set", "new scenes"}
        With ``procedure="stepdown-maxt"``: scenes fixed and raters sampled (what a
        challenge ranks), or both sampled. See :mod:`analysis.stats.inference`.
    seed : int
        Seed of the max-T null simulation.
    rater, scene, method, score, kind : str
        Column names.

    Returns
    -------
    ranking : DataFrame
        Methods sorted by MOS (ties by name): ``mos``, ``n_scenes``, ``rank``
        (1 + methods significantly better), ``rank_high`` (methods not significantly
        worse), ``rank_display`` (``"1"`` or ``"2-4"``), ``n_better``, ``n_worse``.
    pairwise : DataFrame
        One row per pair (a ranked above b): ``pair``, ``n_scenes``, ``diff`` (mean of
        ``MOS[a, i] - MOS[b, i]``), ``statistic``, ``p``, ``p_holm``, ``significant``.

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": 1, "scene": np.tile(list("abcdef"), 3),
    ...                       "method": np.repeat(["A", "B", "C"], 6),
    ...                       "score": [5, 5, 4, 5, 5, 4, 5, 4, 5, 5, 4, 5,
    ...                                 1, 2, 1, 2, 1, 1]})
    >>> ranking, pairwise = rank_methods(votes, procedure="holm")
    >>> ranking["rank_display"].tolist()
    ['1-2', '1-2', '3']
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    if procedure == "holm":
        return _rank(votes, alpha, test, method)
    if procedure != "stepdown-maxt":
        raise ValueError("procedure must be 'stepdown-maxt' or 'holm'")
    return _rank_maxt(votes, alpha, question, method, seed)
