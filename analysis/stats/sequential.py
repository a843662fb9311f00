"""A live decision on the adjacent pairs of a ranking, valid however often it is looked at.

For every pair of methods adjacent in the current ranking, one of three states:

* ``separated``: the confidence sequence of their MOS difference excludes 0;
* ``equivalent``: it lies within ``(-smallest_difference, +smallest_difference)`` (two
  one-sided tests at once, TOST style, with the same sequential boundary);
* ``undecided``: neither yet, with an estimate of the further votes that would decide it.

The question is "on this test set": scenes are fixed, raters sampled. A method's MOS is
the mean over scenes of its per-image MOS, so its variance is
``s_m^2 / S^2 * sum_i 1 / n_i`` with ``s_m^2`` the within-output variance of its votes
(pooled over its outputs, shrunk towards the study's when it has few degrees of freedom).

The boundary is the two-sided normal-mixture confidence sequence of Robbins (1970) in the
form of Howard, Ramdas, McAuliffe & Sekhon (2021), "Time-uniform, nonparametric,
nonasymptotic confidence sequences", Annals of Statistics 49(2), eq. (14)/(15): for a
difference estimated with information ``I = 1 / variance``, the half-width is

    h(I) = sqrt((I + rho) * log((I + rho) / (rho * alpha**2))) / I

and the probability that the true difference ever leaves ``d_hat -/+ h`` over the whole
study is at most ``alpha``, whenever and however often it is looked at and whatever the
allocation did with earlier votes. With the variance estimated from the votes this holds
asymptotically (Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit
theory and asymptotic confidence sequences", Annals of Statistics 2024). ``alpha`` is split
over the adjacent pairs (Bonferroni), so that a false separation of equal methods anywhere
in the ranking stays at most ``alpha`` family-wise. ``rho`` is fixed before any vote, from
the smallest difference: the boundary is tightest near the information at which a
fixed-size test would separate a difference of twice the smallest difference with 80%
power (Howard et al. 2021, section 3.5, for the choice of ``rho``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ._common import Estimator, counted

SEQUENTIAL = Estimator("sequential-adjacent-pairs", "1.0")

SEPARATED = "separated"
EQUIVALENT = "equivalent"
UNDECIDED = "undecided"
STATES = (SEPARATED, EQUIVALENT, UNDECIDED)

# Degrees of freedom of the study-wide variance a method's own is shrunk with: a method
# with a handful of votes borrows the study's spread instead of trusting its own.
_SHRINK_DF = 10.0
# Further votes beyond this are reported as "more than the study will ever collect".
_VOTES_CAP = 10**7
# Smallest score of an undecided pair relative to the cheapest one (allocation_weights).
_PAIR_FLOOR = 0.25


@dataclass(frozen=True)
class Decision:
    """The live decision: per-method and per-adjacent-pair tables.

    ``methods``: one row per method, best first: ``method, rank, mos, se, cs_low,
    cs_high, n_votes, min_output_votes, var_vote`` (the interval is the method's own
    confidence sequence at ``alpha / n_methods``).
    ``pairs``: one row per adjacent pair: ``method_a`` (ranked above), ``method_b``,
    ``diff`` (a - b, >= 0), ``se``, ``cs_low``, ``cs_high``, ``state``,
    ``votes_to_decide`` (NaN once decided), ``p_resolvable`` (probability, from the
    estimate now, that they differ by at least twice the smallest difference).
    """

    methods: pd.DataFrame
    pairs: pd.DataFrame
    smallest_difference: float
    alpha: float

    @property
    def decided(self) -> bool:
        """Every adjacent pair is separated or equivalent (False with fewer than two methods)."""
        return bool(len(self.pairs)) and bool((self.pairs["state"] != UNDECIDED).all())

    @property
    def n_votes(self) -> int:
        return int(self.methods["n_votes"].sum())


def mixture_rho(*, smallest_difference: float, alpha: float, power: float = 0.8) -> float:
    """The normal mixture's ``rho`` for a pair tested at level ``alpha``.

    Tightest near the information ``m`` that a fixed-size two-sided test needs to
    separate ``2 * smallest_difference`` with ``power``: ``rho = m / (2 log(1/alpha) +
    log(1 + 2 log(1/alpha)))`` (Howard et al. 2021, section 3.5).

    Examples
    --------
    >>> round(mixture_rho(smallest_difference=0.1, alpha=0.005), 1)
    25.5
    """
    _check(smallest_difference=smallest_difference, alpha=alpha)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    target = (z / (2 * smallest_difference)) ** 2
    log_a = 2 * math.log(1 / alpha)
    return float(target / (log_a + math.log(1 + log_a)))


def cs_half_width(variance: np.ndarray | float, *, alpha: float, rho: float) -> np.ndarray:
    """Half-width of the two-sided normal-mixture confidence sequence.

    Parameters
    ----------
    variance : array_like
        Variance of the estimate now (its information is ``1 / variance``); NaN or inf
        gives an infinite half-width.
    alpha : float
        Probability that the sequence ever misses, over the whole study.
    rho : float
        Mixture parameter (see :func:`mixture_rho`).

    Examples
    --------
    >>> float(cs_half_width(0.01, alpha=0.05, rho=100.0))  # sqrt(200 log(200/(100*.0025)))/100
    0.3656...
    """
    v = np.asarray(variance, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        info = 1.0 / v
        half = np.sqrt((info + rho) * np.log((info + rho) / (rho * alpha**2))) / info
    return np.where(np.isfinite(v) & (v > 0), half, np.inf)


def _check(*, smallest_difference: float, alpha: float) -> None:
    if not (isinstance(smallest_difference, int | float) and math.isfinite(smallest_difference)):
        raise ValueError("smallest_difference must be a finite number")
    if smallest_difference <= 0:
        raise ValueError(f"smallest_difference must be positive, got {smallest_difference}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")


def _cell_sums(
    df: pd.DataFrame, *, methods: list, scenes: list, method: str, scene: str, score: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vote count, sum and sum of squares per (method, scene), as methods x scenes arrays."""
    m_index, s_index = pd.Index(methods), pd.Index(scenes)
    mi = m_index.get_indexer(df[method])
    si = s_index.get_indexer(df[scene])
    keep = (mi >= 0) & (si >= 0)
    mi, si = mi[keep], si[keep]
    y = pd.to_numeric(df[score], errors="coerce").to_numpy(dtype=float)[keep]
    if not np.isfinite(y).all():
        raise ValueError(f"column {score!r} holds missing or non-numeric scores")
    n_m, n_s = len(m_index), len(s_index)
    cell = mi * n_s + si
    n = np.bincount(cell, minlength=n_m * n_s).astype(float).reshape(n_m, n_s)
    total = np.bincount(cell, weights=y, minlength=n_m * n_s).reshape(n_m, n_s)
    squares = np.bincount(cell, weights=y * y, minlength=n_m * n_s).reshape(n_m, n_s)
    return n, total, squares


