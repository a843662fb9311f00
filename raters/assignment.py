"""Choosing and ordering a session's trials: pure functions, no ORM.

raters.services.session_assign loads the study's outputs and their current load (votes
plus outstanding assignments) under a per-study lock, then calls these functions. Keeping
them pure lets the balance rules be tested exhaustively without a database.

The rules, in order of priority:
1. Every method appears equally often within the session (plus or minus one).
2. No output twice in a session, nor one practised on in training, while the method has
   another (a pair seen with feedback would be recognised).
3. Outputs with the lowest load go first, so once every session is complete the vote
   counts of a study's outputs differ by at most one (greedy "+1 to a minimum" keeps the
   spread of each method's and each output's load within one), and scenes spread out so
   that no two consecutive trials need to share a scene.
4. With a ``target`` (the study's votes per output), a method whose outputs all have
   their target load waits while another method has an output below it that the session
   has not seen: a team added to an open study (its outputs at zero) gets the trials of
   the next sessions instead of an equal share beside methods already covered. While no
   method is covered, rule 1 holds as before.

Adaptive allocation (raters.allocation) passes per-output ``weights``: a method's share
of the session then follows its weight instead of being equal (rule 1 becomes "in
proportion to the weights", highest-averages style), and an output's load counts as
``load / weight``. Rules 2 and 3 stay as they are; without weights nothing changes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import NamedTuple, TypeVar

T = TypeVar("T")


class Candidate(NamedTuple):
    """An output a session may be given, with its load (votes plus outstanding trials)."""

    output_id: int
    method_id: int
    scene_id: int
    load: int
    control: bool = False
    method_kind: str = ""
    psnr: float | None = None


def choose(
    candidates: Sequence[Candidate],
    *,
    count: int,
    rng: random.Random,
    scene_counts: Counter[int] | None = None,
    method_counts: Counter[int] | None = None,
    output_counts: Counter[int] | None = None,
    scene_cap: int | None = None,
    weights: Mapping[int, float] | None = None,
    target: int | None = None,
) -> list[Candidate]:
    """Pick ``count`` outputs, one at a time, each time the least loaded choice.

    ``scene_counts`` / ``method_counts`` / ``output_counts`` describe what the session
    already holds (they are updated in place, so rating trials and controls can be chosen
    in turn against the same session). ``scene_cap`` is the most trials one scene may
    have in the session before ordering without consecutive repeats becomes impossible.
    ``weights`` (output id -> positive weight, 1 where missing) skew the choice: each
    next trial goes to the method with the least ``(trials in session + 1) / weight``
    (its mean output weight), and within it to the output of least ``load / weight``.
    ``target`` (unweighted only) lets covered methods wait for uncovered ones (rule 4).
    """
    if count <= 0 or not candidates:
        return []
    scene_counts = scene_counts if scene_counts is not None else Counter()
    method_counts = method_counts if method_counts is not None else Counter()
    output_counts = output_counts if output_counts is not None else Counter()
    load = {c.output_id: c.load for c in candidates}
    by_method: dict[int, list[Candidate]] = {}
    for c in candidates:
        by_method.setdefault(c.method_id, []).append(c)
    method_load = {m: sum(load[c.output_id] for c in cs) for m, cs in by_method.items()}
    weight = {c.output_id: 1.0 for c in candidates}
    if weights is not None:
        for c in candidates:
            value = float(weights.get(c.output_id, 1.0))
            if not value > 0:
                raise ValueError(f"weight of output {c.output_id} must be positive, got {value}")
            weight[c.output_id] = value
    method_weight = {m: sum(weight[c.output_id] for c in cs) / len(cs) for m, cs in by_method.items()}
    # Random tie-breaks drawn once, so equal loads are resolved differently per session
    # but deterministically for a given seed.
    method_tie = {m: rng.random() for m in by_method}
    output_tie = {c.output_id: rng.random() for c in candidates}

    chosen: list[Candidate] = []

    def needs_more(m: int) -> bool:
        """An output of ``m`` is below the target and new to the session."""
        return any(load[c.output_id] < target and not output_counts[c.output_id] for c in by_method[m])

    def covered(m: int) -> bool:
        return all(load[c.output_id] >= target for c in by_method[m])

    def exhausted(m: int) -> bool:
        """Every output of ``m`` is in the session already (rated or practised on)."""
        return all(output_counts[c.output_id] for c in by_method[m])

    for _ in range(count):
        # A method out of fresh outputs waits while another still has one (rule 2 before
        # rule 1): its share of the session, equal or weighted, cannot be met anyway.
        if weights is None:
            catching_up = target is not None and any(needs_more(m) for m in by_method)
            method = min(
                by_method,
                key=lambda m: (
                    exhausted(m),
                    catching_up and covered(m),
                    method_counts[m],
                    method_load[m],
                    method_tie[m],
                ),
            )
        else:
            method = min(
                by_method,
                key=lambda m: (
                    exhausted(m),
                    (method_counts[m] + 1) / method_weight[m],
                    method_load[m] / method_weight[m],
                    method_tie[m],
                ),
            )

        def output_key(c: Candidate) -> tuple[object, ...]:
            over_cap = scene_cap is not None and scene_counts[c.scene_id] >= scene_cap
            # An output the session holds already (rated or practised on) comes last,
            # even before a scene over its cap (which only costs a repeat in the order).
            return (
                output_counts[c.output_id],
                over_cap,
                load[c.output_id] / weight[c.output_id],
                scene_counts[c.scene_id],
                output_tie[c.output_id],
            )

        pick = min(by_method[method], key=output_key)
        chosen.append(pick)
        load[pick.output_id] += 1
        method_load[method] += 1
        method_counts[method] += 1
        output_counts[pick.output_id] += 1
        scene_counts[pick.scene_id] += 1
    return chosen


def control_count(*, trials: int, control_rate: float) -> int:
    """Controls among ``trials`` trials: the rate rounded, at least one if the rate is set."""
    if control_rate <= 0 or trials <= 0:
        return 0
    return min(trials, max(1, round(trials * control_rate)))


def scene_cap(total: int) -> int:
    """Most trials of one scene that can still be ordered without consecutive repeats."""
    return (total + 1) // 2


def _feasible(counts: Counter[Hashable], prev: Hashable | None) -> bool:
    remaining = sum(counts.values())
    for key, n in counts.items():
        # The scene just shown cannot take the first slot, so it has one slot fewer.
        limit = remaining // 2 if key == prev else (remaining + 1) // 2
        if n > limit:
            return False
    return True


def order_without_repeats(
    items: Sequence[T], *, key: Callable[[T], Hashable], rng: random.Random, prev: Hashable | None = None
) -> list[T]:
    """Shuffle ``items`` so that no two neighbours share ``key(item)``.

    Random at each step among the choices that keep the rest arrangeable; when no such
    order exists (one scene holds more than half the trials) repeats are kept as few as
    a greedy pass allows rather than failing the session.
    """
    pool = list(items)
    rng.shuffle(pool)
    counts: Counter[Hashable] = Counter(key(item) for item in pool)
    strict = _feasible(counts, prev)
    ordered: list[T] = []
    last = prev
    while pool:
        pick_index = None
        if not strict:
            # No order avoids every repeat: spend the dominant key as fast as possible.
            others = [i for i in range(len(pool)) if key(pool[i]) != last]
            if others:
                pick_index = max(others, key=lambda i: counts[key(pool[i])])
        for index, item in enumerate(pool if pick_index is None else []):
            k = key(item)
            if k == last:
                continue
            counts[k] -= 1
            ok = not strict or _feasible(counts, k)
            counts[k] += 1
            if ok:
                pick_index = index
                break
        if pick_index is None:
            # Only the previous scene is left (or no strict order exists): take the
            # most frequent remaining key to keep later repeats to a minimum.
            pick_index = max(range(len(pool)), key=lambda i: (key(pool[i]) != last, counts[key(pool[i])]))
        item = pool.pop(pick_index)
        counts[key(item)] -= 1
        ordered.append(item)
        last = key(item)
    return ordered
