"""The two questions: covariances by hand, step-down max-T against its definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats import inference
from analysis.stats._common import prepare_votes
from analysis.stats.inference import (
    NEW_SCENES,
    TEST_SET,
    TEST_SET_PAIR_DF,
    covariances,
    satterthwaite_df,
    stepdown_maxt,
)
from analysis.stats.ranking import rank_methods


def test_test_set_variance_is_the_rater_cluster_sum_by_hand():
    # one method, two scenes, three raters each
    df = pd.DataFrame(
        {"rater": [1, 2, 3, 1, 2, 3], "scene": ["a"] * 3 + ["b"] * 3, "method": "A", "score": [3, 4, 5, 2, 2, 5]}
    )
    mos, cov, df_ = covariances(prepare_votes(df))[TEST_SET]
    assert mos[0] == pytest.approx((4 + 3) / 2)
    # c_v = 1/(2*3); residuals from each scene's mean, scaled by sqrt(3/2)
    e = np.array([-1, 0, 1, -1, -1, 2]) * np.sqrt(1.5) / 6
    z = np.array([e[0] + e[3], e[1] + e[4], e[2] + e[5]])
    assert cov[0, 0] == pytest.approx(3 / 2 * (z**2).sum())
    # Satterthwaite df, capped at raters - 1
    assert 1 <= df_[0] <= 2


def _bell_mccaffrey_by_hand(votes, contrast: np.ndarray) -> float:
    """The Satterthwaite df from explicit projection matrices (N x N), no shortcuts."""
    o, n_v = votes.output, len(votes.score)
    n_out = np.bincount(o, minlength=votes.n_outputs)
    same = o[:, None] == o[None, :]
    centre = np.eye(n_v) - same / n_out[o][None, :]
    n_scenes = np.array([len(np.unique(votes.scene[votes.method == m])) for m in range(votes.n_methods)])
    scale = np.sqrt(n_out[o] / np.maximum(n_out[o] - 1, 1)) * (n_out[o] > 1)
    resid = (centre @ votes.score) * scale
    weights = contrast[votes.method] / (n_scenes[votes.method] * n_out[o]) * scale
    columns, sigma = [], []
    for r in range(votes.n_raters):
        mine = votes.rater == r
        columns.append(centre @ (weights * mine))
        used = mine & (scale > 0)
        sigma.append(np.sqrt(np.mean(resid[used] ** 2)) if used.any() else 0.0)
    p = np.array(columns) * np.array(sigma)[:, None]
    g = p @ p.T
    return float(np.trace(g) ** 2 / (g**2).sum())


def test_satterthwaite_df_matches_the_explicit_projection():
    rng = np.random.default_rng(3)
    rows = []
    for m in range(3):
        for s in range(4):
            for r in rng.choice(7, rng.integers(1, 5), replace=False):
                rows.append((r, s, m, float(rng.integers(1, 6))))
    votes = prepare_votes(pd.DataFrame(rows, columns=["rater", "scene", "method", "score"]))
    contrasts = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, -1, 0], [1, 0, -1], [0, 1, -1]], dtype=float)
    expected = [min(_bell_mccaffrey_by_hand(votes, c), votes.n_raters - 1) for c in contrasts]
    assert satterthwaite_df(votes, contrasts) == pytest.approx(expected, rel=1e-10)
    # the sparse and the dense product of co-rating counts give the same
    for share in (0.0, np.inf):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(inference, "_SPARSE_SHARE", share)
            assert satterthwaite_df(votes, contrasts) == pytest.approx(expected, rel=1e-10)
    # and the test-set interval uses the per-method ones
    cov = covariances(votes)
    assert cov[TEST_SET][2] == pytest.approx(expected[:3], rel=1e-10)
    pair = cov[TEST_SET_PAIR_DF]
    assert [pair[0, 1], pair[0, 2], pair[2, 1]] == pytest.approx(expected[3:], rel=1e-10)
    # the test-set max-T refers to the multivariate t on the smallest pair df
    ranking, _ = rank_methods(pd.DataFrame(rows, columns=["rater", "scene", "method", "score"]))
    assert ranking.attrs["estimator"]["params"]["df"] == pytest.approx(min(expected[3:]), rel=1e-10)


def test_equal_raters_and_balanced_votes_give_the_textbook_df():
    # one method, every rater votes every scene once, equal residual variances: the
    # variance is a sum of R equal chi-squares less the centring, df = R - 1 exactly
    raters, scenes = 6, 5
    rng = np.random.default_rng(0)
    # each scene's residuals are a permutation of +1, -1, ...: every rater's mean square is 1
    signs = np.resize([1.0, -1.0], raters)
    base = np.column_stack([rng.permutation(signs) for _ in range(scenes)])
    df = pd.DataFrame(
        {
            "rater": np.repeat(np.arange(raters), scenes),
            "scene": np.tile(np.arange(scenes), raters),
            "method": "A",
            "score": (3 + base).ravel(),
        }
    )
    votes = prepare_votes(df)
    assert _bell_mccaffrey_by_hand(votes, np.ones(1)) == pytest.approx(raters - 1)
    assert satterthwaite_df(votes, np.eye(1))[0] == pytest.approx(raters - 1)


def test_zero_variance_pair_never_separates():
    t, p, adj = stepdown_maxt(np.array([4.0, 3.0]), np.zeros((2, 2)), np.inf, np.array([[0, 1]]))
    assert t[0] == 0 and p[0] == 1 and adj[0] == 1


def test_stepdown_first_step_is_the_single_step_max_t():
    rng = np.random.default_rng(0)
    cov = np.diag([0.01, 0.01, 0.01])
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    mos = np.array([3.3, 3.0, 2.9])
    t, _, adj = stepdown_maxt(mos, cov, np.inf, pairs, n_simulations=20000, seed=1)
    draws = rng.standard_normal((200000, 3)) * 0.1
    null = np.abs(draws[:, pairs[:, 0]] - draws[:, pairs[:, 1]]) / np.sqrt(0.02)
    top = np.argmax(np.abs(t))
    assert adj[top] == pytest.approx((null.max(axis=1) >= abs(t[top])).mean(), abs=0.01)
    assert (adj >= 0).all() and (adj <= 1).all()


def test_new_scenes_covariance_is_positive_semidefinite():
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "rater": rng.integers(0, 8, 200),
            "scene": rng.integers(0, 10, 200),
            "method": rng.integers(0, 3, 200),
            "score": rng.integers(1, 6, 200).astype(float),
        }
    )
    _, cov, _ = covariances(prepare_votes(df))[NEW_SCENES]
    assert np.linalg.eigvalsh(cov).min() > -1e-12
