"""Correlation of objective metrics (PSNR, SSIM, ...) with MOS.

PLCC, SRCC and KRCC come from ``scipy.stats`` with their two-sided p-values. The
confidence intervals use the Fisher z transform ``z = atanh(r)``, ``r = tanh(z -/+ q*se)``
with

* PLCC: ``se = 1 / sqrt(n - 3)`` (Fisher);
* SRCC: ``se = sqrt(1.06 / (n - 3))`` (Fieller, Hartley & Pearson 1957);
* KRCC: ``se = sqrt(0.437 / (n - 4))`` (Fieller, Hartley & Pearson 1957).

PLCC is also reported after the VQEG 4-parameter logistic mapping of the metric onto
MOS, ``f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``, fitted by least squares.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ._common import Estimator

CORRELATIONS = Estimator("metric-correlations", "1.0")

#: variance factor of the Fisher z transform, and how many degrees to subtract from n
_Z_VARIANCE = {"plcc": (1.0, 3), "srcc": (1.06, 3), "krcc": (0.437, 4)}


def logistic_4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic: ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``."""
    with np.errstate(over="ignore"):
        return (b1 - b2) / (1.0 + np.exp(-(np.asarray(x, float) - b3) / abs(b4))) + b2


def fit_logistic_4(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, bool]:
    """Fit :func:`logistic_4` to (x, y); returns the parameters and whether it converged.

    The initial guess spans the observed MOS range (``b1`` top, ``b2`` bottom, swapped for
    a decreasing relation), centres on the median metric value and takes the metric's
    standard deviation as the slope scale, which keeps the fit stable whatever the units
    of the metric (dB, 0..1).
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    increasing = stats.spearmanr(x, y)[0] >= 0 if np.ptp(x) > 0 else True
    top, bottom = (y.max(), y.min()) if increasing else (y.min(), y.max())
    scale = x.std() if x.std() > 0 else 1.0
    p0 = [top, bottom, float(np.median(x)), scale]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(logistic_4, x, y, p0=p0, maxfev=20000)
        params[3] = abs(params[3])
        return params, bool(np.all(np.isfinite(params)))
    except (RuntimeError, ValueError):
        return np.array(p0, float), False


def _fisher_interval(r: float, n: int, coef: str, confidence: float) -> tuple[float, float]:
    factor, lost = _Z_VARIANCE[coef]
    if not np.isfinite(r) or n - lost <= 0:
        return np.nan, np.nan
    if abs(r) >= 1:
        return r, r
    q = stats.norm.ppf(1 - (1 - confidence) / 2)
    se = np.sqrt(factor / (n - lost))
    z = np.arctanh(r)
    return float(np.tanh(z - q * se)), float(np.tanh(z + q * se))


def metric_correlations(
    frame: pd.DataFrame,
    metric_cols: Sequence[str] = ("psnr", "ssim"),
    mos_col: str = "mos",
    *,
    level: str = "method",
    confidence: float = 0.95,
    logistic: bool = True,
) -> pd.DataFrame:
    """PLCC, SRCC and KRCC of each metric column with MOS, with p-values and intervals.

    Parameters
    ----------
    frame : DataFrame
        One row per unit of analysis: per method (method level) or per output (image
        level). Rows where the metric or MOS is missing are skipped for that metric.
    metric_cols : sequence of str
        Metric columns to correlate.
    mos_col : str
        MOS column.
    level : str
        Label written to the ``level`` column (e.g. ``"method"`` or ``"image"``).
    confidence : float
        Two-sided level of the Fisher z intervals.
    logistic : bool
        Also fit the VQEG 4-parameter logistic and report the PLCC after mapping.

    Returns
    -------
    DataFrame
        One row per metric: ``metric``, ``level``, ``n``; ``plcc``, ``plcc_p``,
        ``plcc_ci_low``, ``plcc_ci_high`` and the same for ``srcc`` and ``krcc``
        (Kendall tau-b); ``plcc_logistic``, ``logistic_b1`` .. ``logistic_b4`` and
        ``logistic_converged`` (draw the curve with :func:`logistic_4`).

    Examples
    --------
    >>> table = pd.DataFrame({"psnr": [20.1, 21.5, 22.0, 23.3, 24.8],
    ...                       "mos": [2.1, 2.9, 2.7, 3.8, 4.4]})
    >>> out = metric_correlations(table, metric_cols=["psnr"])
    >>> round(float(out.loc[0, "srcc"]), 6)
    0.9
    """
    rows = []
    for metric in metric_cols:
        data = frame[[metric, mos_col]].apply(pd.to_numeric, errors="coerce").dropna()
        x = data[metric].to_numpy(float)
        y = data[mos_col].to_numpy(float)
        n = len(data)
        row: dict[str, object] = {"metric": metric, "level": level, "n": n}
        enough = n >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0
        for coef, func in (
            ("plcc", stats.pearsonr),
            ("srcc", stats.spearmanr),
            ("krcc", stats.kendalltau),
        ):
            if enough:
                res = func(x, y)
                r, p = float(res[0]), float(res[1])
            else:
                r, p = np.nan, np.nan
            low, high = _fisher_interval(r, n, coef, confidence)
            row.update({coef: r, f"{coef}_p": p, f"{coef}_ci_low": low, f"{coef}_ci_high": high})
        if logistic:
            if enough and n >= 5:
                params, ok = fit_logistic_4(x, y)
                fitted = logistic_4(x, *params)
                plcc_log = float(stats.pearsonr(fitted, y)[0]) if ok and np.ptp(fitted) > 0 else np.nan
            else:
                params, ok, plcc_log = np.full(4, np.nan), False, np.nan
            row["plcc_logistic"] = plcc_log
            row.update({f"logistic_b{i + 1}": float(params[i]) for i in range(4)})
            row["logistic_converged"] = ok
        rows.append(row)
    table = pd.DataFrame(rows)
    return CORRELATIONS.stamp(
        table,
        confidence=confidence,
        ci="fisher-z (plcc 1/(n-3), srcc 1.06/(n-3), krcc 0.437/(n-4))",
        level=level,
    )
