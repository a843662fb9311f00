"""Mean opinion scores per output and per method, with confidence intervals.

Definitions (DESIGN.md, "Statistics"):

* ``MOS[m, i]`` is the mean of the scores raters gave output (m, i);
* ``MOS[m]`` is the mean over scenes of ``MOS[m, i]``, so each scene weighs the same;
* intervals are Student-t over raters for one output, Student-t over the per-image MOS
  for a method, or a two-way bootstrap resampling raters and scenes together.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ._common import Estimator, Votes, group_mean_std, prepare_votes

IMAGE_MOS = Estimator("image-mos", "2.0")
#: Pseudo-votes at the study's pooled within-output variance added to each output's
#: spread (version 2.0): an output whose few votes all agree is not known exactly.
OUTPUT_PRIOR = 1.0
METHOD_MOS = Estimator("method-mos", "2.0")
BOOTSTRAP = Estimator("bootstrap-raters-scenes", "2.0")
#: Below this share of voted output x rater cells the rater bootstrap multiplies sparse
#: matrices (the same figures, up to the order of floating-point sums).
BOOTSTRAP_SPARSE_DENSITY = 0.25
#: Outputs rated by the same raters share one resampled count (see ``_same_raters``).
BOOTSTRAP_GROUP_OUTPUTS = True


def _t_interval(mean: np.ndarray, std: np.ndarray, n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval ``mean -/+ t(q, n-1) * s / sqrt(n)``; NaN where n < 2."""
    q = 1 - (1 - confidence) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(q, n - 1) * std / np.sqrt(n)
    half = np.where(n >= 2, half, np.nan)
    return mean - half, mean + half


def _image_table(
    votes: Votes,
    confidence: float,
    scale_min: float | None = None,
    scale_max: float | None = None,
    prior: float = OUTPUT_PRIOR,
) -> pd.DataFrame:
    n, mean, std = group_mean_std(votes.output, votes.score, votes.n_outputs)
    dof = np.where(n >= 2, n - 1, 0.0)
    pooled = float(np.nansum(dof * std**2) / dof.sum()) if dof.sum() > 0 else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        shrunk = np.sqrt((np.nan_to_num(dof * std**2) + prior * pooled) / (dof + prior))
        half = stats.t.ppf(1 - (1 - confidence) / 2, dof + prior) * shrunk / np.sqrt(n)
    low, high = mean - half, mean + half
    if scale_min is not None and scale_max is not None:
        # the true MOS is inside the scale: clipping only drops impossible values
        low, high = np.clip(low, scale_min, scale_max), np.clip(high, scale_min, scale_max)
    methods, scenes = votes.output_labels()
    table = pd.DataFrame(
        {
            "method": methods,
            "scene": scenes,
            "n_votes": n.astype(np.int64),
            "mos": mean,
            "std": std,
            "ci_low": low,
            "ci_high": high,
            "ci_method": "t-raters-pooled" if prior > 0 else "t-raters",
            "estimand": "output",
        }
    )
    return table[table["n_votes"] > 0].reset_index(drop=True)


