"""Simulated studies with known truth, for the validity harness.

A vote is ``clip(round(q[m] + s[i] + g[m, i] + b[r] + u[r] * e))`` on the study's levels
(or the same without rounding and clipping in the continuous design, where the P.910
model holds exactly): ``q`` the method's latent quality, ``s`` a scene effect, ``g`` a
scene x method interaction (teams are not equally good on every scene), ``b`` the rater's
bias, ``u`` the rater's inconsistency and ``e`` standard normal noise.

Estimands are computed exactly from that model (normal CDFs at the level boundaries,
averaged over the inconsistency distribution), not from a large simulation:

* ``output_truth[m, i]``: the expected vote on output (m, i) of a rater drawn from the
  good-rater population (per-output intervals);
* ``test_set_truth[m]``: the mean over *these* scenes of ``output_truth[m, i]`` ("on this
  test set": scenes fixed, raters sampled);
* ``new_scenes_truth[m]``: the expected vote on method m for a scene *and* a rater drawn
  from their populations ("on new scenes too");
* ``panel_truth[m]``: the expected vote on method m for a scene drawn from its population,
  given the raters who voted on m, each weighed as in the method's MOS ("new scenes,
  these raters": what Student-t over the per-image MOS estimates; good raters only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import optimize, stats

GOOD, BIASED, CARELESS, STRAIGHT = "good", "biased", "careless", "straight-lining"
RATER_TYPES = (GOOD, BIASED, CARELESS, STRAIGHT)

#: AIM 2020 Track 2 MOS of the 11 teams (Table 1): the latent qualities of the AIM design.
AIM_QUALITIES = (4.7, 4.5, 4.2, 4.1, 4.0, 4.0, 3.8, 3.5, 3.2, 2.4, 2.2)


@dataclass(frozen=True)
class Design:
    name: str
    n_methods: int
    n_scenes: int
    votes_per_output: int
    n_raters: int
    levels: tuple[int, int] = (1, 5)
    qualities: tuple[float, ...] | None = None
    assignment: str = "random"  # or "scene-blocked": a rater rates every method of a scene
    rounded: bool = True
    scene_sd: float = 0.5
    interaction_sd: float = 0.3
    bias_sd: float = 0.3
    inconsistency: tuple[float, float] = (0.4, 1.0)
    #: share of each rater type in the pool (the rest are good raters)
    pool: dict[str, float] = field(default_factory=dict)
    biased_shift: float = 1.2

    def with_(self, **changes) -> Design:
        return replace(self, **changes)

    def q(self) -> np.ndarray:
        if self.qualities is not None:
            return np.asarray(self.qualities, dtype=float)
        lo, hi = self.levels
        return np.full(self.n_methods, (lo + hi) / 2 + 0.3)


def new_scenes_mos(design: Design, qualities: np.ndarray) -> np.ndarray:
    """The "new scenes" truth of methods of the given latent qualities (exact, no simulation)."""
    var_new = design.bias_sd**2 + _u_grid(design) ** 2 + design.scene_sd**2 + design.interaction_sd**2
    return _expected_vote(np.asarray(qualities, float)[:, None], var_new[None, :], design).mean(axis=1)


def spaced_mos(design: Design, gap: float, centre: float | None = None) -> Design:
    """The same design with methods exactly ``gap`` apart in true MOS (0: all equal).

    Rounding and clipping to the levels compress latent differences, most near the ends
    of the scale, so latent qualities ``delta`` apart are not ``delta`` apart in MOS. Here
    each method's latent quality is solved for (Brent's method on the exact expected vote)
    so that its "new scenes" truth is ``centre + k * gap``; the expected "test set" truth
    of each method is the same (the test set's scenes are a sample of the population).
    """
    lo, hi = design.levels
    centre = (lo + hi) / 2 + 0.3 if centre is None else centre
    targets = centre + (np.arange(design.n_methods)[::-1] - (design.n_methods - 1) / 2) * gap
    if not design.rounded:
        return design.with_(qualities=tuple(targets))
    if targets.min() <= lo or targets.max() >= hi:
        raise ValueError(f"MOS {targets.min():.2f}..{targets.max():.2f} does not fit inside the scale")
    qualities = [
        optimize.brentq(lambda q, t=t: new_scenes_mos(design, np.array([q]))[0] - t, lo - 10, hi + 10, xtol=1e-10)
        for t in targets
    ]
    return design.with_(qualities=tuple(qualities))


def spaced(design: Design, delta: float, centre: float | None = None) -> Design:
    """The same design with methods spaced ``delta`` apart (0: all equal) around ``centre``."""
    lo, hi = design.levels
    centre = (lo + hi) / 2 + 0.3 if centre is None else centre
    offsets = (np.arange(design.n_methods)[::-1] - (design.n_methods - 1) / 2) * delta
    return design.with_(qualities=tuple(centre + offsets))


AIM = Design("AIM-like 11x42x10, 100 raters", 11, 42, 10, 100, qualities=AIM_QUALITIES)
SMALL = Design("small 6x10x5, 20 raters", 6, 10, 5, 20, qualities=(4.3, 4.0, 3.7, 3.4, 3.0, 2.6))
PIRM = Design(
    "PIRM-like 4-level 12x30x10, 100 raters",
    12,
    30,
    10,
    100,
    levels=(1, 4),
    qualities=tuple(np.linspace(2.75, 2.1, 12).round(3)),
    scene_sd=0.35,
    interaction_sd=0.2,
    bias_sd=0.3,
    inconsistency=(0.4, 0.9),
)

MIXED_POOL = {BIASED: 0.1, CARELESS: 0.1, STRAIGHT: 0.1}


@dataclass
class Study:
    votes: pd.DataFrame
    rater_type: pd.Series  # indexed by rater
    output_truth: np.ndarray  # methods x scenes
    test_set_truth: np.ndarray
    new_scenes_truth: np.ndarray
    panel_truth: np.ndarray
    levels: tuple[int, int]


_U_GRID = 41


def _expected_vote(latent: np.ndarray, var: np.ndarray, design: Design) -> np.ndarray:
    """E[clip(round(N(latent, var)))] on the design's levels (or the latent mean)."""
    if not design.rounded:
        return latent
    lo, hi = design.levels
    sd = np.sqrt(var)
    out = np.full(np.shape(latent), float(lo))
    for k in range(lo, hi):
        out = out + stats.norm.sf((k + 0.5 - latent) / sd)
    return out


def _u_grid(design: Design) -> np.ndarray:
    a, b = design.inconsistency
    return a + (b - a) * (np.arange(_U_GRID) + 0.5) / _U_GRID


def _assign(design: Design, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rater, method and scene of every vote; balanced rater loads, distinct raters per output."""
    k, n_r = design.votes_per_output, design.n_raters
    load = np.zeros(n_r)
    raters, methods, scenes = [], [], []
    if design.assignment == "random":
        cells = rng.permutation(design.n_methods * design.n_scenes)
        for cell in cells:
            pick = np.argpartition(load + rng.random(n_r), k)[:k]
            load[pick] += 1
            raters.append(pick)
            methods.append(np.full(k, cell // design.n_scenes))
            scenes.append(np.full(k, cell % design.n_scenes))
    elif design.assignment == "scene-blocked":
        for scene in rng.permutation(design.n_scenes):
            pick = np.argpartition(load + rng.random(n_r), k)[:k]
            load[pick] += design.n_methods
            raters.append(np.repeat(pick, design.n_methods))
            methods.append(np.tile(np.arange(design.n_methods), k))
            scenes.append(np.full(k * design.n_methods, scene))
    else:
        raise ValueError(design.assignment)
    return np.concatenate(raters), np.concatenate(methods), np.concatenate(scenes)


def simulate(design: Design, rng: np.random.Generator) -> Study:
    q = design.q()
    n_m, n_s, n_r = design.n_methods, design.n_scenes, design.n_raters
    lo, hi = design.levels
    scene = rng.normal(0, design.scene_sd, n_s)
    inter = rng.normal(0, design.interaction_sd, (n_m, n_s))
    latent = q[:, None] + scene[None, :] + inter

    types = np.full(n_r, GOOD, dtype=object)
    start = 0
    for kind, share in design.pool.items():
        count = int(round(share * n_r))
        types[start : start + count] = kind
        start += count
    types = rng.permutation(types)
    bias = rng.normal(0, design.bias_sd, n_r)
    biased = types == BIASED
    bias[biased] = rng.choice([-1, 1], biased.sum()) * design.biased_shift
    a, b = design.inconsistency
    upsilon = rng.uniform(a, b, n_r)

    r, m, s = _assign(design, rng)
    x = latent[m, s] + bias[r] + upsilon[r] * rng.normal(0, 1, len(r))
    if design.rounded:
        x = np.clip(np.round(x), lo, hi)
    careless = types[r] == CARELESS
    x[careless] = rng.integers(lo, hi + 1, careless.sum())
    straight_level = rng.integers(lo + 1, hi + 1, n_r)  # a middle or upper level, always
    straight = types[r] == STRAIGHT
    x[straight] = straight_level[r[straight]]
    votes = pd.DataFrame(
        {
            "rater": r,
            "scene": s,
            "method": m,
            "score": x.astype(float),
            "kind": "rating",
        }
    )

    u = _u_grid(design)
    var_out = design.bias_sd**2 + u**2
    out_truth = _expected_vote(latent[:, :, None], var_out[None, None, :], design).mean(axis=2)
    var_new = var_out + design.scene_sd**2 + design.interaction_sd**2
    new_truth = _expected_vote(q[:, None], var_new[None, :], design).mean(axis=1)
    # each vote weighs 1 / (scenes x votes on its output) in its method's MOS
    per_output = np.bincount(m * n_s + s, minlength=n_m * n_s)[m * n_s + s]
    var_panel = design.scene_sd**2 + design.interaction_sd**2 + upsilon[r] ** 2
    expected = _expected_vote(q[m] + bias[r], var_panel, design)
    panel_truth = np.bincount(m, weights=expected / (n_s * per_output), minlength=n_m)
    return Study(
        votes=votes,
        rater_type=pd.Series(types, index=np.arange(n_r)),
        output_truth=out_truth,
        test_set_truth=out_truth.mean(axis=1),
        new_scenes_truth=new_truth,
        panel_truth=panel_truth,
        levels=design.levels,
    )
