"""Validity of the live decision with stopping and adaptive allocation, by simulation.

The statistics issue's harness (``bench/validity/run.py``) checks the fixed-size
analysis; this scenario checks the sequential one of the adaptive-allocation issue: the
decision (:func:`analysis.stats.sequential.decide_from_sums`, normal-mixture confidence
sequences of Howard, Ramdas, McAuliffe & Sekhon 2021, Bonferroni over adjacent pairs) is
looked at after every rater, the next rater's trials follow
:func:`analysis.stats.sequential.allocation_weights` of the votes so far (after the
warm-up), and the study stops once every adjacent pair is decided or ``--max-raters``
have voted. A study counts a **false separation** when, at any look, two truly equal
methods fall in different groups of the ranking (some adjacent pair between them is
declared separated). Target: at most 5% of studies (the decision's family-wise alpha).

An allocation computed from past votes only decides which method the next vote goes to;
each method's votes stay a sequence whose confidence sequence holds at every stopping
time (Howard et al. 2021, section 3), so the target should hold with adaptive allocation
as with uniform. The scenarios:

* ``equal``: four equal methods (3.5): every pair is a trap;
* ``trap``: two equal methods (3.5, 3.5) between truly different ones (4.0 and 3.0):
  adaptive allocation pours votes into the neighbouring pairs, and the equal pair must
  not be separated on the way.

Votes follow the planner's score model (``analysis.stats.planner``):
``clip(round(quality[m] + scene[i] + bias[r] + e))`` on 1..5, scene effects shared by
every method (on this test set equal methods stay exactly equal), ``bias[r] ~ N(0,
0.3)``, ``e ~ N(0, s_r)``, ``s_r`` uniform in (0.4, 1.0).

Run it on its own from the repository root (it is not part of ``run.py``)::

    python bench/validity/sequential.py --reps 1000

It prints, per scenario and policy, the false-separation rate with its Clopper-Pearson
95% upper bound, the mean raters until the study stopped, and a verdict line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from analysis.stats.planner import _session_methods  # noqa: E402
from analysis.stats.sequential import SEPARATED, allocation_weights, decide_from_sums  # noqa: E402

SCENARIOS = {"equal": (3.5, 3.5, 3.5, 3.5), "trap": (4.0, 3.5, 3.5, 3.0)}
ALPHA = 0.05


def false_separation(decision, quality: np.ndarray) -> bool:
    """Two truly equal methods in different groups of the decision's ranking."""
    ranked = decision.methods["method"].to_numpy()
    group = np.zeros(len(quality), int)
    level = 0
    for position, state in enumerate(decision.pairs["state"].to_numpy(), start=1):
        level += state == SEPARATED
        group[ranked[position]] = level
    for a in range(len(quality)):
        for b in range(a + 1, len(quality)):
            if quality[a] == quality[b] and group[a] != group[b]:
                return True
    return False


def one_study(
    quality: np.ndarray,
    *,
    policy: str,
    rng: np.random.Generator,
    scenes: int,
    trials: int,
    max_raters: int,
    smallest_difference: float,
    warmup_votes: int,
) -> tuple[bool, int]:
    """(ever falsely separated, raters until the study stopped)."""
    n_m = len(quality)
    scene_effect = rng.normal(0, 0.3, scenes)
    n, total, squares = (np.zeros((n_m, scenes)) for _ in range(3))
    names = list(range(n_m))
    weights = None
    for rater in range(1, max_raters + 1):
        counts = np.minimum(_session_methods(weights, n_m, trials, rng), scenes)  # no output twice
        mi = np.repeat(np.arange(n_m), counts)
        si = np.concatenate([np.lexsort((rng.random(scenes), n[m]))[:k] for m, k in enumerate(counts)])
        noise = rng.uniform(0.4, 1.0)
        latent = quality[mi] + scene_effect[si] + rng.normal(0, 0.3) + rng.normal(0, noise, len(mi))
        y = np.clip(np.round(latent), 1, 5)
        np.add.at(n, (mi, si), 1)
        np.add.at(total, (mi, si), y)
        np.add.at(squares, (mi, si), y * y)
        decision = decide_from_sums(names, n, total, squares, smallest_difference=smallest_difference, alpha=ALPHA)
        if false_separation(decision, quality):
            return True, rater
        if decision.decided:
            return False, rater
        if policy == "adaptive":
            w = allocation_weights(decision, warmup_votes=warmup_votes)
            weights = None if w is None else np.array([w[m] for m in names])
    return False, max_raters


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1000, help="simulated studies per scenario and policy")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--trials", type=int, default=20, help="rated trials per rater")
    parser.add_argument("--max-raters", type=int, default=60)
    parser.add_argument("--smallest-difference", type=float, default=0.1)
    parser.add_argument("--policy", choices=["adaptive", "uniform"], action="append", help="default: both")
    args = parser.parse_args(argv)
    policies = args.policy or ["adaptive", "uniform"]

    print(
        f"{args.reps} studies per row, {args.scenes} scenes, {args.trials} rated trials per rater, looked at after "
        f"every rater, stopping when decided or after {args.max_raters} raters, smallest difference "
        f"{args.smallest_difference}, alpha {ALPHA}"
    )
    print(f"{'scenario':<8} {'policy':<9} {'false sep':>9} {'upper95':>8} {'raters':>7} {'s':>6}")
    worst = 0.0
    for index, (name, quality) in enumerate(SCENARIOS.items()):
        for policy in policies:
            rng = np.random.default_rng([args.seed, index])
            started = time.perf_counter()
            outcomes = [
                one_study(
                    np.asarray(quality, float),
                    policy=policy,
                    rng=rng,
                    scenes=args.scenes,
                    trials=args.trials,
                    max_raters=args.max_raters,
                    smallest_difference=args.smallest_difference,
                    warmup_votes=2,
                )
                for _ in range(args.reps)
            ]
            errors = sum(e for e, _ in outcomes)
            rate = errors / args.reps
            upper = stats.beta.ppf(0.95, errors + 1, args.reps - errors) if errors < args.reps else 1.0
            worst = max(worst, rate)
            print(
                f"{name:<8} {policy:<9} {100 * rate:8.1f}% {100 * upper:7.1f}% "
                f"{np.mean([r for _, r in outcomes]):7.1f} {time.perf_counter() - started:6.0f}",
                flush=True,
            )
    verdict = "PASS" if worst <= ALPHA else "FAIL"
    print(f"verdict: {verdict} (largest false-separation rate {100 * worst:.1f}%, target at most {100 * ALPHA:.0f}%)")


if __name__ == "__main__":
    main()
