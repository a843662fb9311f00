"""ITU-T P.910 Annex E subject model: exact recovery, and agreement with Netflix sureal."""

from __future__ import annotations

import contextlib
import io
import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.stats import p910_model
from analysis.stats.subject_model import NAME, VERSION


@pytest.fixture(autouse=True)
def media_root():
    """The statistics core touches neither files nor settings: no Django needed here."""
    return None


def generated(seed: int, n_outputs: int = 48, n_raters: int = 25, missing: float = 0.3):
    """Votes from the model itself: psi + Delta + upsilon * X, rounded to 1..5."""
    rng = np.random.default_rng(seed)
    psi = rng.uniform(1.5, 4.5, n_outputs)
    delta = rng.normal(0, 0.4, n_raters)
    upsilon = rng.uniform(0.2, 1.2, n_raters)
    x = psi[:, None] + delta[None, :] + upsilon[None, :] * rng.normal(size=(n_outputs, n_raters))
    x = np.clip(np.round(x), 1, 5)
    x[rng.random(x.shape) < missing] = np.nan
    rows = [
        (f"r{i:03d}", f"s{e % 8}", f"m{e // 8}", x[e, i])
        for e in range(n_outputs)
        for i in range(n_raters)
        if not np.isnan(x[e, i])
    ]
    return pd.DataFrame(rows, columns=["rater", "scene", "method", "score"]), x


def test_noise_free_additive_votes_are_recovered_exactly():
    # score = psi + Delta with no noise: the model must return psi and Delta exactly,
    # up to the convention that the biases average to zero
    psi = np.array([1.0, 2.0, 3.5, 4.0])
    delta = np.array([0.5, -0.25, -0.25])
    rows = [(r, f"s{e}", "m", psi[e] + delta[r]) for e in range(4) for r in range(3) if (e, r) != (0, 2)]
    df = pd.DataFrame(rows, columns=["rater", "scene", "method", "score"])
    fit = p910_model(df)
    assert fit.outputs["quality"].to_numpy() == pytest.approx(psi, abs=1e-6)
    assert fit.raters["bias"].to_numpy() == pytest.approx(delta, abs=1e-6)
    assert fit.raters["inconsistency"].to_numpy() == pytest.approx([0, 0, 0], abs=1e-6)
    assert fit.converged


def test_intervals_follow_the_fisher_information():
    df, _ = generated(1)
    fit = p910_model(df)
    raters = fit.raters.set_index("rater")
    z = stats.norm.ppf(0.975)
    out = fit.outputs.iloc[0]
    voters = df[(df["method"] == out["method"]) & (df["scene"] == out["scene"])]["rater"]
    expected_std = 1 / np.sqrt((1 / raters.loc[voters, "inconsistency"] ** 2).sum())
    assert out["fisher_std"] == pytest.approx(expected_std)
    assert out["fisher_ci_high"] - out["quality"] == pytest.approx(z * expected_std)
    r = raters.iloc[0]
    assert r["bias_std"] == pytest.approx(r["inconsistency"] / np.sqrt(r["n_votes"]))
    n = r["n_votes"]
    assert r["inconsistency_ci_low"] == pytest.approx(r["inconsistency"] * np.sqrt(n / stats.chi2.ppf(0.975, n)))
    assert fit.raters["bias"].mean() == pytest.approx(0, abs=1e-12)
    assert set(fit.outputs["estimator"]) == {NAME}
    assert set(fit.outputs["estimator_version"]) == {VERSION}


def test_biased_and_noisy_raters_are_identified():
    df, _ = generated(2, n_outputs=80, n_raters=20, missing=0.0)
    df.loc[df["rater"] == "r000", "score"] = np.clip(df.loc[df["rater"] == "r000", "score"] + 1, 1, 5)
    rng = np.random.default_rng(0)
    noisy = df["rater"] == "r001"
    df.loc[noisy, "score"] = rng.integers(1, 6, noisy.sum())
    raters = p910_model(df).raters.set_index("rater")
    assert raters["bias"].idxmax() == "r000"
    assert raters["inconsistency"].idxmax() == "r001"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sureal_alternating_projection_to_1e_4(seed):
    pytest.importorskip("sureal")
    from sureal.dataset_reader import RawDatasetReader
    from sureal.subjective_model import (
        MaximumLikelihoodEstimationModelContentObliviousAlternativeProjection as SurealAP,
    )

    df, x = generated(seed)
    n_outputs, n_raters = x.shape
    dataset = types.SimpleNamespace(
        ref_videos=[{"content_id": c, "content_name": f"s{c}", "path": ""} for c in range(8)],
        dis_videos=[
            {
                "content_id": e % 8,
                "asset_id": e,
                "path": "",
                "os": {f"r{i:03d}": float(x[e, i]) for i in range(n_raters) if not np.isnan(x[e, i])},
            }
            for e in range(n_outputs)
        ],
    )
    with contextlib.redirect_stdout(io.StringIO()):  # sureal prints every iteration
        theirs = SurealAP(RawDatasetReader(dataset)).run_modeling()
    fit = p910_model(df, inconsistency_prior=0)  # sureal's unregularised solution
    # our outputs are sorted by (method, scene) = m{e//8}, s{e%8}: the asset order e;
    # our raters are sorted by name, as sureal sorts its observers
    assert fit.outputs["quality"].to_numpy() == pytest.approx(theirs["quality_scores"], abs=1e-4)
    assert fit.outputs["fisher_std"].to_numpy() == pytest.approx(theirs["quality_scores_std"], abs=1e-4)
    assert (fit.outputs["fisher_ci_high"] - fit.outputs["quality"]).to_numpy() == pytest.approx(
        theirs["quality_scores_ci95"][1], abs=1e-4
    )
    assert fit.raters["bias"].to_numpy() == pytest.approx(theirs["observer_bias"], abs=1e-4)
    assert fit.raters["bias_std"].to_numpy() == pytest.approx(theirs["observer_bias_std"], abs=1e-4)
    assert fit.raters["inconsistency"].to_numpy() == pytest.approx(theirs["observer_inconsistency"], abs=1e-4)
    assert fit.raters["inconsistency_std"].to_numpy() == pytest.approx(theirs["observer_inconsistency_std"], abs=1e-4)
    assert fit.n_iterations == theirs["num_iter"]


