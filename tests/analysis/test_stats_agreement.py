"""Rater agreement against independent values: Krippendorff's published example, a
direct pairwise formula of interval alpha, Spearman-Brown by hand on one split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import rater_agreement
from analysis.stats.agreement import spearman_brown

# Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), the example with
# missing values: 4 observers, 12 units. Published: interval alpha 0.849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def long_frame(matrix: list[list[int | None]]) -> pd.DataFrame:
    """Observers as raters, units as outputs of one method each on one scene."""
    rows = [
        {"rater": f"obs{r}", "scene": "s", "method": f"unit{u:02d}", "score": v, "kind": "rating"}
        for r, row in enumerate(matrix)
        for u, v in enumerate(row)
        if v is not None
    ]
    return pd.DataFrame(rows)


def interval_alpha_by_pairs(frame: pd.DataFrame) -> float:
    """alpha = 1 - D_o / D_e over pairable values, written out pair by pair."""
    units = [g["score"].to_numpy(float) for _, g in frame.groupby(["method", "scene"]) if len(g) >= 2]
    values = np.concatenate(units)
    n = len(values)
    d_o = sum(((u[:, None] - u[None, :]) ** 2).sum() / (len(u) - 1) for u in units) / n
    d_e = ((values[:, None] - values[None, :]) ** 2).sum() / (n * (n - 1))
    return 1.0 - d_o / d_e


def test_krippendorff_alpha_reproduces_the_published_example() -> None:
    table = rater_agreement(long_frame(KRIPPENDORFF_2011)).set_index("measure")
    alpha = table.loc["krippendorff_alpha"]
    assert round(float(alpha["value"]), 3) == 0.849
    # unit 12 has one value only: not pairable
    assert alpha["n_units"] == 11


def test_krippendorff_alpha_equals_the_pairwise_formula_on_a_sparse_study() -> None:
    rng = np.random.default_rng(5)
    rows = []
    quality = {m: q for m, q in zip("ABCDE", [4.2, 3.9, 3.1, 2.5, 1.8], strict=True)}
    for rater in range(15):
        bias = rng.normal(0, 0.4)
        for method in quality:
            for scene in range(6):
                if rng.random() < 0.5:  # each rater sees about half of the outputs
                    score = np.clip(np.rint(quality[method] + bias + rng.normal(0, 0.7)), 1, 5)
                    rows.append({"rater": rater, "scene": scene, "method": method, "score": score})
    frame = pd.DataFrame(rows)
    alpha = rater_agreement(frame).set_index("measure").loc["krippendorff_alpha", "value"]
    assert alpha == pytest.approx(interval_alpha_by_pairs(frame), abs=1e-12)


def test_split_half_of_two_raters_is_their_spearman_stepped_up_by_hand() -> None:
    # two raters, one split: rater a's method MOS against rater b's
    a = {"A": [5, 4], "B": [4, 4], "C": [2, 3], "D": [3, 1]}
    b = {"A": [4, 5], "B": [3, 2], "C": [4, 3], "D": [1, 2]}
    rows = [
        {"rater": r, "scene": f"s{i}", "method": m, "score": v}
        for r, scores in (("a", a), ("b", b))
        for m, vs in scores.items()
        for i, v in enumerate(vs)
    ]
    table = rater_agreement(pd.DataFrame(rows)).set_index("measure").loc["split_half_ranking"]
    mos_a = [np.mean(a[m]) for m in "ABCD"]  # 4.5, 4.0, 2.5, 2.0
    mos_b = [np.mean(b[m]) for m in "ABCD"]  # 4.5, 2.5, 3.5, 1.5
    r = stats.spearmanr(mos_a, mos_b)[0]  # 0.8
    assert r == pytest.approx(0.8)
    assert float(table["value"]) == pytest.approx(2 * 0.8 / 1.8)
    assert table["n_splits"] == 1


def test_spearman_brown_by_hand() -> None:
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.6, factor=3) == pytest.approx(1.8 / 2.2)


def test_split_half_is_high_for_distinct_methods_and_low_for_equal_ones() -> None:
    rng = np.random.default_rng(1)

    def study(spread: float) -> pd.DataFrame:
        quality = np.linspace(3 - spread, 3 + spread, 6)
        return pd.DataFrame(
            [
                {"rater": r, "scene": s, "method": m, "score": q + rng.normal(0, 1.0)}
                for r in range(20)
                for m, q in enumerate(quality)
                for s in range(5)
            ]
        )

    distinct = rater_agreement(study(1.5), seed=0).set_index("measure").loc["split_half_ranking", "value"]
    equal = rater_agreement(study(0.0), seed=0).set_index("measure").loc["split_half_ranking", "value"]
    assert distinct > 0.95
    assert equal < 0.6


def test_agreement_is_nan_not_an_error_when_it_cannot_be_computed() -> None:
    one_rater = pd.DataFrame({"rater": "a", "scene": "s", "method": list("ABC"), "score": [1, 2, 3]})
    table = rater_agreement(one_rater).set_index("measure")
    assert np.isnan(table.loc["split_half_ranking", "value"])
    assert np.isnan(table.loc["krippendorff_alpha", "value"])
    assert table.attrs["estimator"]["name"] == "rater-agreement"
    assert set(table["estimator_version"]) == {"1.0"}


def test_continuous_scores_take_the_closed_form_with_the_same_value() -> None:
    from analysis.stats._common import prepare_votes
    from analysis.stats.agreement import _interval_alpha_closed_form

    # on a 5-level study the closed form equals the package
    frame = long_frame(KRIPPENDORFF_2011)
    assert _interval_alpha_closed_form(prepare_votes(frame))[0] == pytest.approx(0.8491071428571428, abs=1e-12)
    # continuous scores (hundreds of levels) are not handed to the package
    rng = np.random.default_rng(2)
    rows = [
        {"rater": r, "scene": s, "method": m, "score": q + rng.normal(0, 0.5)}
        for r in range(30)
        for m, q in enumerate([1.0, 2.0, 3.0])
        for s in range(10)
    ]
    continuous = pd.DataFrame(rows)
    alpha = rater_agreement(continuous).set_index("measure").loc["krippendorff_alpha", "value"]
    assert alpha == pytest.approx(interval_alpha_by_pairs(continuous), abs=1e-12)


def test_spearman_brown_of_reversed_halves_is_minus_one_not_a_division_by_zero() -> None:
    from analysis.stats.agreement import spearman_brown

    assert spearman_brown(0.6) == pytest.approx(2 * 0.6 / 1.6)  # hand calculation
    assert spearman_brown(-1.0) == -1.0
    assert spearman_brown(-0.9) == -1.0  # 2 * -0.9 / 0.1 = -18 is no correlation