def _method_table(names: list, n: np.ndarray, total: np.ndarray, squares: np.ndarray) -> pd.DataFrame:
    """Per-method MOS over scenes and its variance, from :func:`_cell_sums`."""
    n_m, n_s = n.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        ss = np.where(n > 0, squares - total * mean, 0.0).clip(min=0.0)
        df_m = (n - 1).clip(min=0).sum(axis=1)
        ss_m = ss.sum(axis=1)
        global_var = ss_m.sum() / df_m.sum() if df_m.sum() > 0 else np.nan
        var_vote = (ss_m + _SHRINK_DF * global_var) / (df_m + _SHRINK_DF)
        voted = (n > 0).sum(axis=1)
        mos = np.where(voted > 0, np.where(n > 0, mean, 0.0).sum(axis=1) / voted, np.nan)
        full = (n > 0).all(axis=1) if n_s else np.zeros(n_m, bool)
        var_mos = np.where(full, var_vote / n_s**2 * (1.0 / np.where(n > 0, n, 1.0)).sum(axis=1), np.nan)
    return pd.DataFrame(
        {
            "method": pd.Index(names).to_numpy(dtype=object),
            "mos": mos,
            "se": np.sqrt(var_mos),
            "n_votes": n.sum(axis=1).astype(np.int64),
            "min_output_votes": (n.min(axis=1) if n_s else np.zeros(n_m)).astype(np.int64),
            "var_vote": var_vote,
        }
    )


