from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.stats.planner import _session_methods, latent_for_mos, plan_study, simulate_study


def test_uniform_sessions_balance_methods_and_weighted_ones_follow_the_weights():
    rng = np.random.default_rng(0)
    assert sorted(_session_methods(None, 4, 10, rng)) == [2, 2, 3, 3]
    assert _session_methods(np.array([1.0, 1.0, 0.25, 0.25]), 4, 20, rng).tolist() == [8, 8, 2, 2]


def test_latent_levels_give_votes_whose_mean_is_the_true_mos():
    # Votes drawn by numpy alone, as simulate_study draws them: their mean on the test set
    # must be the MOS asked for, near the top and bottom of the scale too.
    rng = np.random.default_rng(7)
    effects = rng.normal(0, 0.3, 10)
    effects -= effects.mean()
    targets = np.array([1.3, 3.0, 4.0, 4.7])
    latent = latent_for_mos(targets, scene_effects=effects, rater_bias_sd=0.3, inconsistency=(0.4, 1.0))
    n = 400_000  # per method: a standard error of the mean under 0.002
    scene = np.repeat(np.arange(10), n // 10)
    noise = rng.uniform(0.4, 1.0, n) * rng.normal(0, 1, (len(targets), n))
    votes = np.clip(np.round(latent[:, None] + effects[scene] + rng.normal(0, 0.3, n) + noise), 1, 5)
    np.testing.assert_allclose(votes.mean(axis=1), targets, atol=0.006)
    # The middle of the scale hardly moves; near the top the latent level is pushed up.
    assert abs(latent[1] - 3.0) < 0.01
    assert latent[3] > 4.9


def test_a_true_mos_outside_the_scale_is_refused():
    with pytest.raises(ValueError, match="strictly between 1 and 5, got 5"):
        latent_for_mos([3.0, 5.0], scene_effects=[0.0])
    with pytest.raises(ValueError, match="beyond the scale 1-5: plan for a smaller difference"):
        plan_study(n_methods=5, difference=1.0, reps=1)


def test_plan_on_a_four_level_scale_keeps_its_methods_inside_it():
    plan = plan_study(n_methods=3, difference=0.6, scale=(1, 4), scenes=4, trials_per_session=9, reps=2,
                      max_raters=60)  # fmt: skip
    assert plan["p_separated_at_max"].min() > 0
    assert plan.attrs["estimator"]["params"]["scale"] == [1, 4]


def test_far_apart_methods_need_fewer_raters_than_close_ones():
    far = simulate_study([4.5, 2.0], scenes=6, trials_per_session=12, difference=0.2, max_raters=200, seed=1)
    close = simulate_study([3.3, 3.0], scenes=6, trials_per_session=12, difference=0.2, max_raters=200, seed=1)
    assert far is not None
    assert close is None or close > far


def test_plan_reports_more_raters_for_a_smaller_difference():
    common = dict(scenes=6, trials_per_session=12, reps=4, max_raters=300, check_every=2)
    big = plan_study(n_methods=3, difference=1.0, **common)
    small = plan_study(n_methods=3, difference=0.4, **common)
    assert big["allocation"].tolist() == ["uniform", "adaptive"]
    assert (big["raters"] < small["raters"]).all()
    assert (big["votes"] == big["raters"] * 12).all()
    assert big.attrs["estimator"]["params"]["difference"] == 1.0


def test_plan_from_a_pilot_uses_its_methods():
    rng = np.random.default_rng(3)
    rows = [
        (f"r{r}", m, s, float(np.clip(round(mu + rng.normal(0, 0.6)), 1, 5)))
        for r in range(8)
        for m, mu in (("A", 4.5), ("B", 2.0))
        for s in range(4)
    ]
    pilot = pd.DataFrame(rows, columns=["rater", "method", "scene", "score"])
    plan = plan_study(pilot=pilot, difference=1.0, scenes=4, trials_per_session=8, reps=3, max_raters=100)
    assert plan["p_separated_at_max"].min() > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"difference": -0.1}, "difference must be positive"),
        ({"power": 1.5}, "power"),
        ({"quality": [3.0]}, "at least two methods"),
        ({"reps": 0}, "at least 1"),
    ],
)
def test_bad_input_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        plan_study(**kwargs)
