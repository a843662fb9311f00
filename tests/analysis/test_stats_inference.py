"""The two questions: covariances by hand, step-down max-T against its definition."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats._common import prepare_votes
from analysis.stats.inference import NEW_SCENES, TEST_SET, covariances, stepdown_maxt


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
    assert df_ == 2


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
