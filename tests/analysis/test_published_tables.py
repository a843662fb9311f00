"""What the published challenge tables imply, recomputed through the product's functions.

The tables are in ``shared/data`` beside the repository (CI copies ``shared/`` next to
its clone, so the folder is the repository's parent's ``shared/data``). Both are rounded
as published: AIM 2020's MOS carries one decimal, PIRM 2018's four, so every figure is
compared with values computed independently from the same rows (SciPy, the formula by
hand), not with more digits than the tables hold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import metric_correlations, pirm2018_scores

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
AIM = DATA / "aim2020_isp_table1.csv"
PIRM = DATA / "pirm2018_track_b_table2.csv"

pytestmark = pytest.mark.skipif(
    not (AIM.exists() and PIRM.exists()),
    reason=f"the published tables are not at {DATA.resolve()} (shared/data beside the repository)",
)


@pytest.fixture
def aim() -> pd.DataFrame:
    return pd.read_csv(AIM)


@pytest.fixture
def pirm() -> pd.DataFrame:
    return pd.read_csv(PIRM)


def test_aim2020_table_is_the_one_described(aim) -> None:
    assert len(aim) == 11
    assert aim["track2_mos"].is_monotonic_decreasing  # sorted by Track 2 MOS
    assert (aim["track2_mos"] * 10).round(9).mod(1).eq(0).all()  # one decimal
    assert aim.loc[0, "team"] == "MW-ISPNet" and aim.loc[0, "track2_mos"] == 4.7


@pytest.mark.parametrize("metric", ["track2_psnr", "track2_ssim"])
def test_aim2020_track2_metric_correlations_equal_scipy_on_the_same_rows(aim, metric) -> None:
    out = metric_correlations(aim, [metric], "track2_mos", level="method").iloc[0]
    x, y = aim[metric].to_numpy(float), aim["track2_mos"].to_numpy(float)
    n = len(aim)
    assert out["n"] == n == 11
    plcc, srcc, krcc = stats.pearsonr(x, y), stats.spearmanr(x, y), stats.kendalltau(x, y)
    for coef, expected in (("plcc", plcc), ("srcc", srcc), ("krcc", krcc)):
        assert out[coef] == pytest.approx(expected[0], abs=1e-12)
        assert out[f"{coef}_p"] == pytest.approx(expected[1], rel=1e-9)
    # Fisher z intervals by hand, with the variance factors of the module docstring
    q = stats.norm.ppf(0.975)
    for coef, factor, lost in (("plcc", 1.0, 3), ("srcc", 1.06, 3), ("krcc", 0.437, 4)):
        z, se = np.arctanh(out[coef]), np.sqrt(factor / (n - lost))
        assert out[f"{coef}_ci_low"] == pytest.approx(np.tanh(z - q * se), abs=1e-12)
        assert out[f"{coef}_ci_high"] == pytest.approx(np.tanh(z + q * se), abs=1e-12)


def test_aim2020_fidelity_goes_with_perceived_quality_but_does_not_decide_it(aim) -> None:
    """What the report implies: PSNR and SSIM correlate positively with MOS across teams,
    and yet the fidelity order is not the perceptual order (Track 1 and Track 2 differ)."""
    out = metric_correlations(aim, ["track2_psnr", "track2_ssim"], "track2_mos").set_index("metric")
    # by hand from the table: Pearson r of PSNR and MOS
    x, y = aim["track2_psnr"].to_numpy(float), aim["track2_mos"].to_numpy(float)
    r = ((x - x.mean()) * (y - y.mean())).sum() / np.sqrt(((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum())
    assert out.loc["track2_psnr", "plcc"] == pytest.approx(r, abs=1e-12)
    assert out.loc["track2_psnr", "plcc"] > 0.7 and out.loc["track2_ssim", "plcc"] > 0.7
    assert out.loc["track2_psnr", "srcc"] < 1 and out.loc["track2_ssim", "srcc"] < 1
    best_psnr = aim.loc[aim["track2_psnr"].idxmax(), "team"]
    assert best_psnr != aim.loc[0, "team"]  # Baidu has the best PSNR, MW-ISPNet the best MOS


def test_pirm2018_track_b_scores_follow_the_formula_and_coefficients(pirm) -> None:
    """The report scores ``alpha (PSNR - 21.0) + beta (MS-SSIM - 0.90) + gamma min(4, T_b/T)``
    with (4, 100, 2), (1, 400, 2), (2, 200, 2.9). The runtime baseline is not in the data
    README: the test takes the DPED baseline's GPU runtime as ``T_b`` and checks the
    function against the formula written out row by row."""
    t_b = float(pirm.loc[pirm["team"] == "DPED (Baseline)", "gpu_ms"].iloc[0])
    scored = pirm2018_scores(
        pirm, runtime_baseline=t_b, method_col="team", ssim_col="ms_ssim", runtime_col="gpu_ms"
    ).set_index("team")
    coefficients = {"A": (4, 100, 2), "B": (1, 400, 2), "C": (2, 200, 2.9)}
    for row in pirm.itertuples():
        speedup = min(4.0, t_b / row.gpu_ms)
        for name, (a, b, g) in coefficients.items():
            expected = a * (row.psnr - 21.0) + b * (row.ms_ssim - 0.90) + g * speedup
            assert scored.loc[row.team, f"score_{name}"] == pytest.approx(expected, abs=1e-9), (row.team, name)
    # the baseline itself earns gamma * 1 for its speed; Mt.Phoenix (64 ms) hits the cap
    assert scored.loc["DPED (Baseline)", "speedup_term"] == 1.0
    assert scored.loc["Mt.Phoenix", "speedup_term"] == 4.0
    # by hand, score A of Mt.Phoenix: 4 * 0.99 + 100 * 0.0125 + 2 * 4 = 13.21
    assert scored.loc["Mt.Phoenix", "score_A"] == pytest.approx(13.21, abs=1e-9)
    assert scored.attrs["estimator"]["name"] == "pirm2018-score"
    # ranks are 1 = best and follow the scores
    for name in coefficients:
        order = scored.sort_values(f"score_{name}", ascending=False)
        assert order[f"rank_{name}"].is_monotonic_increasing and order[f"rank_{name}"].iloc[0] == 1


def test_pirm2018_mos_and_ms_ssim_correlations_equal_scipy(pirm) -> None:
    out = metric_correlations(pirm, ["psnr", "ms_ssim"], "mos").set_index("metric")
    for metric in ("psnr", "ms_ssim"):
        x, y = pirm[metric].to_numpy(float), pirm["mos"].to_numpy(float)
        assert out.loc[metric, "srcc"] == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
        assert out.loc[metric, "krcc"] == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)
        assert out.loc[metric, "plcc"] == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)


def test_pirm2018_runtime_must_be_known_for_every_method(pirm) -> None:
    broken = pirm.assign(gpu_ms=pirm["gpu_ms"].where(pirm["team"] != "EdS"))
    with pytest.raises(ValueError, match="positive runtime"):
        pirm2018_scores(broken, runtime_baseline=1517.0, ssim_col="ms_ssim", runtime_col="gpu_ms")