def _votes_needed(var_a: float, n_a: float, var_b: float, n_b: float, target_var: float) -> float:
    """Further votes, split evenly between the two methods, that bring the pair's variance
    to ``target_var``; each method's variance falls as ``v * N / (N + k)``."""
    if not np.isfinite(var_a + var_b) or target_var <= 0:
        return np.nan

    def variance(k: float) -> float:
        return var_a * n_a / (n_a + k / 2) + var_b * n_b / (n_b + k / 2)

    if variance(0) <= target_var:
        return 0.0
    if variance(_VOTES_CAP) > target_var:
        return float(_VOTES_CAP)
    low, high = 0.0, float(_VOTES_CAP)
    while high - low > 1:
        mid = (low + high) / 2
        low, high = (mid, high) if variance(mid) > target_var else (low, mid)
    return math.ceil(high)


def _information_needed(half_width: float, *, alpha: float, rho: float) -> float:
    """Smallest information at which the sequence's half-width is at most ``half_width``."""

    def width(info: float) -> float:  # cs_half_width for one number, without numpy's overhead
        return math.sqrt((info + rho) * math.log((info + rho) / (rho * alpha**2))) / info

    low, high = 1e-9, 1.0
    while width(high) > half_width:
        high *= 2
        if high > 1e15:
            return np.inf
    for _ in range(60):
        mid = math.sqrt(low * high)
        low, high = (mid, high) if width(mid) > half_width else (low, mid)
    return high


def decide_pairs(
    df: pd.DataFrame,
    *,
    smallest_difference: float = 0.1,
    alpha: float = 0.05,
    methods: Iterable | None = None,
    scenes: Iterable | None = None,
    method: str = "method",
    scene: str = "scene",
    score: str = "score",
    kind: str = "kind",
) -> Decision:
    """Separated / equivalent / undecided for each adjacent pair of the current ranking.

    Parameters
    ----------
    df : DataFrame
        Long-format votes; training rows (``kind == "training"``) are ignored.
    smallest_difference : float
        Smallest MOS difference of interest; methods provably closer are ``equivalent``.
    alpha : float
        Family-wise error over the whole study and all adjacent pairs (split evenly).
    methods, scenes : iterable, optional
        Every method to rank and every scene of the test set. Default: those in ``df``.
        A method without a vote on some scene has no interval ("on this test set" needs
        every scene), so its pairs stay undecided.
    method, scene, score, kind : str
        Column names.

    Returns
    -------
    Decision
        ``methods`` and ``pairs`` tables (see :class:`Decision`), each stamped with the
        estimator.

    Raises
    ------
    ValueError
        On a non-positive smallest difference, an alpha outside (0, 1), a missing
        column or a non-numeric score.

    Examples
    --------
    >>> votes = pd.DataFrame({"method": ["A"] * 4 + ["B"] * 4, "scene": ["s1", "s1", "s2", "s2"] * 2,
    ...                       "score": [5, 5, 5, 4, 1, 2, 1, 1]})
    >>> decide_pairs(votes, smallest_difference=0.1).pairs[["method_a", "method_b", "state"]]
      method_a method_b      state
    0        A        B  separated
    """
    _check(smallest_difference=smallest_difference, alpha=alpha)
    missing = [c for c in (method, scene, score) if c not in df.columns]
    if missing:
        raise ValueError(f"vote frame lacks column(s): {', '.join(missing)}")
    data = counted(df, kind=kind)
    method_list = list(dict.fromkeys(methods)) if methods is not None else sorted(data[method].unique(), key=str)
    scene_list = list(dict.fromkeys(scenes)) if scenes is not None else sorted(data[scene].unique(), key=str)
    sums = _cell_sums(data, methods=method_list, scenes=scene_list, method=method, scene=scene, score=score)
    return decide_from_sums(method_list, *sums, smallest_difference=smallest_difference, alpha=alpha, method=method)


