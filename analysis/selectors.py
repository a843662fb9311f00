"""Reads of the analysis app: stored runs, coverage, the per-method facts of a study."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd
from django.db.models import Avg, Count, OuterRef, Q, QuerySet, Subquery

from analysis.frames import COUNTED_KINDS
from analysis.models import AnalysisRun
from analysis.results import table_from_json
from raters.models import Rating
from studies.models import Method, Output, Study


def study_runs(*, study: Study) -> QuerySet[AnalysisRun]:
    return AnalysisRun.objects.filter(study=study).order_by("-created_at", "-id")


def study_latest_run(*, study: Study, done_only: bool = True) -> AnalysisRun | None:
    runs = study_runs(study=study)
    if done_only:
        runs = runs.filter(status=AnalysisRun.Status.DONE)
    return runs.first()


def study_votes_after(*, study: Study, run: AnalysisRun) -> int:
    """Counted votes stored after ``run``'s cut-off: what the run does not show yet."""
    return Rating.objects.filter(
        trial__session__study=study,
        trial__kind__in=COUNTED_KINDS,
        id__gt=run.params.get("upto_rating_id") or 0,
    ).count()


def study_methods_frame(*, study: Study) -> pd.DataFrame:
    """One row per method: kind, PSNR/SSIM averaged over its outputs, runtime, framework.

    The method-level PSNR is the mean of the per-output PSNR, as challenge reports give
    it; outputs whose metrics are not computed are left out of the mean.
    """
    rows = (
        Method.objects.filter(study=study)
        .annotate(psnr=Avg("outputs__psnr"), ssim=Avg("outputs__ssim"))
        .order_by("name")
        .values_list("name", "kind", "psnr", "ssim", "runtime_s", "framework")
    )
    frame = pd.DataFrame.from_records(
        list(rows), columns=["method", "method_kind", "psnr", "ssim", "runtime_s", "framework"]
    )
    return frame.astype({"psnr": "float64", "ssim": "float64", "runtime_s": "float64"})


@dataclass(frozen=True)
class Coverage:
    target: int
    n_outputs: int
    n_votes: int
    min: int
    median: float
    max: int
    below_target: list[tuple[str, str, int]]

    @property
    def n_below_target(self) -> int:
        return len(self.below_target)


def study_coverage(*, study: Study) -> Coverage:
    """Counted votes per output (training excluded), live from the database."""
    counts = list(
        Output.objects.filter(method__study=study)
        .annotate(
            n=Count("trials__rating", filter=Q(trials__kind__in=COUNTED_KINDS)),
        )
        .order_by("n", "method__name", "scene__name")
        .values_list("method__name", "scene__name", "n")
    )
    values = [n for _, _, n in counts]
    target = study.ratings_per_output
    return Coverage(
        target=target,
        n_outputs=len(values),
        n_votes=sum(values),
        min=min(values, default=0),
        median=statistics.median(values) if values else 0,
        max=max(values, default=0),
        below_target=[(m, s, n) for m, s, n in counts if n < target],
    )


@dataclass(frozen=True)
class StudyResults:
    """What the results page and the organizer API show: the latest finished run."""

    study: Study
    run: AnalysisRun | None
    latest: AnalysisRun | None  # newest run of any status (pending, failed, ...)
    leaderboard: pd.DataFrame
    leaderboard_all_raters: pd.DataFrame
    correlations: pd.DataFrame
    raters: pd.DataFrame
    manual_exclusions: pd.DataFrame = field(default_factory=pd.DataFrame)
    image_mos: pd.DataFrame = field(default_factory=pd.DataFrame)
    agreement: pd.DataFrame = field(default_factory=pd.DataFrame)
    agreement_all_raters: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def excluded_by_rule(self) -> dict[str, list[str]]:
        """Rule name -> the raters it flagged (a rater may appear under several)."""
        if self.raters.empty:
            return {}
        return {
            rule: sorted(str(r) for r in self.raters.loc[self.raters[column].astype(bool), "rater"])
            for rule, column in (
                ("bt500", "bt500_rejected"),
                ("inconsistency", "inconsistency_rejected"),
                ("straight_lining", "straight_lining_rejected"),
                ("correlation", "correlation_rejected"),
                ("controls", "controls_rejected"),
            )
            if column in self.raters
        }

    @property
    def n_raters(self) -> int:
        return len(self.raters)

    @property
    def n_excluded(self) -> int:
        return int(self.raters["excluded"].astype(bool).sum()) if not self.raters.empty else 0


def study_results(*, study: Study) -> StudyResults:
    run = study_latest_run(study=study)
    stored = run.results if run else {}
    return StudyResults(
        study=study,
        run=run,
        latest=study_latest_run(study=study, done_only=False),
        leaderboard=table_from_json(stored, "leaderboard"),
        leaderboard_all_raters=table_from_json(stored, "leaderboard_all_raters"),
        correlations=table_from_json(stored, "correlations"),
        raters=table_from_json(stored, "raters"),
        manual_exclusions=table_from_json(stored, "manual_exclusions"),
        image_mos=table_from_json(stored, "image_mos"),
        agreement=table_from_json(stored, "agreement"),
        agreement_all_raters=table_from_json(stored, "agreement_all_raters"),
    )


@dataclass(frozen=True)
class RunScreening:
    """Who a study's latest finished run kept, as the sessions list shows it."""

    number: int
    # Rater label (as the vote frames name raters) -> the rules that flagged them,
    # comma separated, empty for a rater the screening kept.
    flagged_by: dict[str, str]
    # Session id -> the reason it was excluded by hand when the run was made.
    by_hand: dict[int, str]

    def outcome(self, *, session_id: int, platform: str, external_id: str, rater_id: int) -> str:
        """What the run says of a session: "kept (run 3)", "excluded: inconsistency,
        controls (run 3)", "excluded by hand: pilot (run 3)" or "not in run 3 (no votes by
        then)"."""
        run = f"(run {self.number})"
        if session_id in self.by_hand:
            return f"excluded by hand: {self.by_hand[session_id]} {run}"
        label = external_id or f"#{rater_id}"
        # analysis.frames._rater_labels prefixes the platform only when two platforms share
        # an id in the study: the prefixed label, when present, is this rater's.
        for candidate in (f"{platform}:{label}", label):
            if candidate in self.flagged_by:
                rules = self.flagged_by[candidate]
                return f"excluded: {rules.replace(',', ', ')} {run}" if rules else f"kept {run}"
        return f"not in run {self.number} (no votes by then)"


def studies_screening(*, study_ids: Iterable[int]) -> dict[int, RunScreening]:
    """The screening of each study's latest finished run, by study id (studies without
    one are left out): one query, reading only the runs' rater table and exclusions."""
    latest = (
        AnalysisRun.objects.filter(study=OuterRef("study"), status=AnalysisRun.Status.DONE)
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    runs = AnalysisRun.objects.filter(study_id__in=list(study_ids), pk=Subquery(latest)).values_list(
        "study_id", "number", "results__tables__raters__records", "params__manual_exclusions"
    )
    screening = {}
    for study_id, number, raters, exclusions in runs:
        screening[study_id] = RunScreening(
            number=number,
            flagged_by={str(r["rater"]): str(r.get("excluded_by") or "") for r in raters or []},
            by_hand={int(e["session"]): str(e["reason"]) for e in exclusions or []},
        )
    return screening
