"""Rater screening: BT.500 kurtosis test, leave-one-out correlation, failed controls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import (
    bt500_screening,
    control_screening,
    correlation_screening,
    exclude_raters,
    screen_raters,
)


@pytest.fixture(autouse=True)
def media_root():
    """The statistics core touches neither files nor settings: no Django needed here."""
    return None


def study(n_raters: int = 30, n_outputs: int = 40, seed: int = 0) -> pd.DataFrame:
    """Consistent raters: output quality plus small normal noise, 1..5 scale."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(1.8, 4.2, n_outputs)
    scores = np.clip(np.round(quality[None, :] + rng.normal(0, 0.6, (n_raters, n_outputs))), 1, 5)
    return pd.DataFrame(
        {
            "rater": np.repeat([f"r{i:02d}" for i in range(n_raters)], n_outputs),
            "scene": np.tile([f"s{j % 10}" for j in range(n_outputs)], n_raters),
            "method": np.tile([f"m{j // 10}" for j in range(n_outputs)], n_raters),
            "score": scores.ravel(),
            "kind": "rating",
        }
    )


def naive_bt500(df: pd.DataFrame) -> pd.DataFrame:
    """BT.500 Annex 1 2.3.1 written as loops straight from the text."""
    p, q, n = {}, {}, df.groupby("rater").size().to_dict()
    for _, group in df.groupby(["method", "scene"]):
        u = group["score"].to_numpy(float)
        mean, s = u.mean(), u.std(ddof=1)
        if not s > 0:
            continue
        beta2 = stats.kurtosis(u, fisher=False, bias=True)  # m4 / m2^2
        k = 2.0 if 2 <= beta2 <= 4 else np.sqrt(20)
        for rater, score in zip(group["rater"], u, strict=True):
            p[rater] = p.get(rater, 0) + (score >= mean + k * s)
            q[rater] = q.get(rater, 0) + (score <= mean - k * s)
    rows = []
    for rater in sorted(n):
        pi, qi = p.get(rater, 0), q.get(rater, 0)
        rejected = (pi + qi) / n[rater] > 0.05 and pi + qi > 0 and abs(pi - qi) / (pi + qi) < 0.3
        rows.append((rater, pi, qi, rejected))
    return pd.DataFrame(rows, columns=["rater", "P", "Q", "rejected"])


def test_bt500_rejects_a_rater_voting_only_extremes_and_keeps_consistent_ones():
    df = study()
    extreme = df["rater"] == "r07"
    df.loc[extreme, "score"] = np.where(np.arange(extreme.sum()) % 2 == 0, 1.0, 5.0)
    table = bt500_screening(df).set_index("rater")
    assert table.loc["r07", "rejected"]
    # r07's extreme votes land on both sides: P and Q both count, |P-Q|/(P+Q) small
    assert table.loc["r07", "P"] > 0 and table.loc["r07", "Q"] > 0
    assert table.drop(index="r07")["rejected"].sum() == 0


def test_bt500_counts_match_a_loop_over_the_recommendation_text():
    df = study(seed=2)
    df.loc[df["rater"] == "r03", "score"] = 5.0  # one-sided: P high, Q zero -> kept
    df.loc[df["rater"] == "r11", "score"] = np.tile([1.0, 5.0], 20)
    ours = bt500_screening(df)[["rater", "P", "Q", "rejected"]]
    expected = naive_bt500(df)
    pd.testing.assert_frame_equal(ours.reset_index(drop=True), expected, check_dtype=False, check_names=False)
    assert not ours.set_index("rater").loc["r03", "rejected"]  # |P-Q|/(P+Q) = 1


def test_bt500_unanimous_output_counts_for_nobody():
    df = pd.DataFrame({"rater": [1, 2, 3, 4], "scene": "s", "method": "m", "score": [4, 4, 4, 4]})
    table = bt500_screening(df)
    assert table["P"].sum() == 0 and table["Q"].sum() == 0
    assert not table["rejected"].any()


def test_correlation_screening_uses_leave_one_out_mos():
    scores = {
        1: [1, 2, 3, 4],
        2: [1, 2, 4, 4],
        3: [2, 2, 3, 5],
        4: [4, 3, 2, 1],
    }
    df = pd.DataFrame(
        [(r, s, "A", v) for r, vals in scores.items() for s, v in zip("abcd", vals, strict=True)],
        columns=["rater", "scene", "method", "score"],
    )
    table = correlation_screening(df).set_index("rater")
    # rater 1 against the mean of raters 2, 3, 4 on each scene
    others = np.array([[1, 2, 4, 4], [2, 2, 3, 5], [4, 3, 2, 1]]).mean(axis=0)
    assert others.tolist() == pytest.approx([7 / 3, 7 / 3, 3, 10 / 3])
    assert table.loc[1, "correlation"] == pytest.approx(stats.pearsonr([1, 2, 3, 4], others)[0])
    assert table["rejected"].tolist() == [False, False, False, True]
    spearman = correlation_screening(df, method="spearman").set_index("rater")
    assert spearman.loc[1, "correlation"] == pytest.approx(stats.spearmanr([1, 2, 3, 4], others)[0])


def test_correlation_screening_needs_min_outputs():
    df = pd.DataFrame({"rater": [1, 1, 2, 2], "scene": ["a", "b"] * 2, "method": "A", "score": [1, 5, 5, 1]})
    table = correlation_screening(df, min_outputs=3)
    assert table["correlation"].tolist() == pytest.approx([-1.0, -1.0])
    assert not table["rejected"].any()