def decide_from_sums(
    methods: list,
    n: np.ndarray,
    total: np.ndarray,
    squares: np.ndarray,
    *,
    smallest_difference: float,
    alpha: float = 0.05,
    method: str = "method",
) -> Decision:
    """:func:`decide_pairs` from per-output sufficient statistics: ``n``, ``total`` and
    ``squares`` are methods x scenes arrays of vote counts, sums and sums of squares (what
    a simulation keeps instead of a vote frame)."""
    _check(smallest_difference=smallest_difference, alpha=alpha)
    table = _method_table(list(methods), np.asarray(n, float), np.asarray(total, float), np.asarray(squares, float))
    # Best first; methods without votes last, names break ties so the order is stable.
    table = table.assign(_key=table["mos"].fillna(-np.inf), _name=table["method"].astype(str))
    table = table.sort_values(["_key", "_name"], ascending=[False, True], kind="stable").drop(columns=["_key", "_name"])
    table = table.reset_index(drop=True)
    n_methods = len(table)
    table.insert(1, "rank", np.arange(1, n_methods + 1))
    if n_methods:
        alpha_m = alpha / n_methods
        rho_m = mixture_rho(smallest_difference=smallest_difference, alpha=alpha_m)
        half = cs_half_width(table["se"].to_numpy() ** 2, alpha=alpha_m, rho=rho_m)
        table["cs_low"], table["cs_high"] = table["mos"] - half, table["mos"] + half

    n_pairs = max(n_methods - 1, 0)
    alpha_p = alpha / max(n_pairs, 1)
    rho = mixture_rho(smallest_difference=smallest_difference, alpha=alpha_p)
    rows = []
    for upper, lower in zip(table.index[:-1], table.index[1:], strict=True):
        a, b = table.loc[upper], table.loc[lower]
        diff = a["mos"] - b["mos"]
        variance = a["se"] ** 2 + b["se"] ** 2
        h = float(cs_half_width(variance, alpha=alpha_p, rho=rho))
        low, high = diff - h, diff + h
        if np.isfinite(h) and (low > 0 or high < 0):
            state = SEPARATED
        elif np.isfinite(h) and -smallest_difference < low and high < smallest_difference:
            state = EQUIVALENT
        else:
            state = UNDECIDED
        needed = np.nan
        if state == UNDECIDED and np.isfinite(variance):
            # Votes that would decide it if the difference stayed where it is now.
            target = max(abs(diff), smallest_difference - abs(diff))
            info = _information_needed(target, alpha=alpha_p, rho=rho)
            needed = _votes_needed(a["se"] ** 2, max(a["n_votes"], 1), b["se"] ** 2, max(b["n_votes"], 1), 1 / info)
        # How likely the pair is one a study is built to separate (|difference| at least
        # twice the smallest one), from the estimate and its standard error now.
        se = math.sqrt(variance) if np.isfinite(variance) and variance > 0 else np.inf
        wide = 2 * smallest_difference
        resolvable = float(stats.norm.sf((wide - diff) / se) + stats.norm.cdf((-wide - diff) / se))
        rows.append(
            {
                "method_a": a["method"],
                "method_b": b["method"],
                "diff": diff,
                "se": math.sqrt(variance) if np.isfinite(variance) else np.nan,
                "cs_low": low if np.isfinite(h) else np.nan,
                "cs_high": high if np.isfinite(h) else np.nan,
                "state": state,
                "votes_to_decide": needed,
                "p_resolvable": resolvable if np.isfinite(se) else 0.5,
            }
        )
    columns = [
        "method_a",
        "method_b",
        "diff",
        "se",
        "cs_low",
        "cs_high",
        "state",
        "votes_to_decide",
        "p_resolvable",
    ]
    pairs = pd.DataFrame(rows, columns=columns)
    params = {"smallest_difference": smallest_difference, "alpha": alpha, "correction": "bonferroni-adjacent"}
    table = table.rename(columns={"method": method})
    return Decision(
        methods=SEQUENTIAL.stamp(table, **params),
        pairs=SEQUENTIAL.stamp(pairs, **params),
        smallest_difference=smallest_difference,
        alpha=alpha,
    )


