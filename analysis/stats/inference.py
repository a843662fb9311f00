"""The two questions a ranking can answer, their covariances, intervals and ranking.

A challenge asks **"on this test set"**: which team is better on these scenes, as people
judge them. Scenes are fixed, raters are a sample: the estimand of method m is the mean
over the study's scenes of the expected vote of a rater from the population. A paper may
ask **"on new scenes too"**: scenes and raters both sampled, the estimand is the mean over
the population of scenes.

The method MOS is linear in the votes, ``MOS[m] = sum_v c_v * y_v`` with
``c_v = 1 / (n_scenes[m] * n_votes[m, i])``, so both questions get a cluster-robust
(sandwich) covariance of all method MOS at once:

* test set: votes are clustered by rater (a rater's bias enters every output they
  rated); residuals are ``y_v - MOS[m, i]`` scaled by ``sqrt(n / (n - 1))``, and
  ``Cov = R / (R - 1) * Z' Z`` with ``Z[r, m] = sum over rater r's votes on m of c_v e_v``.
  The scaling is Bell & McCaffrey's bias-reduced linearisation (CR2) for this model: a
  rater votes at most once per output, so their block of the hat matrix is
  ``diag(1 / n)``. With few raters a cluster-robust variance is still too variable for
  t on ``R - 1`` degrees of freedom (bench/validity: 6-8% false separation with 20
  raters, Cameron & Miller, "A practitioner's guide to cluster-robust inference",
  J. Human Resources 50, 2015, section VI). Version 1.1 uses Bell & McCaffrey's
  Satterthwaite degrees of freedom for each contrast (:func:`satterthwaite_df`), capped
  at ``R - 1``;
* new scenes: two-way clustering by scene and rater (Cameron, Gelbach & Miller, "Robust
  inference with multiway clustering", J. Bus. Econ. Stat. 29, 2011):
  ``Cov = Cov_scene + Cov_rater - Cov_rater x scene`` on residuals ``y_v - MOS[m]``,
  negative eigenvalues set to 0. Unlike a paired t-test over scenes it accounts for
  raters shared between scenes, and unlike the two-way bootstrap it does not count the
  vote noise twice.

The ranking tests every pair with ``T = (MOS[a] - MOS[b]) / se`` and controls the
family-wise error over all pairs with the step-down max-T procedure (Westfall & Young,
"Resampling-based multiple testing", 1993, algorithm 2.8; Hothorn, Bretz & Westfall,
"Simultaneous inference in general parametric models", Biometrical Journal 50, 2008):
the null distribution of the largest ``|T|`` is simulated from the estimated covariance
(multivariate normal, or multivariate t with ``df`` degrees of freedom), which uses the
strong correlation between the pairwise statistics of one table that Holm's procedure
ignores. Pairs whose difference has no variance (``se == 0``) are never separated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ._common import Estimator, Votes

TEST_SET = "test set"
NEW_SCENES = "new scenes"
QUESTIONS = (TEST_SET, NEW_SCENES)
#: What Student-t over the per-image MOS (the classic challenge interval) answers: scenes
#: sampled, the study's own raters fixed. With a hundred raters it is close to "new
#: scenes"; with twenty it leaves out how much another panel would differ.
NEW_SCENES_PANEL = "new scenes, these raters"

TEST_SET_CI = Estimator("mos-rater-cluster", "1.1")
NEW_SCENES_CI = Estimator("mos-two-way-cluster", "1.0")
MAXT = Estimator("ranking-stepdown-maxt", "1.1")

#: The co-rating counts are a sparse product when it costs less than this share of the
#: dense one (crowd and AIM-sized studies: each rater sees few outputs; a small dense
#: product through a multithreaded BLAS on a busy machine took 10-100 ms).
_SPARSE_SHARE = 0.1

N_SIMULATIONS = 4000


def _weights(votes: Votes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vote weights ``c_v``, per-output MOS and the method MOS."""
    n_out = np.bincount(votes.output, minlength=votes.n_outputs).astype(float)
    s_out = np.bincount(votes.output, weights=votes.score, minlength=votes.n_outputs)
    with np.errstate(invalid="ignore", divide="ignore"):
        mos_out = s_out / n_out
    has = n_out > 0
    out_method = np.arange(votes.n_outputs) // votes.n_scenes
    n_scenes = np.bincount(out_method[has], minlength=votes.n_methods).astype(float)
    mos = np.bincount(out_method[has], weights=mos_out[has], minlength=votes.n_methods) / n_scenes
    c = 1.0 / (n_scenes[votes.method] * n_out[votes.output])
    return c, mos_out, mos


