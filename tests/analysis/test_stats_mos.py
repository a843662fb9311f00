"""MOS and its intervals, checked against hand arithmetic, scipy and a naive bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis.stats import bootstrap_ci, image_mos, method_mos


@pytest.fixture(autouse=True)
def media_root():
    """The statistics core touches neither files nor settings: no Django needed here."""
    return None


def votes_frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["rater", "scene", "method", "score", "kind"])


SMALL = votes_frame(
    [
        ("r1", "s1", "A", 4, "rating"),
        ("r2", "s1", "A", 5, "rating"),
        ("r3", "s1", "A", 3, "rating"),
        ("r1", "s2", "A", 2, "rating"),
        ("r2", "s2", "A", 4, "control"),
        ("r3", "s2", "A", 1, "training"),  # never counted
        ("r1", "s1", "B", 1, "rating"),
    ]
)


def test_image_mos_matches_hand_arithmetic():
    table = image_mos(SMALL, output_prior=0).set_index(["method", "scene"])
    # A/s1: votes 4, 5, 3 -> mean 4, s = sqrt(((0)^2 + 1^2 + 1^2) / 2) = 1
    row = table.loc[("A", "s1")]
    assert row["n_votes"] == 3
    assert row["mos"] == pytest.approx(4.0)
    assert row["std"] == pytest.approx(1.0)
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) = 4.3027
    assert row["ci_low"] == pytest.approx(4 - half)
    assert row["ci_high"] == pytest.approx(4 + half)
    # A/s2: the training vote is ignored, the control vote counts: (2 + 4) / 2 = 3
    assert table.loc[("A", "s2"), "n_votes"] == 2
    assert table.loc[("A", "s2"), "mos"] == pytest.approx(3.0)
    # one vote: no interval
    assert np.isnan(table.loc[("B", "s1"), "ci_low"])
    assert set(table["ci_method"]) == {"t-raters"}
    assert set(table["estimator"]) == {"image-mos"}


def test_image_mos_interval_equals_scipy_t_interval():
    rng = np.random.default_rng(3)
    scores = rng.integers(1, 6, 17)
    df = pd.DataFrame({"rater": range(17), "scene": "s", "method": "m", "score": scores})
    row = image_mos(df, output_prior=0).iloc[0]
    low, high = stats.t.interval(0.95, 16, loc=scores.mean(), scale=stats.sem(scores))
    assert row["ci_low"] == pytest.approx(low)
    assert row["ci_high"] == pytest.approx(high)


def test_method_mos_is_mean_over_scenes_not_over_votes():
    table = method_mos(SMALL).set_index("method")
    # per-image MOS of A: s1 = 4, s2 = 3 -> 3.5 (a vote mean would give 18/5 = 3.6)
    assert table.loc["A", "mos"] == pytest.approx(3.5)
    assert table.loc["A", "n_scenes"] == 2
    assert table.loc["A", "n_votes"] == 5
    assert table.loc["A", "n_raters"] == 3  # r1, r2, r3 (r3 counted on s1 only)
    # t over the two image MOS values 4 and 3: s = 0.7071, t(0.975, 1) = 12.706
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.5) / math.sqrt(2)
    assert table.loc["A", "ci_high"] - 3.5 == pytest.approx(half)
    assert table.loc["A", "ci_method"] == "t-scenes"


def test_bad_scores_are_refused():
    bad = SMALL.assign(score=SMALL["score"].astype(object))
    bad.loc[0, "score"] = "abc"
    with pytest.raises(ValueError, match="non-numeric"):
        image_mos(bad)


def naive_one_way(df: pd.DataFrame, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raters alone and scenes alone resampled by building every frame (same draws)."""
    raters = np.sort(df["rater"].unique())
    scenes = np.sort(df["scene"].unique())
    rng = np.random.default_rng(seed)
    rater_draws = rng.integers(0, len(raters), size=(n, len(raters)))
    scene_draws = rng.integers(0, len(scenes), size=(n, len(scenes)))
    image = df.groupby(["method", "scene"])["score"].mean().reset_index()
    by_raters, by_scenes = [], []
    for b in range(n):
        sample = pd.DataFrame({"rater": raters[rater_draws[b]]}).merge(df, on="rater")  # twice drawn counts twice
        per_image = sample.groupby(["method", "scene"])["score"].mean().reset_index()
        by_raters.append(per_image.groupby("method")["score"].mean().sort_index().to_numpy())
        picked = pd.DataFrame({"scene": scenes[scene_draws[b]]}).merge(image, on="scene")
        by_scenes.append(picked.groupby("method")["score"].mean().sort_index().to_numpy())
    return np.array(by_raters), np.array(by_scenes)


