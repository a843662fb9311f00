"""PIRM/AIM-style total score combining fidelity, perception and runtime.

The formula is ours, written after the PIRM 2018 and AIM challenge reports, which rank
by weighted improvements over a baseline; every constant is a parameter::

    fidelity   = (PSNR[m] - PSNR[base]) / psnr_unit          # dB gained
    perception = (MOS[m]  - MOS[base])  / mos_unit           # MOS points gained
    runtime    = log2(runtime[base] / runtime[m])            # speed doublings
    total      = w_fidelity * fidelity + w_perception * perception + w_runtime * runtime

Defaults: ``psnr_unit`` 1 dB, ``mos_unit`` 0.5 MOS, weights 1, 1 and 0 (runtime off, as
in a track judged on quality alone). A higher total is better.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ._common import Estimator

TOTAL_SCORE = Estimator("pirm-total-score", "1.0")

DEFAULT_WEIGHTS: dict[str, float] = {"fidelity": 1.0, "perception": 1.0, "runtime": 0.0}
DEFAULT_UNITS: dict[str, float] = {"psnr": 1.0, "mos": 0.5}


def total_score(
    table: pd.DataFrame,
    *,
    weights: Mapping[str, float] | None = None,
    baselines: Mapping[str, float] | str | None = None,
    units: Mapping[str, float] | None = None,
    method_col: str = "method",
    psnr_col: str = "psnr",
    mos_col: str = "mos",
    runtime_col: str = "runtime",
) -> pd.DataFrame:
    """Weighted sum of normalised improvements over a baseline (see module docstring).

    Parameters
    ----------
    table : DataFrame
        One row per method with PSNR, MOS and (if its weight is not 0) runtime.
    weights : mapping, optional
        ``fidelity``, ``perception``, ``runtime`` weights (missing keys take defaults).
    baselines : mapping or str, optional
        Either the name of the baseline method (its row gives the reference values) or
        explicit ``{"psnr": ..., "mos": ..., "runtime": ...}``. Default: the method
        with the lowest PSNR.
    units : mapping, optional
        ``psnr`` (dB) and ``mos`` (MOS points) worth one unit of score.
    method_col, psnr_col, mos_col, runtime_col : str
        Column names.

    Returns
    -------
    DataFrame
        The input columns plus ``fidelity_term``, ``perception_term``,
        ``runtime_term``, ``total_score`` and ``total_rank`` (1 = best), sorted by rank.

    Examples
    --------
    >>> t = pd.DataFrame({"method": ["base", "A"], "psnr": [20.0, 22.0],
    ...                   "mos": [3.0, 4.0], "runtime": [1.0, 0.5]})
    >>> total_score(t, baselines="base", weights={"runtime": 1})["total_score"].tolist()
    [5.0, 0.0]
    """
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    u = {**DEFAULT_UNITS, **(units or {})}
    data = table.copy()
    if baselines is None:
        baselines = str(data.loc[data[psnr_col].idxmin(), method_col])
    if isinstance(baselines, str):
        row = data.loc[data[method_col] == baselines]
        if row.empty:
            raise ValueError(f"baseline method {baselines!r} is not in the table")
        base = {"psnr": row[psnr_col].iloc[0], "mos": row[mos_col].iloc[0]}
        if runtime_col in data.columns:
            base["runtime"] = row[runtime_col].iloc[0]
    else:
        base = dict(baselines)
    data["fidelity_term"] = (data[psnr_col] - base["psnr"]) / u["psnr"]
    data["perception_term"] = (data[mos_col] - base["mos"]) / u["mos"]
    if w["runtime"]:
        if runtime_col not in data.columns or "runtime" not in base:
            raise ValueError("a runtime weight needs runtime values and a runtime baseline")
        data["runtime_term"] = np.log2(base["runtime"] / data[runtime_col].astype(float))
    else:
        data["runtime_term"] = 0.0
    data["total_score"] = (
        w["fidelity"] * data["fidelity_term"]
        + w["perception"] * data["perception_term"]
        + w["runtime"] * data["runtime_term"]
    )
    data["total_rank"] = data["total_score"].rank(ascending=False, method="min").astype(int)
    data = data.sort_values(["total_rank", method_col], kind="stable").reset_index(drop=True)
    return TOTAL_SCORE.stamp(data, weights=w, units=u, baselines=base)


PIRM2018_SCORE = Estimator("pirm2018-score", "1.0")

#: (alpha, beta, gamma) of the three PIRM 2018 Track B scores (data/README of the study
#: tables): A favours fidelity (PSNR), B structure (MS-SSIM), C speed.
PIRM2018_COEFFICIENTS: dict[str, tuple[float, float, float]] = {
    "A": (4.0, 100.0, 2.0),
    "B": (1.0, 400.0, 2.0),
    "C": (2.0, 200.0, 2.9),
}
#: Track B baselines of the PIRM 2018 report: PSNR 21.0 dB, MS-SSIM 0.90.
PIRM2018_BASELINE = {"psnr": 21.0, "ssim": 0.90}
#: a solution faster than the baseline earns at most this speed-up in the score
RUNTIME_CAP = 4.0


def pirm2018_scores(
    table: pd.DataFrame,
    *,
    runtime_baseline: float,
    coefficients: Mapping[str, tuple[float, float, float]] | None = None,
    psnr_baseline: float = PIRM2018_BASELINE["psnr"],
    ssim_baseline: float = PIRM2018_BASELINE["ssim"],
    runtime_cap: float = RUNTIME_CAP,
    method_col: str = "method",
    psnr_col: str = "psnr",
    ssim_col: str = "ssim",
    runtime_col: str = "runtime",
) -> pd.DataFrame:
    """The PIRM 2018 challenge score of each method, for each set of coefficients.

    ``score = alpha * (PSNR - PSNR_b) + beta * (SSIM - SSIM_b) + gamma * min(cap, T_b / T)``

    (Ignatov, Timofte et al., "PIRM Challenge on Perceptual Image Enhancement on
    Smartphones: Report", ECCV Workshops 2018), where SSIM is MS-SSIM in Track B, ``T``
    the method's runtime and ``T_b`` the baseline's, and the speed-up is capped (4) so that
    a fast but poor solution cannot win on speed alone.

    Parameters
    ----------
    table : DataFrame
        One row per method with PSNR, SSIM (or MS-SSIM) and runtime columns.
    runtime_baseline : float
        ``T_b``, in the unit of ``runtime_col``.
    coefficients : mapping of str to (alpha, beta, gamma), optional
        One score column ``score_<name>`` per entry; default the Track B A, B and C.
    psnr_baseline, ssim_baseline : float
        ``PSNR_b`` and ``SSIM_b`` (default Track B: 21.0 dB, 0.90).
    runtime_cap : float
        Largest speed-up that counts.
    method_col, psnr_col, ssim_col, runtime_col : str
        Column names.

    Returns
    -------
    DataFrame
        The input columns plus ``speedup_term`` (``min(cap, T_b / T)``) and, per set of
        coefficients, ``score_<name>`` and ``rank_<name>`` (1 = best), in input order.

    Examples
    --------
    >>> t = pd.DataFrame({"method": ["X"], "psnr": [22.0], "ssim": [0.91], "runtime": [50.0]})
    >>> float(pirm2018_scores(t, runtime_baseline=100.0)["score_A"].iloc[0])  # 4 + 1 + 2 * 2
    9.0
    """
    coefficients = dict(coefficients or PIRM2018_COEFFICIENTS)
    data = table.copy()
    runtime = data[runtime_col].astype(float).to_numpy()
    if not (np.isfinite(runtime).all() and (runtime > 0).all()):
        raise ValueError(f"column {runtime_col!r} needs a positive runtime for every method")
    data["speedup_term"] = np.minimum(runtime_cap, runtime_baseline / runtime)
    fidelity = data[psnr_col].astype(float) - psnr_baseline
    structure = data[ssim_col].astype(float) - ssim_baseline
    for name, (alpha, beta, gamma) in coefficients.items():
        data[f"score_{name}"] = alpha * fidelity + beta * structure + gamma * data["speedup_term"]
        data[f"rank_{name}"] = data[f"score_{name}"].rank(ascending=False, method="min").astype(int)
    return PIRM2018_SCORE.stamp(
        data,
        coefficients={k: list(v) for k, v in coefficients.items()},
        psnr_baseline=psnr_baseline,
        ssim_baseline=ssim_baseline,
        runtime_baseline=runtime_baseline,
        runtime_cap=runtime_cap,
    )
