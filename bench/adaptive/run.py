"""Benchmark of adaptive allocation: votes until the ranking is decided, uniform vs adaptive.

Simulated raters with a known truth (the AIM 2020 Learned ISP Track 2 MOS values as the
true method qualities, a scene effect shared by all methods, each rater's own bias and
inconsistency) vote through the real services (raters.services.session_start and
rating_submit), several raters at a time on threads, on a fresh SQLite database (or
PostgreSQL through DATABASE_URL). After each finished session the live decision is read
the way the organizer sees it. For each seed and policy it prints:

* ``votes``: counted votes (rated and control trials) stored when every truly different
  adjacent pair of the true ranking (difference >= 0.2) was first separated in the right
  order ("-" if the budget ran out first);
* ``equal_sep``: whether the truly equal pair (Airia_CG and Baidu, both 4.0) was ever
  declared separated while the study ran (the share over seeds is the error rate);
* ``misordered``: separations in the wrong direction, ever;
* ``srcc``: Spearman rank correlation of the final MOS with the truth.

The published values are MOS, means of votes on five levels, so each method's latent level
is solved for (analysis.stats.planner.latent_for_mos) so that its expected vote on the
simulated test set is its published MOS: used as latent levels directly, rounding and
clipping would compress the top of the table (MW-ISPNet's 4.7 would come out about 4.52,
and its 0.2 lead over MacAI about 0.14), and "truly different by 0.2" would not hold.

Both policies of a seed see common random numbers: the same scene effects, the same
bias and inconsistency for the i-th rater, and the same standard normal draw for the k-th
vote of each output, so the comparison measures the allocation rather than the luck of
the draws. The summary gives the share of votes adaptive saves, ``1 - mean(adaptive) /
mean(uniform)`` over the seeds, with a 95% bootstrap interval that resamples seeds.

Run from the repository root::

    python bench/adaptive/run.py --seeds 3 --scenes 42

``--simulated-seeds N`` adds the same comparison on N seeds with the planner's simulator
(no database, much faster: the figure with less noise). ``--full`` keeps the study
running until it stops itself (every adjacent pair decided, or the vote budget spent)
instead of ending once the measurement is made. ``--null-reps N`` also checks, by a
simulation without the database, that four equal methods are falsely separated in at
most 5% of N studies, adaptive allocation, looking after every rater, with stopping.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
TABLE = Path(os.environ.get("MOSAIC_AIM_TABLE", ROOT.parent / "shared" / "data" / "aim2020_isp_table1.csv"))
DIFFERENT = 0.2  # a true adjacent difference at least this large must be separated
BIAS_SD, NOISE_SD = 0.3, (0.4, 1.0)  # each rater's bias and the range of their inconsistency


@dataclass
class Outcome:
    policy: str
    seed: int
    votes: int | None
    equal_separated: bool
    misordered: int
    srcc: float
    total_votes: int
    seconds: float


def setup_django(tmp: Path) -> None:
    os.environ.setdefault("MOSAIC_VAR_DIR", str(tmp))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.MEDIA_ROOT = str(tmp / "media")
    call_command("migrate", verbosity=0)


def truth() -> dict[str, float]:
    import pandas as pd

    table = pd.read_csv(TABLE)
    return dict(zip(table["team"], table["track2_mos"].astype(float), strict=True))


def make_study(*, policy: str, seed: int, scenes: int, quality: dict[str, float], budget: int, tag: str):
    """A study with every team's outputs and two controls; images are rows only (the
    services never open a file)."""
    import secrets

    from studies.models import ImageAsset, Method, Output, Scene, Study
    from studies.scales import ScalePreset, levels_for

    def asset() -> ImageAsset:
        return ImageAsset(
            token=secrets.token_urlsafe(24), sha256="0" * 64, original="x.png", file="x.png", width=8, height=8
        )

    study = Study.objects.create(
        title=f"bench {tag}",
        slug=f"bench-{tag}",
        status=Study.Status.OPEN,
        scale_preset=ScalePreset.AIM5,
        scale_levels=levels_for(ScalePreset.AIM5),
        # The target per output is not what stops this study: its budget and decision do.
        ratings_per_output=max(budget // (len(quality) * scenes), 1),
        trials_per_session=30,
        control_rate=0.1,
        seed=seed,
        allocation=policy,
        warmup_votes=2,
        smallest_difference=0.1,
        vote_budget=budget,
        stop_when_decided=True,
    )
    refs = ImageAsset.objects.bulk_create([asset() for _ in range(scenes)])
    scene_rows = Scene.objects.bulk_create(
        [Scene(study=study, name=f"scene{i:02d}", reference=ref, width=8, height=8) for i, ref in enumerate(refs)]
    )
    methods = [Method(study=study, name=name) for name in quality]
    methods += [
        Method(study=study, name="hidden-reference", kind=Method.Kind.HIDDEN_REFERENCE),
        Method(study=study, name="low-anchor", kind=Method.Kind.LOW_ANCHOR),
    ]
    methods = Method.objects.bulk_create(methods)
    images = ImageAsset.objects.bulk_create([asset() for _ in range(len(methods) * scenes)])
    it = iter(images)
    Output.objects.bulk_create(
        [Output(method=m, scene=s, image=next(it), metric_status="done") for m in methods for s in scene_rows]
    )
    return study


def decision_now(study):
    """The live decision as the organizer's page computes it, fresh (not from the cache)."""
    from raters.allocation import _compute

    return _compute(study)


