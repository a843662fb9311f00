"""How far the raters agree: split-half reliability of the ranking, Krippendorff's alpha.

Two figures an organizer reads before publishing a ranking:

* **split-half reliability of the method ranking** (``split-half-ranking``): the raters
  are split at random into two halves, each half gives its own method MOS (mean over
  scenes of the per-output MOS of that half's votes), and the Spearman correlation of the
  two MOS columns is stepped up to the full pool of raters with the Spearman-Brown
  formula ``r_sb = 2 r / (1 + r)`` (Spearman 1910, Brown 1910). The figure is the mean of
  ``r_sb`` over ``n_splits`` random splits (a fixed seed makes it reproducible): 1 means
  that another pool of raters of the same size would very likely give the same order.
  It is the ranking's counterpart of the split-half "internal consistency" used for
  subjective test panels; it needs at least 3 methods and 2 raters.
* **Krippendorff's alpha** (``krippendorff-alpha``), interval level, over the outputs
  (method x scene) as units: ``alpha = 1 - D_o / D_e``, observed over expected
  disagreement (Krippendorff, "Content Analysis", 2004, ch. 11; "Computing
  Krippendorff's Alpha-Reliability", 2011). Every output rated by at least two raters
  enters, whatever the (sparse, unbalanced) design. Computed by the ``krippendorff``
  package from the per-output counts of each score, which never forms the raters x
  outputs matrix (a million-vote study has too many cells for it); scores with more
  than 20 distinct values (continuous scales) take the closed form of the interval
  metric, which gives the same value.

Both are computed on the votes they are given: the results pipeline reports them for the
screened raters and for every rater.
"""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
from scipy import sparse, stats

from ._common import Estimator, Votes, prepare_votes

SPLIT_HALF = Estimator("split-half-ranking", "1.0")
KRIPPENDORFF = Estimator("krippendorff-alpha", "1.0")
AGREEMENT = Estimator("rater-agreement", "1.0")

DEFAULT_SPLITS = 20


def spearman_brown(r: float | np.ndarray, factor: float = 2.0) -> float | np.ndarray:
    """Reliability of a test ``factor`` times as long: ``k r / (1 + (k - 1) r)``.

    The formula has a pole at ``r = -1 / (k - 1)`` (two halves ranking the methods in
    reversed order, for a split in two) and falls below -1 beyond it; such a value is
    reported as -1, the lowest a correlation can be.
    """
    r = np.asarray(r, dtype=float)
    denominator = 1.0 + (factor - 1.0) * r
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(denominator > 0, factor * r / np.where(denominator > 0, denominator, 1.0), -1.0)
    value = np.maximum(value, -1.0)
    return float(value) if value.ndim == 0 else value


