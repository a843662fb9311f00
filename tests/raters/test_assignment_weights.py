"""assignment.choose with per-output weights: pure, no database."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from raters import assignment
from raters.assignment import Candidate


def candidates(methods: int = 4, scenes: int = 10, load: int = 0) -> list[Candidate]:
    return [
        Candidate(output_id=m * 100 + s, method_id=m, scene_id=s, load=load)
        for m in range(methods)
        for s in range(scenes)
    ]


def test_without_weights_methods_are_balanced():
    chosen = assignment.choose(candidates(), count=12, rng=random.Random(0))
    assert sorted(Counter(c.method_id for c in chosen).values()) == [3, 3, 3, 3]


def test_equal_weights_change_nothing():
    pool = candidates()
    plain = assignment.choose(pool, count=12, rng=random.Random(5))
    weighted = assignment.choose(pool, count=12, rng=random.Random(5), weights={c.output_id: 0.5 for c in pool})
    assert plain == weighted


def test_method_shares_follow_the_weights():
    pool = candidates()
    weights = {c.output_id: (1.0 if c.method_id in (1, 2) else 0.25) for c in pool}
    chosen = assignment.choose(pool, count=20, rng=random.Random(1), weights=weights)
    counts = Counter(c.method_id for c in chosen)
    # Highest averages: 1 : 1 : 0.25 : 0.25 of 20 slots is 8, 8, 2, 2.
    assert counts == Counter({1: 8, 2: 8, 0: 2, 3: 2})
    assert len({c.output_id for c in chosen}) == 20  # no output twice


def test_within_a_method_the_least_voted_output_goes_first():
    pool = [Candidate(output_id=s, method_id=0, scene_id=s, load=5 - s) for s in range(5)]
    chosen = assignment.choose(pool, count=2, rng=random.Random(2), weights={c.output_id: 1.0 for c in pool})
    assert [c.load for c in chosen] == [1, 2]


def test_a_non_positive_weight_is_refused():
    pool = candidates(methods=2, scenes=2)
    with pytest.raises(ValueError, match="must be positive"):
        assignment.choose(pool, count=2, rng=random.Random(0), weights={pool[0].output_id: 0.0})


def test_a_heavy_method_out_of_fresh_outputs_gives_way():
    pool = candidates(methods=3, scenes=3)
    weights = {c.output_id: (1.0 if c.method_id == 0 else 0.1) for c in pool}
    chosen = assignment.choose(pool, count=6, rng=random.Random(3), weights=weights)
    assert len({c.output_id for c in chosen}) == 6  # no output twice
    assert Counter(c.method_id for c in chosen)[0] == 3  # all it has
