from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.stats.sequential import (
    EQUIVALENT,
    SEPARATED,
    UNDECIDED,
    allocation_weights,
    cs_half_width,
    decide_pairs,
    mixture_rho,
)


def votes_frame(scores: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    rows = [(m, s, y) for (m, s), ys in scores.items() for y in ys]
    return pd.DataFrame(rows, columns=["method", "scene", "score"]).assign(kind="rating")


def simulated(means: dict[str, float], *, scenes: int, votes: int, sd: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        (m, f"s{i}", mu + rng.normal(0, sd)) for m, mu in means.items() for i in range(scenes) for _ in range(votes)
    ]
    return pd.DataFrame(rows, columns=["method", "scene", "score"])


def test_half_width_is_the_normal_mixture_boundary():
    # Hand calculation: I = 1 / 0.04 = 25, rho = 5, alpha = 0.1.
    expected = math.sqrt(30 * math.log(30 / (5 * 0.01))) / 25
    assert float(cs_half_width(0.04, alpha=0.1, rho=5.0)) == pytest.approx(expected)
    assert np.isinf(cs_half_width(np.nan, alpha=0.1, rho=5.0))


def test_rho_follows_howard_et_al_choice():
    alpha, delta = 0.01, 0.1
    z = 2.5758293035489 + 0.8416212335729
    m = (z / 0.2) ** 2
    expected = m / (2 * math.log(100) + math.log(1 + 2 * math.log(100)))
    assert mixture_rho(smallest_difference=delta, alpha=alpha) == pytest.approx(expected, rel=1e-9)


def test_boundary_is_crossed_at_most_alpha_of_the_time_under_continuous_monitoring():
    # A Gaussian random walk with unit variance steps, looked at after every step for
    # 2000 steps: the mixture boundary must hold everywhere with probability >= 1 - alpha,
    # while the fixed-sample 95% interval, looked at as often, fails far more often.
    rng = np.random.default_rng(7)
    alpha, rho, steps = 0.05, 20.0, 2000
    walks = rng.normal(size=(2000, steps)).cumsum(axis=1)
    info = np.arange(1, steps + 1)  # variance of the sum after t steps
    mean = walks / info
    half = cs_half_width(1 / info, alpha=alpha, rho=rho)
    crossed = (np.abs(mean) > half).any(axis=1).mean()
    naive = (np.abs(mean) > 1.96 / np.sqrt(info)).any(axis=1).mean()
    assert crossed <= alpha
    assert naive > 0.3


def test_method_mos_and_its_standard_error_by_hand():
    votes = votes_frame(
        {
            ("A", "s1"): [4, 5],
            ("A", "s2"): [3, 3, 3],
            ("B", "s1"): [1, 2],
            ("B", "s2"): [2, 4],
        }
    )
    decision = decide_pairs(votes, smallest_difference=0.1)
    a = decision.methods.set_index("method").loc["A"]
    # MOS = mean of 4.5 and 3.0. Pooled within-output variance of A: SS 0.5 + 0 over 1 + 2
    # degrees of freedom, shrunk with 10 df of the study's (0.5 + 0 + 0.5 + 2) / (1+2+1+1).
    study_var = 3.0 / 5
    var_a = (0.5 + 10 * study_var) / (3 + 10)
    assert a["mos"] == pytest.approx(3.75)
    assert a["se"] == pytest.approx(math.sqrt(var_a / 4 * (1 / 2 + 1 / 3)))
    assert a["n_votes"] == 5 and a["min_output_votes"] == 2
    pair = decision.pairs.iloc[0]
    assert (pair["method_a"], pair["method_b"]) == ("A", "B")
    assert pair["diff"] == pytest.approx(3.75 - 2.25)


def test_far_apart_methods_are_separated_close_ones_undecided_with_votes_to_go():
    votes = simulated({"A": 4.5, "B": 2.0, "C": 1.95}, scenes=10, votes=4, sd=0.8, seed=1)
    decision = decide_pairs(votes, smallest_difference=0.1)
    states = dict(zip(decision.pairs["method_a"], decision.pairs["state"], strict=True))
    assert states["A"] == SEPARATED
    assert decision.pairs["state"].iloc[1] == UNDECIDED
    assert decision.pairs["votes_to_decide"].iloc[1] > 0
    assert np.isnan(decision.pairs["votes_to_decide"].iloc[0])
    assert not decision.decided


def test_identical_methods_with_many_votes_are_equivalent():
    votes = simulated({"A": 3.0, "B": 3.0}, scenes=20, votes=200, sd=0.5, seed=2)
    decision = decide_pairs(votes, smallest_difference=0.1)
    assert decision.pairs["state"].tolist() == [EQUIVALENT]
    assert decision.decided
    pair = decision.pairs.iloc[0]
    assert -0.1 < pair["cs_low"] and pair["cs_high"] < 0.1


def test_a_method_missing_a_scene_keeps_its_pairs_undecided():
    votes = simulated({"A": 5.0, "B": 1.0}, scenes=3, votes=20, sd=0.1, seed=3)
    votes = votes[~((votes["method"] == "B") & (votes["scene"] == "s2"))]
    decision = decide_pairs(votes, smallest_difference=0.1)
    assert decision.pairs["state"].tolist() == [UNDECIDED]
    assert np.isnan(decision.methods.set_index("method").at["B", "se"])


def test_methods_without_votes_are_ranked_last_and_undecided():
    votes = simulated({"A": 4.0, "B": 2.0}, scenes=3, votes=20, sd=0.3, seed=4)
    decision = decide_pairs(votes, methods=["A", "B", "C"], smallest_difference=0.1)
    assert decision.methods["method"].tolist() == ["A", "B", "C"]
    assert decision.pairs["state"].tolist() == [SEPARATED, UNDECIDED]


@pytest.mark.parametrize("delta", [0, -0.1, float("nan")])
def test_bad_smallest_difference_is_refused(delta):
    votes = simulated({"A": 4.0, "B": 2.0}, scenes=2, votes=2, sd=0.3, seed=5)
    with pytest.raises(ValueError, match="smallest_difference"):
        decide_pairs(votes, smallest_difference=delta)


def test_missing_column_is_refused():
    with pytest.raises(ValueError, match="lacks column"):
        decide_pairs(pd.DataFrame({"method": ["A"], "score": [3]}))


def test_weights_favour_the_undecided_close_pair_and_wait_for_the_warmup():
    votes = simulated({"A": 4.6, "B": 3.0, "C": 2.95, "D": 1.2}, scenes=10, votes=3, sd=0.7, seed=6)
    decision = decide_pairs(votes, smallest_difference=0.1)
    weights = allocation_weights(decision, warmup_votes=3)
    assert weights["B"] == pytest.approx(1.0) or weights["C"] == pytest.approx(1.0)
    assert min(weights["B"], weights["C"]) > 0.5
    assert weights["A"] == weights["D"] == 0.02
    assert allocation_weights(decision, warmup_votes=4) is None


def exact(means: dict[str, float], *, scenes: int = 10, votes: int = 4, sd: float = 0.7) -> pd.DataFrame:
    """Votes whose per-method MOS is exactly ``means`` and whose spread is ``sd``."""
    offsets = [sd if k % 2 else -sd for k in range(votes)]
    return votes_frame({(m, f"s{i}"): [mu + o for o in offsets] for m, mu in means.items() for i in range(scenes)})


def test_weights_favour_a_close_but_different_pair_over_a_near_equal_cluster():
    # A-B differ by 0.2, a difference the study must separate; C, D and E look equal.
    means = {"A": 4.5, "B": 4.3, "C": 3.52, "D": 3.5, "E": 3.48, "F": 2.0}
    decision = decide_pairs(exact(means), smallest_difference=0.1)
    states = decision.pairs.set_index(["method_a", "method_b"])["state"]
    assert states[("A", "B")] == states[("C", "D")] == states[("D", "E")] == UNDECIDED
    weights = allocation_weights(decision, warmup_votes=2)
    assert weights["A"] == weights["B"] == pytest.approx(1.0)
    # The cluster keeps the exploration floor of a pair's score, no more.
    assert all(0.25 <= weights[m] < 0.3 for m in "CDE")
    assert weights["F"] == 0.02  # E-F is separated


def test_a_method_between_two_undecided_pairs_takes_the_larger_score_not_the_sum():
    decision = decide_pairs(exact({"A": 3.4, "B": 3.2, "C": 3.0}), smallest_difference=0.1)
    assert (decision.pairs["state"] == UNDECIDED).all()
    weights = allocation_weights(decision, warmup_votes=2)
    assert weights == pytest.approx({"A": 1.0, "B": 1.0, "C": 1.0})


def test_equivalence_counts_only_once_no_pair_looks_separable():
    # Both pairs look equal (gaps below the smallest difference): the cheaper goal of
    # each, separation or equivalence, sets its cost, so the pair at 0.01 (cheap to show
    # equivalent) comes first. Beside a separable pair it would only keep the floor.
    near = {"A": 3.5, "B": 3.49, "C": 3.44}
    weights = allocation_weights(decide_pairs(exact(near, votes=8), smallest_difference=0.2), warmup_votes=2)
    assert weights["A"] == pytest.approx(1.0) and weights["C"] < 0.9
    with_far = {**near, "D": 3.19}
    weights = allocation_weights(decide_pairs(exact(with_far, votes=8), smallest_difference=0.2), warmup_votes=2)
    assert weights["D"] == pytest.approx(1.0) and weights["A"] < 0.3


def test_false_separation_of_equal_methods_under_monitoring_stays_at_alpha():
    # Three equal methods, the decision looked at after every rater's batch of votes
    # until it is decided or the votes run out: a false separation anywhere is counted.
    rng = np.random.default_rng(11)
    reps, scenes, looks, errors = 60, 6, 12, 0
    for _ in range(reps):
        frames = []
        bias = rng.normal(0, 0.4, size=looks)
        for look in range(looks):
            rows = [(m, f"s{i}", 3.0 + bias[look] + rng.normal(0, 0.8)) for m in "ABC" for i in range(scenes)]
            frames.append(pd.DataFrame(rows, columns=["method", "scene", "score"]))
            if look < 1:
                continue
            decision = decide_pairs(pd.concat(frames), smallest_difference=0.3)
            if (decision.pairs["state"] == SEPARATED).any():
                errors += 1
                break
            if decision.decided:
                break
    assert errors / reps <= 0.05
