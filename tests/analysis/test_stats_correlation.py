"""Metric/MOS correlations against scipy, the Fisher z intervals and the VQEG logistic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis.stats import logistic_4, metric_correlations


@pytest.fixture(autouse=True)
def media_root():
    """The statistics core touches neither files nor settings: no Django needed here."""
    return None


# Note: the AIM 2020 Learned ISP Track 2 table (arXiv 2011.04994) could not be retrieved
# while writing these tests, and no published numbers are typed in from memory; the
# frame below is generated, and every expected value is computed with scipy directly.
def table(seed: int = 0, n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    psnr = rng.uniform(20, 24, n)
    ssim = 0.7 + 0.01 * psnr + rng.normal(0, 0.02, n)
    mos = 1 + 3.5 / (1 + np.exp(-(psnr - 22) / 0.6)) + rng.normal(0, 0.2, n)
    return pd.DataFrame({"method": [f"t{i}" for i in range(n)], "psnr": psnr, "ssim": ssim, "mos": mos})


def test_coefficients_and_p_values_equal_scipy():
    t = table()
    out = metric_correlations(t, level="method").set_index("metric")
    for metric in ("psnr", "ssim"):
        x, y = t[metric], t["mos"]
        r, p = stats.pearsonr(x, y)
        assert out.loc[metric, "plcc"] == pytest.approx(r)
        assert out.loc[metric, "plcc_p"] == pytest.approx(p)
        rho, p = stats.spearmanr(x, y)
        assert out.loc[metric, "srcc"] == pytest.approx(rho)
        assert out.loc[metric, "srcc_p"] == pytest.approx(p)
        tau, p = stats.kendalltau(x, y)
        assert out.loc[metric, "krcc"] == pytest.approx(tau)
        assert out.loc[metric, "krcc_p"] == pytest.approx(p)
    assert (out["n"] == 12).all() and (out["level"] == "method").all()


def test_fisher_z_intervals_by_hand():
    t = table()
    row = metric_correlations(t, ["psnr"]).iloc[0]
    n, z975 = 12, 1.959963984540054
    r = row["plcc"]
    assert row["plcc_ci_low"] == pytest.approx(np.tanh(np.arctanh(r) - z975 / np.sqrt(n - 3)))
    assert row["plcc_ci_high"] == pytest.approx(np.tanh(np.arctanh(r) + z975 / np.sqrt(n - 3)))
    rho = row["srcc"]
    assert row["srcc_ci_low"] == pytest.approx(np.tanh(np.arctanh(rho) - z975 * np.sqrt(1.06 / (n - 3))))
    tau = row["krcc"]
    assert row["krcc_ci_high"] == pytest.approx(np.tanh(np.arctanh(tau) + z975 * np.sqrt(0.437 / (n - 4))))


def test_logistic_mapping_recovers_a_known_curve():
    x = np.linspace(18, 26, 15)
    y = logistic_4(x, 4.6, 1.2, 22.0, 0.8)
    out = metric_correlations(pd.DataFrame({"psnr": x, "mos": y}), ["psnr"]).iloc[0]
    assert out["logistic_converged"]
    assert out["plcc_logistic"] == pytest.approx(1.0, abs=1e-6)
    params = out[["logistic_b1", "logistic_b2", "logistic_b3", "logistic_b4"]].to_numpy(float)
    assert params == pytest.approx([4.6, 1.2, 22.0, 0.8], rel=1e-3)
    # the plain PLCC of a sigmoid is below 1: the mapping is what makes it linear
    assert out["plcc"] < 0.99


def test_missing_values_are_skipped_per_metric():
    t = table()
    t.loc[0, "ssim"] = np.nan
    out = metric_correlations(t).set_index("metric")
    assert out.loc["psnr", "n"] == 12 and out.loc["ssim", "n"] == 11


@settings(max_examples=40, deadline=None)
@given(
    # distinct grid values, so the transform cannot merge two of them by rounding
    st.lists(st.integers(0, 1000), min_size=5, max_size=20, unique=True),
    st.integers(0, 1000),
)
def test_rank_correlations_are_unchanged_by_a_monotone_transform(values, seed):
    rng = np.random.default_rng(seed)
    metric = np.array(values) / 1000
    mos = rng.uniform(1, 5, len(metric))
    frame = pd.DataFrame({"m": metric, "m_exp": np.exp(3 * metric) + 7, "mos": mos})
    out = metric_correlations(frame, ["m", "m_exp"], logistic=False).set_index("metric")
    assert out.loc["m", "srcc"] == pytest.approx(out.loc["m_exp", "srcc"], nan_ok=True)
    assert out.loc["m", "krcc"] == pytest.approx(out.loc["m_exp", "krcc"], nan_ok=True)