def _split_half(votes: Votes, n_splits: int, seed: int) -> tuple[float, float, int]:
    """Mean and standard deviation of the Spearman-Brown coefficient, and the splits used.

    Every split's per-output sums of one half come from one sparse product (outputs x
    raters) @ (raters x splits); the other half is the total minus that half.
    """
    if votes.n_methods < 3 or votes.n_raters < 2:
        return np.nan, np.nan, 0
    rng = np.random.default_rng(seed)
    # two raters have one split only; more splits would repeat it
    splits = 1 if votes.n_raters == 2 else n_splits
    halves = np.zeros((votes.n_raters, splits))
    for k in range(splits):
        halves[rng.permutation(votes.n_raters)[: votes.n_raters // 2], k] = 1.0
    shape = (votes.n_outputs, votes.n_raters)
    scores = sparse.csr_matrix((votes.score, (votes.output, votes.rater)), shape=shape)
    ones = sparse.csr_matrix((np.ones(len(votes.score)), (votes.output, votes.rater)), shape=shape)
    total_1, n_1 = scores @ halves, ones @ halves
    total_all = np.asarray(scores.sum(axis=1)).ravel()[:, None]
    n_all = np.asarray(ones.sum(axis=1)).ravel()[:, None]
    coefficients = []
    for k in range(splits):
        mos = []
        for total, n in ((total_1[:, k], n_1[:, k]), (total_all[:, 0] - total_1[:, k], n_all[:, 0] - n_1[:, k])):
            seen = (n > 0).reshape(votes.n_methods, votes.n_scenes)
            per_output = np.where(seen, (total / np.maximum(n, 1)).reshape(seen.shape), 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                # mean over the scenes this half saw; NaN for a method it never saw
                mos.append(per_output.sum(axis=1) / seen.sum(axis=1))
        both = np.isfinite(mos[0]) & np.isfinite(mos[1])
        if both.sum() < 3 or np.ptp(mos[0][both]) == 0 or np.ptp(mos[1][both]) == 0:
            continue
        r = float(stats.spearmanr(mos[0][both], mos[1][both])[0])
        coefficients.append(spearman_brown(r))
    if not coefficients:
        return np.nan, np.nan, 0
    values = np.asarray(coefficients)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else np.nan, len(values)


#: Largest number of distinct scores handed to the ``krippendorff`` package, whose
#: coincidence arrays grow as units x levels x levels; continuous scores (slider, or
#: averaged repeats) take the closed form of the interval metric instead.
MAX_LEVELS = 20


def _interval_alpha_closed_form(votes: Votes) -> tuple[float, int]:
    """Interval alpha from within-unit and total sums of squares (same value, any scores).

    With the squared-difference metric, ``sum over pairs i != j of (v_i - v_j)**2`` is
    ``2 m SS`` for a set of m values, so ``D_o = (1/n) sum_u 2 m_u SS_u / (m_u - 1)`` and
    ``D_e = 2 SS_total / (n - 1)`` over the n pairable values.
    """
    m = np.bincount(votes.output, minlength=votes.n_outputs).astype(float)
    pairable = m >= 2
    keep = pairable[votes.output]
    values, units = votes.score[keep], votes.output[keep]
    n = len(values)
    if n < 2 or np.ptp(values) == 0:
        return np.nan, int(pairable.sum())
    mean_u = np.bincount(units, weights=values, minlength=votes.n_outputs) / np.maximum(m, 1)
    ss_u = np.bincount(units, weights=(values - mean_u[units]) ** 2, minlength=votes.n_outputs)
    d_o = float((2 * m[pairable] * ss_u[pairable] / (m[pairable] - 1)).sum() / n)
    d_e = 2 * float(((values - values.mean()) ** 2).sum()) / (n - 1)
    return 1.0 - d_o / d_e, int(pairable.sum())


def _krippendorff_interval(votes: Votes) -> tuple[float, int]:
    """Interval alpha over outputs from per-output score counts, and the units used."""
    domain, code = np.unique(votes.score, return_inverse=True)
    if len(domain) > MAX_LEVELS:
        return _interval_alpha_closed_form(votes)
    counts = np.bincount(votes.output * len(domain) + code, minlength=votes.n_outputs * len(domain))
    counts = counts.reshape(votes.n_outputs, len(domain))
    pairable = counts.sum(axis=1) >= 2
    if pairable.sum() < 1 or len(domain) < 2:
        return np.nan, int(pairable.sum())
    alpha = krippendorff.alpha(value_counts=counts[pairable], value_domain=domain, level_of_measurement="interval")
    return float(alpha), int(pairable.sum())


def _agreement(votes: Votes, n_splits: int, seed: int) -> pd.DataFrame:
    split_mean, split_sd, used = _split_half(votes, n_splits, seed)
    alpha, units = _krippendorff_interval(votes)
    table = pd.DataFrame(
        {
            "measure": ["split_half_ranking", "krippendorff_alpha"],
            "label": [
                "Split-half reliability of the method ranking (Spearman-Brown corrected)",
                "Krippendorff's alpha, interval, over outputs",
            ],
            "value": [split_mean, alpha],
            "sd": [split_sd, np.nan],
            "n_units": [votes.n_methods, units],
            "n_raters": [votes.n_raters, votes.n_raters],
            "n_splits": [used, 0],
            "method": [f"{SPLIT_HALF.name} {SPLIT_HALF.version}", f"{KRIPPENDORFF.name} {KRIPPENDORFF.version}"],
        }
    )
    return AGREEMENT.stamp(table, n_splits=n_splits, seed=seed, krippendorff=krippendorff_version())


def krippendorff_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("krippendorff")
    except PackageNotFoundError:  # pragma: no cover - installed with the project
        return "unknown"


def rater_agreement(
    df: pd.DataFrame,
    *,
    n_splits: int = DEFAULT_SPLITS,
    seed: int = 0,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
) -> pd.DataFrame:
    """Split-half reliability of the method ranking and Krippendorff's alpha.

    Parameters
    ----------
    df : DataFrame
        Long-format votes (``rater``, ``scene``, ``method``, ``score``, ``kind``);
        repeated votes of one rater on one output count once, with their mean.
    n_splits : int
        Random splits of the raters into halves (one when there are two raters).
    seed : int
        Seed of the splits.
    rater, scene, method, score, kind : str
        Column names.

    Returns
    -------
    DataFrame
        Two rows, ``measure`` ``split_half_ranking`` and ``krippendorff_alpha``, with
        ``label``, ``value``, ``sd`` (over the splits), ``n_units`` (methods; outputs
        rated at least twice), ``n_raters``, ``n_splits`` (splits that gave a
        coefficient) and ``method`` (estimator and version of the figure).

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": ["a"] * 3 + ["b"] * 3, "scene": "s",
    ...                       "method": list("XYZ") * 2, "score": [5, 3, 1, 4, 3, 2]})
    >>> table = rater_agreement(votes).set_index("measure")
    >>> float(table.loc["split_half_ranking", "value"])  # both raters order X > Y > Z
    1.0
    >>> round(float(table.loc["krippendorff_alpha", "value"]), 4)
    0.8333
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    return _agreement(votes, n_splits, seed)