def test_bootstrap_combines_one_way_resamples_as_two_way_clustering():
    rng = np.random.default_rng(5)
    rows = [(r, s, m, int(rng.integers(1, 6))) for r in range(6) for s in range(4) for m in ("A", "B")]
    df = pd.DataFrame(rows, columns=["rater", "scene", "method", "score"])
    n = 200  # one chunk of draws, so the draw order matches the naive version
    by_raters, by_scenes = naive_one_way(df, n, seed=11)
    # the (rater, scene) cell term by hand: each vote moves MOS[m] by (y - MOS[m, i]) / (4 * 6)
    dev = df["score"] - df.groupby(["method", "scene"])["score"].transform("mean")
    cell = (dev / 24).groupby([df["method"], df["rater"], df["scene"]]).sum()
    cell_var = (cell**2).groupby(level="method").sum().sort_index().to_numpy()
    var = by_raters.var(axis=0, ddof=1) * 6 / 5 + by_scenes.var(axis=0, ddof=1) * 4 / 3 - cell_var
    var = np.maximum(var, np.maximum(by_raters.var(axis=0, ddof=1) * 6 / 5, by_scenes.var(axis=0, ddof=1) * 4 / 3))
    ci = bootstrap_ci(df, n_resamples=n, seed=11).set_index("method")
    assert ci["boot_se"].to_numpy() == pytest.approx(np.sqrt(var))
    half = stats.t.ppf(0.975, 3) * np.sqrt(var)
    mos = df.groupby("method")["score"].mean().sort_index().to_numpy()
    assert ci["ci_low"].to_numpy() == pytest.approx(mos - half)
    assert ci["ci_high"].to_numpy() == pytest.approx(mos + half)
    assert set(ci["ci_method"]) == {"bootstrap-raters-scenes"}


def test_bootstrap_is_reproducible_and_brackets_the_mos():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "rater": np.repeat(np.arange(30), 10),
            "scene": np.tile(np.arange(10), 30),
            "method": "A",
            "score": rng.integers(1, 6, 300),
        }
    )
    first = bootstrap_ci(df, n_resamples=300, seed=4)
    again = bootstrap_ci(df, n_resamples=300, seed=4)
    pd.testing.assert_frame_equal(first, again)
    row = first.iloc[0]
    assert row["ci_low"] < row["mos"] < row["ci_high"]


vote_lists = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 3), st.sampled_from("ABC"), st.integers(1, 5)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(vote_lists)
def test_mos_and_intervals_stay_meaningful_on_the_scale(rows):
    df = pd.DataFrame(rows, columns=["rater", "scene", "method", "score"])
    img = image_mos(df)
    meth = method_mos(df)
    assert img["mos"].between(1, 5).all()
    assert meth["mos"].between(1, 5).all()
    # one rule for repeated votes: a rater's votes on one output count once (averaged)
    assert img["n_votes"].sum() == len(df.drop_duplicates(["rater", "scene", "method"]))


def test_pooled_interval_is_never_zero_width_and_stays_on_the_scale():
    df = pd.DataFrame(
        {"rater": [1, 2, 3, 1, 2, 3], "scene": "s", "method": ["A"] * 3 + ["B"] * 3, "score": [5, 5, 5, 2, 3, 4]}
    )
    table = image_mos(df, scale_min=1, scale_max=5).set_index("method")
    # pooled variance (0 * 2 + 1 * 2) / 4 = 0.5; A: s' = sqrt(0.5 / 3), t with 3 df
    half = stats.t.ppf(0.975, 3) * math.sqrt(0.5 / 3) / math.sqrt(3)
    assert table.loc["A", "ci_low"] == pytest.approx(5 - half)
    assert table.loc["A", "ci_high"] == 5
    assert (table["ci_high"] > table["ci_low"]).all()


