"""How many raters to buy: simulate a study before opening it, uniform against adaptive.

The simulation draws raters one after the other. Each rates ``trials_per_session``
outputs chosen as the live study would choose them (uniform: least-voted outputs, methods
balanced; adaptive: methods weighted by :func:`~analysis.stats.sequential.allocation_weights`
after the warm-up, least-voted outputs within a method), with the score model of the
validity harness: ``clip(round(latent[m] + scene[i] + bias[r] + e))``, ``bias[r] ~
N(0, rater_bias_sd)``, ``e ~ N(0, s_r)`` with each rater's inconsistency ``s_r`` uniform in
``inconsistency``. The qualities given are true MOS: each method's latent level is solved
for (:func:`latent_for_mos`) so that its expected vote on the simulated test set is its
MOS, since rounding and clipping to the levels compress differences near the ends of the
scale (latent levels 4.7 and 4.5 give MOS about 4.52 and 4.38 with the default spreads).
After every ``check_every`` raters the live decision
(:func:`~analysis.stats.sequential.decide_from_sums`) is taken as the organizer would see
it. A study "separates" once every adjacent pair of the true ranking whose difference is
at least ``difference`` is separated in the right order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ._common import Estimator
from .sequential import SEPARATED, allocation_weights, decide_from_sums

PLANNER = Estimator("planner-simulated-sequential", "1.1")

# Midpoints over which a rater's inconsistency (uniform in a range) is integrated.
_INCONSISTENCY_GRID = 41


def _expected_vote(latent: float, *, scene_effects: np.ndarray, spread: np.ndarray, scale: tuple[int, int]) -> float:
    """Mean over scenes and ``spread`` (equally likely standard deviations of bias plus
    noise) of E[clip(round(N(latent + scene, spread**2)))] on the integer levels."""
    lo, hi = scale
    x = latent + scene_effects[:, None]
    expected = np.full((len(scene_effects), len(spread)), float(lo))
    for level in range(lo, hi):
        expected += stats.norm.sf((level + 0.5 - x) / spread[None, :])
    return float(expected.mean())


def latent_for_mos(
    mos: Sequence[float],
    *,
    scene_effects: Sequence[float],
    rater_bias_sd: float = 0.3,
    inconsistency: tuple[float, float] = (0.4, 1.0),
    scale: tuple[int, int] = (1, 5),
) -> np.ndarray:
    """Latent levels whose expected vote on a test set is ``mos``.

    A vote is ``clip(round(latent + scene + bias + e))`` as in :func:`simulate_study`; the
    expectation is exact over the bias and the noise (normal) and integrated over the
    inconsistency (uniform, midpoint rule), averaged over the test set's scenes. Each
    level is found by Brent's method.

    Parameters
    ----------
    mos : sequence of float
        Target MOS, strictly inside the scale.
    scene_effects : sequence of float
        The test set's scene effects.
    rater_bias_sd, inconsistency, scale
        As in :func:`simulate_study`.

    Returns
    -------
    ndarray
        One latent level per target.

    Raises
    ------
    ValueError
        On a target outside the scale's open interval (no latent level reaches it).

    Examples
    --------
    >>> latent_for_mos([3.0, 4.7], scene_effects=[0.0]).round(2)  # the top is pushed up
    array([3.  , 4.96])
    """
    lo, hi = scale
    targets = np.asarray(mos, dtype=float)
    outside = targets[~((targets > lo) & (targets < hi))]
    if len(outside):
        raise ValueError(f"a true MOS must lie strictly between {lo} and {hi}, got {outside[0]:g}")
    a, b = inconsistency
    noise = a + (b - a) * (np.arange(_INCONSISTENCY_GRID) + 0.5) / _INCONSISTENCY_GRID
    spread = np.sqrt(rater_bias_sd**2 + noise**2)
    effects = np.asarray(scene_effects, dtype=float)

    def gap(latent: float, target: float) -> float:
        return _expected_vote(latent, scene_effects=effects, spread=spread, scale=scale) - target

    # The expected vote rises from lo to hi with the latent level: one root, bracketed
    # well beyond the scale.
    span = hi - lo + 10 * (float(spread.max()) + float(np.abs(effects).max(initial=0.0)))
    return np.array([optimize.brentq(gap, lo - span, hi + span, args=(t,), xtol=1e-9) for t in targets])


def _session_methods(weights: np.ndarray | None, n_methods: int, slots: int, rng: np.random.Generator) -> np.ndarray:
    """Trials per method in one session: equal (+-1), or highest averages by weight."""
    if weights is None:
        counts = np.full(n_methods, slots // n_methods)
        counts[rng.permutation(n_methods)[: slots % n_methods]] += 1
        return counts
    counts = np.zeros(n_methods, int)
    tie = rng.random(n_methods) * 1e-9
    for _ in range(slots):
        counts[np.argmin((counts + 1) / weights + tie)] += 1
    return counts


def _separated_truth(decision, quality: np.ndarray, difference: float) -> bool:
    """Every adjacent pair of the true ranking at least ``difference`` apart is separated,
    in the right order, by the separated pairs of the decision."""
    ranked = decision.methods["method"].to_numpy()
    group = np.zeros(len(quality), int)
    level = 0
    for position, state in enumerate(decision.pairs["state"].to_numpy(), start=1):
        level += state == SEPARATED
        group[ranked[position]] = level
    group[ranked[0]] = 0
    order = np.argsort(-quality, kind="stable")
    for upper, lower in zip(order[:-1], order[1:], strict=True):
        if quality[upper] - quality[lower] >= difference - 1e-9 and not group[upper] < group[lower]:
            return False
    return True


def simulate_study(
    quality: Sequence[float],
    *,
    policy: str = "uniform",
    scenes: int = 42,
    trials_per_session: int = 30,
    max_raters: int = 400,
    difference: float = 0.2,
    smallest_difference: float = 0.1,
    warmup_votes: int = 2,
    rater_bias_sd: float = 0.3,
    inconsistency: tuple[float, float] = (0.4, 1.0),
    scene_sd: float = 0.3,
    scale: tuple[int, int] = (1, 5),
    alpha: float = 0.05,
    check_every: int = 1,
    seed: int = 0,
) -> int | None:
    """Raters needed until the true differences of at least ``difference`` are separated.

    ``quality`` holds the methods' true MOS on the simulated test set (see
    :func:`latent_for_mos`), strictly inside ``scale``.

    Returns
    -------
    int or None
        The number of raters after which the decision first separated every such pair,
        None if ``max_raters`` were not enough.
    """
    if policy not in ("uniform", "adaptive"):
        raise ValueError("policy must be 'uniform' or 'adaptive'")
    q = np.asarray(quality, dtype=float)
    n_m = len(q)
    rng = np.random.default_rng(seed)
    scene_effect = rng.normal(0, scene_sd, scenes)
    scene_effect -= scene_effect.mean()
    latent = latent_for_mos(
        q, scene_effects=scene_effect, rater_bias_sd=rater_bias_sd, inconsistency=inconsistency, scale=scale
    )
    n = np.zeros((n_m, scenes))
    total = np.zeros((n_m, scenes))
    squares = np.zeros((n_m, scenes))
    names = list(range(n_m))
    weights = None
    slots = min(trials_per_session, n_m * scenes)
    for rater in range(1, max_raters + 1):
        counts = _session_methods(weights, n_m, slots, rng)
        methods, outputs = [], []
        for m in np.flatnonzero(counts):
            k = min(counts[m], scenes)
            order = np.lexsort((rng.random(scenes), n[m]))  # least voted first
            methods.append(np.full(k, m))
            outputs.append(order[:k])
        mi, si = np.concatenate(methods), np.concatenate(outputs)
        noise = rng.uniform(*inconsistency)
        y = latent[mi] + scene_effect[si] + rng.normal(0, rater_bias_sd) + rng.normal(0, noise, len(mi))
        y = np.clip(np.round(y), *scale)
        np.add.at(n, (mi, si), 1)
        np.add.at(total, (mi, si), y)
        np.add.at(squares, (mi, si), y * y)
        if rater % check_every and rater != max_raters:
            continue
        decision = decide_from_sums(names, n, total, squares, smallest_difference=smallest_difference, alpha=alpha)
        if _separated_truth(decision, q, difference):
            return rater
        if policy == "adaptive":
            w = allocation_weights(decision, warmup_votes=warmup_votes)
            weights = None if w is None else np.array([w[m] for m in names])
    return None


def plan_study(
    quality: Sequence[float] | None = None,
    *,
    pilot: pd.DataFrame | None = None,
    n_methods: int = 10,
    difference: float = 0.2,
    scenes: int = 42,
    trials_per_session: int = 30,
    smallest_difference: float = 0.1,
    warmup_votes: int = 2,
    rater_bias_sd: float = 0.3,
    inconsistency: tuple[float, float] = (0.4, 1.0),
    scene_sd: float = 0.3,
    scale: tuple[int, int] = (1, 5),
    power: float = 0.8,
    reps: int = 20,
    max_raters: int = 400,
    check_every: int = 5,
    seed: int = 0,
    method: str = "method",
    score: str = "score",
    rater: str = "rater",
) -> pd.DataFrame:
    """Raters of ``trials_per_session`` trials each needed to separate methods that differ
    by ``difference`` with probability ``power``, under uniform and adaptive allocation.

    Parameters
    ----------
    quality : sequence of float, optional
        Assumed true MOS of the methods, strictly inside ``scale``. Default: ``n_methods``
        methods ``difference`` apart around half a level above the scale's middle (3.5 on
        1-5; every adjacent pair must be separated), or the pilot's MOS.
    pilot : DataFrame, optional
        A pilot's votes (long format with ``method``, ``score`` and ``rater``): its
        per-method mean gives the qualities when ``quality`` is not given, the spread of
        its raters' mean offsets the rater bias, and the remaining spread the
        inconsistency (a rough moment estimate, enough for planning).
    difference : float
        True difference that must be separated.
    scenes, trials_per_session, smallest_difference, warmup_votes : int or float
        The study's settings.
    rater_bias_sd, inconsistency, scene_sd : float
        Assumed rater bias (standard deviation), each rater's noise (uniform range of
        standard deviations) and scene effect.
    scale : (int, int)
        The lowest and highest level of the study's scale.
    power : float
        Required probability of separating them (0.8: 80%).
    reps : int
        Simulated studies per policy.
    max_raters : int
        Largest study simulated; more needed is reported as NaN.
    check_every : int
        Raters between two looks at the decision (1: after every rater, slower).

    Returns
    -------
    DataFrame
        One row per policy: ``allocation``, ``raters`` (needed for ``power``, NaN when
        beyond ``max_raters``), ``votes`` (``raters * trials_per_session``),
        ``p_separated_at_max`` and the estimator columns.

    Raises
    ------
    ValueError
        On a non-positive difference, fewer than two methods, a power outside (0, 1), or
        a MOS (given, or spaced by default) outside the scale.

    Examples
    --------
    >>> plan = plan_study([4.0, 3.5, 3.0], scenes=6, trials_per_session=12, reps=4, max_raters=60)
    >>> plan["allocation"].tolist()
    ['uniform', 'adaptive']
    """
    if not difference > 0:
        raise ValueError(f"difference must be positive, got {difference}")
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, got {power}")
    if reps < 1 or max_raters < 1 or scenes < 1 or trials_per_session < 1:
        raise ValueError("reps, max_raters, scenes and trials_per_session must be at least 1")
    if pilot is not None:
        for column in (method, score, rater):
            if column not in pilot.columns:
                raise ValueError(f"pilot lacks column {column!r}")
        scores = pd.to_numeric(pilot[score], errors="coerce")
        if quality is None:
            # A pilot method voted all top (or all bottom) has no latent level that keeps
            # it there in expectation: just inside the scale stands for it.
            quality = scores.groupby(pilot[method]).mean().clip(scale[0] + 0.01, scale[1] - 0.01).to_numpy()
        residual = scores - scores.groupby(pilot[method]).transform("mean")
        offsets = residual.groupby(pilot[rater]).mean()
        rater_bias_sd = float(offsets.std(ddof=1)) if len(offsets) > 1 else rater_bias_sd
        spread = float((residual - residual.groupby(pilot[rater]).transform("mean")).std(ddof=1))
        inconsistency = (max(0.05, 0.6 * spread), 1.4 * spread)
    if quality is None:
        centre = (scale[0] + scale[1]) / 2 + 0.5
        quality = centre + difference * (np.arange(n_methods) - (n_methods - 1) / 2)
        if quality.min() <= scale[0] or quality.max() >= scale[1]:
            raise ValueError(
                f"{n_methods} methods {difference:g} apart run from {quality.min():.2f} to {quality.max():.2f}, "
                f"beyond the scale {scale[0]}-{scale[1]}: plan for a smaller difference"
            )
    quality = np.asarray(quality, dtype=float)
    if len(quality) < 2:
        raise ValueError("plan_study needs at least two methods")
    rows = []
    for policy in ("uniform", "adaptive"):
        needed = [
            simulate_study(
                quality,
                policy=policy,
                scenes=scenes,
                trials_per_session=trials_per_session,
                max_raters=max_raters,
                difference=difference,
                smallest_difference=smallest_difference,
                warmup_votes=warmup_votes,
                rater_bias_sd=rater_bias_sd,
                inconsistency=inconsistency,
                scene_sd=scene_sd,
                scale=scale,
                check_every=check_every,
                seed=seed * 100_003 + rep,
            )
            for rep in range(reps)
        ]
        reached = np.array([np.inf if k is None else k for k in needed], dtype=float)
        raters = float(np.quantile(reached, power, method="higher"))
        rows.append(
            {
                "allocation": policy,
                "raters": raters if np.isfinite(raters) else np.nan,
                "votes": raters * trials_per_session if np.isfinite(raters) else np.nan,
                "p_separated_at_max": float(np.isfinite(reached).mean()),
            }
        )
    params = {
        "difference": difference,
        "power": power,
        "reps": reps,
        "scenes": scenes,
        "trials_per_session": trials_per_session,
        "rater_bias_sd": rater_bias_sd,
        "inconsistency": list(inconsistency),
        "scene_sd": scene_sd,
        "scale": list(scale),
    }
    return PLANNER.stamp(pd.DataFrame(rows), **params)
