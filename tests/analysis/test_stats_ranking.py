"""Ranking with tied groups and Holm-corrected pairwise tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.stats import rank_methods


@pytest.fixture(autouse=True)
def media_root():
    """The statistics core touches neither files nor settings: no Django needed here."""
    return None


def votes(quality: dict[str, float], n_scenes: int = 20, n_raters: int = 8, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scene_effect = rng.normal(0, 0.3, n_scenes)
    rows = []
    for name, q in quality.items():
        for s in range(n_scenes):
            for r in range(n_raters):
                rows.append((r, f"s{s:02d}", name, q + scene_effect[s] + rng.normal(0, 0.5)))
    return pd.DataFrame(rows, columns=["rater", "scene", "method", "score"])


def paired_t(df: pd.DataFrame, a: str, b: str) -> tuple[float, float]:
    """Paired t over the scenes both methods have, with the rater part of the two-way
    cluster variance of the difference added when positive (ranking-paired-holm 2.0), by
    hand: each vote weighs 1 / (its method's scenes x its output's votes)."""
    per_image = df.groupby(["method", "scene"])["score"].mean().unstack()
    common = per_image.loc[a].notna() & per_image.loc[b].notna()
    d = (per_image.loc[a] - per_image.loc[b])[common]
    n = len(d)
    rows = df[df["method"].isin([a, b])]
    size = df.groupby(["method", "scene"])["score"].transform("size")[rows.index]
    n_scenes = rows["method"].map(per_image.notna().sum(axis=1))
    mos = rows["method"].map(per_image.mean(axis=1))
    sign = np.where(rows["method"] == a, 1.0, -1.0)
    w = rows.assign(w=sign * (rows["score"] - mos) / (n_scenes * size))
    n_raters = df["rater"].nunique()
    by_rater = (w.groupby("rater")["w"].sum() ** 2).sum() * n_raters / (n_raters - 1)
    by_cell = (w.groupby(["rater", "scene"])["w"].sum() ** 2).sum()
    t = d.mean() / np.sqrt(d.var(ddof=1) / n + max(by_rater - by_cell, 0.0))
    return t, 2 * stats.t.sf(abs(t), n - 1)


def test_indistinguishable_leaders_tie_and_separated_methods_do_not():
    # A and B identical in expectation; C and D far below and far apart
    df = votes({"A": 4.0, "B": 4.0, "C": 3.0, "D": 2.0})
    ranking, pairwise = rank_methods(df, procedure="holm")
    ranking = ranking.set_index("method")
    assert ranking.loc["A", "rank"] == ranking.loc["B", "rank"] == 1
    assert ranking.loc["A", "rank_display"] == ranking.loc["B", "rank_display"] == "1-2"
    assert ranking.loc["C", "rank_display"] == "3"
    assert ranking.loc["D", "rank_display"] == "4"
    ab = pairwise[pairwise["pair"].isin(["A vs B", "B vs A"])].iloc[0]
    assert not ab["significant"]


def test_pairwise_p_values_equal_scipy_paired_t_with_holm():
    df = votes({"A": 3.6, "B": 3.4, "C": 3.0}, n_scenes=10, seed=3)
    ranking, pairwise = rank_methods(df, procedure="holm")
    per_image = df.groupby(["method", "scene"])["score"].mean().unstack()
    p_raw = []
    for row in pairwise.itertuples():
        t, p = paired_t(df, row.method_a, row.method_b)
        assert row.statistic == pytest.approx(t)
        assert row.p == pytest.approx(p)
        # every rater rated every output: the raters' biases cancel in each scene's
        # difference, and the test is scipy's paired t-test or a little wider
        t_scipy, p_scipy = stats.ttest_rel(per_image.loc[row.method_a], per_image.loc[row.method_b])
        assert abs(t) <= abs(t_scipy) + 1e-12
        assert row.diff == pytest.approx((per_image.loc[row.method_a] - per_image.loc[row.method_b]).mean())
        p_raw.append(p)
    expected = multipletests(p_raw, alpha=0.05, method="holm")[1]
    assert pairwise["p_holm"].to_numpy() == pytest.approx(expected)
    assert (pairwise["significant"] == (expected < 0.05)).all()
    # ranking order is by MOS, and MOS is the mean of per-image MOS
    assert ranking["mos"].to_numpy() == pytest.approx(per_image.mean(axis=1).sort_values(ascending=False).to_numpy())


def test_a_difference_made_by_who_rated_which_method_is_no_separation_on_new_scenes():
    # A and B are equal; four raters rated A and four others B, on every scene. Raters
    # differ in lenience, so one group's mean lenience is higher by chance: the paired
    # test over scenes alone sees that steady gap on all twelve scenes
    rng = np.random.default_rng(9)  # a panel whose groups differ by 0.37 in mean lenience
    lenience = rng.normal(0, 0.5, 8)
    rows = [
        (r, f"s{s:02d}", "A" if r < 4 else "B", 3.5 + lenience[r] + rng.normal(0, 0.3))
        for s in range(12)
        for r in range(8)
    ]
    df = pd.DataFrame(rows, columns=["rater", "scene", "method", "score"])
    per_image = df.groupby(["method", "scene"])["score"].mean().unstack()
    assert stats.ttest_rel(per_image.loc["A"], per_image.loc["B"]).pvalue < 1e-4
    _, pairwise = rank_methods(df, procedure="holm")
    # eight raters, not twelve scenes, say how sure the difference is
    assert not pairwise["significant"].any()
    t, p = paired_t(df, "A", "B")
    assert pairwise["p"].iloc[0] == pytest.approx(p) and p > 0.05


def test_rank_is_one_plus_methods_significantly_better():
    df = votes({"A": 4.5, "B": 3.0, "C": 2.9, "D": 1.5}, seed=1)
    ranking, pairwise = rank_methods(df, procedure="holm")
    ranking = ranking.set_index("method")
    assert ranking.loc["A", "rank_display"] == "1"
    assert ranking.loc["B", "rank"] == ranking.loc["C", "rank"] == 2
    assert ranking.loc["B", "rank_display"] == ranking.loc["C", "rank_display"] == "2-3"
    assert ranking.loc["D", "rank_display"] == "4"


def test_wilcoxon_option_uses_the_signed_rank_test():
    df = votes({"A": 4.0, "B": 3.0}, n_scenes=12, seed=2)
    _, pairwise = rank_methods(df, test="wilcoxon", procedure="holm")
    per_image = df.groupby(["method", "scene"])["score"].mean().unstack()
    assert pairwise.loc[0, "p"] == pytest.approx(stats.wilcoxon(per_image.loc["A"], per_image.loc["B"]).pvalue)
    assert pairwise.loc[0, "test"] == "wilcoxon"


def test_paired_t_on_common_scenes_and_holm_match_scipy_and_statsmodels_with_missing_outputs():
    df = votes({"A": 3.9, "B": 3.7, "C": 3.5, "D": 3.4, "E": 3.0}, n_scenes=9, seed=11)
    df = df[
        ~((df["method"] == "B") & df["scene"].isin(["s00", "s03"])) & ~((df["method"] == "D") & (df["scene"] == "s05"))
    ]
    # E is C shifted by exactly 0.5 on every scene: a constant difference, never separated
    c = df[df["method"] == "C"]
    df = pd.concat([df[df["method"] != "E"], c.assign(method="E", score=c["score"] - 0.5)], ignore_index=True)
    _, pairwise = rank_methods(df, procedure="holm")
    per_image = df.groupby(["method", "scene"])["score"].mean().unstack()
    p_raw = []
    for row in pairwise.itertuples():
        a, b = per_image.loc[row.method_a], per_image.loc[row.method_b]
        common = a.notna() & b.notna()
        assert row.n_scenes == common.sum()
        if {row.method_a, row.method_b} == {"C", "E"}:
            assert row.p == 1.0 and np.isnan(row.statistic) and not row.significant
            p_raw.append(1.0)
            continue
        t, p = paired_t(df, row.method_a, row.method_b)
        assert row.statistic == pytest.approx(t) and row.p == pytest.approx(p)
        p_raw.append(p)
    assert pairwise["p_holm"].to_numpy() == pytest.approx(multipletests(p_raw, method="holm")[1])