def test_a_rater_who_agrees_with_the_fit_does_not_collapse_the_intervals():
    # rater 1 votes exactly the quality: unregularised, upsilon -> 0 and the intervals
    # of version 1.0 became NaN or zero width
    df = pd.DataFrame(
        {
            "rater": np.repeat([1, 2, 3], 4),
            "scene": np.tile(list("abcd"), 3),
            "method": "A",
            "score": [2, 3, 4, 5, 3, 3, 5, 4, 1, 3, 3, 5],
        }
    )
    fit = p910_model(df)
    width = fit.outputs["ci_high"] - fit.outputs["ci_low"]
    assert np.isfinite(width).all() and (width > 0).all()
    assert (fit.raters["inconsistency"] > 0).all()


def crowd_study(n_raters: int = 600, n_methods: int = 6, n_scenes: int = 40, per_output: int = 8) -> pd.DataFrame:
    """A sparse crowd study: each output gets a few votes from raters drawn at random."""
    rng = np.random.default_rng(21)
    quality = rng.uniform(1.5, 4.5, (n_methods, n_scenes))
    bias = rng.normal(0, 0.4, n_raters)
    spread = rng.gamma(4, 0.2, n_raters)
    output = np.repeat(np.arange(n_methods * n_scenes), per_output)
    rater = rng.integers(0, n_raters, len(output))
    score = np.clip(np.rint(quality.ravel()[output] + bias[rater] + spread[rater] * rng.normal(size=len(output))), 1, 5)
    return pd.DataFrame({"rater": rater, "method": output // n_scenes, "scene": output % n_scenes, "score": score})


@pytest.mark.parametrize("prior", [0.0, 2.0])
def test_sparse_and_dense_solvers_give_the_same_fit(monkeypatch, prior) -> None:
    from analysis.stats import subject_model

    votes = crowd_study()
    # the same votes once more on one output: repeats are averaged on both paths
    votes = pd.concat([votes, votes.iloc[:3].assign(score=[1, 5, 3])], ignore_index=True)
    monkeypatch.setattr(subject_model, "SPARSE_DENSITY", 0.0)  # dense
    dense = p910_model(votes, inconsistency_prior=prior)
    monkeypatch.setattr(subject_model, "SPARSE_DENSITY", 1.1)  # sparse
    sparse = p910_model(votes, inconsistency_prior=prior)
    assert dense.n_iterations == sparse.n_iterations and dense.converged == sparse.converged
    # without the prior the maximum-likelihood fit of so sparse a study degenerates (some
    # raters' inconsistency goes to 0) and does not converge: agreement to 1e-6 only
    tol = 1e-9 if prior else 1e-6
    for column in ("quality", "std", "ci_low", "ci_high", "mos", "fisher_std"):
        np.testing.assert_allclose(sparse.outputs[column], dense.outputs[column], rtol=tol, atol=tol)
    for column in ("bias", "inconsistency", "residual_sd") + (("inconsistency_std",) if prior else ()):
        np.testing.assert_allclose(sparse.raters[column], dense.raters[column], rtol=tol, atol=tol)


def test_large_sparse_crowd_study_converges() -> None:
    # 3000 raters, 44,000 votes, about 15 votes each: the regularised model converges
    fit = p910_model(crowd_study(n_raters=3000, n_methods=11, n_scenes=400, per_output=10))
    assert fit.converged
    assert fit.n_iterations < 200
    assert len(fit.outputs) == 4400 and np.isfinite(fit.outputs["std"]).all() and (fit.outputs["std"] > 0).all()


def model_study(rng: np.random.Generator, n_outputs: int = 60, n_raters: int = 20, per_output: int = 5):
    """Continuous votes from the P.910 model, each output rated by distinct raters drawn at
    random; the truth is the quality against the population's mean bias (0)."""
    psi = rng.uniform(2, 4, n_outputs)
    delta = rng.normal(0, 0.3, n_raters)
    upsilon = rng.uniform(0.4, 1.0, n_raters)
    rater = np.concatenate([rng.choice(n_raters, per_output, replace=False) for _ in range(n_outputs)])
    output = np.repeat(np.arange(n_outputs), per_output)
    score = psi[output] + delta[rater] + upsilon[rater] * rng.normal(size=len(output))
    votes = pd.DataFrame({"rater": rater, "method": output // 10, "scene": output % 10, "score": score})
    return votes, psi


@pytest.mark.parametrize("per_output", [5, 10])
def test_per_output_intervals_cover_the_true_quality_at_95_percent(per_output) -> None:
    # known truth: 60 studies of 60 outputs, raters of unequal inconsistency; version 2.0
    # covered 97-98% here (an unweighted spread in the weighted formula)
    rng = np.random.default_rng(5)
    hits = []
    for _ in range(60):
        votes, psi = model_study(rng, per_output=per_output)
        out = p910_model(votes).outputs
        truth = psi[out["method"].to_numpy() * 10 + out["scene"].to_numpy()]
        hits.append(((out["ci_low"] <= truth) & (truth <= out["ci_high"])).mean())
    assert 0.93 <= np.mean(hits) <= 0.97
