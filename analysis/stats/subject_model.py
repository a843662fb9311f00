"""ITU-T P.910 Annex E subject model: recover quality, rater bias and inconsistency.

Model (P.910 (2022) Annex E; Li & Bampis, "Recover subjective quality scores from noisy
measurements", DCC 2017; Li et al., "A simple model for subject behavior in subjective
experiments", EI 2020)::

    score[e, s] = psi[e] + Delta[s] + upsilon[s] * X,   X ~ N(0, 1)

``psi`` is the quality of output e, ``Delta`` the bias and ``upsilon`` the
inconsistency of rater s. The maximum-likelihood solution is found by the alternating
projection recommended in Annex E:

1. ``psi`` = plain MOS per output; ``Delta`` = mean residual ``score - psi`` per rater.
2. Repeat: ``upsilon[s]`` = std (ddof=0) of the residual ``score - psi - Delta`` over the
   outputs rater s voted on; ``psi[e]`` = mean of ``score - Delta`` over raters weighted
   by ``1 / (upsilon**2 + 1e-8)``; ``Delta[s]`` = mean of ``score - psi`` over outputs;
   stop when the Euclidean norm of the change of ``psi`` is below 1e-8 (or after 1000
   iterations).
3. Shift ``Delta`` to mean zero over raters and add the shift to ``psi``.

Confidence intervals come from the Fisher information of the Gaussian likelihood at the
solution: ``std(psi[e]) = 1 / sqrt(sum_s 1 / upsilon[s]**2)`` over the raters of e,
``std(Delta[s]) = upsilon[s] / sqrt(n_s)``, interval ``+/- z(0.975) * std`` (1.96 std).
For ``upsilon`` the interval is the chi-square one,
``[upsilon * sqrt(n / chi2(0.975, n)), upsilon * sqrt(n / chi2(0.025, n))]``.
These are the same choices as Netflix sureal's alternating-projection solver
(``SubjectMLEModelProjectionSolver``, type ``MLE_CO_AP``), which the tests compare to.

Everything is vectorised on an outputs x raters matrix with a vote mask: one iteration
is a handful of matrix-vector products. The matrices are dense when most cells are
voted on and sparse (CSR) otherwise, so a crowd study of 3000 raters with 15 votes each
costs its votes, not its 13 million empty cells (version 2.1; the fit is the same).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse, stats

from ._common import Estimator, Votes, prepare_votes

NAME = "P910"
VERSION = "3.0"
P910 = Estimator(NAME, VERSION)

MAX_ITERATIONS = 1000
TOLERANCE = 1e-8
WEIGHT_EPSILON = 1e-8
#: Pseudo-votes at the pool's residual variance added to each rater's inconsistency
#: (version 2.0). A rater with few votes, or whose votes happen to agree with the fit,
#: would otherwise reach inconsistency 0, an infinite weight, and pull every quality
#: onto their own votes. 0 reproduces sureal's maximum-likelihood solution.
INCONSISTENCY_PRIOR = 2.0
#: Pseudo-votes at the model's variance added to an output's own residual spread.
OUTPUT_PRIOR = 2.0


class SubjectModelResult(NamedTuple):
    """Result of :func:`p910_model`."""

    outputs: pd.DataFrame
    """Per output: quality, std, ci_low, ci_high, n_votes, mos."""
    raters: pd.DataFrame
    """Per rater: bias, bias_std, bias_ci_low/high, inconsistency and its interval."""
    n_iterations: int
    converged: bool


class _Solution(NamedTuple):
    psi: np.ndarray
    psi_std: np.ndarray
    bias: np.ndarray
    bias_std: np.ndarray
    upsilon: np.ndarray
    upsilon_std: np.ndarray
    n_output: np.ndarray
    n_rater: np.ndarray
    n_iterations: int
    converged: bool


#: Below this share of filled cells the outputs x raters matrices are kept sparse: a
#: crowd study (3000 raters, 15 votes each) fills well under 1% of a dense matrix, and
#: every iteration would otherwise multiply all of its zeros.
SPARSE_DENSITY = 0.1

Matrix = np.ndarray | sparse.csr_matrix


def _dense(votes: Votes) -> tuple[Matrix, Matrix, np.ndarray]:
    """Outputs-with-votes x raters score matrix (0 where missing), mask, output codes.

    A rater who voted twice on one output enters with the mean of those votes. The
    matrices are dense ``ndarray`` or, below :data:`SPARSE_DENSITY`, CSR with the same
    pattern in both (every function below takes either).
    """
    n_r = votes.n_raters
    per_output = np.bincount(votes.output, minlength=votes.n_outputs)
    keep = np.flatnonzero(per_output > 0)
    if len(votes.score) < SPARSE_DENSITY * len(keep) * n_r:
        row_of = np.full(votes.n_outputs, -1, dtype=np.int64)
        row_of[keep] = np.arange(len(keep))
        shape = (len(keep), n_r)
        # repeated (row, rater) entries are summed by the CSR conversion: divide by counts
        sums = sparse.csr_matrix((votes.score, (row_of[votes.output], votes.rater)), shape=shape)
        counts = sparse.csr_matrix((np.ones(len(votes.score)), (row_of[votes.output], votes.rater)), shape=shape)
        sums.sum_duplicates()
        counts.sum_duplicates()
        x = sparse.csr_matrix((sums.data / counts.data, sums.indices, sums.indptr), shape=shape)
        w = sparse.csr_matrix((np.ones(len(counts.data)), counts.indices, counts.indptr), shape=shape)
        return x, w, keep
    cell = votes.output * n_r + votes.rater
    size = votes.n_outputs * n_r
    counts = np.bincount(cell, minlength=size).reshape(votes.n_outputs, n_r)[keep]
    sums = np.bincount(cell, weights=votes.score, minlength=size).reshape(votes.n_outputs, n_r)[keep]
    mask = counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(mask, sums / np.where(mask, counts, 1), 0.0)
    return x, mask.astype(float), keep


def _rowsum(m: Matrix) -> np.ndarray:
    return np.asarray(m.sum(axis=1)).ravel()


def _colsum(m: Matrix) -> np.ndarray:
    return np.asarray(m.sum(axis=0)).ravel()


def _square(m: Matrix) -> Matrix:
    return m.multiply(m).tocsr() if sparse.issparse(m) else m * m


def _residual(x: Matrix, w: Matrix, psi: np.ndarray, bias: np.ndarray) -> Matrix:
    """``x - psi - bias`` on the voted cells, 0 elsewhere (same type as ``x``)."""
    if sparse.issparse(x):
        coo = x.tocoo()
        return sparse.csr_matrix((coo.data - psi[coo.row] - bias[coo.col], (coo.row, coo.col)), shape=x.shape)
    return np.where(w > 0, x - psi[:, None] - bias[None, :], 0.0)


def _solve(x: Matrix, w: Matrix, prior: float = INCONSISTENCY_PRIOR) -> _Solution:
    """Alternating projection on score matrix ``x`` (zeros where ``w`` is 0)."""
    n_e = _rowsum(w)
    n_s = _colsum(w)
    col_x = _colsum(x)
    col_x2 = _colsum(_square(x))
    psi = _rowsum(x) / n_e
    bias = (col_x - w.T @ psi) / n_s
    converged = False
    iteration = 0
    with np.errstate(invalid="ignore", divide="ignore"):
        while iteration < MAX_ITERATIONS:
            previous = psi
            # residual r = x - psi - bias on voted cells; its per-rater moments expanded
            # into matrix-vector products so no outputs x raters temporary is built
            xt_psi = x.T @ psi
            wt_psi = w.T @ psi
            wt_psi2 = w.T @ (psi * psi)
            r_sum = col_x - wt_psi - n_s * bias
            r2_sum = col_x2 - 2 * xt_psi - 2 * bias * col_x + wt_psi2 + 2 * bias * wt_psi + n_s * bias * bias
            r_mean = r_sum / n_s
            raw = np.maximum(r2_sum / n_s - r_mean * r_mean, 0.0)
            if prior > 0:
                pool = float((raw * n_s).sum() / n_s.sum())
                raw = (raw * n_s + prior * pool) / (n_s + prior)
            upsilon = np.sqrt(raw)
            weight = 1.0 / (upsilon * upsilon + WEIGHT_EPSILON)
            psi = (x @ weight - w @ (weight * bias)) / (w @ weight)
            bias = (col_x - w.T @ psi) / n_s
            iteration += 1
            if np.linalg.norm(previous - psi) < TOLERANCE:
                converged = True
                break
        inv_var = 1.0 / (upsilon * upsilon)
        # a rater with inconsistency 0 has infinite information: sum over the voted cells
        # only (a dense product would add 0 * inf = NaN for the raters who did not vote)
        voted_info = w @ inv_var if sparse.issparse(w) else np.where(w > 0, inv_var[None, :], 0.0).sum(axis=1)
        psi_std = 1.0 / np.sqrt(np.maximum(voted_info, 0.0))
        bias_std = 1.0 / np.sqrt(np.maximum(n_s * inv_var, 0.0))
        # observed information of upsilon: sum over votes of 1/v^2 - 3 r^2 / v^4
        r2_sum = (
            col_x2 - 2 * (x.T @ psi) - 2 * bias * col_x + w.T @ (psi * psi) + 2 * bias * (w.T @ psi) + n_s * bias * bias
        )
        info = n_s * inv_var - 3 * r2_sum * inv_var * inv_var
        upsilon_std = 1.0 / np.sqrt(np.maximum(-info, 0.0))
    shift = bias.mean()
    return _Solution(
        psi=psi + shift,
        psi_std=psi_std,
        bias=bias - shift,
        bias_std=bias_std,
        upsilon=upsilon,
        upsilon_std=upsilon_std,
        n_output=n_e,
        n_rater=n_s,
        n_iterations=iteration,
        converged=converged,
    )


def _output_intervals(
    x: Matrix, w: Matrix, sol: _Solution, prior: float, confidence: float, inconsistency_prior: float
):
    """Per-output std: weighted least squares with the output's own scale (version 3.0).

    The quality of output e is a weighted mean of its votes less the raters' biases, with
    weights ``1 / upsilon[s]**2``. Its variance is that of a weighted least-squares mean
    whose scale is the output's own: ``kappa[e] * sum(w**2 upsilon**2) / sum(w)**2``,
    ``kappa[e]`` the sum of the output's squared residuals standardised by their raters'
    variances over its residual degrees of freedom (``n - 1`` less each rater's share of
    their fitted bias, ``sum 1 / n_s``). It is shrunk towards the study's pooled scale with
    ``prior`` pseudo-votes, so that no interval is zero width, and the interval is
    Student-t with the shrunk degrees of freedom. Version 2.0 multiplied an unweighted
    spread by the weighted formula, which over-states the variance whenever raters
    differ in inconsistency (96-98% coverage in bench/validity).

    Three sources the residuals cannot show are added:

    * the weights are estimated: Meier's first-order factor for a weighted mean with
      estimated weights, ``1 + 2 sum_s h_s (1 - h_s) / nu_s`` with ``h_s`` the rater's
      share of the weight and ``nu_s`` the degrees of freedom of their inconsistency
      (P. Meier, "Variance of a weighted mean", Biometrics 9, 1953);
    * each rater's bias is estimated: its error is their noise over ``n_s`` plus the mean
      error of the qualities of their outputs;
    * the sample's mean bias is not the population's: quality is measured against the
      raters drawn (``var(bias) / n_raters``, less the biases' own noise).
    """
    var_s = sol.upsilon * sol.upsilon
    weight = 1.0 / (var_s + WEIGHT_EPSILON)
    resid2 = _square(_residual(x, w, sol.psi, sol.bias))
    n_e = sol.n_output
    n_s = sol.n_rater
    with np.errstate(invalid="ignore", divide="ignore"):
        sw = w @ weight
        model_var = (w @ (weight * weight * var_s)) / (sw * sw)
        dof = np.maximum(n_e - 1 - w @ (1.0 / n_s), 0.0)
        own = resid2 @ weight
        pooled = float(own.sum() / dof.sum()) if dof.sum() > 0 else 1.0
        scale = (own + prior * pooled) / np.maximum(dof + prior, 1e-12)
        nu = n_s - 1 + inconsistency_prior
        # sum_s h (1 - h) / nu with h = weight / sw, as products with the vote mask
        meier = (w @ (weight / nu)) / sw - (w @ (weight * weight / nu)) / (sw * sw)
        noise_var = scale * model_var * (1 + 2 * meier)
        bias_err = var_s / n_s + (w.T @ noise_var) / (n_s * n_s)
        bias_var = (w @ (weight * weight * bias_err)) / (sw * sw)
        n_r = len(sol.bias)
        pop = max(float(np.var(sol.bias, ddof=1)) - float(np.mean(var_s / n_s)), 0.0) if n_r > 1 else 0.0
        shift_var = pop / n_r
        var = noise_var + bias_var + shift_var
        df = np.maximum(dof + prior, 1.0)
        q = stats.t.ppf(1 - (1 - confidence) / 2, df)
        raw_sd = np.sqrt(_colsum(resid2) / n_s)
    return np.sqrt(var), q, noise_var + bias_var, shift_var, raw_sd


def _p910_from_votes(
    votes: Votes,
    confidence: float,
    *,
    inconsistency_prior: float = INCONSISTENCY_PRIOR,
    output_prior: float = OUTPUT_PRIOR,
) -> SubjectModelResult:
    x, w, keep = _dense(votes)
    sol = _solve(x, w, inconsistency_prior)
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    intervals = _output_intervals(x, w, sol, output_prior, confidence, inconsistency_prior)
    std, q, own_var, shift_var, raw_sd = intervals
    methods, scenes = votes.output_labels()
    with np.errstate(invalid="ignore", divide="ignore"):
        mos = _rowsum(x) / sol.n_output
        n = sol.n_rater
        up_low = sol.upsilon * np.sqrt(n / stats.chi2.ppf(1 - (1 - confidence) / 2, n))
        up_high = sol.upsilon * np.sqrt(n / stats.chi2.ppf((1 - confidence) / 2, n))
    outputs = pd.DataFrame(
        {
            "method": methods[keep],
            "scene": scenes[keep],
            "n_votes": sol.n_output.astype(np.int64),
            "mos": mos,
            "quality": sol.psi,
            "std": std,
            "ci_low": sol.psi - q * std,
            "ci_high": sol.psi + q * std,
            "ci_method": "p910-output-residual",
            "estimand": "output",
            "fisher_std": sol.psi_std,
            "fisher_ci_low": sol.psi - z * sol.psi_std,
            "fisher_ci_high": sol.psi + z * sol.psi_std,
        }
    )
    outputs.attrs["own_var"] = own_var
    outputs.attrs["shift_var"] = shift_var
    raters = pd.DataFrame(
        {
            "rater": np.asarray(votes.raters),
            "n_votes": sol.n_rater.astype(np.int64),
            "bias": sol.bias,
            "bias_std": sol.bias_std,
            "bias_ci_low": sol.bias - z * sol.bias_std,
            "bias_ci_high": sol.bias + z * sol.bias_std,
            "inconsistency": sol.upsilon,
            "inconsistency_std": sol.upsilon_std,
            "inconsistency_ci_low": up_low,
            "inconsistency_ci_high": up_high,
            "residual_sd": raw_sd,
        }
    )
    params = {
        "confidence": confidence,
        "n_iterations": sol.n_iterations,
        "converged": sol.converged,
        "inconsistency_prior": inconsistency_prior,
        "output_prior": output_prior,
    }
    P910.stamp(outputs, **params)
    P910.stamp(raters, **params)
    return SubjectModelResult(outputs, raters, sol.n_iterations, sol.converged)


def p910_method_table(fit: SubjectModelResult, confidence: float) -> pd.DataFrame:
    """Per-method P.910 quality (mean over scenes of the output qualities), both questions.

    ``ci_low``/``ci_high`` answer "on this test set" (scenes fixed, raters sampled): the
    outputs' own variances (:func:`_output_intervals`) over ``n_scenes**2`` plus the sample's
    mean-bias variance. ``ci_low_new``/``ci_high_new`` answer "on new scenes too":
    Student-t over the method's output qualities.
    """
    out = fit.outputs
    own = np.asarray(out.attrs.get("own_var", out["std"].to_numpy() ** 2))
    shift = float(out.attrs.get("shift_var", 0.0))
    frame = pd.DataFrame({"method": out["method"].to_numpy(), "quality": out["quality"].to_numpy(), "own": own})
    g = frame.groupby("method", sort=True)
    n = g.size().to_numpy().astype(float)
    quality = g["quality"].mean().to_numpy()
    sd_scenes = g["quality"].std(ddof=1).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(g["own"].sum().to_numpy() / (n * n) + shift)
        z = stats.norm.ppf(1 - (1 - confidence) / 2)
        t = stats.t.ppf(1 - (1 - confidence) / 2, n - 1)
        half_new = np.where(n >= 2, t * sd_scenes / np.sqrt(n), np.nan)
    table = pd.DataFrame(
        {
            "method": g["quality"].mean().index.to_numpy(),
            "p910": quality,
            "p910_std": std,
            "ci_low": quality - z * std,
            "ci_high": quality + z * std,
            "estimand": "test set",
            "ci_low_new": quality - half_new,
            "ci_high_new": quality + half_new,
            "estimand_new": "new scenes",
            "n_scenes": n.astype(np.int64),
        }
    )
    return P910.stamp(table, confidence=confidence, n_iterations=fit.n_iterations, converged=fit.converged)


def p910_model(
    df: pd.DataFrame,
    *,
    rater: str = "rater",
    scene: str = "scene",
    method: str = "method",
    score: str = "score",
    kind: str = "kind",
    confidence: float = 0.95,
    inconsistency_prior: float = INCONSISTENCY_PRIOR,
    output_prior: float = OUTPUT_PRIOR,
) -> SubjectModelResult:
    """Fit the ITU-T P.910 Annex E subject model (rater bias and inconsistency).

    Version 2.0: ``inconsistency_prior`` pseudo-votes at the pool's residual variance
    regularise each rater's inconsistency (0 gives sureal's maximum-likelihood
    solution), and the per-output ``std``/``ci_*`` come from the output's own residual
    spread (``output_prior`` pseudo-votes at the model variance, Student-t); the
    Fisher-information values of version 1.0 are kept as ``fisher_std`` and
    ``fisher_ci_*``. Version 3.0: that spread is the weighted least-squares scale of
    the output (residuals standardised by their raters' inconsistencies), shrunk
    towards the study's pooled scale, with the estimation of the weights and biases
    added to the variance (see :func:`_output_intervals`).

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows are ignored.
    rater, scene, method, score, kind : str
        Column names.
    confidence : float
        Two-sided level of the Fisher-information (normal) intervals.

    Returns
    -------
    SubjectModelResult
        ``outputs``: one row per (method, scene) with ``quality`` (psi), ``std``,
        ``ci_low``/``ci_high`` (``quality -/+ z * std``), the plain ``mos`` and
        ``n_votes``. ``raters``: ``bias`` (Delta, mean zero over raters), its std and
        interval, ``inconsistency`` (upsilon) with its std and chi-square interval.
        ``n_iterations`` and ``converged`` describe the fit.

    Examples
    --------
    >>> votes = pd.DataFrame({"rater": np.repeat([1, 2, 3], 3),
    ...                       "scene": np.tile(["a", "b", "c"], 3), "method": "A",
    ...                       "score": [3, 4, 5, 4, 5, 5, 2, 3, 4]})
    >>> fit = p910_model(votes)
    >>> fit.raters["bias"].round(2).tolist()   # rater 2 rates high, rater 3 low
    [0.11, 0.78, -0.89]
    """
    votes = prepare_votes(df, rater=rater, scene=scene, method=method, score=score, kind=kind)
    result = _p910_from_votes(votes, confidence, inconsistency_prior=inconsistency_prior, output_prior=output_prior)
    return result._replace(
        outputs=result.outputs.rename(columns={"method": method, "scene": scene}),
        raters=result.raters.rename(columns={"rater": rater}),
    )