def test_repeated_votes_are_averaged_in_every_estimator():
    from analysis.stats import p910_model

    df = pd.DataFrame({"rater": [1, 1, 2, 3], "scene": "s", "method": "A", "score": [2, 4, 3, 4]})
    assert image_mos(df)["mos"].iloc[0] == pytest.approx((3 + 3 + 4) / 3)
    assert p910_model(df).outputs["mos"].iloc[0] == pytest.approx((3 + 3 + 4) / 3)


def test_unknown_vote_kind_is_refused_with_its_name():
    df = pd.DataFrame({"rater": [1, 2], "scene": "s", "method": "A", "score": [3, 4], "kind": ["rating", None]})
    with pytest.raises(ValueError, match="unknown vote kind"):
        image_mos(df)


@settings(max_examples=40, deadline=None)
@given(vote_lists, st.randoms(use_true_random=False))
def test_renaming_raters_changes_nothing(rows, random):
    df = pd.DataFrame(rows, columns=["rater", "scene", "method", "score"])
    ids = sorted(df["rater"].unique())
    shuffled = ids[:]
    random.shuffle(shuffled)
    renamed = df.assign(rater=df["rater"].map(dict(zip(ids, [f"x{i}" for i in shuffled], strict=True))))
    cols = ["method", "mos", "n_scenes", "n_votes", "n_raters", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(method_mos(df)[cols], method_mos(renamed)[cols])
    pd.testing.assert_frame_equal(image_mos(df), image_mos(renamed))


def test_bootstrap_on_sparse_cells_gives_the_dense_figures(monkeypatch):
    from analysis.stats import mos

    rng = np.random.default_rng(5)
    n = 600
    votes = pd.DataFrame(
        {
            "rater": rng.integers(0, 60, n),
            "scene": rng.integers(0, 8, n),
            "method": rng.integers(0, 4, n),
            "score": rng.integers(1, 6, n).astype(float),
        }
    )
    monkeypatch.setattr(mos, "BOOTSTRAP_SPARSE_DENSITY", 0.0)
    dense = bootstrap_ci(votes, n_resamples=300, seed=2)
    monkeypatch.setattr(mos, "BOOTSTRAP_SPARSE_DENSITY", 1.1)
    sparse = bootstrap_ci(votes, n_resamples=300, seed=2)
    for col in ("ci_low", "ci_high", "boot_se"):
        assert sparse[col].to_numpy() == pytest.approx(dense[col].to_numpy(), rel=1e-12)


@pytest.mark.parametrize("design", ["complete", "scene-blocked"])
def test_bootstrap_grouping_outputs_with_the_same_raters_gives_the_same_figures(monkeypatch, design):
    from analysis.stats import mos

    rng = np.random.default_rng(6)
    r, m, s = (a.ravel() for a in np.meshgrid(np.arange(12), np.arange(4), np.arange(6), indexing="ij"))
    votes = pd.DataFrame({"rater": r, "scene": s, "method": m, "score": rng.integers(1, 6, len(r)).astype(float)})
    if design == "scene-blocked":
        # each scene rated by its own half of the raters; one output left without votes
        votes = votes[(votes["rater"] % 2) == (votes["scene"] % 2)]
        votes = votes[~((votes["method"] == 3) & (votes["scene"] == 5))]
    codes = mos.prepare_votes(votes)
    counts = np.bincount(codes.output * codes.n_raters + codes.rater, minlength=codes.n_outputs * codes.n_raters)
    assert mos._same_raters(counts.reshape(codes.n_outputs, codes.n_raters).astype(float)) is not None
    grouped = bootstrap_ci(votes, n_resamples=300, seed=2)
    monkeypatch.setattr(mos, "BOOTSTRAP_GROUP_OUTPUTS", False)
    plain = bootstrap_ci(votes, n_resamples=300, seed=2)
    for col in ("ci_low", "ci_high", "boot_se"):
        assert grouped[col].to_numpy() == pytest.approx(plain[col].to_numpy(), rel=1e-12)