def judge(state, quality: dict[str, float]) -> tuple[bool, bool, int, float]:
    """(every truly different adjacent pair separated, equal pair separated, misordered
    separations, Spearman correlation of the MOS with the truth)."""
    from scipy import stats

    pairs = state.decision.pairs
    names = state.names
    ranked = [names[m] for m in state.decision.methods["method"]]
    group, groups = 0, {ranked[0]: 0}
    for (_, row), lower in zip(pairs.iterrows(), ranked[1:], strict=True):
        group += row["state"] == "separated"
        groups[lower] = group
    true_order = sorted(quality, key=lambda n: -quality[n])
    all_sep, equal_sep = True, False
    for upper, lower in zip(true_order, true_order[1:], strict=False):
        gap = quality[upper] - quality[lower]
        if gap >= DIFFERENT - 1e-9 and not groups[upper] < groups[lower]:
            all_sep = False
        if abs(gap) < 1e-9 and groups[upper] != groups[lower]:
            equal_sep = True
    misordered = sum(1 for a in quality for b in quality if quality[a] > quality[b] and groups[a] > groups[b])
    mos = state.decision.methods.set_index("method")["mos"]
    estimated = [mos[m] for m in names]
    srcc = float(stats.spearmanr(estimated, [quality[names[m]] for m in names]).statistic)
    return all_sep, equal_sep, misordered, srcc


def run_one(*, policy: str, seed: int, scenes: int, workers: int, budget: int, full: bool) -> Outcome:
    import numpy as np
    from django.db import connection

    from analysis.stats.planner import latent_for_mos
    from raters import services
    from raters.platforms import RaterIdentity
    from studies.models import Output, Study

    quality = truth()
    study = make_study(
        policy=policy, seed=seed, scenes=scenes, quality=quality, budget=budget, tag=f"{policy}-{seed}-{time.time_ns()}"
    )
    rng = np.random.default_rng(seed)
    # One effect per scene, shared by every method and centred; each method's latent
    # level gives it the table's MOS on this test set, and the two teams at 4.0 stay
    # exactly equal.
    effects = rng.normal(0, 0.3, scenes)
    effects -= effects.mean()
    mos = {**quality, "hidden-reference": 4.9, "low-anchor": 1.2}
    latent = latent_for_mos(list(mos.values()), scene_effects=effects, rater_bias_sd=BIAS_SD, inconsistency=NOISE_SD)
    level = dict(zip(mos, latent, strict=True))
    expected = {
        pk: level[method] + effects[int(scene_name.removeprefix("scene"))]
        for pk, method, scene_name in Output.objects.filter(method__study=study).values_list(
            "pk", "method__name", "scene__name"
        )
    }

    output_key = {
        pk: f"{method}/{scene_name}"
        for pk, method, scene_name in Output.objects.filter(method__study=study).values_list(
            "pk", "method__name", "scene__name"
        )
    }
    votes_so_far: dict[int, int] = {}
    counting = threading.Lock()

    def vote_noise(output_id: int) -> float:
        """Standard normal noise of this output's next vote: the k-th vote of an output
        gets the same draw under both policies (common random numbers)."""
        with counting:
            k = votes_so_far.get(output_id, 0)
            votes_so_far[output_id] = k + 1
        return random.Random(f"{seed}:{output_key[output_id]}:{k}").gauss(0, 1)

    def rater(index: int) -> int:
        """One rater's whole session; the votes it stored. The i-th rater has the same
        bias and inconsistency under both policies."""
        r = random.Random(seed * 1_000_003 + index)
        bias, noise = r.gauss(0, BIAS_SD), r.uniform(*NOISE_SD)
        try:
            session, _ = services.session_start(
                study=Study.objects.get(pk=study.pk),
                identity=RaterIdentity(platform="prolific", external_id=f"{study.slug}-{index}"),
            )
            trials = list(session.trials.order_by("position").values_list("token", "output_id"))
            for token, output_id in trials:
                score = min(5, max(1, round(expected[output_id] + bias + noise * vote_noise(output_id))))
                services.rating_submit(session_token=session.token, trial_token=token, score=score, response_ms=1000)
            return len(trials)
        except services.StudyNotOpen:
            return 0
        finally:
            connection.close()

    started = time.perf_counter()
    votes_at: int | None = None
    equal_sep, misordered = False, 0
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        inflight, index = set(), 0
        while True:
            while not stop.is_set() and len(inflight) < workers:
                inflight.add(pool.submit(rater, index))
                index += 1
            if not inflight:
                break
            done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
            for future in done:
                if future.result() == 0:
                    stop.set()  # closed, or out of budget
            state = decision_now(study)
            all_sep, eq, wrong, _ = judge(state, quality)
            equal_sep |= eq
            misordered = max(misordered, wrong)
            if all_sep and votes_at is None:
                votes_at = state.n_counted
                if not full:
                    stop.set()
            if Study.objects.filter(pk=study.pk, status=Study.Status.CLOSED).exists():
                stop.set()
    state = decision_now(study)
    _, eq, wrong, srcc = judge(state, quality)
    return Outcome(
        policy=policy,
        seed=seed,
        votes=votes_at,
        equal_separated=equal_sep or eq,
        misordered=max(misordered, wrong),
        srcc=srcc,
        total_votes=state.n_counted,
        seconds=time.perf_counter() - started,
    )