def image_mos(
    df: pd.DataFrame,
    *,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
    confidence: float = 0.95,
    scale_min: float | None = None,
    scale_max: float | None = None,
    output_prior: float = OUTPUT_PRIOR,
) -> pd.DataFrame:
    """Per-output MOS with a Student-t interval over the raters of that output.

    Version 2.0: the output's spread is shrunk towards the study's pooled within-output
    variance with one pseudo-vote, ``s'**2 = ((N-1) s**2 + s_pool**2) / N``, and the
    interval is ``t.ppf(q, N) * s' / sqrt(N)``: never zero width (all votes agreeing)
    nor undefined (one vote). Given ``scale_min``/``scale_max`` it is clipped to the
    scale. Estimand: the mean vote on that output of the rater population.
    ``output_prior=0`` gives the plain ``t.ppf(q, N-1) * s / sqrt(N)`` of version 1.0
    (NaN for one vote, zero width when all votes agree).

    Parameters
    ----------
    df : DataFrame
        Long-format votes, one row per vote. Rows whose ``kind`` is ``"training"`` are
        ignored; ``"rating"`` and ``"control"`` rows count.
    rater, scene, method, score, kind : str
        Column names.
    confidence : float
        Two-sided confidence level of the interval.

    Returns
    -------
    DataFrame
        One row per (method, scene) with votes: ``n_votes``, ``mos``, ``std`` (sample,
        ddof=1), ``ci_low``, ``ci_high``, ``ci_method`` = ``"t-raters-pooled"``,
        ``estimand`` = ``"output"`` and the estimator columns.

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": [1, 2, 3], "scene": "s1", "method": "A",
    ...                       "score": [4, 5, 3], "kind": "rating"})
    >>> image_mos(votes)[["method", "scene", "n_votes", "mos"]]
      method scene  n_votes  mos
    0      A    s1        3  4.0
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    table = _image_table(votes, confidence, scale_min, scale_max, output_prior)
    table = table.rename(columns={"method": method, "scene": scene})
    return IMAGE_MOS.stamp(
        table, confidence=confidence, scale_min=scale_min, scale_max=scale_max, output_prior=output_prior
    )


def _method_table(votes: Votes, confidence: float) -> pd.DataFrame:
    n_out, mos_out, _ = group_mean_std(votes.output, votes.score, votes.n_outputs)
    has = n_out > 0
    out_method = np.arange(votes.n_outputs) // votes.n_scenes
    n_scenes, mos, std = group_mean_std(out_method[has], mos_out[has], votes.n_methods)
    low, high = _t_interval(mos, std, n_scenes, confidence)
    pairs = np.unique(votes.method * votes.n_raters + votes.rater)
    n_raters = np.bincount(pairs // votes.n_raters, minlength=votes.n_methods)
    return pd.DataFrame(
        {
            "method": np.asarray(votes.methods),
            "mos": mos,
            "n_scenes": n_scenes.astype(np.int64),
            "n_votes": np.bincount(votes.method, minlength=votes.n_methods),
            "n_raters": n_raters,
            "std_scenes": std,
            "ci_low": low,
            "ci_high": high,
            "ci_method": "t-scenes",
        }
    )


def method_mos(
    df: pd.DataFrame,
    *,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per-method MOS: the mean over scenes of the per-image MOS.

    The interval is Student-t over the per-image MOS values of the method (variation
    across scenes): ``t.ppf(q, n_scenes-1) * std_scenes / sqrt(n_scenes)``.

    Parameters
    ----------
    df : DataFrame
        Long-format votes (see :func:`image_mos`).
    rater, scene, method, score, kind : str
        Column names.
    confidence : float
        Two-sided confidence level.

    Returns
    -------
    DataFrame
        One row per method: ``mos``, ``n_scenes``, ``n_votes``, ``n_raters``,
        ``std_scenes``, ``ci_low``, ``ci_high``, ``ci_method`` = ``"t-scenes"``.

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": [1, 2, 1], "scene": ["s1", "s1", "s2"],
    ...                       "method": "A", "score": [4, 2, 5]})
    >>> float(method_mos(votes)["mos"].iloc[0])  # mean of 3.0 (s1) and 5.0 (s2)
    4.0
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    table = _method_table(votes, confidence).rename(columns={"method": method})
    return METHOD_MOS.stamp(table, confidence=confidence)


def _same_raters(counts: np.ndarray) -> np.ndarray | None:
    """Group code of each output (row of ``counts``): equal rows share a code.

    ``None`` when every output has its own raters (nothing to gain). Rows are grouped by
    a random projection and the grouping is then checked exactly against the rows.
    """
    key = counts @ np.random.default_rng(0).random(counts.shape[1])
    _, first, group = np.unique(key, return_index=True, return_inverse=True)
    if len(first) > counts.shape[0] // 2 or not (counts == counts[first][group]).all():
        return None
    return group.astype(np.int64)


def _bootstrap_arrays(
    votes: Votes, n_resamples: int, seed: int, confidence: float, chunk: int = 250
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-way interval and standard error of the method MOS from one-way bootstraps.

    Scenes and raters are crossed, and no single resampling scheme reproduces the
    variance of such a design (McCullagh, "Resampling and exchangeable arrays",
    Bernoulli 6, 2000): drawing raters and scenes together counts each vote's own noise
    once through the scenes and again through the raters (97-99% coverage in
    bench/validity for version 1.0). Version 2.0 follows the two-way cluster bootstrap
    of Cameron, Gelbach & Miller (J. Bus. Econ. Stat. 29, 2011, section 2.4)::

        Var = Var*_scenes + Var*_raters - Var_rater x scene

    with ``Var*_scenes`` the variance over resamples of the scenes alone (the per-image
    MOS kept), ``Var*_raters`` over resamples of the raters alone (a rater drawn k times
    counts k times in every output they rated), and the intersection term, whose
    clusters are the (rater, scene) cells, from its closed form (the one-way bootstrap
    of many small clusters converges on it). Each bootstrap variance is rescaled by
    ``G / (G - 1)`` for its G clusters; the sum is floored at the larger one-way
    variance, and the interval is ``mos -/+ t(min(scenes, raters) - 1) * se``.
    """
    n_out, n_r, n_s, n_m = votes.n_outputs, votes.n_raters, votes.n_scenes, votes.n_methods
    cell = votes.output * n_r + votes.rater
    sums = np.bincount(cell, weights=votes.score, minlength=n_out * n_r).reshape(n_out, n_r)
    counts = np.bincount(cell, minlength=n_out * n_r).astype(float).reshape(n_out, n_r)
    n_img = counts.sum(axis=1)
    has = (n_img > 0).reshape(n_m, n_s)
    with np.errstate(invalid="ignore", divide="ignore"):
        img = np.where(has, (sums.sum(axis=1) / np.where(n_img > 0, n_img, 1)).reshape(n_m, n_s), 0.0)
    # a crowd study fills few of its output x rater cells: the per-resample products
    # then cost the votes, not the empty cells (most of an AIM-sized report's time)
    sparse_cells = len(votes.score) < BOOTSTRAP_SPARSE_DENSITY * n_out * n_r
    group = _same_raters(counts) if not sparse_cells and BOOTSTRAP_GROUP_OUTPUTS else None
    if group is not None:
        # outputs with the same raters (every output in a complete design, every method
        # of a scene when raters are blocked by scene) get the same resampled counts, so
        # only their sums per (method, group) need the per-resample product
        n_g = int(group.max()) + 1
        row = (np.arange(n_out) // n_s) * n_g + group
        sums_m = np.zeros((n_m * n_g, n_r))
        np.add.at(sums_m, row, sums)
        first = np.zeros(n_g, dtype=np.int64)
        first[group[::-1]] = np.arange(n_out)[::-1]
        counts_m = counts[first]
        # scenes of each method in each group
        per_group = np.bincount(row, weights=has.ravel().astype(float), minlength=n_m * n_g).reshape(n_m, n_g)
    else:
        sums_m = sparse.csr_matrix(sums) if sparse_cells else sums
        counts_m = sparse.csr_matrix(counts) if sparse_cells else counts
    rng = np.random.default_rng(seed)
    by_raters = np.empty((n_m, n_resamples))
    by_scenes = np.empty((n_m, n_resamples))
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        offsets = (np.arange(b) * n_r)[:, None]
        w_r = np.bincount((rng.integers(0, n_r, size=(b, n_r)) + offsets).ravel(), minlength=b * n_r).reshape(b, n_r)
        offsets = (np.arange(b) * n_s)[:, None]
        w_s = np.bincount((rng.integers(0, n_s, size=(b, n_s)) + offsets).ravel(), minlength=b * n_s).reshape(b, n_s)
        w_r = w_r.astype(float)
        if group is not None:
            s_b = (sums_m @ w_r.T).reshape(n_m, n_g, b)
            c_b = counts_m @ w_r.T  # groups x resamples
            valid = (c_b > 0)[None, :, :] & (per_group > 0)[:, :, None]
            with np.errstate(invalid="ignore", divide="ignore"):
                img_b = np.where(valid, s_b / np.where(c_b > 0, c_b, 1.0)[None, :, :], 0.0)
                n_valid = (valid * per_group[:, :, None]).sum(axis=1)
                by_raters[:, done : done + b] = img_b.sum(axis=1) / n_valid
        else:
            s_b = np.asarray(sums_m @ w_r.T).reshape(n_m, n_s, b)
            c_b = np.asarray(counts_m @ w_r.T).reshape(n_m, n_s, b)
            valid = c_b > 0
            with np.errstate(invalid="ignore", divide="ignore"):
                img_b = np.where(valid, s_b / np.where(valid, c_b, 1.0), 0.0)
                by_raters[:, done : done + b] = (img_b * valid).sum(axis=1) / valid.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scene_w = has[:, :, None] * w_s.T[None, :, :]
            by_scenes[:, done : done + b] = (img[:, :, None] * scene_w).sum(axis=1) / scene_w.sum(axis=1)
        done += b
    with np.errstate(invalid="ignore"):
        # a bootstrap variance is the plug-in one, (G - 1) / G of the unbiased: rescaled
        # as the cluster covariances of .inference are
        var_raters = np.nanvar(by_raters, axis=1, ddof=1) * n_r / max(n_r - 1, 1)
        var_scenes = np.nanvar(by_scenes, axis=1, ddof=1) * n_s / max(n_s - 1, 1)
    var = np.maximum(var_scenes + var_raters - _cell_variance(votes), np.maximum(var_scenes, var_raters))
    se = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        mos = (img * has).sum(axis=1) / has.sum(axis=1)
    half = stats.t.ppf(1 - (1 - confidence) / 2, max(min(n_s, n_r) - 1, 1)) * se
    return mos - half, mos + half, se


def _cell_variance(votes: Votes) -> np.ndarray:
    """Cluster variance of each method MOS with the (rater, scene) cells as clusters.

    The method MOS moves with a vote's weight by ``c_v (y_v - MOS[m, i])``,
    ``c_v = 1 / (n_scenes[m] * n_votes[m, i])``; the variance is the sum over cells of the
    squared sum of those terms.
    """
    n_out = np.bincount(votes.output, minlength=votes.n_outputs).astype(float)
    s_out = np.bincount(votes.output, weights=votes.score, minlength=votes.n_outputs)
    with np.errstate(invalid="ignore", divide="ignore"):
        mos_out = s_out / n_out
    out_method = np.arange(votes.n_outputs) // votes.n_scenes
    n_scenes = np.bincount(out_method[n_out > 0], minlength=votes.n_methods).astype(float)
    u = (votes.score - mos_out[votes.output]) / (n_scenes[votes.method] * n_out[votes.output])
    _, cell = np.unique(votes.rater * votes.n_scenes + votes.scene, return_inverse=True)
    z = np.bincount(cell * votes.n_methods + votes.method, weights=u, minlength=(cell.max() + 1) * votes.n_methods)
    return (z * z).reshape(-1, votes.n_methods).sum(axis=0)


def bootstrap_ci(
    df: pd.DataFrame,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> pd.DataFrame:
    """Two-way bootstrap interval of the method MOS, resampling raters and scenes.

    Estimand: "on new scenes too" (scenes and raters sampled). Version 2.0 resamples
    raters alone and scenes alone and combines their variances with the (rater, scene)
    cell term as in two-way clustering (see ``_bootstrap_arrays``); the interval is
    ``mos -/+ t(min(scenes, raters) - 1) * boot_se``. Version 1.0's percentile interval
    of raters and scenes drawn together counted the vote noise twice.

    Parameters
    ----------
    df : DataFrame
        Long-format votes (see :func:`image_mos`).
    n_resamples : int
        Number of bootstrap resamples.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same interval.
    confidence : float
        Two-sided confidence level.
    rater, scene, method, score, kind : str
        Column names.

    Returns
    -------
    DataFrame
        One row per method: ``mos`` (point estimate, as :func:`method_mos`),
        ``ci_low``, ``ci_high``, ``boot_se``, ``n_resamples``,
        ``ci_method`` = ``"bootstrap-raters-scenes"``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> votes = pd.DataFrame({"rater": np.repeat(np.arange(20), 5),
    ...                       "scene": np.tile(list("abcde"), 20), "method": "A",
    ...                       "score": rng.integers(1, 6, 100)})
    >>> ci = bootstrap_ci(votes, n_resamples=500)
    >>> bool(ci["ci_low"].iloc[0] <= ci["mos"].iloc[0] <= ci["ci_high"].iloc[0])
    True
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    point = _method_table(votes, confidence)
    low, high, se = _bootstrap_arrays(votes, n_resamples, seed, confidence)
    table = pd.DataFrame(
        {
            method: point["method"],
            "mos": point["mos"],
            "ci_low": low,
            "ci_high": high,
            "boot_se": se,
            "n_resamples": n_resamples,
            "ci_method": "bootstrap-raters-scenes",
        }
    )
    return BOOTSTRAP.stamp(table, n_resamples=n_resamples, seed=seed, confidence=confidence)