def _cluster_cov(cluster: np.ndarray, n_clusters: int, method: np.ndarray, n_methods: int, u: np.ndarray):
    z = np.bincount(cluster * n_methods + method, weights=u, minlength=n_clusters * n_methods)
    z = z.reshape(n_clusters, n_methods)
    return z.T @ z


def satterthwaite_df(votes: Votes, contrasts: np.ndarray) -> np.ndarray:
    """Degrees of freedom of the test-set (rater-cluster) variance of each contrast.

    Bell & McCaffrey's Satterthwaite approximation ("Bias reduction in standard errors
    for linear regression with multi-stage samples", Survey Methodology 28, 2002;
    recommended for few clusters by Imbens & Kolesar, "Robust standard errors in small
    samples", Rev. Econ. Stat. 98, 2016, and Cameron & Miller 2015). The variance of
    contrast ``l' MOS`` is ``sum_r (p_r' y)**2``, ``p_r`` rater r's weights after the
    within-output centring; under a working model of independent votes with variance
    ``sigma_r**2`` (each rater's own mean squared scaled residual, as Imbens & Kolesar
    estimate their working model's parameters: raters differ in inconsistency, which
    leaves fewer effective clusters) it is a weighted sum of chi-squares, matched by one
    scaled chi-square on ``df = tr(G)**2 / ||G||_F**2`` with
    ``G[r, s] = sigma_r sigma_s p_r' p_s``. Because each rater votes at most once per
    output, ``G = S (D - B' B) S`` with ``D`` diagonal, ``B[o, r] = a[o, r] / sqrt(n_o)``
    and ``S = diag(sigma)``; ``||B S**2 B'||`` needs only the outputs' co-rating counts, so
    the cost is one outputs x outputs product.

    Parameters
    ----------
    votes : Votes
        Counted votes, at most one per rater and output.
    contrasts : ndarray
        ``(k, n_methods)`` contrast weights (a row ``e_m`` for one method's MOS,
        ``e_a - e_b`` for a pair).

    Returns
    -------
    ndarray
        ``k`` degrees of freedom in ``[1, R - 1]`` (``R - 1`` where the variance is 0).

    Examples
    --------
    >>> from analysis.stats._common import prepare_votes
    >>> votes = prepare_votes(pd.DataFrame({"rater": [1, 2, 3, 1, 2, 3], "scene": "a",
    ...                                     "method": list("AAABBB"), "score": [3, 4, 5, 2, 2, 5]}))
    >>> satterthwaite_df(votes, np.eye(2)).round(2).tolist()
    [1.66, 1.66]
    """
    l2 = np.atleast_2d(np.asarray(contrasts, dtype=float)) ** 2
    n_r, n_m, n_s = votes.n_raters, votes.n_methods, votes.n_scenes
    o, r = votes.output, votes.rater
    n_out = np.bincount(o, minlength=votes.n_outputs).astype(float)
    has = n_out > 0
    out_method = np.arange(votes.n_outputs) // n_s
    n_scenes = np.bincount(out_method[has], minlength=n_m).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(n_out > 1, np.sqrt(n_out / (n_out - 1)), 0.0)
        # a[o, r] = c_v * sqrt(n / (n - 1)) for rater r's vote on output o
        k = np.where(has, scale / (n_scenes[out_method] * n_out), 0.0)
        inv_n = np.where(has, 1.0 / n_out, 0.0)
        mos_out = np.bincount(o, weights=votes.score, minlength=votes.n_outputs) / n_out
    resid2 = ((votes.score - mos_out[o]) * scale[o]) ** 2
    counted = np.bincount(r, weights=(scale[o] > 0).astype(float), minlength=n_r)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma2 = np.where(counted > 0, np.bincount(r, weights=resid2, minlength=n_r) / counted, 0.0)
    if not (sigma2 > 0).any():
        sigma2 = np.ones(n_r)
    # per method and rater: sum of a**2 (the diagonal D) and of a**2 / n (diagonal of B'B)
    a2 = k[o] ** 2 * sigma2[r]
    cell = votes.method * n_r + r
    d = np.bincount(cell, weights=a2, minlength=n_m * n_r).reshape(n_m, n_r)
    b = np.bincount(cell, weights=a2 * inv_n[o], minlength=n_m * n_r).reshape(n_m, n_r)
    # co-rating counts of every two outputs, each rater weighted by sigma**2
    per_rater = np.bincount(r, minlength=n_r).astype(float)
    if (per_rater * per_rater).sum() <= _SPARSE_SHARE * float(votes.n_outputs) ** 2 * n_r:
        mask = sparse.csr_matrix((np.ones(len(o)), (o, r)), shape=(votes.n_outputs, n_r))
        co = (mask @ sparse.diags(sigma2) @ mask.T).toarray()
    else:
        mask = np.bincount(o * n_r + r, minlength=votes.n_outputs * n_r).reshape(votes.n_outputs, n_r).astype(float)
        co = (mask * sigma2) @ mask.T
    # ||B S^2 B'||^2 by blocks of methods: entries are k_o k_p co[o, p] / sqrt(n_o n_p)
    w = k * k * inv_n
    bb2 = co * co * w[:, None] * w[None, :]
    blocks = bb2.reshape(n_m, n_s, n_m, n_s).sum(axis=(1, 3))
    diag = l2 @ d
    diag_bb = l2 @ b
    trace = (diag - diag_bb).sum(axis=1)
    frob = (diag * diag).sum(axis=1) - 2 * (diag * diag_bb).sum(axis=1) + ((l2 @ blocks) * l2).sum(axis=1)
    cap = float(max(n_r - 1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        df = np.where((trace > 0) & (frob > 0), trace * trace / frob, cap)
    return np.clip(df, 1.0, cap)


#: Key of :func:`covariances`'s methods x methods matrix of test-set pair degrees of freedom.
TEST_SET_PAIR_DF = "test set pair df"
#: Key of the rater part of the new-scenes covariance, ``Cov_rater - Cov_rater x scene``
#: (what raters shared between scenes add to a paired comparison over scenes).
NEW_SCENES_RATER_PART = "new scenes rater part"


def covariances(votes: Votes) -> dict:
    """Method MOS, its covariance and degrees of freedom for each question.

    ``{question: (mos, cov, df)}``. The test-set degrees of freedom are one per method
    (:func:`satterthwaite_df`), the new-scenes ones a single ``min(n_scenes, n_raters) - 1``.
    Under :data:`TEST_SET_PAIR_DF`, the methods x methods matrix of the test-set degrees
    of freedom of every pair's difference (one :func:`satterthwaite_df` call for both:
    its co-rating product is most of its cost); under :data:`NEW_SCENES_RATER_PART`, the
    rater part of the new-scenes covariance (see :mod:`.ranking`).
    """
    c, mos_out, mos = _weights(votes)
    n_out = np.bincount(votes.output, minlength=votes.n_outputs).astype(float)
    n_r, n_s, n_m = votes.n_raters, votes.n_scenes, votes.n_methods
    n_v = n_out[votes.output]
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(n_v > 1, np.sqrt(n_v / (n_v - 1)), 0.0)
    e_test = (votes.score - mos_out[votes.output]) * scale
    cov_test = _cluster_cov(votes.rater, n_r, votes.method, n_m, c * e_test) * (n_r / max(n_r - 1, 1))

    u = c * (votes.score - mos[votes.method])
    cov_scene = _cluster_cov(votes.scene, n_s, votes.method, n_m, u) * (n_s / max(n_s - 1, 1))
    cov_rater = _cluster_cov(votes.rater, n_r, votes.method, n_m, u) * (n_r / max(n_r - 1, 1))
    cell = votes.rater * n_s + votes.scene
    # dense codes of the (rater, scene) cells voted on, without sorting every vote
    used = np.bincount(cell, minlength=n_r * n_s) > 0
    code = np.cumsum(used) - 1
    cov_cell = _cluster_cov(code[cell], int(used.sum()), votes.method, n_m, u)
    rater_part = cov_rater - cov_cell
    cov_new = _psd(cov_scene + rater_part)
    a, b = np.triu_indices(n_m, 1)
    contrasts = np.zeros((n_m + len(a), n_m))
    contrasts[np.arange(n_m), np.arange(n_m)] = 1.0
    contrasts[n_m + np.arange(len(a)), a] = 1.0
    contrasts[n_m + np.arange(len(a)), b] = -1.0
    df_test = satterthwaite_df(votes, contrasts)
    pair_df = np.full((n_m, n_m), np.nan)
    pair_df[a, b] = pair_df[b, a] = df_test[n_m:]
    return {
        TEST_SET: (mos, cov_test, df_test[:n_m]),
        TEST_SET_PAIR_DF: pair_df,
        NEW_SCENES_RATER_PART: rater_part,
        NEW_SCENES: (mos, cov_new, float(max(min(n_s, n_r) - 1, 1))),
    }


def _psd(cov: np.ndarray) -> np.ndarray:
    cov = (cov + cov.T) / 2
    values, vectors = np.linalg.eigh(cov)
    return (vectors * np.clip(values, 0, None)) @ vectors.T


def intervals(mos: np.ndarray, cov: np.ndarray, df: float, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of each method MOS from the covariance's diagonal."""
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    half = stats.t.ppf(1 - (1 - confidence) / 2, df) * se
    return mos - half, mos + half


def _null_draws(cov: np.ndarray, df: float, n: int, seed: int) -> np.ndarray:
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    root = vectors * np.sqrt(np.clip(values, 0, None))
    rng = np.random.default_rng(seed)
    draws = rng.standard_normal((n, len(cov))) @ root.T
    if np.isfinite(df):
        draws /= np.sqrt(rng.chisquare(df, size=(n, 1)) / df)
    return draws


def stepdown_maxt(
    mos: np.ndarray,
    cov: np.ndarray,
    df: float,
    pairs: np.ndarray,
    *,
    n_simulations: int = N_SIMULATIONS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statistic, raw p and step-down max-T adjusted p of each pair ``(a, b)`` in ``pairs``.

    Examples
    --------
    >>> cov = np.diag([0.01, 0.01, 0.01])
    >>> t, p, adj = stepdown_maxt(np.array([3.0, 2.9, 2.0]), cov, np.inf, np.array([[0, 1], [0, 2], [1, 2]]))
    >>> (adj < 0.05).tolist()
    [False, True, True]
    """
    a, b = pairs[:, 0], pairs[:, 1]
    diff = mos[a] - mos[b]
    var = cov[a, a] + cov[b, b] - 2 * cov[a, b]
    scale = np.sqrt(np.clip(np.diag(cov), 0, None))
    degenerate = ~(var > 1e-12 * np.maximum(scale[a] * scale[b], 1e-300)) | ~(var > 1e-18)
    se = np.sqrt(np.where(degenerate, 1.0, var))
    t = np.where(degenerate, 0.0, diff / se)
    dist = stats.t(df) if np.isfinite(df) else stats.norm
    p = np.where(degenerate, 1.0, 2 * dist.sf(np.abs(t)))
    adjusted = np.ones(len(pairs))
    live = np.flatnonzero(~degenerate)
    if len(live):
        draws = _null_draws(cov, df, n_simulations, seed)
        null = np.abs(draws[:, a[live]] - draws[:, b[live]]) / se[live]
        order = np.argsort(-np.abs(t[live]), kind="stable")
        # successive maxima from the least significant pair upwards (Westfall-Young 2.8)
        tail_max = np.maximum.accumulate(null[:, order[::-1]], axis=1)[:, ::-1]
        exceed = (tail_max >= np.abs(t[live][order])[None, :]).mean(axis=0)
        adjusted[live[order]] = np.maximum.accumulate(exceed)
    return t, p, adjusted


def ranks_from_separations(order: np.ndarray, better: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank interval of each method from a boolean matrix ``better[a, b]`` (a above b).

    ``rank`` = 1 + number of methods separated above, ``rank_high`` = number of methods
    minus those separated below, for the methods in ``order``.
    """
    m = len(order)
    above = better[:, order].sum(axis=0)
    below = better[order, :].sum(axis=1)
    return 1 + above, m - below


def question_table(votes: Votes, question: str, confidence: float) -> pd.DataFrame:
    """Method MOS with the interval of one question (helper of :mod:`.report`)."""
    mos, cov, df = covariances(votes)[question]
    low, high = intervals(mos, cov, df, confidence)
    est = TEST_SET_CI if question == TEST_SET else NEW_SCENES_CI
    table = pd.DataFrame(
        {
            "method": np.asarray(votes.methods),
            "mos": mos,
            "se": np.sqrt(np.clip(np.diag(cov), 0, None)),
            "ci_low": low,
            "ci_high": high,
            "df": df,
            "estimand": question,
            "ci_method": est.name,
        }
    )
    return est.stamp(table, confidence=confidence)