def fewer_votes(uniform: list[float], adaptive: list[float], *, resamples: int = 4000) -> tuple[float, float, float]:
    """Share of votes adaptive saves, ``1 - mean(adaptive) / mean(uniform)`` over paired
    seeds, with a 95% percentile bootstrap interval that resamples the seeds (both
    policies' figures of a seed together)."""
    import numpy as np

    u, a = np.asarray(uniform, float), np.asarray(adaptive, float)
    rng = np.random.default_rng(20240601)
    index = rng.integers(0, len(u), size=(resamples, len(u)))
    boot = 1 - a[index].mean(axis=1) / u[index].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(1 - a.mean() / u.mean()), float(low), float(high)


def summarize(outcomes: list[Outcome], *, budget: int) -> None:
    """Per policy: mean votes, errors, SRCC; then the saving with its interval. A seed
    whose budget ran out counts the whole budget (a lower bound of what it needed)."""
    print()
    by_policy = {
        p: sorted((o for o in outcomes if o.policy == p), key=lambda o: o.seed) for p in ("uniform", "adaptive")
    }
    for policy, rows in by_policy.items():
        votes = [budget if o.votes is None else o.votes for o in rows]
        print(
            f"{policy:<9} seeds {len(rows)}, mean votes {sum(votes) / len(votes):8.0f} "
            f"(decided in {sum(o.votes is not None for o in rows)}/{len(rows)}), "
            f"equal pair wrongly separated {sum(o.equal_separated for o in rows)}/{len(rows)}, "
            f"misordered {sum(o.misordered for o in rows)}, mean srcc {sum(o.srcc for o in rows) / len(rows):.3f}"
        )
    seeds = sorted({o.seed for o in by_policy["uniform"]} & {o.seed for o in by_policy["adaptive"]})
    if not seeds:
        return
    votes = {p: {o.seed: budget if o.votes is None else o.votes for o in rows} for p, rows in by_policy.items()}
    saving, low, high = fewer_votes([votes["uniform"][s] for s in seeds], [votes["adaptive"][s] for s in seeds])
    print(
        f"adaptive uses {100 * saving:.0f}% fewer votes over {len(seeds)} seeds "
        f"(95% bootstrap interval over seeds {100 * low:.0f}% to {100 * high:.0f}%; target: at least 40%)"
    )


