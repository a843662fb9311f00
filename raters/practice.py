"""Practice pairs of a study without controls, and what their feedback says.

With a hidden reference and a low anchor, practice shows those (their right answers are
known) and a middling output (raters.services). Without them, practice shows the best
and the worst output by PSNR and a middling one, on different scenes where it can: PSNR
does not know what raters will say, so the feedback gives a range and says in words what
the pair was, rather than a single right answer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from raters.assignment import Candidate
from raters.models import Session, Trial
from studies.models import Method

BEST, WORST, MIDDLE = "best", "worst", "middle"


def spare(rows: Sequence[Candidate], target: int, needed: int = 3) -> list[Candidate]:
    """The outputs a session can practise on without costing coverage: those that have
    their ``target`` load already, when there are ``needed`` of them; else all. A session
    never rates what it practised on, so practising on an output still short of its votes
    (a late team's, say) would hold it back."""
    covered = [row for row in rows if row.load >= target]
    return covered if len(covered) >= needed else list(rows)


def practice_without_controls(rows: Sequence[Candidate], rng: random.Random, target: int) -> list[Candidate]:
    """The best, the worst and a middling output by PSNR (random ones while metrics are
    missing) among the :func:`spare` ones, preferring different scenes; the most loaded
    among equals, as with controls."""
    pool = spare(rows, target)
    rng.shuffle(pool)
    scored = sorted((row for row in pool if row.psnr is not None), key=lambda row: row.psnr)
    if len(scored) < 3:
        scored = pool  # no metrics yet: three outputs, feedback without a ranking
    picks: list[Candidate] = []

    def pick(candidates: Sequence[Candidate]) -> None:
        used_scenes = {row.scene_id for row in picks}
        used = {row.output_id for row in picks}
        left = [row for row in candidates if row.output_id not in used]
        fresh = [row for row in left if row.scene_id not in used_scenes] or left
        if fresh:
            picks.append(fresh[0])

    if scored:
        pick(list(reversed(scored)))  # best first: the highest PSNR that fits
        pick(scored)  # the worst
        third = len(scored) // 3
        middle = scored[third : len(scored) - third] or scored
        pick(sorted(middle, key=lambda row: -row.load))
    return picks


def practice_role(*, session: Session, trial_pk: int) -> str | None:
    """Which of best, worst and middle a practice trial of a study without controls was:
    by PSNR among the session's practice pairs. None when the practice had controls (their
    kind says it) or no PSNR to go by."""
    rows = list(
        session.trials.filter(kind=Trial.Kind.TRAINING).values_list("pk", "output__psnr", "output__method__kind")
    )
    if any(kind in Method.CONTROL_KINDS for _, _, kind in rows):
        return None
    scored = sorted((psnr, pk) for pk, psnr, _ in rows if psnr is not None)
    if len(scored) < 2 or trial_pk not in {pk for _, pk in scored}:
        return None
    if scored[-1][1] == trial_pk:
        return BEST
    if scored[0][1] == trial_pk:
        return WORST
    return MIDDLE
