"""Check from the database what the simulated raters were told (run under the stack).

usage: verify.py SLUG ACKED.json [--metrics-study SLUG]
ACKED.json: {"votes": {trial_token: score acknowledged with 200/201}, "sessions": [token, ...]}
Prints one line per check and a JSON summary on the last line; exit status 1 on a failure.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import django

django.setup()

from django.db.models import Count  # noqa: E402

from raters.models import Rating, Session, Trial  # noqa: E402
from raters.selectors import output_load_drift  # noqa: E402
from studies.models import ImageAsset, Method, Output, Study  # noqa: E402

COUNTED = (Trial.Kind.RATING, Trial.Kind.CONTROL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("slug")
    parser.add_argument("acked")
    parser.add_argument("--metrics-study")
    args = parser.parse_args()
    acked = json.loads(open(args.acked).read())
    votes: dict[str, int] = acked["votes"]
    results: dict[str, object] = {}

    stored = dict(Rating.objects.filter(trial__session__study__slug=args.slug).values_list("trial__token", "score"))
    per_trial = Counter(Rating.objects.filter(trial__session__study__slug=args.slug).values_list("trial_id", flat=True))
    missing = [t for t in votes if t not in stored]
    wrong = [t for t, score in votes.items() if t in stored and stored[t] != score]
    unacked = [t for t in stored if t not in votes]
    doubled = [t for t, n in per_trial.items() if n > 1]
    results["acked_votes"] = len(votes)
    results["stored_votes"] = len(stored)
    results["missing"], results["wrong_score"], results["doubled"] = len(missing), len(wrong), len(doubled)
    results["stored_not_acked"] = len(unacked)

    sessions = Session.objects.filter(study__slug=args.slug)
    by_status = Counter(sessions.values_list("status", flat=True))
    results["sessions"] = dict(by_status)
    results["sessions_expected"] = len(acked["sessions"])
    results["sessions_complete"] = sessions.filter(token__in=acked["sessions"], status=Session.Status.COMPLETE).count()

    def spread(kinds: list[str]) -> tuple[int, int]:
        outputs = Output.objects.filter(method__study__slug=args.slug, method__kind__in=kinds)
        counts = outputs.annotate(
            n=Count("trials__rating", filter=django.db.models.Q(trials__kind__in=COUNTED))
        ).values_list("n", flat=True)
        counts = list(counts)
        return (min(counts), max(counts)) if counts else (0, 0)

    submissions = spread([Method.Kind.SUBMISSION, Method.Kind.BASELINE])
    controls = spread([Method.Kind.HIDDEN_REFERENCE, Method.Kind.LOW_ANCHOR])
    results["coverage_submissions_min_max"] = submissions
    results["coverage_controls_min_max"] = controls

    # A vote on a trial already handed to another rater would give its output an extra one.
    trials = Trial.objects.filter(session__study__slug=args.slug)
    results["released_and_answered"] = trials.filter(released_at__isnull=False, rating__isnull=False).count()
    # The stored loads the next start would assign by, against a count of the trials.
    results["load_drift"] = len(output_load_drift(study=Study.objects.get(slug=args.slug)))

    ok = (
        not missing
        and not wrong
        and not doubled
        and not unacked
        and results["sessions_complete"] == results["sessions_expected"]
        and submissions[1] - submissions[0] <= 1
        and controls[1] - controls[0] <= 1
        and not results["released_and_answered"]
        and not results["load_drift"]
    )
    if args.metrics_study:
        outputs = Output.objects.filter(method__study__slug=args.metrics_study)
        assets = ImageAsset.objects.filter(id__in=list(outputs.values_list("image_id", flat=True)))
        results["metric_outputs"] = outputs.count()
        results["metric_done"] = outputs.filter(metric_status=Output.MetricStatus.DONE, ssim__isnull=False).count()
        results["tiles_done"] = assets.filter(tile_status=ImageAsset.TileStatus.DONE).count()
        results["tiles_expected"] = assets.count()
        ok = (
            ok
            and results["metric_done"] == results["metric_outputs"]
            and results["tiles_done"] == results["tiles_expected"]
        )
    results["ok"] = ok
    print(json.dumps(results))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