INFO = pd.DataFrame(
    {
        "method": ["ref", "anchor", "team"],
        "method_kind": ["hidden_reference", "low_anchor", "submission"],
    }
)


def control_votes() -> pd.DataFrame:
    rows = []
    # rater "good": reference 5, 5, 4; anchor 1, 2 -> 0 of 5 failed
    rows += [("good", s, "ref", v) for s, v in zip("abc", [5, 5, 4], strict=True)]
    rows += [("good", s, "anchor", v) for s, v in zip("ab", [1, 2], strict=True)]
    # rater "careless": reference 2 (fails, <= 2), 5; anchor 4 (fails, >= 4), 1 -> 2 of 4
    rows += [("careless", s, "ref", v) for s, v in zip("ab", [2, 5], strict=True)]
    rows += [("careless", s, "anchor", v) for s, v in zip("ab", [4, 1], strict=True)]
    rows += [("careless", "a", "team", 1), ("good", "a", "team", 1)]  # not controls
    return pd.DataFrame(rows, columns=["rater", "scene", "method", "score"]).assign(
        kind=lambda d: np.where(d["method"] == "team", "rating", "control")
    )


def test_control_screening_flags_failed_hidden_reference_and_anchor():
    table = control_screening(control_votes(), INFO, scale_min=1, scale_max=5)
    table = table.set_index("rater")
    assert table.loc["good", "controls"] == 5
    assert table.loc["good", "controls_failed"] == 0
    assert table.loc["careless", "controls"] == 4
    assert table.loc["careless", "controls_failed"] == 2
    assert table.loc["careless", "rejected"] and not table.loc["good", "rejected"]
    params = table.attrs["estimator"]["params"]
    assert params["hidden_ref_max"] == 2 and params["low_anchor_min"] == 4
    # with a tolerance of half the controls the careless rater passes
    lenient = control_screening(control_votes(), INFO, max_failures_fraction=0.5)
    assert not lenient["rejected"].any()


def test_control_thresholds_follow_the_scale():
    # PIRM 4-level scale: only the extreme level fails (ref <= 1.75, anchor >= 3.25)
    votes = pd.DataFrame({"rater": 1, "scene": ["a", "b"], "method": ["ref", "anchor"], "score": [2, 3]})
    table = control_screening(votes, INFO, scale_min=1, scale_max=4)
    assert table["controls_failed"].tolist() == [0]


def test_screen_raters_names_the_rule_and_exclude_drops_the_rater():
    df = study(n_raters=20)
    df.loc[df["rater"] == "r05", "score"] = np.tile([1.0, 5.0], 20)  # BT.500 + correlation
    bad_corr = df["rater"] == "r09"
    df.loc[bad_corr, "score"] = 6 - df.loc[bad_corr, "score"]  # reversed scale
    controls = control_votes().assign(rater=lambda d: d["rater"].map({"good": "r01", "careless": "r02"}))
    all_votes = pd.concat([df, controls], ignore_index=True)
    table = screen_raters(all_votes, INFO, 1, 5, correlation_threshold=0.7).set_index("rater")
    assert table.loc["r09", "correlation_rejected"]
    assert "correlation" in table.loc["r09", "excluded_by"]
    assert table.loc["r05", "bt500_rejected"]
    # r02 failed its controls (its few control votes also disagree with r01's)
    assert table.loc["r02", "controls_rejected"]
    assert "controls" in table.loc["r02", "excluded_by"].split(",")
    assert not table.loc["r01", "controls_rejected"]
    assert table.loc["r10", "excluded_by"] == ""
    excluded = set(table.index[table["excluded"]])
    assert {"r02", "r05", "r09"} <= excluded
    kept = exclude_raters(all_votes, table.reset_index())
    assert not set(kept["rater"]) & excluded
    assert len(kept) == (~all_votes["rater"].isin(excluded)).sum()


def test_straight_liner_and_random_rater_are_flagged_good_raters_kept():
    from analysis.stats.screening import screen_raters as screen

    rng = np.random.default_rng(4)
    quality = rng.uniform(2, 4.5, 60)  # close teams: little spread between outputs
    scores = np.clip(np.round(quality + rng.normal(0, 0.6, (20, 60))), 1, 5)
    scores[18] = rng.integers(1, 6, 60)  # careless
    scores[19] = 4  # straight-lining: correlation undefined
    votes = pd.DataFrame(
        {
            "rater": np.repeat(np.arange(20), 60),
            "scene": np.tile(np.arange(60), 20),
            "method": "A",
            "score": scores.ravel(),
        }
    )
    table = screen(votes).set_index("rater")
    assert table.loc[19, "straight_lining_rejected"] and np.isnan(table.loc[19, "correlation"])
    assert table.loc[18, "inconsistency_rejected"]
    assert not table.loc[:17, "excluded"].any()
    # the rule's test by hand: chi-square of the residual spread against 1.25 x the pooled
    # spread of the raters up to the 80th percentile (every rater has 60 votes)
    u = table["inconsistency"].to_numpy()
    ref = 1.25 * np.sqrt(np.mean(u[u <= np.quantile(u, 0.8)] ** 2))
    p = stats.chi2.sf(60 * table.loc[18, "inconsistency"] ** 2 / ref**2, 59)
    assert table.loc[18, "inconsistency_p"] == pytest.approx(p)