def null_check(reps: int, seed: int, policy: str = "adaptive") -> float:
    """Share of simulated studies of four equal methods in which any adjacent pair is ever
    declared separated, looking after every rater of 30 trials (allocated by ``policy``)
    and stopping once every pair is decided or 60 raters have voted."""
    import numpy as np

    from analysis.stats.planner import _session_methods
    from analysis.stats.sequential import SEPARATED, allocation_weights, decide_from_sums

    rng = np.random.default_rng(seed)
    methods, scenes, errors = 4, 10, 0
    for _ in range(reps):
        n, total, squares = (np.zeros((methods, scenes)) for _ in range(3))
        weights = None
        for _rater in range(60):
            counts = np.minimum(_session_methods(weights, methods, 30, rng), scenes)  # no output twice
            mi = np.repeat(np.arange(methods), counts)
            si = np.concatenate([np.lexsort((rng.random(scenes), n[m]))[:k] for m, k in enumerate(counts)])
            noise = rng.uniform(0.4, 1.0)
            y = np.clip(np.round(3.5 + rng.normal(0, 0.3) + rng.normal(0, noise, len(mi))), 1, 5)
            np.add.at(n, (mi, si), 1)
            np.add.at(total, (mi, si), y)
            np.add.at(squares, (mi, si), y * y)
            decision = decide_from_sums(list(range(methods)), n, total, squares, smallest_difference=0.2)
            if (decision.pairs["state"] == SEPARATED).any():
                errors += 1
                break
            if decision.decided:
                break
            if policy == "adaptive":
                w = allocation_weights(decision, warmup_votes=2)
                weights = None if w is None else np.array([w[m] for m in range(methods)])
    return errors / reps


def simulated(seeds: int, scenes: int) -> None:
    """The same comparison on many more seeds without the database (the planner's
    simulator: same decision and weights, the session rules simplified), in raters."""
    import numpy as np

    from analysis.stats.planner import simulate_study

    quality = np.array(list(truth().values()))
    needed = {
        policy: [
            simulate_study(quality, policy=policy, scenes=scenes, trials_per_session=27, max_raters=1000, seed=s)
            for s in range(seeds)
        ]
        for policy in ("uniform", "adaptive")
    }
    for policy, raters in needed.items():
        done = [r for r in raters if r is not None]
        print(f"simulated {policy:<9} raters of 27 rated trials: mean {np.mean(done):.0f}, median "
              f"{np.median(done):.0f} (decided in {len(done)}/{seeds})")  # fmt: skip
    # A seed not decided within 1000 raters counts 1000 (a lower bound of what it needed).
    saving, low, high = fewer_votes(*[[1000 if r is None else r for r in needed[p]] for p in ("uniform", "adaptive")])
    print(
        f"simulated: adaptive uses {100 * saving:.0f}% fewer votes over {seeds} seeds "
        f"(95% bootstrap interval over seeds {100 * low:.0f}% to {100 * high:.0f}%)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1, each run with both policies")
    parser.add_argument("--scenes", type=int, default=42)
    parser.add_argument("--workers", type=int, default=4, help="raters voting at the same time (threads)")
    parser.add_argument("--budget-per-output", type=int, default=40, help="vote budget per team output")
    parser.add_argument("--refresh", type=float, default=0.25, help="seconds between decision refreshes")
    parser.add_argument("--full", action="store_true", help="run until the study stops itself")
    parser.add_argument("--null-reps", type=int, default=0, help="also run the database-free null check")
    parser.add_argument("--simulated-seeds", type=int, default=0, help="also compare on N seeds without the database")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="mosaic-bench-adaptive-"))
    setup_django(tmp)
    from django.conf import settings

    # Simulated raters vote hundreds of times faster than people: refresh the decision
    # as often, relative to the votes, as 5 s would in a live study.
    settings.MOSAIC_ALLOCATION_REFRESH_SECONDS = args.refresh
    n_teams = len(truth())
    budget = args.budget_per_output * n_teams * args.scenes
    outcomes: list[Outcome] = []
    print(
        f"{'seed':>4} {'policy':<9} {'votes':>7} {'equal_sep':>9} {'misordered':>10} {'srcc':>6} {'total':>7} {'s':>6}"
    )
    for seed in range(args.seeds):
        for policy in ("uniform", "adaptive"):
            o = run_one(
                policy=policy, seed=seed, scenes=args.scenes, workers=args.workers, budget=budget, full=args.full
            )
            outcomes.append(o)
            shown = "-" if o.votes is None else str(o.votes)
            print(
                f"{o.seed:>4} {o.policy:<9} {shown:>7} {o.equal_separated!s:>9} {o.misordered:>10} "
                f"{o.srcc:>6.3f} {o.total_votes:>7} {o.seconds:>6.1f}",
                flush=True,
            )
    if outcomes:
        summarize(outcomes, budget=budget)
    if args.simulated_seeds:
        simulated(args.simulated_seeds, args.scenes)
    if args.null_reps:
        rate = null_check(args.null_reps, seed=12345)
        print(
            f"null check: equal methods falsely separated in {100 * rate:.1f}% of {args.null_reps} studies "
            "(target <= 5%)"
        )


if __name__ == "__main__":
    main()