def allocation_weights(
    decision: Decision, *, warmup_votes: int = 2, floor: float = 0.02, method: str = "method"
) -> dict | None:
    """Relative share of the next votes each method should get; None while warming up.

    Votes go first to the undecided adjacent pairs that are cheapest to decide. For each
    undecided pair, the cost is the further votes (split evenly between its two methods)
    after which its confidence sequence would be narrower than the gap observed now, so
    that the pair would be separated if the gap stayed where it is (the same computation
    as ``votes_to_decide``, with the target half-width equal to the gap). A pair's score
    is ``0.25 + 0.75 * cheapest / cost``: the cheapest pair scores 1, a pair ten times as
    costly about 0.33, and a near-equal pair (whose gap, and so its cost, is mostly noise)
    never less than 0.25, so a pair that only looks hopeless now still gets votes and a
    wrong early estimate corrects itself. A method takes the largest score of its
    undecided pairs (not their sum: a method between two undecided pairs needs no more
    votes than one of them asks), so both methods of the pair being decided get the same
    share and, within a session, about the same number of trials, which cancels most of
    each rater's bias in their difference. Methods in no undecided pair keep ``floor``.

    The equivalence goal (the interval within the smallest difference) enters the cost
    only once no undecided pair has an observed gap of at least the smallest difference:
    before that, pairs that look equal would draw votes away from the separations a study
    is built to make. Then a pair's cost is the cheaper of separating it and showing it
    equivalent.

    Any rule that looks only at votes already stored keeps each confidence sequence
    valid: the normal-mixture boundary holds at every stopping time of the vote stream
    (Howard et al. 2021, section 3), and the allocation only decides which stream the next
    vote joins (checked by simulation in ``bench/validity/sequential.py``). The 0.25 floor
    of a pair's score is the allocation's exploration: without it a pair whose gap looks
    small after the warm-up may wait until every other pair is decided.

    Parameters
    ----------
    decision : Decision
        From :func:`decide_pairs`.
    warmup_votes : int
        Uniform allocation until every output of every method has this many votes.
    floor : float
        Weight, relative to the largest, of a method in no undecided pair.

    Returns
    -------
    dict or None
        ``{method: weight}``, the largest weight 1; None during the warm-up (allocate
        uniformly).

    Examples
    --------
    >>> votes = pd.DataFrame({"method": list("AABBCC") * 3, "scene": "s1", "score": [5, 4, 4, 4, 1, 2] * 3})
    >>> weights = allocation_weights(decide_pairs(votes), warmup_votes=2)
    >>> {m: round(w, 2) for m, w in weights.items()}  # B vs C is separated, A vs B is not
    {'A': 1.0, 'B': 1.0, 'C': 0.02}
    """
    methods = decision.methods
    if methods.empty or int(methods["min_output_votes"].min()) < warmup_votes:
        return None
    names = methods[method].tolist()
    undecided = decision.pairs[decision.pairs["state"] == UNDECIDED]
    if not len(undecided):
        return dict.fromkeys(names, 1.0)
    by_name = methods.set_index(method)
    delta = decision.smallest_difference
    alpha_p = decision.alpha / max(len(decision.pairs), 1)
    rho = mixture_rho(smallest_difference=delta, alpha=alpha_p)
    gaps = undecided["diff"].abs().to_numpy(dtype=float)
    with_equivalence = not bool((gaps >= delta).any())

    def cost(a: object, b: object, gap: float) -> float:
        """Further votes until the pair's interval is narrower than its gap (or, with
        the equivalence goal, than the room left below the smallest difference)."""
        var_a, var_b = by_name.at[a, "se"] ** 2, by_name.at[b, "se"] ** 2
        n_a, n_b = max(by_name.at[a, "n_votes"], 1), max(by_name.at[b, "n_votes"], 1)
        targets = [gap] + ([delta - gap] if with_equivalence and gap < delta else [])
        votes = [
            _votes_needed(var_a, n_a, var_b, n_b, 1 / _information_needed(t, alpha=alpha_p, rho=rho))
            for t in targets
            if t > 0
        ]
        votes = [v for v in votes if np.isfinite(v)]
        return max(min(votes), 1.0) if votes else float(_VOTES_CAP)

    costs = [
        (a, b, cost(a, b, gap))
        for (a, b), gap in zip(undecided[["method_a", "method_b"]].itertuples(index=False), gaps, strict=True)
    ]
    cheapest = min(c for _, _, c in costs)
    weights = dict.fromkeys(names, floor)
    for a, b, c in costs:
        score = _PAIR_FLOOR + (1 - _PAIR_FLOOR) * cheapest / c
        for m in (a, b):
            weights[m] = max(weights[m], score)
    return {m: float(w) for m, w in weights.items()}
