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
